//! The fast path of `/graphql`: a query whose selection is the root
//! `notes` list over plain row data — `Note`'s scalar fields, its
//! `author { … }` and `tags { … }` with their scalar fields, `__typename`,
//! aliases, fragments, and `@skip`/`@include` — is answered as JSON bytes
//! written straight from the list statement's rows, without resolving
//! fields one at a time, building a value tree and serialising it
//! (docs/PERFORMANCE.md, "Lists as cheap as their rows").
//!
//! The engine still decides what is valid: a request the fast path would
//! take is first validated by a second schema, configured as the executing
//! one, whose only extension ends each request where execution would begin
//! ([`ValidateOnly`]). Anything else — another field or argument, another
//! directive, a variable the request left out, an argument `notes` would
//! refuse, a document that does not validate, a failed statement — takes
//! the general path unchanged, which answers (or reports) it as before.
//! What the fast path answers is byte for byte what the general path
//! answers (`tests/api/fast_path.rs` compares both over random
//! selections): keys in the order the general path puts them in
//! ([`KeyOrder`]: the document's, fragments flattened and repeated keys
//! merged where they first appear, skipped selections too), strings escaped by
//! `serde_json`, date-times as RFC 3339, and the same cache dependency
//! tags, viewer dependence, deadline and operation metrics.

use std::any::TypeId;
use std::io::Write as _;
use std::sync::Arc;
use std::time::Instant;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextExecute};
use async_graphql::parser::types::{Directive, ExecutableDocument, Field, OperationType, Selection, SelectionSet};
use async_graphql::{ID, Name, Positioned, Request, Response, SchemaBuilder, Value, Variables};
use cache::Touched;
use db::notes::{Including, ListedNote, NoteFilter};
use db::{NoteId, Page, UserId};
use prometheus::IntCounter;
use tracing::Instrument as _;

use super::mutation::MutationRoot;
use super::order::KeyOrder;
use super::query::QueryRoot;
use super::schema::{AppSchema, BatchedSchema, timed_out};
use super::subscription::SubscriptionRoot;
use super::{Source, args, observe};
use crate::auth::Viewer;
use crate::metrics::Operation;
use crate::replica::ReadPrimary;
use crate::response_cache::tags;

/// Deepest fragment nesting followed; deeper documents take the general
/// path (the depth limit refuses most before this).
const MAX_DEPTH: usize = 32;
/// Most selections visited in one document before giving up: fragments
/// spread many times over cannot make the walk expensive.
const MAX_VISITS: usize = 2_000;
/// Bytes reserved per note written: about what a note with its title,
/// author and two tags takes.
const BYTES_PER_NOTE: usize = 160;

/// The validating schema and what the fast path reads with.
pub(crate) struct FastPath {
    /// The schema's types and settings, validating only.
    validator: AppSchema,
    /// The primary's pool, unless a request carries the replica's.
    primary: Arc<Source>,
    /// Requests answered here: a test checks that it is used at all.
    taken: IntCounter,
}

impl FastPath {
    /// The fast path over `primary`, validating with the schema `builder`
    /// makes (configured as the executing schema is).
    pub(super) fn new(builder: SchemaBuilder<QueryRoot, MutationRoot, SubscriptionRoot>, primary: Arc<Source>) -> Self {
        let taken = IntCounter::new(
            "notegraph_graphql_fast_path_total",
            "GraphQL operations answered from their list statement's rows, without field resolution.",
        )
        .expect("a valid counter name and help");
        FastPath { validator: builder.extension(ValidateOnly).finish(), primary, taken }
    }

    /// The counter, for the metrics registry.
    pub(super) fn collector(&self) -> Box<dyn prometheus::core::Collector> {
        Box::new(self.taken.clone())
    }

    /// True when the schema accepts `request` as it stands: parse limits,
    /// validation rules, the operation it names.
    async fn validates(&self, request: &mut Request) -> bool {
        let Ok(document) = request.parsed_query().cloned() else { return false };
        let mut mirror = Request::new(String::new()).variables(request.variables.clone());
        mirror.operation_name.clone_from(&request.operation_name);
        mirror.introspection_mode = request.introspection_mode;
        mirror.set_parsed_query(document);
        self.validator.execute(mirror).await.errors.is_empty()
    }
}

