//! Incremental delivery: a query with active `@defer` or `@stream`, sent
//! by a client that accepts it, answers in parts: first everything but
//! the deferred fragments (and the streamed root lists cut to their
//! `initialCount`), then each deferred fragment and the rest of each
//! streamed list (docs/INCREMENTAL.md).
//!
//! The parts run one after another as executions of their own
//! ([`plan`] builds their documents), in one request: the same viewer and
//! request data for every part (the request's data becomes the parts'
//! session data), one deadline for the whole stream, one
//! [`loaders::Tracked::memoized`] wrapper whose loader memo and the
//! [`memo::RootMemo`] answer a later part's ancestors with what an
//! earlier part read, one operation in the metrics and one
//! `graphql.execute` span with a `graphql.part` child per part. Dropping
//! the stream (the client went away) drops the running part and with it
//! its statements.

mod directives;
pub(crate) mod memo;
mod plan;

pub use directives::{Defer, Stream};

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use async_graphql::futures_util::StreamExt as _;
use async_graphql::futures_util::stream::{self, BoxStream};
use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{Data, PathSegment, Request, Response, ServerError, Value, Variables};
use loaders::Tracked;
use tracing::Instrument as _;

use super::BatchedSchema;
use super::observe;
use super::order::KeyOrder;
use crate::metrics::{Metrics, Operation};
use memo::{RootMemo, Slices};
use plan::{Kind, Plan};

/// One payload of an incremental response, in the format of the
/// incremental-delivery RFC as of `deferSpec=20220824`.
pub enum Payload {
    /// The first: the response without what comes later.
    Initial {
        /// The initial part's response.
        response: Response,
        /// More payloads follow.
        has_next: bool,
    },
    /// A later one: deferred fragments' data or streamed items.
    Subsequent {
        /// What it delivers (empty when the fragment's objects were all null).
        incremental: Vec<Entry>,
        /// More payloads follow.
        has_next: bool,
    },
}

/// One deferred fragment's data in one object, or streamed items.
pub struct Entry {
    /// The fragment's fields, for `@defer`.
    pub data: Option<Value>,
    /// The streamed items, for `@stream`.
    pub items: Option<Vec<Value>>,
    /// Where: the object's path, or the first item's.
    pub path: Vec<PathSegment>,
    /// The directive's `label`.
    pub label: Option<String>,
    /// Errors raised while resolving it (never in the parts already sent).
    pub errors: Vec<ServerError>,
}

/// The payloads of one incremental response.
pub type Payloads = BoxStream<'static, Payload>;

/// True when `request` defers or streams something (an active directive
/// in a query): it then runs through [`BatchedSchema::execute_incremental`].
pub fn wanted(request: &mut Request) -> bool {
    if !plan::mentions_incremental(&request.query) {
        return false;
    }
    planned(request).is_some()
}

fn planned(request: &mut Request) -> Option<Plan> {
    let name = request.operation_name.clone();
    let variables = request.variables.clone();
    let document = request.parsed_query().ok()?;
    plan::plan(document, name.as_deref(), &variables)
}

impl BatchedSchema {
    /// Admits `request` by the operation limits and charges its client's
    /// budget (as every streaming transport's operation is), then runs it
    /// in parts.
    pub fn stream_incremental(&self, mut request: Request) -> Payloads {
        match self.admit_and_charge(&mut request, None) {
            Ok(()) => self.execute_incremental(request),
            Err(refusal) => Box::pin(stream::once(async move {
                Payload::Initial { response: Response::from_errors(vec![refusal]), has_next: false }
            })),
        }
    }

    /// Runs an admitted request in parts ([`wanted`]); one that defers
    /// nothing is one `Initial` payload.
    pub fn execute_incremental(&self, mut request: Request) -> Payloads {
        let Some(mut plan) = planned(&mut request) else {
            let schema = self.clone();
            return Box::pin(stream::once(async move {
                Payload::Initial { response: schema.execute_checked(request).await, has_next: false }
            }));
        };
        let started = Instant::now();
        let (name, kind) = observe::describe(&mut request);
        request.data.insert(Arc::new(RootMemo::default()));
        request.data.insert(std::mem::take(&mut plan.ahead));
        let span = tracing::debug_span!(
            "graphql.execute",
            graphql.operation.name = name.as_deref(),
            graphql.operation.type = kind,
            graphql.parts = plan.parts.len() + 1
        );
        let run = Run {
            schema: self.clone(),
            session: Arc::new(std::mem::take(&mut request.data)),
            variables: request.variables,
            query: request.query,
            deadline: tokio::time::Instant::from_std(started + self.timeout),
            plan,
            next: 0,
            done: false,
            span: span.clone(),
            record: Record { metrics: self.metrics.clone(), name, kind, started, code: None, done: false },
        };
        let payloads = stream::unfold(run, |mut run| async move {
            let payload = run.step().await?;
            Some((payload, run))
        });
        // Created in the span: the batches the parts take part in link to it.
        let budget = Some(self.budget(started));
        Box::pin(span.in_scope(|| Tracked::memoized(Box::pin(payloads), budget)))
    }
}

