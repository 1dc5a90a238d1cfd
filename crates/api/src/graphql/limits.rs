//! Operation limits, checked after parsing and before any resolver runs, so
//! a refused operation costs no statement: document size in bytes and
//! tokens, bracket nesting (before the parser, which recurses), field
//! depth, cost, aliases, root fields and directives per field.
//!
//! The cost of an operation is computed from the schema's own type
//! registry: every field costs 1, and a list field's subtree is multiplied
//! by its `first` argument (a literal, a variable, or the declared
//! default), so nested lists multiply. This module does not execute
//! anything and does not validate: a document that does not parse, or an
//! operation it cannot pick, is left to the engine, which reports it.

use std::collections::HashSet;

use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, OperationDefinition, Selection, SelectionSet,
};
use async_graphql::registry::{MetaType, MetaTypeName, Registry};
use async_graphql::{
    ErrorExtensionValues, OutputType, Positioned, Request, ServerError, SubscriptionType, Value, Variables,
};

use super::{MutationRoot, QueryRoot, SubscriptionRoot};
use crate::parsed::ParsedDocuments;

/// Items a list without a `first` argument is assumed to hold: `Note.tags`,
/// the only such list, holds at most 10.
const UNPAGED_LIST_ITEMS: u64 = 10;
/// Bracket nesting the lexer allows beyond the depth limit: room for the
/// operation's own braces and for nested input objects and lists.
const NESTING_SLACK: usize = 8;
/// Selections the cost walk visits at most: fragments spread twice in a
/// chain would otherwise make it exponential in the document's length.
const MAX_VISITS: usize = 100_000;

/// The configured limits; see `config/graphql.rs` for each default and why.
#[derive(Debug, Clone, Copy)]
pub struct OperationLimits {
    /// Deepest field nesting.
    pub max_depth: usize,
    /// Highest cost.
    pub max_complexity: u64,
    /// Most aliases in the document.
    pub max_aliases: usize,
    /// Most fields at the root of the executed operation.
    pub max_root_fields: usize,
    /// Largest document, in bytes.
    pub max_document_bytes: usize,
    /// Most lexical tokens.
    pub max_tokens: usize,
    /// Most directives on one selection.
    pub max_directives_per_field: usize,
}

/// Checks requests against [`OperationLimits`] with the schema's types.
pub(crate) struct Limiter {
    limits: OperationLimits,
    registry: Registry,
    /// Documents that passed the size limits and parsed before.
    parsed: Option<ParsedDocuments>,
}

/// What a document measures.
#[derive(Debug, Default, PartialEq, Eq)]
struct Measure {
    /// The first argument given a value of the wrong shape for its input
    /// object type (see [`Walk::input_objects`]): the message to answer.
    wrong_input: Option<String>,
    depth: usize,
    cost: u64,
    aliases: usize,
    root_fields: usize,
    directives: usize,
    visits: usize,
}

impl Limiter {
    /// A limiter over the schema's root types, keeping up to
    /// `parsed_bytes` of parsed documents (0: none).
    pub(crate) fn new(limits: OperationLimits, parsed_bytes: u64) -> Self {
        let mut registry = Registry::default();
        QueryRoot::create_type_info(&mut registry);
        MutationRoot::create_type_info(&mut registry);
        <SubscriptionRoot as SubscriptionType>::create_type_info(&mut registry);
        let parsed = (parsed_bytes > 0).then(|| ParsedDocuments::new(parsed_bytes));
        Limiter { limits, registry, parsed }
    }

    /// The parsed-document map, when documents are kept.
    pub(crate) fn parsed_documents(&self) -> Option<&ParsedDocuments> {
        self.parsed.as_ref()
    }