/// What the fast path made of a request.
pub enum Fast {
    /// Answered: the response body.
    Answered(Vec<u8>),
    /// Answered without data, as the general path answers it (the
    /// deadline passed).
    Response(Response),
    /// Not for the fast path: the request, for the general path.
    General(Request),
}

impl BatchedSchema {
    /// Answers `request` on the fast path when it is plain row data (see
    /// the module), else hands it back. `viewer` and `read_primary` are as
    /// the execute stage gives them to the general path.
    pub async fn execute_fast(&self, viewer: Viewer, read_primary: bool, mut request: Request) -> Fast {
        let Some(fast) = &self.fast else { return Fast::General(request) };
        let started = Instant::now();
        let Some(mut lists) = plan(&mut request).and_then(Lists::read) else {
            return Fast::General(request);
        };
        let Some(order) = KeyOrder::of_request(&mut request) else { return Fast::General(request) };
        lists.order(&order);
        if !fast.validates(&mut request).await {
            return Fast::General(request);
        }
        request.data.insert(viewer);
        if read_primary {
            request.data.insert(ReadPrimary);
        }
        self.route(&mut request, "query");
        let source = data::<Arc<Source>>(&request).unwrap_or(&fast.primary).clone();
        let touched = data::<Arc<Touched>>(&request).cloned();
        let (name, kind) = observe::describe(&mut request);
        let span = tracing::debug_span!(
            "graphql.execute",
            graphql.operation.name = name.as_deref(),
            graphql.operation.type = kind
        );
        let budget = Some(self.budget(started));
        let read = async {
            let mut pages = Vec::with_capacity(lists.pages.len());
            for list in &lists.pages {
                let filter = NoteFilter { author: list.author, tag: list.tag.as_deref() };
                let page = db::within(&source.pool, budget, async |db| {
                    db::notes::list(db, viewer.user, filter, list.page, list.including).await
                });
                pages.push(page.await?);
            }
            Ok::<_, db::Error>(pages)
        };
        let code = match tokio::time::timeout(self.timeout, read.instrument(span)).await {
            Ok(Ok(pages)) => {
                if let Some(touched) = &touched {
                    lists.touch(touched, &pages);
                }
                match lists.write(&pages, viewer.user) {
                    Ok(body) => {
                        fast.taken.inc();
                        self.count(name.as_deref(), "OK", started);
                        return Fast::Answered(body);
                    }
                    // Unreachable: writing to memory does not fail, and the
                    // statement brings what the selection reads.
                    Err(Unwritable) => {
                        tracing::error!(exception.type = "INTERNAL", "fast path could not write its rows");
                        return Fast::General(request);
                    }
                }
            }
            // The general path reads again and reports the error its way.
            Ok(Err(_)) => return Fast::General(request),
            Err(_) => "TIMEOUT",
        };
        tracing::warn!(exception.type = "TIMEOUT", "graphql execution timed out");
        self.count(name.as_deref(), code, started);
        Fast::Response(Response::from_errors(vec![timed_out()]))
    }

    /// Counts an operation the fast path answered, as the general path
    /// would have.
    fn count(&self, name: Option<&str>, code: &'static str, started: Instant) {
        if let Some(metrics) = &self.metrics {
            // A timed-out execution reports no validated operation, as in
            // the general path, so it takes no name slot.
            let operation = Operation { name, kind: "query", code, validated: code == "OK", service: "" };
            metrics.operation(operation, started.elapsed());
        }
    }
}

/// Request data of type `T`, when set.
fn data<T: Send + Sync + 'static>(request: &Request) -> Option<&T> {
    request.data.get(&TypeId::of::<T>()).and_then(|data| data.downcast_ref::<T>())
}

/// The extension of the validating schema: a request that parsed and
/// validated ends where execution would begin, with no data and no errors.
struct ValidateOnly;

