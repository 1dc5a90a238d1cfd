//! The split of a query with active `@defer`/`@stream` into the documents
//! its parts execute. Every part's document is the whole query, fragments
//! inlined, with what the part must not run wrapped in
//! `... @skip(if: true) { … }`: validation still sees (and checks) the
//! whole document as sent, every variable stays used, and execution runs
//! only the part's selection. The initial part holds back the active
//! deferred fragments; a deferred part runs its fragment's ancestors
//! (answered from the request's memos, not read again) and its fragment;
//! a streamed root list runs in the initial part sliced to `initialCount`
//! items and again, from the same memo, for the rest.
//!
//! The plan also lists what the held-back fragments select
//! ([`Ahead`]), so that a resolver of the initial part that picks its
//! statement by looking ahead (a page with its tags, a note with its
//! author) reads what the later parts will ask of it in the same
//! statement, as the query without `@defer` does.
//!
//! `@stream` below the root, or inside a deferred fragment, is answered in
//! full where it stands (the fallback): its list is a nested field whose
//! items come from one batch, so sending them later would save nothing.

use std::collections::HashMap;

use async_graphql::parser::types::{
    Directive, DocumentOperations, ExecutableDocument, Field, FragmentDefinition, InlineFragment, OperationDefinition,
    OperationType, Selection, SelectionSet,
};
use async_graphql::{Name, Positioned, Value, Variables};

/// How deep fragments may nest before the plan gives up (validation then
/// reports cycles and the like on the unsplit document).
const MAX_DEPTH: usize = 64;

/// The parts of one incremental query.
pub(crate) struct Plan {
    /// What the initial part runs.
    pub(crate) initial: ExecutableDocument,
    /// Root lists streamed: response key → `initialCount`.
    pub(crate) root_streams: HashMap<String, usize>,
    /// The deferred fragments and streamed lists, in document order (a
    /// nested fragment after its parent).
    pub(crate) parts: Vec<Part>,
    /// What the deferred fragments select.
    pub(crate) ahead: Ahead,
}

/// The fields that active deferred fragments select, by the response path
/// (list indices left out) of the object they are selected on: what a
/// resolver's look-ahead misses in the initial part, where those
/// fragments are held back (async-graphql drops skipped selections before
/// execution). Request data of every part of an incremental query.
#[derive(Debug, Default)]
pub(crate) struct Ahead(HashMap<Vec<Name>, HashMap<Name, Vec<Selected>>>);

/// One deferred selection of a field.
#[derive(Debug, Clone)]
pub(crate) struct Selected {
    /// Its response key: the path of what it selects in turn.
    pub(crate) key: Name,
    /// Its arguments with the request's variables put in; `None` when one
    /// names a variable the request lacks (validation reports it).
    pub(crate) arguments: Option<Vec<(Name, Value)>>,
}

impl Ahead {
    /// The deferred selections of the field `name` on the object at
    /// `path` (none when no deferred fragment selects it).
    pub(crate) fn selected(&self, path: &[&str], name: &str) -> &[Selected] {
        let at = self.0.iter().find(|(at, _)| at.len() == path.len() && at.iter().zip(path).all(|(a, b)| a == b));
        at.and_then(|(_, fields)| fields.iter().find(|(field, _)| field.as_str() == name)).map_or(&[], |(_, s)| s)
    }

    /// True when a deferred fragment selects the field `name` on the
    /// object at `path`.
    pub(crate) fn selects(&self, path: &[&str], name: &str) -> bool {
        !self.selected(path, name).is_empty()
    }
}

/// One subsequent part.
pub(crate) struct Part {
    /// Its `label`, when given.
    pub(crate) label: Option<String>,
    /// What it delivers.
    pub(crate) kind: Kind,
    /// What it runs.
    pub(crate) document: ExecutableDocument,
}

/// What a subsequent part delivers.
pub(crate) enum Kind {
    /// A deferred fragment's fields, in every object found at this path of
    /// response keys (lists expanded).
    Defer(Vec<Name>),
    /// The items of the root list `key` from index `from` on.
    Stream {
        /// The root field's response key.
        key: String,
        /// The first item it sends (`initialCount`).
        from: usize,
    },
}

/// A selection of the inlined query, with its directives' verdicts.
enum Node {
    Field { field: Positioned<Field>, children: Vec<Node>, stream: Option<usize> },
    Fragment { fragment: Positioned<InlineFragment>, children: Vec<Node>, defer: Option<usize> },
}

