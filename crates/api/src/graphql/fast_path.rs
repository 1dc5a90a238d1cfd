//! The fast path of `/graphql`: a query whose root fields are plain row
//! data is answered as JSON bytes written straight from its statements'
//! rows, without resolving fields one at a time, building a value tree and
//! serialising it (docs/PERFORMANCE.md, "Lists as cheap as their rows").
//! Plain row data is, with `__typename`, aliases, fragments and
//! `@skip`/`@include` anywhere:
//!
//! - the root `notes` list: `Note`'s scalar fields, its `author { … }` and
//!   `tags { … }` with their scalar fields (one statement);
//! - `users(first:, after:)`: `User`'s scalar fields (one statement);
//! - `note(id:)`: `Note`'s scalar fields and `author { … }` (read as the
//!   resolver reads it: through the shared loader, with its author when
//!   the selection names one);
//! - `user(id:)`: `User`'s scalar fields and one `notes(first:, after:)`
//!   page with `Note`'s scalar fields and `tags { … }` (the user and the
//!   page in one statement, through the loader the resolver uses).
//!
//! Loaders are read inside a [`Tracked`] execution, as the general path
//! reads them, so their batches (and the statements counted) are the same.
//!
//! The engine still decides what is valid: a request the fast path would
//! take is first validated by a second schema, configured as the executing
//! one, whose only extension ends each request where execution would begin
//! ([`ValidateOnly`]); what it accepted is kept by the document's shape, so
//! that the same document with other ids is not validated again
//! ([`Accepted`]). Anything else — another field or argument, another
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
use db::notes::{Including, ListedNote, NoteFilter, NoteRow};
use db::pages::{NoteWithTags, NotesOf, UserWithNotes};
use db::tags::TagRow;
use db::users::UserRow;
use db::{NoteId, Page, UserId};
use futures::future::Either;
use loaders::Tracked;
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

/// Bytes of keys kept of requests the validating schema accepted: about
/// 20,000 documents of a few hundred bytes.
const VALIDATED_BYTES: u64 = 8 << 20;

/// The validating schema and what the fast path reads with.
pub(crate) struct FastPath {
    /// The schema's types and settings, validating only.
    validator: AppSchema,
    /// Requests it accepted, by what its answer depends on ([`Accepted`]).
    accepted: moka::sync::Cache<Accepted, ()>,
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
            "GraphQL operations answered from their statements' rows, without field resolution.",
        )
        .expect("a valid counter name and help");
        let accepted = moka::sync::Cache::builder()
            .max_capacity(VALIDATED_BYTES)
            .weigher(|key: &Accepted, _: &()| u32::try_from(key.weight()).unwrap_or(u32::MAX))
            .build();
        FastPath { validator: builder.extension(ValidateOnly).finish(), accepted, primary, taken }
    }

    /// The counter, for the metrics registry.
    pub(super) fn collector(&self) -> Box<dyn prometheus::core::Collector> {
        Box::new(self.taken.clone())
    }

    /// True when the schema accepts `request` as it stands: parse limits,
    /// validation rules, the operation it names. A request whose
    /// [`Accepted`] key it accepted before is accepted again without
    /// running them.
    async fn validates(&self, request: &mut Request) -> bool {
        let key = Accepted::of(request);
        if key.as_ref().is_some_and(|key| self.accepted.contains_key(key)) {
            return true;
        }
        let Ok(document) = request.parsed_query().cloned() else { return false };
        let mut mirror = Request::new(String::new()).variables(request.variables.clone());
        mirror.operation_name.clone_from(&request.operation_name);
        mirror.introspection_mode = request.introspection_mode;
        mirror.set_parsed_query(document);
        // Boxed: the engine's execution future is large, and unboxed it
        // would be part of the fast path's future and of every stage's
        // above it, moved in memory at each of them on every request.
        let accepted = Box::pin(self.validator.execute(mirror)).await.errors.is_empty();
        if accepted && let Some(key) = key {
            self.accepted.insert(key, ());
        }
        accepted
    }
}