/// An incremental response under way.
struct Run {
    schema: BatchedSchema,
    /// The request's data, shared by every part.
    session: Arc<Data>,
    variables: Variables,
    query: String,
    deadline: tokio::time::Instant,
    plan: Plan,
    /// The next part: 0 is the initial one, `i + 1` is `plan.parts[i]`.
    next: usize,
    done: bool,
    span: tracing::Span,
    record: Record,
}

impl Run {
    /// The next payload, or `None` after the last.
    async fn step(&mut self) -> Option<Payload> {
        if self.done {
            return None;
        }
        let index = self.next;
        self.next += 1;
        if index == 0 {
            let slices = self.plan.root_streams.iter().map(|(key, &count)| (key.clone(), 0..count)).collect();
            let response = self.run(self.plan.initial.clone(), slices, 0, None).await;
            let failed = !observe::validated(&response);
            self.record.saw(&response);
            let has_next = !failed && !self.plan.parts.is_empty();
            self.finish_if(!has_next);
            return Some(Payload::Initial { response, has_next });
        }
        let part = &self.plan.parts[index - 1];
        let (document, label) = (part.document.clone(), part.label.clone());
        let has_next = index < self.plan.parts.len();
        let incremental = match &part.kind {
            Kind::Defer(path) => {
                let path = path.clone();
                // Ancestors that are streamed lists: every item (the stream's
                // part came first).
                let response = self.run(document, HashMap::new(), index, label.as_deref()).await;
                self.record.saw(&response);
                let timed_out = response.data == Value::Null && !response.errors.is_empty();
                self.finish_if(timed_out || !has_next);
                deferred(response, &path, label)
            }
            Kind::Stream { key, from } => {
                let (key, from) = (key.clone(), *from);
                let slices = HashMap::from([(key.clone(), from..usize::MAX)]);
                let response = self.run(document, slices, index, label.as_deref()).await;
                self.record.saw(&response);
                let timed_out = response.data == Value::Null && !response.errors.is_empty();
                self.finish_if(timed_out || !has_next);
                streamed(response, &key, from, label)
            }
        };
        Some(Payload::Subsequent { incremental, has_next: has_next && !self.done })
    }

    fn finish_if(&mut self, last: bool) {
        if last {
            self.done = true;
            self.record.finish();
        }
    }

    /// Runs one part's document under the stream's deadline.
    async fn run(
        &self,
        document: ExecutableDocument,
        slices: HashMap<String, std::ops::Range<usize>>,
        index: usize,
        label: Option<&str>,
    ) -> Response {
        let mut request = Request::new(self.query.clone()).variables(self.variables.clone()).data(Slices(slices));
        request.set_parsed_query(document);
        self.schema.route(&mut request, "query");
        let order = KeyOrder::of_request(&mut request);
        let span =
            tracing::debug_span!(parent: &self.span, "graphql.part", graphql.part = index, graphql.label = label);
        let mut execution = self.schema.schema.execute_stream_with_session_data(request, Arc::clone(&self.session));
        match tokio::time::timeout_at(self.deadline, execution.next().instrument(span)).await {
            Ok(Some(mut response)) => {
                if let Some(order) = order {
                    order.apply(&mut response.data);
                }
                response
            }
            Ok(None) => Response::from_errors(vec![crate::error::server_error(&crate::error::ApiError::Internal)]),
            Err(_) => {
                tracing::warn!(exception.type = "TIMEOUT", "graphql execution timed out");
                Response::from_errors(vec![crate::error::server_error(&crate::error::ApiError::Timeout)])
            }
        }
    }
}