/// The plan of `document`'s operation `operation_name`, or `None` when it
/// is not a query, defers and streams nothing (or only with `if: false`),
/// or cannot be inlined (left to validation to report).
pub(crate) fn plan(document: &ExecutableDocument, operation_name: Option<&str>, variables: &Variables) -> Option<Plan> {
    let operation = crate::parsed::select_operation(document, operation_name)?;
    if operation.ty != OperationType::Query {
        return None;
    }
    let mut builder = Builder {
        fragments: &document.fragments,
        variables,
        parts: Vec::new(),
        root_streams: HashMap::new(),
        ahead: HashMap::new(),
    };
    let nodes = builder.build(&operation.selection_set.node, &[], false, true, 0)?;
    if builder.parts.is_empty() {
        return None;
    }
    let initial = with_selection(operation, emit(&nodes, None).0);
    let parts = builder
        .parts
        .into_iter()
        .enumerate()
        .map(|(id, (label, kind))| Part { label, kind, document: with_selection(operation, emit(&nodes, Some(id)).0) })
        .collect();
    Some(Plan { initial, root_streams: builder.root_streams, parts, ahead: Ahead(builder.ahead) })
}

/// True when `document` may need incremental delivery: it names `@defer`
/// or `@stream` at all (a cheap test before [`plan`]).
pub(crate) fn mentions_incremental(query: &str) -> bool {
    query.contains("@defer") || query.contains("@stream")
}

struct Builder<'a> {
    fragments: &'a HashMap<Name, Positioned<FragmentDefinition>>,
    variables: &'a Variables,
    parts: Vec<(Option<String>, Kind)>,
    root_streams: HashMap<String, usize>,
    ahead: HashMap<Vec<Name>, HashMap<Name, Vec<Selected>>>,
}

impl Builder<'_> {
    /// The nodes of `set`, at response path `path`; `deferred` inside an
    /// active deferred fragment, `root` at the operation's top level.
    fn build(
        &mut self,
        set: &SelectionSet,
        path: &[Name],
        deferred: bool,
        root: bool,
        depth: usize,
    ) -> Option<Vec<Node>> {
        if depth > MAX_DEPTH {
            return None;
        }
        let mut nodes = Vec::with_capacity(set.items.len());
        for item in &set.items {
            match &item.node {
                Selection::Field(field) => {
                    let key = field.node.response_key().node.clone();
                    if deferred {
                        let arguments = field.node.arguments.iter().map(|(name, value)| {
                            let value =
                                value.node.clone().into_const_with(|var| self.variables.get(&var).cloned().ok_or(()));
                            value.ok().map(|value| (name.node.clone(), value))
                        });
                        let selected = Selected { key: key.clone(), arguments: arguments.collect() };
                        let fields = self.ahead.entry(path.to_vec()).or_default();
                        fields.entry(field.node.name.node.clone()).or_default().push(selected);
                    }
                    let stream = self.active(&field.node.directives, "stream").filter(|_| root && !deferred);
                    let stream = stream.map(|(label, directive)| {
                        let from = self.int(directive, "initialCount").unwrap_or(0);
                        self.root_streams.insert(key.to_string(), from);
                        self.push(label, Kind::Stream { key: key.to_string(), from })
                    });
                    let mut below = path.to_vec();
                    below.push(key);
                    let children = self.build(&field.node.selection_set.node, &below, deferred, false, depth + 1)?;
                    let mut bare = field.clone();
                    bare.node.selection_set.node.items.clear();
                    nodes.push(Node::Field { field: bare, children, stream });
                }
                Selection::InlineFragment(fragment) => {
                    let defer = self.defer(&fragment.node.directives, path);
                    let set = &fragment.node.selection_set.node;
                    let children = self.build(set, path, deferred || defer.is_some(), root, depth + 1)?;
                    let mut bare = fragment.clone();
                    bare.node.selection_set.node.items.clear();
                    nodes.push(Node::Fragment { fragment: bare, children, defer });
                }
                Selection::FragmentSpread(spread) => {
                    let definition = self.fragments.get(&spread.node.fragment_name.node)?;
                    let defer = self.defer(&spread.node.directives, path);
                    let set = &definition.node.selection_set.node;
                    let children = self.build(set, path, deferred || defer.is_some(), root, depth + 1)?;
                    let fragment = InlineFragment {
                        type_condition: Some(definition.node.type_condition.clone()),
                        directives: spread.node.directives.clone(),
                        selection_set: Positioned::new(SelectionSet::default(), definition.node.selection_set.pos),
                    };
                    nodes.push(Node::Fragment { fragment: Positioned::new(fragment, spread.pos), children, defer });
                }
            }
        }
        Some(nodes)
    }

    /// The part of an active `@defer` among `directives`.
    fn defer(&mut self, directives: &[Positioned<Directive>], path: &[Name]) -> Option<usize> {
        let (label, _) = self.active(directives, "defer")?;
        Some(self.push(label, Kind::Defer(path.to_vec())))
    }

    fn push(&mut self, label: Option<String>, kind: Kind) -> usize {
        self.parts.push((label, kind));
        self.parts.len() - 1
    }

    /// The label and the directive `name` among `directives`, when present
    /// and its `if` is not false.
    fn active<'d>(
        &self,
        directives: &'d [Positioned<Directive>],
        name: &str,
    ) -> Option<(Option<String>, &'d Directive)> {
        let directive = &directives.iter().find(|d| d.node.name.node == name)?.node;
        if matches!(self.value(directive, "if"), Some(Value::Boolean(false))) {
            return None;
        }
        let label = match self.value(directive, "label") {
            Some(Value::String(label)) => Some(label),
            _ => None,
        };
        Some((label, directive))
    }

    /// A non-negative integer argument.
    fn int(&self, directive: &Directive, name: &str) -> Option<usize> {
        match self.value(directive, name)? {
            Value::Number(n) => n.as_u64().and_then(|n| usize::try_from(n).ok()),
            _ => None,
        }
    }

    /// An argument's value with the request's variables put in.
    fn value(&self, directive: &Directive, name: &str) -> Option<Value> {
        let value = directive.get_argument(name)?.node.clone();
        value.into_const_with(|var| self.variables.get(&var).cloned().ok_or(())).ok()
    }
}