/// What the validating schema's answer depends on, for a request the fast
/// path planned: its document up to the contents of its string literals
/// (its shape, [`crate::parsed::shape_key`]), the operation it names, its
/// variables up to the contents of their strings, and whether it may
/// introspect. Clients send the same few documents with other ids, inline
/// or as variables, and these are validated once.
///
/// The contents of strings cannot change the answer for a planned
/// request: [`plan`] takes only the fields it knows, with arguments of
/// type `ID`, `String` and `Int` (and `Boolean` for `@skip`/`@include`),
/// of which `ID` and `String` accept any string and `Int` and `Boolean`
/// none. A variable of another type (an enum, a custom scalar whose
/// strings are checked) is either unused or used where its type is not
/// allowed, and refused whatever its value or default. Numbers are kept
/// whole: a page's `first` counts in the cost limits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Accepted {
    shape: String,
    operation: Option<String>,
    variables: String,
    introspection: u8,
}

impl Accepted {
    /// The key of `request`, when its document has a shape (a request
    /// given its document parsed, without its text, has none).
    fn of(request: &Request) -> Option<Self> {
        if request.query.is_empty() {
            return None;
        }
        let shape = crate::parsed::shape_key(&request.query)?.into_owned();
        let variables = match request.variables.is_empty() {
            true => String::new(),
            false => {
                let mut variables = serde_json::to_value(&request.variables).ok()?;
                blank_strings(&mut variables);
                variables.to_string()
            }
        };
        let introspection = match request.introspection_mode {
            async_graphql::IntrospectionMode::Enabled => 0,
            async_graphql::IntrospectionMode::Disabled => 1,
            async_graphql::IntrospectionMode::IntrospectionOnly => 2,
        };
        Some(Accepted { shape, operation: request.operation_name.clone(), variables, introspection })
    }

    /// Bytes it is counted as.
    fn weight(&self) -> usize {
        self.shape.len() + self.operation.as_ref().map_or(0, String::len) + self.variables.len() + 64
    }
}