    /// Refuses a request over any limit; on success the parsed document is
    /// kept in the request, so the engine does not parse it again, and the
    /// operation's cost is returned (0 when it was not measured: a document
    /// that does not parse, or that selects no operation).
    pub(crate) fn check(&self, request: &mut Request) -> Result<u64, ServerError> {
        let document = match self.parsed.as_ref().and_then(|parsed| parsed.get(&request.query)) {
            // It passed the size limits when it was parsed.
            Some(document) => document,
            None => {
                self.check_size(&request.query)?;
                let parse = tracing::debug_span!("graphql.parse");
                let parsed = parse.in_scope(|| match &self.parsed {
                    Some(parsed) => parsed.parse(&request.query),
                    None => async_graphql::parser::parse_query(&request.query),
                });
                // A document that does not parse is the engine's to report.
                let Ok(document) = parsed else {
                    return Ok(0);
                };
                document
            }
        };
        let measured = self.measure(&document, request.operation_name.as_deref(), &request.variables);
        let unset = unset_variables(&document, request.operation_name.as_deref(), &mut request.variables);
        // Kept in the request, so the engine does not parse it again.
        request.set_parsed_query(document);
        if let Some(error) = unset {
            return Err(error);
        }
        let Some(measure) = measured else { return Ok(0) };
        if let Some(message) = measure.wrong_input {
            return Err(bad_input(message, None));
        }
        let limits = &self.limits;
        let cost = Some(measure.cost);
        let checks = [
            ("depth", measure.depth as u64, limits.max_depth as u64),
            ("complexity", measure.cost, limits.max_complexity),
            ("aliases", measure.aliases as u64, limits.max_aliases as u64),
            ("root fields", measure.root_fields as u64, limits.max_root_fields as u64),
            ("directives per field", measure.directives as u64, limits.max_directives_per_field as u64),
        ];
        for (limit, measured, max) in checks {
            if measured > max {
                return Err(refusal("QUERY_TOO_COMPLEX", limit, measured, max, cost));
            }
        }
        Ok(measure.cost)
    }

    /// Refuses a document too long, with too many tokens or nested too
    /// deep, before the parser (which recurses) sees it.
    fn check_size(&self, query: &str) -> Result<(), ServerError> {
        let limits = &self.limits;
        let bytes = query.len();
        if bytes > limits.max_document_bytes {
            return Err(refusal(
                "BAD_USER_INPUT",
                "document size in bytes",
                bytes as u64,
                limits.max_document_bytes as u64,
                None,
            ));
        }
        let lexed = lex(query);
        if lexed.tokens > limits.max_tokens {
            return Err(refusal(
                "BAD_USER_INPUT",
                "document size in tokens",
                lexed.tokens as u64,
                limits.max_tokens as u64,
                None,
            ));
        }
        let max_nesting = limits.max_depth + NESTING_SLACK;
        if lexed.nesting > max_nesting {
            return Err(refusal(
                "QUERY_TOO_COMPLEX",
                "bracket nesting",
                lexed.nesting as u64,
                max_nesting as u64,
                None,
            ));
        }
        Ok(())
    }

    /// Measures the operation the request selects; `None` when it selects
    /// none (the engine reports that).
    fn measure(&self, document: &ExecutableDocument, name: Option<&str>, variables: &Variables) -> Option<Measure> {
        let operation = match (&document.operations, name) {
            (DocumentOperations::Single(op), _) => op,
            (DocumentOperations::Multiple(ops), Some(name)) => ops.get(name)?,
            (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => ops.values().next()?,
            (DocumentOperations::Multiple(_), None) => return None,
        };
        let root = match operation.node.ty {
            async_graphql::parser::types::OperationType::Query => "Query",
            async_graphql::parser::types::OperationType::Mutation => "Mutation",
            async_graphql::parser::types::OperationType::Subscription => "Subscription",
        };
        let mut measure = Measure {
            aliases: count_aliases(document),
            root_fields: operation.node.selection_set.node.items.len(),
            ..Measure::default()
        };
        let mut walk = Walk { registry: &self.registry, document, operation, variables, spreading: HashSet::new() };
        measure.cost = walk.selection_set(&operation.node.selection_set, Some(root), 0, &mut measure);
        Some(measure)
    }
}

/// One cost-and-depth walk through an operation, fragments inlined.
struct Walk<'a> {
    registry: &'a Registry,
    document: &'a ExecutableDocument,
    operation: &'a Positioned<OperationDefinition>,
    variables: &'a Variables,
    /// Fragments being spread on the current path: a cycle is skipped here
    /// and refused by validation.
    spreading: HashSet<&'a str>,
}