/// The selection of one part: everything (`target` `None`: the initial
/// part, deferred fragments held back), or the path to part `target` and
/// its whole content, the rest held back. Also whether `target` is inside.
fn emit(nodes: &[Node], target: Option<usize>) -> (Vec<Positioned<Selection>>, bool) {
    let mut items = Vec::with_capacity(nodes.len());
    let mut found = false;
    for node in nodes {
        let (item, inside, hold) = match node {
            Node::Field { field, children, stream } => {
                let is_target = target.is_some() && *stream == target;
                let (set, inside) = if is_target { (emit(children, None).0, true) } else { emit(children, target) };
                let set = whole_when_held(set, inside, children, target);
                let mut field = field.clone();
                field.node.selection_set.node.items = set;
                let pos = field.pos;
                (Positioned::new(Selection::Field(field), pos), inside, target.is_some() && !inside)
            }
            Node::Fragment { fragment, children, defer } => {
                let is_target = target.is_some() && *defer == target;
                let (set, inside) = if is_target { (emit(children, None).0, true) } else { emit(children, target) };
                let set = whole_when_held(set, inside, children, target);
                let mut fragment = fragment.clone();
                fragment.node.selection_set.node.items = set;
                let pos = fragment.pos;
                let hold = match target {
                    None => defer.is_some(),
                    Some(_) => !inside,
                };
                (Positioned::new(Selection::InlineFragment(fragment), pos), inside, hold)
            }
        };
        found |= inside;
        items.push(if hold { held(item) } else { item });
    }
    (items, found)
}

/// A selection held back whole needs no holding inside: its children as
/// the initial part has them (`set` when it is on the target's path).
fn whole_when_held(
    set: Vec<Positioned<Selection>>,
    inside: bool,
    children: &[Node],
    target: Option<usize>,
) -> Vec<Positioned<Selection>> {
    if target.is_some() && !inside { emit(children, None).0 } else { set }
}

/// `item` inside `... @skip(if: true) { … }`: validated, never run.
fn held(item: Positioned<Selection>) -> Positioned<Selection> {
    let pos = item.pos;
    let skip = Directive {
        name: Positioned::new(Name::new("skip"), pos),
        arguments: vec![(
            Positioned::new(Name::new("if"), pos),
            Positioned::new(async_graphql_value::Value::Boolean(true), pos),
        )],
    };
    let fragment = InlineFragment {
        type_condition: None,
        directives: vec![Positioned::new(skip, pos)],
        selection_set: Positioned::new(SelectionSet { items: vec![item] }, pos),
    };
    Positioned::new(Selection::InlineFragment(Positioned::new(fragment, pos)), pos)
}