/// The entries of a deferred part: its fragment's fields in every object
/// at `path`, each with the errors raised below it. An error that nulled
/// the fragment's object (a non-null field failed) or that arose above it
/// gets an entry of its own, `data: null` at the fragment's object as far
/// as the error's path reaches it: the parts already sent stand.
fn deferred(response: Response, path: &[async_graphql::Name], label: Option<String>) -> Vec<Entry> {
    let mut entries = Vec::new();
    collect(response.data, path, &mut Vec::new(), &label, &mut entries);
    for error in response.errors {
        let at = entries
            .iter()
            .enumerate()
            .filter(|(_, entry)| error.path.starts_with(&entry.path))
            .max_by_key(|(_, entry)| entry.path.len())
            .map(|(at, _)| at);
        let at = at.unwrap_or_else(|| {
            let object = object_path(&error.path, path);
            entries.iter().position(|entry| entry.data.is_none() && entry.path == object).unwrap_or_else(|| {
                entries.push(Entry { data: None, items: None, path: object, label: label.clone(), errors: Vec::new() });
                entries.len() - 1
            })
        });
        entries[at].errors.push(error);
    }
    entries
}

/// The prefix of `error` that reaches the fragment's object at `path`
/// (response keys, lists between them expanded by index).
fn object_path(error: &[PathSegment], path: &[async_graphql::Name]) -> Vec<PathSegment> {
    let mut keys = path.iter();
    let mut next = keys.next();
    let mut prefix = Vec::new();
    for segment in error {
        match (segment, next) {
            (PathSegment::Index(_), _) => prefix.push(segment.clone()),
            (PathSegment::Field(field), Some(key)) if field == key.as_str() => {
                prefix.push(segment.clone());
                next = keys.next();
            }
            _ => break,
        }
    }
    prefix
}

/// Adds an entry for every object at `rest` below `value` (at `at`).
fn collect(
    value: Value,
    rest: &[async_graphql::Name],
    at: &mut Vec<PathSegment>,
    label: &Option<String>,
    out: &mut Vec<Entry>,
) {
    match value {
        Value::List(items) => {
            for (index, item) in items.into_iter().enumerate() {
                at.push(PathSegment::Index(index));
                collect(item, rest, at, label, out);
                at.pop();
            }
        }
        Value::Object(mut object) => match rest.split_first() {
            None => out.push(Entry {
                data: Some(Value::Object(object)),
                items: None,
                path: at.clone(),
                label: label.clone(),
                errors: Vec::new(),
            }),
            Some((key, rest)) => {
                if let Some(child) = object.shift_remove(key) {
                    at.push(PathSegment::Field(key.to_string()));
                    collect(child, rest, at, label, out);
                    at.pop();
                }
            }
        },
        _ => {}
    }
}

/// The entry of a streamed root list's part: its items from `from` on,
/// with their errors at their place in the whole list.
fn streamed(response: Response, key: &str, from: usize, label: Option<String>) -> Vec<Entry> {
    let items = match response.data {
        Value::Object(mut object) => match object.shift_remove(key) {
            Some(Value::List(items)) => items,
            _ => Vec::new(),
        },
        _ => Vec::new(),
    };
    let errors: Vec<ServerError> = response
        .errors
        .into_iter()
        .map(|mut error| {
            if let Some(PathSegment::Index(index)) = error.path.get_mut(1) {
                *index += from;
            }
            error
        })
        .collect();
    if items.is_empty() && errors.is_empty() {
        return Vec::new();
    }
    let path = vec![PathSegment::Field(key.into()), PathSegment::Index(from)];
    vec![Entry { data: None, items: Some(items), path, label, errors }]
}

/// The operation's one line in the metrics, written when its last part is
/// sent or when the client goes away first.
struct Record {
    metrics: Option<Metrics>,
    name: Option<String>,
    kind: &'static str,
    started: Instant,
    /// The first part's that had errors: its code, whether it validated,
    /// its service.
    code: Option<(&'static str, bool, &'static str)>,
    done: bool,
}

impl Record {
    fn saw(&mut self, response: &Response) {
        if self.code.is_none() && !response.errors.is_empty() {
            self.code = Some((observe::code(response), observe::validated(response), observe::service(response)));
        }
    }

    fn finish(&mut self) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let Some(metrics) = &self.metrics else { return };
        let (code, validated, service) = self.code.unwrap_or(("OK", true, ""));
        let operation = Operation { name: self.name.as_deref(), kind: self.kind, code, validated, service };
        metrics.operation(operation, self.started.elapsed());
    }
}

impl Drop for Record {
    fn drop(&mut self) {
        self.finish();
    }
}