impl<'a> Walk<'a> {
    /// The cost of a selection set of type `ty` (unknown: `None`) whose
    /// fields sit at `depth + 1`.
    fn selection_set(
        &mut self,
        set: &'a Positioned<SelectionSet>,
        ty: Option<&'a str>,
        depth: usize,
        measure: &mut Measure,
    ) -> u64 {
        let mut cost = 0u64;
        for selection in &set.node.items {
            measure.visits += 1;
            if measure.visits > MAX_VISITS {
                // Past this, report a cost that is certainly over any sane limit.
                return u64::MAX;
            }
            let item = match &selection.node {
                Selection::Field(field) => {
                    let field = &field.node;
                    measure.directives = measure.directives.max(field.directives.len());
                    measure.depth = measure.depth.max(depth + 1);
                    let meta =
                        ty.and_then(|ty| self.registry.types.get(ty)).and_then(|ty| ty.field_by_name(&field.name.node));
                    if let Some(meta) = meta {
                        self.input_objects(meta, field, measure);
                    }
                    let child_ty = meta.map(|meta| MetaTypeName::concrete_typename(&meta.ty));
                    let children = self.selection_set(&field.selection_set, child_ty, depth + 1, measure);
                    let items = meta.map_or(1, |meta| self.list_items(meta, field));
                    items.saturating_mul(children.saturating_add(1))
                }
                Selection::FragmentSpread(spread) => {
                    measure.directives = measure.directives.max(spread.node.directives.len());
                    let name = spread.node.fragment_name.node.as_str();
                    let Some(fragment) = self.document.fragments.get(name) else { continue };
                    if !self.spreading.insert(name) {
                        continue;
                    }
                    let on = Some(fragment.node.type_condition.node.on.node.as_str());
                    let cost = self.selection_set(&fragment.node.selection_set, on, depth, measure);
                    self.spreading.remove(name);
                    cost
                }
                Selection::InlineFragment(inline) => {
                    measure.directives = measure.directives.max(inline.node.directives.len());
                    let on = inline.node.type_condition.as_ref().map(|c| c.node.on.node.as_str()).or(ty);
                    self.selection_set(&inline.node.selection_set, on, depth, measure)
                }
            };
            cost = cost.saturating_add(item);
        }
        cost
    }

    /// How many items a field returns: 1 unless it is a list, whose size is
    /// its `first` (literal, variable or default) or [`UNPAGED_LIST_ITEMS`].
    fn list_items(
        &self,
        meta: &async_graphql::registry::MetaField,
        field: &async_graphql::parser::types::Field,
    ) -> u64 {
        if !MetaTypeName::create(&meta.ty).is_list() {
            return 1;
        }
        let Some(first) = meta.args.get("first") else { return UNPAGED_LIST_ITEMS };
        let given = field
            .get_argument("first")
            .and_then(|value| value.node.clone().into_const_with(|name| self.variable(&name).ok_or(())).ok());
        let declared = || first.default_value.as_deref().and_then(|d| d.parse::<u64>().ok());
        match given {
            Some(Value::Number(n)) => n.as_u64().unwrap_or(0),
            // `null` or an absent variable: the resolver uses its default.
            _ => declared().unwrap_or(UNPAGED_LIST_ITEMS),
        }
    }