impl ExtensionFactory for ValidateOnly {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(ValidateOnly)
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for ValidateOnly {
    async fn execute(&self, _: &ExtensionContext<'_>, _: Option<&str>, _: NextExecute<'_>) -> Response {
        Response::default()
    }
}

/// The selection is not for the fast path.
struct Bail;

/// Writing the response failed (see [`BatchedSchema::execute_fast`]).
struct Unwritable;

impl From<std::io::Error> for Unwritable {
    fn from(_: std::io::Error) -> Self {
        Unwritable
    }
}

impl From<serde_json::Error> for Unwritable {
    fn from(_: serde_json::Error) -> Self {
        Unwritable
    }
}

/// Response keys in selection order, each with what it asks for.
type Keys<F> = Vec<(Name, F)>;

/// A field of `User` the fast path writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UserField {
    Id,
    Name,
    Email,
    CreatedAt,
    Typename,
}

/// A field of `Tag` the fast path writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TagField {
    Id,
    Name,
    Typename,
}

/// A field of `Note` the fast path writes.
#[derive(Debug, PartialEq, Eq)]
enum NoteField {
    Id,
    Title,
    Body,
    Visibility,
    CreatedAt,
    UpdatedAt,
    Typename,
    Author(Keys<UserField>),
    Tags(Keys<TagField>),
}

/// A root field the fast path answers.
#[derive(Debug, PartialEq, Eq)]
enum RootField {
    Typename,
    Notes(NotesArgs, Keys<NoteField>),
}

/// The arguments of one root `notes` field, as sent (`None`: absent or
/// null, which `notes` treats alike).
#[derive(Debug, Default, PartialEq, Eq)]
struct NotesArgs {
    first: Option<i32>,
    after: Option<String>,
    tag: Option<String>,
    author_id: Option<String>,
}

/// Merging a field into the one already at its response key, as the
/// engine merges their values: objects key by key, scalars kept.
trait Merge: Sized {
    /// Merges `other` into `self`; the same key for different fields or
    /// arguments is not for the fast path.
    fn merge(&mut self, other: Self) -> Result<(), Bail>;
}

/// Adds `field` at `key`: appended when new, merged where it first
/// appeared otherwise.
fn insert<F: Merge>(keys: &mut Keys<F>, key: Name, field: F) -> Result<(), Bail> {
    match keys.iter_mut().find(|(existing, _)| *existing == key) {
        Some((_, existing)) => existing.merge(field),
        None => {
            keys.push((key, field));
            Ok(())
        }
    }
}

impl Merge for UserField {
    fn merge(&mut self, other: Self) -> Result<(), Bail> {
        if *self == other { Ok(()) } else { Err(Bail) }
    }
}

impl Merge for TagField {
    fn merge(&mut self, other: Self) -> Result<(), Bail> {
        if *self == other { Ok(()) } else { Err(Bail) }
    }
}

impl Merge for NoteField {
    fn merge(&mut self, other: Self) -> Result<(), Bail> {
        match (self, other) {
            (NoteField::Author(keys), NoteField::Author(more)) => {
                more.into_iter().try_for_each(|(k, f)| insert(keys, k, f))
            }
            (NoteField::Tags(keys), NoteField::Tags(more)) => {
                more.into_iter().try_for_each(|(k, f)| insert(keys, k, f))
            }
            (this, other) if *this == other => Ok(()),
            _ => Err(Bail),
        }
    }
}

impl Merge for RootField {
    fn merge(&mut self, other: Self) -> Result<(), Bail> {
        match (self, other) {
            (RootField::Typename, RootField::Typename) => Ok(()),
            (RootField::Notes(args, keys), RootField::Notes(more_args, more)) if *args == more_args => {
                more.into_iter().try_for_each(|(k, f)| insert(keys, k, f))
            }
            _ => Err(Bail),
        }
    }
}

/// The root fields of the operation `request` runs, when all of them are
/// for the fast path.
fn plan(request: &mut Request) -> Option<Keys<RootField>> {
    let variables = std::mem::take(&mut request.variables);
    let name = request.operation_name.clone();
    let planned = request.parsed_query().ok().and_then(|document| {
        let operation = crate::parsed::select_operation(document, name.as_deref())?;
        if operation.ty != OperationType::Query || !operation.directives.is_empty() {
            return None;
        }
        let mut walk = Walk { document, variables: &variables, visits: 0 };
        walk.root(&operation.selection_set.node).ok()
    });
    request.variables = variables;
    planned
}