/// A one-operation document: `operation` with `items` as its selection.
fn with_selection(operation: &OperationDefinition, items: Vec<Positioned<Selection>>) -> ExecutableDocument {
    let mut operation = operation.clone();
    operation.selection_set.node.items = items;
    let pos = operation.selection_set.pos;
    ExecutableDocument {
        operations: DocumentOperations::Single(Positioned::new(operation, pos)),
        fragments: HashMap::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan_of(query: &str, variables: serde_json::Value) -> Option<Plan> {
        let document = async_graphql::parser::parse_query(query).unwrap();
        plan(&document, None, &Variables::from_json(variables))
    }

    /// A part's selection in short: fields by response key, fragments as
    /// `...{…}`, held ones as `skip{…}`.
    fn text(document: &ExecutableDocument) -> String {
        let DocumentOperations::Single(op) = &document.operations else { panic!("one operation") };
        show(&op.node.selection_set.node)
    }

    fn show(set: &SelectionSet) -> String {
        let items: Vec<String> = set
            .items
            .iter()
            .map(|item| match &item.node {
                Selection::Field(field) if field.node.selection_set.node.items.is_empty() => {
                    field.node.response_key().node.to_string()
                }
                Selection::Field(field) => {
                    format!("{}{{{}}}", field.node.response_key().node, show(&field.node.selection_set.node))
                }
                Selection::InlineFragment(fragment) => {
                    let held = fragment.node.directives.iter().any(|d| d.node.name.node == "skip");
                    format!("{}{{{}}}", if held { "skip" } else { "..." }, show(&fragment.node.selection_set.node))
                }
                Selection::FragmentSpread(spread) => format!("...{}", spread.node.fragment_name.node),
            })
            .collect();
        items.join(" ")
    }

    #[test]
    fn without_active_directives_there_is_no_plan() {
        assert!(plan_of("{ notes { title } }", serde_json::json!({})).is_none());
        assert!(plan_of("{ note(id: 1) { ... @defer(if: false) { title } } }", serde_json::json!({})).is_none());
        assert!(
            plan_of(
                "query($d: Boolean!) { note(id: 1) { ... @defer(if: $d) { title } } }",
                serde_json::json!({"d": false})
            )
            .is_none()
        );
        assert!(plan_of("mutation { a ... @defer { b } }", serde_json::json!({})).is_none());
    }

    #[test]
    fn a_deferred_fragment_is_one_part_at_its_path_with_its_label() {
        let plan = plan_of(
            "query { note(id: 1) { title ...Similar @defer(label: \"s\") } } fragment Similar on Note { similar { title } }",
            serde_json::json!({}),
        )
        .unwrap();
        assert_eq!(plan.parts.len(), 1);
        assert_eq!(plan.parts[0].label.as_deref(), Some("s"));
        assert!(
            matches!(&plan.parts[0].kind, Kind::Defer(path) if path.iter().map(Name::as_str).collect::<Vec<_>>() == ["note"])
        );
        assert!(plan.initial.fragments.is_empty());
        // The initial part holds the fragment back; the deferred one runs
        // its ancestor and its fields, the rest held back.
        assert_eq!(text(&plan.initial), "note{title skip{...{similar{title}}}}");
        assert_eq!(text(&plan.parts[0].document), "note{skip{title} ...{similar{title}}}");
    }

    #[test]
    fn a_root_stream_records_its_initial_count_and_a_nested_one_is_ignored() {
        let plan = plan_of(
            "{ searchNotes(text: \"x\") @stream(initialCount: 3) { note { title } } notes { similar @stream { title } } }",
            serde_json::json!({}),
        )
        .unwrap();
        assert_eq!(plan.parts.len(), 1);
        assert_eq!(plan.root_streams.get("searchNotes"), Some(&3));
        assert!(matches!(&plan.parts[0].kind, Kind::Stream { key, from: 3 } if key == "searchNotes"));
        assert_eq!(text(&plan.parts[0].document), "searchNotes{note{title}} skip{notes{similar{title}}}");
    }

    #[test]
    fn what_deferred_fragments_select_is_known_by_path() {
        let plan = plan_of(
            "{ list: notes { id ... @defer { tags { name } a: author { name } } } note(id: 1) { title } }",
            serde_json::json!({}),
        )
        .unwrap();
        assert!(plan.ahead.selects(&["list"], "tags"));
        assert!(plan.ahead.selects(&["list"], "author"));
        assert!(plan.ahead.selects(&["list", "a"], "name"));
        // Not what the initial part selects anyway, nor another path.
        assert!(!plan.ahead.selects(&["list"], "id"));
        assert!(!plan.ahead.selects(&["note"], "tags"));
        assert!(!plan.ahead.selects(&["notes"], "tags"));
    }

    #[test]
    fn a_nested_deferred_fragment_comes_after_its_parent() {
        let plan = plan_of(
            "{ notes { id ... @defer(label: \"a\") { title author { name ... @defer(label: \"b\") { noteCount } } } } }",
            serde_json::json!({}),
        )
        .unwrap();
        let labels: Vec<_> = plan.parts.iter().map(|part| part.label.as_deref()).collect();
        assert_eq!(labels, [Some("a"), Some("b")]);
        assert!(
            matches!(&plan.parts[1].kind, Kind::Defer(path) if path.iter().map(Name::as_str).collect::<Vec<_>>() == ["notes", "author"])
        );
        assert_eq!(text(&plan.initial), "notes{id skip{...{title author{name skip{...{noteCount}}}}}}");
        assert_eq!(text(&plan.parts[0].document), "notes{skip{id} ...{title author{name skip{...{noteCount}}}}}");
        assert_eq!(text(&plan.parts[1].document), "notes{skip{id} ...{skip{title} author{skip{name} ...{noteCount}}}}");
    }
}