    /// Notes the first argument of `field` whose value (a literal, or a
    /// variable's) the engine's validation lets through although the
    /// resolver cannot parse it, which would answer INTERNAL (the parse
    /// error has no code): a non-object for an input object type
    /// (async-graphql 7.2's `is_valid_input_value` accepts any), and an
    /// integer past 32 bits for an `Int` (which it checks as 64 bits). The
    /// schema's input objects hold neither, so the arguments' own values
    /// are all there is to check.
    fn input_objects(
        &self,
        meta: &async_graphql::registry::MetaField,
        field: &async_graphql::parser::types::Field,
        measure: &mut Measure,
    ) {
        if measure.wrong_input.is_some() {
            return;
        }
        for (name, value) in &field.arguments {
            let Some(arg) = meta.args.get(name.node.as_str()) else { continue };
            let named = MetaTypeName::concrete_typename(&arg.ty);
            let input_object = matches!(self.registry.types.get(named), Some(MetaType::InputObject { .. }));
            if !input_object && named != "Int" {
                continue;
            }
            let Ok(value) = value.node.clone().into_const_with(|name| self.variable(&name).ok_or(())) else { continue };
            let (argument, of) = (&name.node, &field.name.node);
            if input_object && !object_shaped(&value, &arg.ty) {
                measure.wrong_input = Some(format!("argument `{argument}` of `{of}` must be a `{}` object", arg.ty));
                return;
            }
            if named == "Int" && !int_shaped(&value) {
                measure.wrong_input = Some(format!(
                    "argument `{argument}` of `{of}` must be an Int from {} to {}, got {value}",
                    i32::MIN,
                    i32::MAX
                ));
                return;
            }
        }
    }

    /// A variable's value: given, or the operation's declared default.
    fn variable(&self, name: &async_graphql::Name) -> Option<Value> {
        if let Some(value) = self.variables.get(name) {
            return Some(value.clone());
        }
        let definition = self.operation.node.variable_definitions.iter().find(|d| d.node.name.node == *name)?;
        definition.node.default_value.as_ref().map(|d| d.node.clone())
    }
}

/// Whether `value` has the shape of `ty`, an input object type under any
/// list and non-null wrappers: an object (or null, which validation
/// judges), or a list of such (one item alone is coerced to a list).
fn object_shaped(value: &Value, ty: &str) -> bool {
    match (MetaTypeName::create(ty), value) {
        (_, Value::Null) => true,
        (MetaTypeName::NonNull(inner), _) => object_shaped(value, inner),
        (MetaTypeName::List(inner), Value::List(items)) => items.iter().all(|item| object_shaped(item, inner)),
        (MetaTypeName::List(inner), _) => object_shaped(value, inner),
        (MetaTypeName::Named(_), value) => matches!(value, Value::Object(_)),
    }
}

/// Whether `value` can be an `Int` (32 bits, GraphQL's Int), or a list of
/// them; null and other kinds are validation's to judge.
fn int_shaped(value: &Value) -> bool {
    match value {
        Value::Number(n) => {
            n.as_i64().is_none_or(|n| i32::try_from(n).is_ok()) && n.as_u64().is_none_or(|n| n <= i32::MAX as u64)
        }
        Value::List(items) => items.iter().all(int_shaped),
        _ => true,
    }
}

/// Aliases anywhere in the document, each counted once.
fn count_aliases(document: &ExecutableDocument) -> usize {
    fn in_set(set: &SelectionSet) -> usize {
        set.items
            .iter()
            .map(|selection| match &selection.node {
                Selection::Field(field) => {
                    usize::from(field.node.alias.is_some()) + in_set(&field.node.selection_set.node)
                }
                Selection::FragmentSpread(_) => 0,
                Selection::InlineFragment(inline) => in_set(&inline.node.selection_set.node),
            })
            .sum()
    }
    let operations: usize = document.operations.iter().map(|(_, op)| in_set(&op.node.selection_set.node)).sum();
    let fragments: usize = document.fragments.values().map(|f| in_set(&f.node.selection_set.node)).sum();
    operations + fragments
}

/// A document's lexical size: its tokens and its deepest bracket nesting.
#[derive(Debug, PartialEq, Eq)]
struct Lexed {
    tokens: usize,
    nesting: usize,
}