/// One walk over a document's selections.
struct Walk<'a> {
    document: &'a ExecutableDocument,
    /// As the request sent them: `@skip` and `@include` read these, without
    /// the variables' declared defaults, as the engine does.
    variables: &'a Variables,
    visits: usize,
}

impl<'a> Walk<'a> {
    /// The fields of `set` on the type `on`, in order, fragments flattened
    /// where they are spread and skipped selections left out.
    fn fields(&mut self, set: &'a SelectionSet, on: &str, depth: usize, out: &mut Vec<&'a Field>) -> Result<(), Bail> {
        if depth > MAX_DEPTH {
            return Err(Bail);
        }
        for selection in &set.items {
            self.visits += 1;
            if self.visits > MAX_VISITS {
                return Err(Bail);
            }
            if self.skipped(selection.node.directives())? {
                continue;
            }
            match &selection.node {
                Selection::Field(field) => out.push(&field.node),
                Selection::FragmentSpread(spread) => {
                    let fragment = &self.document.fragments.get(&spread.node.fragment_name.node).ok_or(Bail)?.node;
                    if fragment.type_condition.node.on.node != on || !fragment.directives.is_empty() {
                        return Err(Bail);
                    }
                    self.fields(&fragment.selection_set.node, on, depth + 1, out)?;
                }
                Selection::InlineFragment(inline) => {
                    if inline.node.type_condition.as_ref().is_some_and(|condition| condition.node.on.node != on) {
                        return Err(Bail);
                    }
                    self.fields(&inline.node.selection_set.node, on, depth + 1, out)?;
                }
            }
        }
        Ok(())
    }