/// Empties every string in `value`, keeping its structure and the other
/// values.
fn blank_strings(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::String(string) => string.clear(),
        serde_json::Value::Array(items) => items.iter_mut().for_each(blank_strings),
        serde_json::Value::Object(fields) => fields.values_mut().for_each(blank_strings),
        _ => {}
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
        // All at once, as the engine resolves root fields: loads of
        // several root fields batch into one statement, as they do there.
        let reads = lists.reads.iter().map(|read| read.run(&source, viewer.user, budget));
        let read = Box::pin(async { futures::future::try_join_all(reads).await });
        let read = match lists.reads.iter().any(Read::loads) {
            // Tracked, as the general path's execution: the loaders' batches
            // are the same. Created in the span, so its batches link to it.
            true => Either::Left(span.in_scope(|| Tracked::with_budget(read, budget))),
            // Root lists alone: statements of their own, with their budget,
            // and no batch to track each poll for.
            false => Either::Right(read),
        };
        let code = match tokio::time::timeout(self.timeout, read.instrument(span)).await {
            Ok(Ok(rows)) => {
                if let Some(touched) = &touched {
                    lists.touch(touched, &rows, viewer.user);
                }
                match lists.write(&rows, viewer.user) {
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

/// A field of `User` under the root `user(id:)`.
#[derive(Debug, PartialEq, Eq)]
enum UserPart {
    Scalar(UserField),
    /// Its one page of notes (the arguments are the root field's).
    Notes(Keys<NoteField>),
}

/// A root field the fast path answers.
#[derive(Debug, PartialEq, Eq)]
enum RootField {
    Typename,
    Notes(NotesArgs, Keys<NoteField>),
    Users(NotesArgs, Keys<UserField>),
    /// `note(id:)`: the id as sent, and whether the selection names
    /// `author` anywhere not skipped (as the resolver's look-ahead sees
    /// it: it picks the statement).
    Note(String, bool, Keys<NoteField>),
    /// `user(id:)`: the id as sent, and the one `notes` page its selection
    /// names, not skipped (as the resolver's look-ahead sees it), with
    /// whether that page's selection names `tags`.
    User(String, Option<(NotesArgs, bool)>, Keys<UserPart>),
}

/// The arguments of one `notes` (or `users`) field, as sent (`None`:
/// absent or null, which the resolvers treat alike).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
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

impl Merge for UserPart {
    fn merge(&mut self, other: Self) -> Result<(), Bail> {
        match (self, other) {
            (UserPart::Notes(keys), UserPart::Notes(more)) => {
                more.into_iter().try_for_each(|(k, f)| insert(keys, k, f))
            }
            (this, other) if *this == other => Ok(()),
            _ => Err(Bail),
        }
    }
}

/// `note(id:)` and `user(id:)` at one key twice are not merged: their
/// resolvers look ahead into one of the fields only, so which statement
/// the general path runs is not plain from the document.
impl Merge for RootField {
    fn merge(&mut self, other: Self) -> Result<(), Bail> {
        match (self, other) {
            (RootField::Typename, RootField::Typename) => Ok(()),
            (RootField::Notes(args, keys), RootField::Notes(more_args, more)) if *args == more_args => {
                more.into_iter().try_for_each(|(k, f)| insert(keys, k, f))
            }
            (RootField::Users(args, keys), RootField::Users(more_args, more)) if *args == more_args => {
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

/// Refuses a selection set nested deeper than `MAX_DEPTH` fragments, so
/// every walk stops at the same depth.
fn within_depth(depth: usize) -> Result<(), Bail> {
    if depth > MAX_DEPTH { Err(Bail) } else { Ok(()) }
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
        within_depth(depth)?;
        for selection in &set.items {
            if !self.kept(&selection.node)? {
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

    /// Counts `selection` against the walk's bound and says whether
    /// `@skip`/`@include` keep it: the one gate every walk passes each
    /// selection through.
    fn kept(&mut self, selection: &Selection) -> Result<bool, Bail> {
        self.visits += 1;
        if self.visits > MAX_VISITS {
            return Err(Bail);
        }
        Ok(!self.skipped(selection.directives())?)
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

    /// The root selection: `notes`, `users`, `note`, `user` and
    /// `__typename` only.
    fn root(&mut self, set: &'a SelectionSet) -> Result<Keys<RootField>, Bail> {
        let mut fields = Vec::new();
        self.fields(set, "Query", 0, &mut fields)?;
        let mut keys = Vec::new();
        for field in fields {
            let planned = match field.name.node.as_str() {
                "__typename" => leaf(field, RootField::Typename)?,
                "notes" => RootField::Notes(self.notes_args(field)?, self.note(selection(field)?)?),
                "users" => RootField::Users(
                    self.arguments(field, &["first", "after"])?,
                    self.scalars(selection(field)?, "User", user_field)?,
                ),
                "note" => {
                    let set = selection(field)?;
                    let keys = self.note(set)?;
                    // `Note.tags` loads on its own: not plain row data here.
                    if keys.iter().any(|(_, f)| matches!(f, NoteField::Tags(_))) {
                        return Err(Bail);
                    }
                    RootField::Note(self.id(field)?, !self.looked_ahead(set, "author", 0)?.is_empty(), keys)
                }
                "user" => self.user(field)?,
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

    /// A root `user(id:)`: its scalar fields and at most one `notes`
    /// page of scalar fields and tags, which `user(id:)` reads with the
    /// user in one statement ([`super::types::one_notes_page`]). Several
    /// `notes` fields, or arguments that the page does not take as sent,
    /// take the general path, which reads them apart.
    fn user(&mut self, field: &'a Field) -> Result<RootField, Bail> {
        let set = selection(field)?;
        let mut fields = Vec::new();
        self.fields(set, "User", 0, &mut fields)?;
        let mut keys = Vec::new();
        for field in fields {
            let planned = match field.name.node.as_str() {
                "notes" => {
                    let notes = self.note(selection(field)?)?;
                    if notes.iter().any(|(_, f)| matches!(f, NoteField::Author(_))) {
                        return Err(Bail);
                    }
                    UserPart::Notes(notes)
                }
                name => leaf(field, UserPart::Scalar(user_field(name).ok_or(Bail)?))?,
            };
            insert(&mut keys, field.response_key().node.clone(), planned)?;
        }
        let page = match self.looked_ahead(set, "notes", 0)?[..] {
            [] => None,
            [notes] => {
                let tags = !self.looked_ahead(selection(notes)?, "tags", 0)?.is_empty();
                Some((self.arguments(notes, &["first", "after"])?, tags))
            }
            _ => return Err(Bail),
        };
        // Planned and looked ahead alike; should they ever disagree, the
        // general path answers.
        if page.is_some() != keys.iter().any(|(_, f)| matches!(f, UserPart::Notes(_))) {
            return Err(Bail);
        }
        Ok(RootField::User(self.id(field)?, page, not_empty(keys)?))
    }

    /// The fields named `name` in `set`, through every fragment, leaving
    /// out what `@skip`/`@include` leave out: what async-graphql's
    /// look-ahead finds (it looks at the document after skipped selections
    /// are removed), which the resolvers read to pick their statement.
    fn looked_ahead(&mut self, set: &'a SelectionSet, name: &str, depth: usize) -> Result<Vec<&'a Field>, Bail> {
        within_depth(depth)?;
        let mut found = Vec::new();
        for selection in &set.items {
            if !self.kept(&selection.node)? {
                continue;
            }
            let inner = match &selection.node {
                Selection::Field(field) => {
                    if field.node.name.node == name {
                        found.push(&field.node);
                    }
                    continue;
                }
                Selection::InlineFragment(inline) => &inline.node.selection_set.node,
                Selection::FragmentSpread(spread) => {
                    match self.document.fragments.get(&spread.node.fragment_name.node) {
                        Some(fragment) => &fragment.node.selection_set.node,
                        None => continue,
                    }
                }
            };
            found.extend(self.looked_ahead(inner, name, depth + 1)?);
        }
        Ok(found)
    }

    /// The `id` argument of `note(id:)` or `user(id:)`: a string, sent as
    /// a literal or a variable.
    fn id(&self, field: &Field) -> Result<String, Bail> {
        let [(name, value)] = &field.arguments[..] else { return Err(Bail) };
        let value =
            value.node.clone().into_const_with(|variable| self.variables.get(&variable).cloned().ok_or(Bail))?;
        match (name.node.as_str(), value) {
            ("id", Value::String(id)) => Ok(id),
            _ => Err(Bail),
        }
    }

    /// The arguments of a root `notes`, with their variables' values. A
    /// variable the request left out, or sent as null, and any value not
    /// of the argument's type take the general path.
    fn notes_args(&self, field: &Field) -> Result<NotesArgs, Bail> {
        self.arguments(field, &["first", "after", "tag", "authorId"])
    }

    /// The arguments of `field`, of those named in `allowed`, as
    /// [`Walk::notes_args`] reads them.
    fn arguments(&self, field: &Field, allowed: &[&str]) -> Result<NotesArgs, Bail> {
        let mut args = NotesArgs::default();
        let mut seen: Vec<&str> = Vec::with_capacity(field.arguments.len());
        for (name, value) in &field.arguments {
            let name = name.node.as_str();
            if seen.contains(&name) || !allowed.contains(&name) {
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

/// The planned root fields with what each reads.
struct Lists {
    keys: Keys<RootField>,
    /// One per root field but `__typename`, in the order of `keys`.
    reads: Vec<Read>,
}

/// What one root field reads, its arguments checked as its resolver
/// checks them.
enum Read {
    /// The root `notes`: one statement.
    Notes(List),
    /// `users`: one statement.
    Users(Page<UserId>),
    /// `note(id:)`, through the loader its resolver uses.
    Note { id: NoteId, author: bool },
    /// `user(id:)`, through the loader its resolver uses.
    User { id: UserId, notes: Option<(Page<NoteId>, bool)> },
}

/// The rows one [`Read`] brought.
enum Rows {
    Notes(Vec<ListedNote>),
    Users(Vec<UserRow>),
    /// The note, whoever may see it (the viewer's check is the writer's).
    Note(Option<ListedNote>),
    /// The user and its page of notes (empty when none was read).
    User(Option<(UserRow, Vec<ListedNote>)>),
}

/// A read failed: the general path reads again and reports it.
struct Failed;

impl From<db::Error> for Failed {
    fn from(_: db::Error) -> Self {
        Failed
    }
}

impl From<loaders::LoadError> for Failed {
    fn from(_: loaders::LoadError) -> Self {
        Failed
    }
}

/// What one root `notes` reads: its arguments as the resolver checks them.
struct List {
    page: Page<NoteId>,
    author: Option<UserId>,
    tag: Option<String>,
    including: Including,
}

/// A page of `after` and `first` as `args::page` checks it.
fn page_of<T: From<i64>>(args: &NotesArgs, default: i32, what: &str) -> Option<Page<T>> {
    let after = args.after.clone().map(ID);
    args::page(args.first, default, after.as_ref(), what).ok()
}

/// A note as the root list carries it, from a row the loaders give.
fn listed(note: NoteRow, author: Option<UserRow>, tags: Option<Vec<TagRow>>) -> ListedNote {
    ListedNote { note, author, tags }
}

impl Read {
    /// True when it reads through a loader (else it runs a statement of
    /// its own).
    fn loads(&self) -> bool {
        matches!(self, Read::Note { .. } | Read::User { .. })
    }

    /// Reads the rows: `source`'s pool or loaders, as `viewer`, statements
    /// by `budget`.
    async fn run(&self, source: &Source, viewer: Option<UserId>, budget: Option<db::Budget>) -> Result<Rows, Failed> {
        let loaders = &source.loaders;
        Ok(match self {
            Read::Notes(list) => {
                let filter = NoteFilter { author: list.author, tag: list.tag.as_deref() };
                let (page, including) = (list.page, list.including);
                let read = async |db: &mut db::PgConnection| db::notes::list(db, viewer, filter, page, including).await;
                Rows::Notes(db::within(&source.pool, budget, read).await?)
            }
            Read::Users(page) => {
                let page = *page;
                Rows::Users(db::within(&source.pool, budget, async |db| db::users::list(db, page).await).await?)
            }
            Read::Note { id, author: true } => Rows::Note(
                loaders
                    .note_with_author_by_id
                    .load_one(*id)
                    .await?
                    .map(|joined| listed(joined.note, Some(joined.author), None)),
            ),
            Read::Note { id, author: false } => {
                Rows::Note(loaders.note_by_id.load_one(*id).await?.map(|note| listed(note, None, None)))
            }
            Read::User { id, notes: None } => {
                Rows::User(loaders.user_by_id.load_one(*id).await?.map(|user| (user, Vec::new())))
            }
            Read::User { id, notes: Some((page, tags)) } => {
                let key = NotesOf { parent: *id, viewer, page: *page };
                Rows::User(match tags {
                    true => loaders.user_with_tagged_notes_by_id.load_one(key).await?.map(|read| {
                        with_notes(read, |joined: NoteWithTags| listed(joined.note, None, Some(joined.tags)))
                    }),
                    false => loaders
                        .user_with_notes_by_id
                        .load_one(key)
                        .await?
                        .map(|read| with_notes(read, |note: NoteRow| listed(note, None, None))),
                })
            }
        })
    }
}

/// A user read with its page of notes, each as `note` makes it.
fn with_notes<R>(read: UserWithNotes<R>, note: impl FnMut(R) -> ListedNote) -> (UserRow, Vec<ListedNote>) {
    (read.user, read.notes.into_iter().map(note).collect())
}

impl Lists {
    /// The reads of `keys`, or `None` when an argument is one that its
    /// resolver refuses (the general path reports it).
    fn read(keys: Keys<RootField>) -> Option<Lists> {
        let mut reads = Vec::new();
        for (_, field) in &keys {
            reads.push(match field {
                RootField::Typename => continue,
                RootField::Notes(args, fields) => {
                    let page = page_of(args, args::NOTES_PAGE, "note")?;
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
                    Read::Notes(List { page, author, tag, including })
                }
                RootField::Users(args, _) => Read::Users(page_of(args, args::USERS_PAGE, "user")?),
                RootField::Note(id, author, _) => {
                    Read::Note { id: args::parse_id(&ID(id.clone()), "note").ok()?, author: *author }
                }
                RootField::User(id, page, _) => {
                    let notes = match page {
                        Some((args, tags)) => Some((page_of(args, args::NOTES_PAGE, "note")?, *tags)),
                        None => None,
                    };
                    Read::User { id: args::parse_id(&ID(id.clone()), "user").ok()?, notes }
                }
            });
        }
        Some(Lists { keys, reads })
    }

    /// Orders every object's keys as the general path does.
    fn order(&mut self, order: &KeyOrder) {
        fn note(field: &mut NoteField, order: &KeyOrder) {
            match field {
                NoteField::Author(keys) => sort(keys, order, |_, _| {}),
                NoteField::Tags(keys) => sort(keys, order, |_, _| {}),
                _ => {}
            }
        }
        sort(&mut self.keys, order, |field, order| match field {
            RootField::Notes(_, fields) | RootField::Note(_, _, fields) => sort(fields, order, note),
            RootField::Users(_, fields) => sort(fields, order, |_, _| {}),
            RootField::User(_, _, fields) => sort(fields, order, |part, order| {
                if let UserPart::Notes(fields) = part {
                    sort(fields, order, note);
                }
            }),
            RootField::Typename => {}
        });
    }

    /// The root fields but `__typename`, each with its read's rows.
    fn with<'r>(&'r self, rows: &'r [Rows]) -> impl Iterator<Item = (&'r RootField, &'r Read, &'r Rows)> {
        let fields = self.keys.iter().map(|(_, field)| field).filter(|field| !matches!(field, RootField::Typename));
        fields.zip(&self.reads).zip(rows).map(|((field, read), rows)| (field, read, rows))
    }

    /// Records what the general path's resolvers record: each list or
    /// object read, each author written, and whether the response depends
    /// on the viewer (a list that may hold the viewer's private notes, a
    /// private note, an `email`).
    fn touch(&self, touched: &Touched, rows: &[Rows], viewer: Option<UserId>) {
        let email = |keys: &Keys<UserField>| keys.iter().any(|(_, f)| *f == UserField::Email);
        for (field, read, rows) in self.with(rows) {
            match (field, read, rows) {
                (RootField::Notes(_, fields), _, Rows::Notes(notes)) => {
                    touched.read(tags::NOTE_LIST);
                    touched.viewer_dependent();
                    if fields.iter().any(|(_, f)| matches!(f, NoteField::Author(_))) {
                        for note in notes {
                            touched.read(&tags::user(note.note.author_id));
                        }
                    }
                }
                (RootField::Users(_, fields), _, Rows::Users(users)) => {
                    touched.read(tags::USER_LIST);
                    if !users.is_empty() && email(fields) {
                        touched.viewer_dependent();
                    }
                }
                (RootField::Note(_, _, fields), Read::Note { id, .. }, Rows::Note(note)) => {
                    touched.read(&tags::note(*id));
                    let Some(note) = note else { continue };
                    if note.note.visibility == db::notes::Visibility::Private {
                        touched.viewer_dependent();
                    }
                    if !note.note.is_visible_to(viewer) {
                        continue;
                    }
                    for (_, field) in fields {
                        if let NoteField::Author(keys) = field {
                            touched.read(&tags::user(note.note.author_id));
                            if email(keys) {
                                touched.viewer_dependent();
                            }
                        }
                    }
                }
                (RootField::User(..), Read::User { id, .. }, Rows::User(None)) => touched.read(&tags::user(*id)),
                (RootField::User(_, _, parts), Read::User { id, .. }, Rows::User(Some(_))) => {
                    touched.read(&tags::user(*id));
                    for (_, part) in parts {
                        match part {
                            UserPart::Scalar(UserField::Email) => touched.viewer_dependent(),
                            UserPart::Scalar(_) => {}
                            UserPart::Notes(_) => {
                                touched.read(&tags::user_notes(*id));
                                touched.viewer_dependent();
                            }
                        }
                    }
                }
                _ => {}
            }
        }
    }

    /// The response body: `{"data":{…}}`, as the encode stage writes it.
    fn write(&self, rows: &[Rows], viewer: Option<UserId>) -> Result<Vec<u8>, Unwritable> {
        let notes: usize = rows
            .iter()
            .map(|rows| match rows {
                Rows::Notes(notes) => notes.len(),
                Rows::Users(users) => users.len(),
                Rows::Note(_) => 1,
                Rows::User(user) => 1 + user.as_ref().map_or(0, |(_, notes)| notes.len()),
            })
            .sum();
        let mut out = Vec::with_capacity(32 + notes * BYTES_PER_NOTE);
        out.extend_from_slice(b"{\"data\":{");
        let mut rows = rows.iter();
        for (i, (key, field)) in self.keys.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            string(&mut out, key)?;
            out.push(b':');
            if let RootField::Typename = field {
                out.extend_from_slice(b"\"Query\"");
                continue;
            }
            match (field, rows.next().ok_or(Unwritable)?) {
                (RootField::Notes(_, fields), Rows::Notes(page)) => {
                    list(&mut out, page, |out, note| write_note(out, note, fields, viewer))?;
                }
                (RootField::Users(_, fields), Rows::Users(users)) => {
                    list(&mut out, users, |out, user| write_user(out, user, fields, viewer))?;
                }
                (RootField::Note(_, _, fields), Rows::Note(note)) => match note {
                    Some(note) if note.note.is_visible_to(viewer) => write_note(&mut out, note, fields, viewer)?,
                    _ => out.extend_from_slice(b"null"),
                },
                (RootField::User(_, _, parts), Rows::User(Some((user, notes)))) => {
                    object_of(&mut out, parts, |out, part| match part {
                        UserPart::Scalar(field) => user_scalar(out, user, *field, viewer),
                        UserPart::Notes(fields) => list(out, notes, |out, note| write_note(out, note, fields, viewer)),
                    })?;
                }
                (RootField::User(..), Rows::User(None)) => out.extend_from_slice(b"null"),
                _ => return Err(Unwritable),
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
        NoteField::Author(keys) => write_user(out, note.author.as_ref().ok_or(Unwritable)?, keys, viewer),
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

/// One user with the fields `keys` select.
fn write_user(
    out: &mut Vec<u8>,
    user: &UserRow,
    keys: &Keys<UserField>,
    viewer: Option<UserId>,
) -> Result<(), Unwritable> {
    object_of(out, keys, |out, field| user_scalar(out, user, *field, viewer))
}

/// One scalar field of a user: `email` only to the user itself.
fn user_scalar(out: &mut Vec<u8>, user: &UserRow, field: UserField, viewer: Option<UserId>) -> Result<(), Unwritable> {
    match field {
        UserField::Id => id(out, user.id.0),
        UserField::Name => string(out, &user.name),
        UserField::Email if viewer == Some(user.id) => string(out, &user.email),
        UserField::Email => {
            out.extend_from_slice(b"null");
            Ok(())
        }
        UserField::CreatedAt => string(out, &user.created_at.to_rfc3339()),
        UserField::Typename => string(out, "User"),
    }
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
            _ => panic!("not notes"),
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
            ("{ me { id } }", serde_json::json!({})),
            ("{ notes { id } me { id } }", serde_json::json!({})),
            ("{ users { id notes { id } } }", serde_json::json!({})),
            ("{ users(tag: \"a\") { id } }", serde_json::json!({})),
            ("{ note(id: \"1\") { tags { name } } }", serde_json::json!({})),
            ("{ note(id: 1) { id } }", serde_json::json!({})),
            ("query($id: ID!) { note(id: $id) { id } }", serde_json::json!({})),
            ("{ a: note(id: \"1\") { id } a: note(id: \"1\") { title } }", serde_json::json!({})),
            ("{ user(id: \"1\") { notes { id } a: notes { id } } }", serde_json::json!({})),
            ("{ user(id: \"1\") { notes { author { id } } } }", serde_json::json!({})),
            ("{ user(id: \"1\") { noteCount } }", serde_json::json!({})),
            ("{ user(id: \"1\") { notes(after: 5) { id } } }", serde_json::json!({})),
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
    fn the_mixs_root_fields_are_planned_with_what_their_resolvers_read() {
        let plan = planned(
            "query($id: ID!) { users(first: 20) { id name } note(id: $id) { id title author @skip(if: true) { name } } \
             u: user(id: \"3\") { ... on User { notes(first: 5) { id title tags { name } } } } }",
            serde_json::json!({ "id": "7" }),
        )
        .unwrap();

        assert_eq!(keys(&plan), ["users", "note", "u"]);
        let RootField::Users(args, fields) = &plan[0].1 else { panic!("not users") };
        assert_eq!((args.first, keys(fields)), (Some(20), vec!["id", "name"]));
        // The skipped author is neither written nor seen by the resolver's
        // look-ahead (async-graphql removes skipped selections before
        // execution): the note is read without its author.
        let RootField::Note(id, with_author, fields) = &plan[1].1 else { panic!("not note") };
        assert_eq!((id.as_str(), *with_author, keys(fields)), ("7", false, vec!["id", "title"]));
        let RootField::User(id, Some((args, tags)), parts) = &plan[2].1 else { panic!("not user with notes") };
        assert_eq!((id.as_str(), args.first, *tags, keys(parts)), ("3", Some(5), true, vec!["notes"]));

        let lists = Lists::read(plan).unwrap();
        assert!(matches!(lists.reads[1], Read::Note { id: NoteId(7), author: false }));
        assert!(matches!(
            lists.reads[2],
            Read::User { id: UserId(3), notes: Some((Page { first: 5, after: None }, true)) }
        ));
    }

    #[test]
    fn refused_arguments_take_the_general_path() {
        for query in [
            "{ notes(first: 101) { id } }",
            "{ notes(after: \"x\") { id } }",
            "{ notes(authorId: \"0\") { id } }",
            "{ users(first: -1) { id } }",
            "{ note(id: \"x\") { id } }",
            "{ user(id: \"0\") { id } }",
            "{ user(id: \"1\") { notes(first: 101) { id } } }",
        ] {
            let plan = planned(query, serde_json::json!({})).unwrap();
            assert!(Lists::read(plan).is_none(), "{query}");
        }
        assert!(
            Lists::read(planned("{ notes(first: 100, tag: \" A \") { id } }", serde_json::json!({})).unwrap())
                .is_some()
        );
    }

    #[test]
    fn an_accepted_request_is_kept_by_what_validation_reads() {
        let key = |query: &str, variables: serde_json::Value, operation: Option<&str>| {
            let mut request = Request::new(query).variables(Variables::from_json(variables));
            request.operation_name = operation.map(str::to_owned);
            Accepted::of(&request).expect("a shape")
        };
        let none = serde_json::json!({});
        let page = |first: i64, after: &str| serde_json::json!({ "first": first, "after": after });
        let by_id =
            "query Q($first: Int, $after: ID) { note(id: \"12\") { id } notes(first: $first, after: $after) { id } }";
        let accepted = key(by_id, page(5, "40"), Some("Q"));

        // Other strings, inline or in variables: the same key.
        let other_id = by_id.replace("\"12\"", "\"97\"");
        assert_eq!(key(&other_id, page(5, "7"), Some("Q")), accepted);
        // Anything else validation reads: another key.
        assert_ne!(key(by_id, page(6, "40"), Some("Q")), accepted, "a number");
        assert_ne!(key(by_id, page(5, "40"), Some("R")), accepted, "the operation");
        assert_ne!(key(by_id, page(5, "40"), None), accepted, "no operation");
        assert_ne!(key(by_id, serde_json::json!({ "first": 5 }), Some("Q")), accepted, "a variable left out");
        assert_ne!(key(by_id, serde_json::json!({ "first": 5, "after": 40 }), Some("Q")), accepted, "a kind");
        assert_ne!(key(&by_id.replace("{ id }", "{ title }"), page(5, "40"), Some("Q")), accepted, "a field");
        let mut introspecting = Request::new(by_id).variables(Variables::from_json(page(5, "40")));
        introspecting.operation_name = Some("Q".into());
        introspecting.introspection_mode = async_graphql::IntrospectionMode::Disabled;
        assert_ne!(Accepted::of(&introspecting), Some(accepted), "introspection");
        assert!(Accepted::of(&Request::new("{ note(id: \"1\\n\") { id } }")).is_none(), "no shape");
        assert!(Accepted::of(&Request::new("")).is_none(), "no text");
        assert_eq!(key("{ users { id } }", none.clone(), None), key("{ users { id } }", none, None));
    }
}