/// Counts tokens and bracket nesting in one pass without recursion, so a
/// document of thousands of nested brackets is measured, not parsed.
/// Malformed input is counted loosely: the parser reports it.
fn lex(source: &str) -> Lexed {
    let bytes = source.as_bytes();
    let (mut i, mut tokens, mut depth, mut nesting) = (0, 0, 0usize, 0);
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b' ' | b'\t' | b'\n' | b'\r' | b',' => {
                i += 1;
                continue;
            }
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'"' if bytes[i..].starts_with(b"\"\"\"") => {
                i += 3;
                while i < bytes.len() && !bytes[i..].starts_with(b"\"\"\"") {
                    i += if bytes[i..].starts_with(b"\\\"\"\"") { 4 } else { 1 };
                }
                i += 3;
            }
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' && bytes[i] != b'\n' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            b'{' | b'(' | b'[' => {
                depth += 1;
                nesting = nesting.max(depth);
                i += 1;
            }
            b'}' | b')' | b']' => {
                depth = depth.saturating_sub(1);
                i += 1;
            }
            b'.' => {
                while i < bytes.len() && bytes[i] == b'.' {
                    i += 1;
                }
            }
            b'-' | b'0'..=b'9' => {
                i += 1;
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || b".+-_".contains(&bytes[i])) {
                    i += 1;
                }
            }
            b'_' | b'a'..=b'z' | b'A'..=b'Z' => {
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
            }
            _ => i += 1,
        }
        tokens += 1;
    }
    Lexed { tokens, nesting }
}

/// Variables of the selected operation that have no default and no value:
/// one of a non-null type (absent or null) is the error returned; one of a
/// nullable type is set to null. The engine validates the values it is
/// given, but finds a missing one only when a resolver reads its argument,
/// and reports that without a code (which would answer INTERNAL); the
/// GraphQL spec makes the first a request error and the second an absent
/// argument, which null is to this schema's resolvers (every optional
/// argument is an `Option`, its default applied by the resolver).
fn unset_variables(
    document: &ExecutableDocument,
    name: Option<&str>,
    variables: &mut Variables,
) -> Option<ServerError> {
    let operation = crate::parsed::select_operation(document, name)?;
    for definition in &operation.variable_definitions {
        let definition = &definition.node;
        if definition.default_value.is_some() {
            continue;
        }
        let value = variables.get(&definition.name.node);
        if definition.var_type.node.nullable {
            if value.is_none() {
                variables.insert(definition.name.node.clone(), Value::Null);
            }
        } else if value.is_none_or(|value| *value == Value::Null) {
            let (name, ty) = (&definition.name.node, &definition.var_type.node);
            return Some(bad_input(
                format!("variable `${name}` of type `{ty}` needs a value: add it to `variables`"),
                Some(definition.name.pos),
            ));
        }
    }
    None
}

/// A BAD_USER_INPUT request error at `pos`.
fn bad_input(message: String, pos: Option<async_graphql::Pos>) -> ServerError {
    let mut error = ServerError::new(message, pos);
    let mut extensions = ErrorExtensionValues::default();
    extensions.set("code", "BAD_USER_INPUT");
    error.extensions = Some(extensions);
    error
}

/// A refused operation: the message names the limit and the measured
/// value; `extensions` carry them, and the cost where it was computed.
fn refusal(code: &'static str, limit: &'static str, measured: u64, max: u64, cost: Option<u64>) -> ServerError {
    let mut error =
        ServerError::new(format!("operation refused: its {limit} is {measured}, over the limit of {max}"), None);
    let mut extensions = ErrorExtensionValues::default();
    extensions.set("code", code);
    extensions.set("limit", limit);
    extensions.set("measured", measured);
    extensions.set("max", max);
    if let Some(cost) = cost {
        extensions.set("cost", cost);
    }
    error.extensions = Some(extensions);
    error
}