    /// Whether `@skip` or `@include` leaves the selection out, decided as
    /// the engine decides it: a condition that is not `true` (a variable
    /// left out, say) counts as false. Any other directive is not for the
    /// fast path.
    fn skipped(&self, directives: &[Positioned<Directive>]) -> Result<bool, Bail> {
        for directive in directives {
            let include = match directive.node.name.node.as_str() {
                "skip" => false,
                "include" => true,
                _ => return Err(Bail),
            };
            if let Some(condition) = directive.node.get_argument("if") {
                let value = condition
                    .node
                    .clone()
                    .into_const_with(|name| self.variables.get(&name).cloned().ok_or(()))
                    .unwrap_or_default();
                if include != matches!(value, Value::Boolean(true)) {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// The root selection: `notes` and `__typename` only.
    fn root(&mut self, set: &'a SelectionSet) -> Result<Keys<RootField>, Bail> {
        let mut fields = Vec::new();
        self.fields(set, "Query", 0, &mut fields)?;
        let mut keys = Vec::new();
        for field in fields {
            let planned = match field.name.node.as_str() {
                "__typename" => leaf(field, RootField::Typename)?,
                "notes" => RootField::Notes(self.notes_args(field)?, self.note(selection(field)?)?),
                _ => return Err(Bail),
            };
            insert(&mut keys, field.response_key().node.clone(), planned)?;
        }
        not_empty(keys)
    }

    /// A `Note`'s selection.
    fn note(&mut self, set: &'a SelectionSet) -> Result<Keys<NoteField>, Bail> {
        let mut fields = Vec::new();
        self.fields(set, "Note", 0, &mut fields)?;
        let mut keys = Vec::new();
        for field in fields {
            let planned = match field.name.node.as_str() {
                "id" => leaf(field, NoteField::Id)?,
                "title" => leaf(field, NoteField::Title)?,
                "body" => leaf(field, NoteField::Body)?,
                "visibility" => leaf(field, NoteField::Visibility)?,
                "createdAt" => leaf(field, NoteField::CreatedAt)?,
                "updatedAt" => leaf(field, NoteField::UpdatedAt)?,
                "__typename" => leaf(field, NoteField::Typename)?,
                "author" => NoteField::Author(self.scalars(object(field)?, "User", user_field)?),
                "tags" => NoteField::Tags(self.scalars(object(field)?, "Tag", tag_field)?),
                _ => return Err(Bail),
            };
            insert(&mut keys, field.response_key().node.clone(), planned)?;
        }
        not_empty(keys)
    }

    /// A selection of scalar fields of the type `on`, named by `field`.
    fn scalars<F: Merge>(
        &mut self,
        set: &'a SelectionSet,
        on: &str,
        field_named: fn(&str) -> Option<F>,
    ) -> Result<Keys<F>, Bail> {
        let mut fields = Vec::new();
        self.fields(set, on, 0, &mut fields)?;
        let mut keys = Vec::new();
        for field in fields {
            let planned = leaf(field, field_named(field.name.node.as_str()).ok_or(Bail)?)?;
            insert(&mut keys, field.response_key().node.clone(), planned)?;
        }
        not_empty(keys)
    }

    /// The arguments of a root `notes`, with their variables' values. A
    /// variable the request left out, or sent as null, and any value not
    /// of the argument's type take the general path.
    fn notes_args(&self, field: &Field) -> Result<NotesArgs, Bail> {
        let mut args = NotesArgs::default();
        let mut seen: Vec<&str> = Vec::with_capacity(field.arguments.len());
        for (name, value) in &field.arguments {
            let name = name.node.as_str();
            if seen.contains(&name) {
                return Err(Bail);
            }
            seen.push(name);
            let mut from_variable = false;
            let value = value.node.clone().into_const_with(|variable| {
                from_variable = true;
                self.variables.get(&variable).cloned().ok_or(Bail)
            })?;
            match (name, value) {
                (_, Value::Null) if from_variable => return Err(Bail),
                ("first" | "after" | "tag" | "authorId", Value::Null) => {}
                ("first", Value::Number(n)) => {
                    args.first = Some(n.as_i64().and_then(|n| i32::try_from(n).ok()).ok_or(Bail)?)
                }
                ("after", Value::String(id)) => args.after = Some(id),
                ("tag", Value::String(tag)) => args.tag = Some(tag),
                ("authorId", Value::String(id)) => args.author_id = Some(id),
                _ => return Err(Bail),
            }
        }
        Ok(args)
    }
}

/// `keys` when some are left: a selection whose every field is skipped
/// is not for the fast path (the engine answers `"data": null` for an
/// empty root).
fn not_empty<F>(keys: Keys<F>) -> Result<Keys<F>, Bail> {
    if keys.is_empty() { Err(Bail) } else { Ok(keys) }
}

/// `planned`, when `field` is a leaf: no arguments, no selection.
fn leaf<F>(field: &Field, planned: F) -> Result<F, Bail> {
    match field.arguments.is_empty() && field.selection_set.node.items.is_empty() {
        true => Ok(planned),
        false => Err(Bail),
    }
}

/// The selection of an object field without arguments.
fn object(field: &Field) -> Result<&SelectionSet, Bail> {
    match field.arguments.is_empty() {
        true => selection(field),
        false => Err(Bail),
    }
}

/// The selection of an object field.
fn selection(field: &Field) -> Result<&SelectionSet, Bail> {
    match field.selection_set.node.items.is_empty() {
        true => Err(Bail),
        false => Ok(&field.selection_set.node),
    }
}

/// The `User` field named `name`, when the fast path writes it.
fn user_field(name: &str) -> Option<UserField> {
    Some(match name {
        "id" => UserField::Id,
        "name" => UserField::Name,
        "email" => UserField::Email,
        "createdAt" => UserField::CreatedAt,
        "__typename" => UserField::Typename,
        _ => return None,
    })
}

/// The `Tag` field named `name`, when the fast path writes it.
fn tag_field(name: &str) -> Option<TagField> {
    Some(match name {
        "id" => TagField::Id,
        "name" => TagField::Name,
        "__typename" => TagField::Typename,
        _ => return None,
    })
}

/// Puts `keys` in the order the general path answers them in
/// ([`KeyOrder`]: the document's order, skipped selections included),
/// each value's own keys by `nested`.
fn sort<F>(keys: &mut Keys<F>, order: &KeyOrder, mut nested: impl FnMut(&mut F, &KeyOrder)) {
    keys.sort_by_key(|(key, _)| order.rank(key));
    for (key, field) in keys.iter_mut() {
        if let Some(order) = order.of(key) {
            nested(field, order);
        }
    }
}

/// The planned root fields with what each `notes` reads.
struct Lists {
    keys: Keys<RootField>,
    /// One per root `notes`, in the order of `keys`.
    pages: Vec<List>,
}

/// What one root `notes` reads: its arguments as the resolver checks them.
struct List {
    page: Page<NoteId>,
    author: Option<UserId>,
    tag: Option<String>,
    including: Including,
}

impl Lists {
    /// The reads of `keys`, or `None` when an argument is one that `notes`
    /// refuses (the general path reports it).
    fn read(keys: Keys<RootField>) -> Option<Lists> {
        let mut pages = Vec::new();
        for (_, field) in &keys {
            let RootField::Notes(args, fields) = field else { continue };
            let after = args.after.clone().map(ID);
            let page = args::page(args.first, args::NOTES_PAGE, after.as_ref(), "note").ok()?;
            let author = match &args.author_id {
                Some(id) => Some(args::parse_id(&ID(id.clone()), "user").ok()?),
                None => None,
            };
            let tag = match &args.tag {
                Some(tag) => Some(args::tag_lookup(tag).ok()?),
                None => None,
            };
            let including = Including {
                author: fields.iter().any(|(_, f)| matches!(f, NoteField::Author(_))),
                tags: fields.iter().any(|(_, f)| matches!(f, NoteField::Tags(_))),
            };
            pages.push(List { page, author, tag, including });
        }
        Some(Lists { keys, pages })
    }

    /// Orders every object's keys as the general path does.
    fn order(&mut self, order: &KeyOrder) {
        sort(&mut self.keys, order, |field, order| {
            let RootField::Notes(_, fields) = field else { return };
            sort(fields, order, |field, order| match field {
                NoteField::Author(keys) => sort(keys, order, |_, _| {}),
                NoteField::Tags(keys) => sort(keys, order, |_, _| {}),
                _ => {}
            });
        });
    }

    /// Records what the general path's resolvers record: each list read
    /// (and may hold the viewer's private notes, so the response depends
    /// on the viewer, as `User.email` does too), each author written.
    fn touch(&self, touched: &Touched, pages: &[Vec<ListedNote>]) {
        let lists = self.keys.iter().filter_map(|(_, field)| match field {
            RootField::Notes(_, fields) => Some(fields),
            RootField::Typename => None,
        });
        for (fields, notes) in lists.zip(pages) {
            touched.read(tags::NOTE_LIST);
            touched.viewer_dependent();
            if fields.iter().any(|(_, f)| matches!(f, NoteField::Author(_))) {
                for note in notes {
                    touched.read(&tags::user(note.note.author_id));
                }
            }
        }
    }

    /// The response body: `{"data":{…}}`, as the encode stage writes it.
    fn write(&self, pages: &[Vec<ListedNote>], viewer: Option<UserId>) -> Result<Vec<u8>, Unwritable> {
        let notes: usize = pages.iter().map(Vec::len).sum();
        let mut out = Vec::with_capacity(32 + notes * BYTES_PER_NOTE);
        out.extend_from_slice(b"{\"data\":{");
        let mut pages = pages.iter();
        for (i, (key, field)) in self.keys.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            string(&mut out, key)?;
            out.push(b':');
            match field {
                RootField::Typename => out.extend_from_slice(b"\"Query\""),
                RootField::Notes(_, fields) => {
                    let page = pages.next().ok_or(Unwritable)?;
                    list(&mut out, page, |out, note| write_note(out, note, fields, viewer))?;
                }
            }
        }
        out.extend_from_slice(b"}}");
        Ok(out)
    }
}

/// `items` as a JSON array, each written by `item`.
fn list<T>(
    out: &mut Vec<u8>,
    items: &[T],
    mut item: impl FnMut(&mut Vec<u8>, &T) -> Result<(), Unwritable>,
) -> Result<(), Unwritable> {
    out.push(b'[');
    for (i, value) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        item(out, value)?;
    }
    out.push(b']');
    Ok(())
}

/// `keys` as a JSON object, each value written by `value`.
fn object_of<F>(
    out: &mut Vec<u8>,
    keys: &Keys<F>,
    mut value: impl FnMut(&mut Vec<u8>, &F) -> Result<(), Unwritable>,
) -> Result<(), Unwritable> {
    out.push(b'{');
    for (i, (key, field)) in keys.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        string(out, key)?;
        out.push(b':');
        value(out, field)?;
    }
    out.push(b'}');
    Ok(())
}

/// One note with the fields `keys` select.
fn write_note(
    out: &mut Vec<u8>,
    note: &ListedNote,
    keys: &Keys<NoteField>,
    viewer: Option<UserId>,
) -> Result<(), Unwritable> {
    let row = &note.note;
    object_of(out, keys, |out, field| match field {
        NoteField::Id => id(out, row.id.0),
        NoteField::Title => string(out, &row.title),
        NoteField::Body => string(out, &row.body),
        NoteField::Visibility => {
            out.extend_from_slice(match row.visibility {
                db::notes::Visibility::Public => b"\"PUBLIC\"",
                db::notes::Visibility::Private => b"\"PRIVATE\"",
            });
            Ok(())
        }
        NoteField::CreatedAt => string(out, &row.created_at.to_rfc3339()),
        NoteField::UpdatedAt => string(out, &row.updated_at.to_rfc3339()),
        NoteField::Typename => string(out, "Note"),
        NoteField::Author(keys) => {
            let author = note.author.as_ref().ok_or(Unwritable)?;
            object_of(out, keys, |out, field| match field {
                UserField::Id => id(out, author.id.0),
                UserField::Name => string(out, &author.name),
                UserField::Email if viewer == Some(author.id) => string(out, &author.email),
                UserField::Email => {
                    out.extend_from_slice(b"null");
                    Ok(())
                }
                UserField::CreatedAt => string(out, &author.created_at.to_rfc3339()),
                UserField::Typename => string(out, "User"),
            })
        }
        NoteField::Tags(keys) => {
            let tags = note.tags.as_deref().ok_or(Unwritable)?;
            list(out, tags, |out, tag| {
                object_of(out, keys, |out, field| match field {
                    TagField::Id => id(out, tag.id.0),
                    TagField::Name => string(out, &tag.name),
                    TagField::Typename => string(out, "Tag"),
                })
            })
        }
    })
}

/// An `ID` as the engine writes it: a JSON string of the decimal key.
fn id(out: &mut Vec<u8>, id: i64) -> Result<(), Unwritable> {
    Ok(write!(out, "\"{id}\"")?)
}

/// A JSON string, escaped as the encode stage's `serde_json` escapes it.
fn string(out: &mut Vec<u8>, text: &str) -> Result<(), Unwritable> {
    Ok(serde_json::to_writer(out, text)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn planned(query: &str, variables: serde_json::Value) -> Option<Keys<RootField>> {
        let variables = Variables::from_json(variables);
        plan(&mut Request::new(query).variables(variables))
    }

    fn keys<F>(keys: &Keys<F>) -> Vec<&str> {
        keys.iter().map(|(key, _)| key.as_str()).collect()
    }

    fn notes(plan: &Keys<RootField>, at: usize) -> (&NotesArgs, &Keys<NoteField>) {
        match &plan[at].1 {
            RootField::Notes(args, fields) => (args, fields),
            RootField::Typename => panic!("not notes"),
        }
    }

    #[test]
    fn fragments_flatten_in_place_and_repeated_keys_merge_where_they_first_appear() {
        let plan = planned(
            "query { __typename notes(first: 5) { ...N author { name } t: title } notes(first: 5) { author { id } } } \
             fragment N on Note { id ... on Note { tags { name } } ... { body } }",
            serde_json::json!({}),
        )
        .unwrap();

        assert_eq!(keys(&plan), ["__typename", "notes"]);
        let (args, fields) = notes(&plan, 1);
        assert_eq!(args.first, Some(5));
        assert_eq!(keys(fields), ["id", "tags", "body", "author", "t"]);
        let NoteField::Author(author) = &fields[3].1 else { panic!() };
        assert_eq!(keys(author), ["name", "id"]);
    }

    #[test]
    fn skip_and_include_read_the_variables_as_sent() {
        let query = "query($s: Boolean = true, $i: Boolean) { notes { id @skip(if: $s) title @include(if: $i) body @skip(if: false) } }";

        // `$s` left out counts as false (its declared default is not read,
        // as the engine does not read it); `$i` true includes.
        let plan = planned(query, serde_json::json!({ "i": true })).unwrap();
        assert_eq!(keys(notes(&plan, 0).1), ["id", "title", "body"]);
        let plan = planned(query, serde_json::json!({ "s": true })).unwrap();
        assert_eq!(keys(notes(&plan, 0).1), ["body"]);
    }

    #[test]
    fn keys_take_the_general_paths_order_which_counts_skipped_selections() {
        let query = "{ notes { a: id @skip(if: true) title a: id author @skip(if: true) { id } author { name id } } }";
        let mut request = Request::new(query);
        let mut lists = plan(&mut request).and_then(Lists::read).unwrap();

        lists.order(&KeyOrder::of_request(&mut request).unwrap());

        let (_, fields) = notes(&lists.keys, 0);
        assert_eq!(keys(fields), ["a", "title", "author"]);
        let NoteField::Author(author) = &fields[2].1 else { panic!() };
        assert_eq!(keys(author), ["id", "name"]);
    }

    #[test]
    fn arguments_come_from_literals_and_variables() {
        let plan = planned(
            "query($tag: String) { notes(first: null, after: \"40\", tag: $tag, authorId: \"2\") { id } }",
            serde_json::json!({ "tag": "Tag3" }),
        )
        .unwrap();

        let expected =
            NotesArgs { first: None, after: Some("40".into()), tag: Some("Tag3".into()), author_id: Some("2".into()) };
        assert_eq!(notes(&plan, 0).0, &expected);
    }

    #[test]
    fn anything_but_plain_row_data_takes_the_general_path() {
        let general = [
            ("{ users { id } }", serde_json::json!({})),
            ("{ notes { id } users { id } }", serde_json::json!({})),
            ("{ notes { similar { score } } }", serde_json::json!({})),
            ("{ notes { author { notes { id } } } }", serde_json::json!({})),
            ("{ notes { tags { noteCount } } }", serde_json::json!({})),
            ("{ notes { id @defer } }", serde_json::json!({})),
            ("mutation { deleteNote(id: \"1\") }", serde_json::json!({})),
            ("query($n: Int) { notes(first: $n) { id } }", serde_json::json!({})),
            ("query($n: Int) { notes(first: $n) { id } }", serde_json::json!({ "n": null })),
            ("{ notes(first: \"5\") { id } }", serde_json::json!({})),
            ("{ notes(after: 5) { id } }", serde_json::json!({})),
            ("{ a: notes(first: 1) { id } a: notes(first: 2) { id } }", serde_json::json!({})),
            ("{ a: notes { id } a: __typename }", serde_json::json!({})),
            ("{ notes { a: id a: title } }", serde_json::json!({})),
            ("{ notes { ... on User { id } } }", serde_json::json!({})),
            ("{ notes { ...Missing } }", serde_json::json!({})),
            ("{ notes { id { x } } }", serde_json::json!({})),
            ("not a document", serde_json::json!({})),
        ];
        for (query, variables) in general {
            assert!(planned(query, variables).is_none(), "{query}");
        }
    }

    #[test]
    fn refused_arguments_take_the_general_path() {
        for query in
            ["{ notes(first: 101) { id } }", "{ notes(after: \"x\") { id } }", "{ notes(authorId: \"0\") { id } }"]
        {
            let plan = planned(query, serde_json::json!({})).unwrap();
            assert!(Lists::read(plan).is_none(), "{query}");
        }
        assert!(
            Lists::read(planned("{ notes(first: 100, tag: \" A \") { id } }", serde_json::json!({})).unwrap())
                .is_some()
        );
    }
}