/// True when `ty` names an object the registry knows; used by tests.
#[cfg(test)]
fn knows(registry: &Registry, ty: &str) -> bool {
    matches!(registry.types.get(ty), Some(async_graphql::registry::MetaType::Object { .. }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter() -> Limiter {
        Limiter::new(
            OperationLimits {
                max_depth: 12,
                max_complexity: 25_000,
                max_aliases: 30,
                max_root_fields: 20,
                max_document_bytes: 32 * 1024,
                max_tokens: 4_000,
                max_directives_per_field: 4,
            },
            1 << 20,
        )
    }

    fn measure(query: &str) -> Measure {
        let limiter = limiter();
        let document = async_graphql::parser::parse_query(query).unwrap();
        limiter.measure(&document, None, &Variables::default()).unwrap()
    }

    #[test]
    fn the_registry_knows_the_schema() {
        let limiter = limiter();
        assert!(knows(&limiter.registry, "Query") && knows(&limiter.registry, "Note"));
    }

    #[test]
    fn lists_multiply_by_first_or_its_default() {
        // notes: 50 × (id 1 + title 1 + author (1 + name 1) + tags 10 × (1 + name 1)).
        assert_eq!(measure("{ notes(first: 50) { id title author { name } tags { name } } }").cost, 50 * 25);
        // The default page of `notes` is 20, of `similar` 5.
        assert_eq!(measure("{ notes { similar { score } } }").cost, 20 * (1 + 5 * 2));
        assert_eq!(
            measure("{ tags(first: 50) { notes(first: 10) { author { notes(first: 3) { id } } tags { name } } } }")
                .cost,
            14_050
        );
        let hostile =
            measure("{ notes(first: 100) { similar(first: 100) { note { similar(first: 100) { note { body } } } } } }");
        assert!(hostile.cost > 1_000_000, "{hostile:?}");
    }

    #[test]
    fn fragments_and_variables_count() {
        let limiter = limiter();
        let query = "query($n: Int = 7) { notes(first: $n) { ...F } } fragment F on Note { a: id b: title }";
        let document = async_graphql::parser::parse_query(query).unwrap();
        let measured = limiter.measure(&document, None, &Variables::default()).unwrap();
        assert_eq!((measured.cost, measured.aliases, measured.depth), (7 * 3, 2, 2));
        let given = Variables::from_json(serde_json::json!({ "n": 2 }));
        assert_eq!(limiter.measure(&document, None, &given).unwrap().cost, 2 * 3);
    }

    #[test]
    fn the_lexer_counts_tokens_and_nesting_without_recursing() {
        assert_eq!(lex(r#"{ a(b: "x { y", c: [1, -2.5e3]) { ...on T { d } } } # }"#), Lexed { tokens: 22, nesting: 3 });
        let deep = format!("{}{}", "{".repeat(10_000), "}".repeat(10_000));
        assert_eq!(lex(&deep).nesting, 10_000);
        assert_eq!(lex(r#""""a "" \""" b""" x"#).tokens, 2);
    }

    #[test]
    fn a_parsed_document_is_kept_but_measured_on_every_request() {
        // Arrange
        let limiter = limiter();
        let text = "query($n: Int) { notes(first: $n) { id title } }";
        let with = |n: u64| Request::new(text).variables(Variables::from_json(serde_json::json!({ "n": n })));

        // Act
        let small = limiter.check(&mut with(2));
        let huge = limiter.check(&mut with(1_000_000));
        let broken = limiter.check(&mut Request::new("{ notes { id "));

        // Assert
        assert_eq!(small.unwrap(), 2 * 3, "the cost of an admitted operation, `first` multiplying");
        let refusal = huge.unwrap_err();
        assert_eq!(refusal.message, "operation refused: its complexity is 3000000, over the limit of 25000");
        assert_eq!(broken.unwrap(), 0, "a syntax error is the engine's to report");
        let parsed = limiter.parsed.as_ref().unwrap();
        assert!(parsed.get(text).is_some());
        assert!(parsed.get("{ notes { id ").is_none(), "only documents that parse are kept");
    }

    #[test]
    fn refusals_name_the_limit_and_the_value() {
        let mut request = Request::new(format!("{}{}", "{".repeat(30), "}".repeat(30)));
        let error = limiter().check(&mut request).unwrap_err();
        assert_eq!(error.message, "operation refused: its bracket nesting is 30, over the limit of 20");
        let extensions = error.extensions.unwrap();
        assert_eq!(extensions.get("code"), Some(&Value::from("QUERY_TOO_COMPLEX")));
    }
}
