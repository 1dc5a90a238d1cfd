//! Builds the schema and gives it, as schema data, what resolvers share: the
//! pool, the loaders, the embedder and the event bus; and [`BatchedSchema`],
//! the executor every transport runs requests through.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_graphql::futures_util::StreamExt as _;
use async_graphql::futures_util::stream::{self, BoxStream};
use async_graphql::{Data, Executor, Request, Response, Schema, SchemaBuilder, ServerError};
use embed::Embedder;
use loaders::{Loaders, Tracked};
use tracing::Instrument as _;

use super::Source;
use super::admission::Admission;
use super::caps::SubscriptionCaps;
use super::embedding::SharedEmbedder;
use super::events::EventBus;
use super::fast_path::FastPath;
use super::hot_fields::HotFields;
use super::limits::{Limiter, OperationLimits};
use super::mutation::MutationRoot;
use super::observe;
use super::order::KeyOrder;
use super::query::QueryRoot;
use super::subscription::{Stopping, SubscriptionRoot};
use super::trusted::TrustedDocuments;
use crate::budgets::{Budgets, Client};
use crate::metrics::{Metrics, Operation};
use crate::replica::ReadReplica;
use crate::response_cache::Invalidation;

/// The executable schema.
pub type AppSchema = Schema<QueryRoot, MutationRoot, SubscriptionRoot>;

/// What the schema's resolvers need, set once at start-up.
pub struct SchemaDeps {
    /// For root lists and writes.
    pub pool: db::PgPool,
    /// For every per-item read.
    pub loaders: Loaders,
    /// Turns note text and search text into vectors.
    pub embedder: Arc<dyn Embedder>,
    /// Where subscriptions get committed writes.
    pub events: EventBus,
    /// Bounds on open subscriptions.
    pub subscription_caps: SubscriptionCaps,
    /// Completes open subscriptions at shutdown.
    pub stopping: Stopping,
    /// What writes invalidate in the response cache.
    pub invalidation: Invalidation,
    /// The writes' share of the pool.
    pub writes: super::WriteShare,
    /// The read replica queries may read, when one is configured.
    pub replica: Option<ReadReplica>,
    /// The only documents that may execute, when configured.
    pub trusted: Option<Arc<TrustedDocuments>>,
    /// Fields to time, when any (registers an extension: see [`HotFields`]).
    pub hot_fields: Option<HotFields>,
}

/// How operations are checked and bounded.
#[derive(Debug, Clone, Copy)]
pub struct SchemaSettings {
    /// Checked before any resolver runs.
    pub limits: OperationLimits,
    /// Memory for parsed documents kept by their text (0: none).
    pub parsed_documents_bytes: u64,
    /// How long one execution may run before it answers TIMEOUT.
    pub timeout: Duration,
    /// Every connection's own `statement_timeout`; a statement gets less
    /// when less is left of its request's budget ([`db::budget`]).
    pub db_timeout: Duration,
    /// `hnsw.ef_search` for `searchNotes(text:)`, when it differs from the
    /// connections' own (which serves vectors and `similar`).
    pub text_ef_search: Option<u32>,
    /// Answer `__schema` and `__type`.
    pub introspection: bool,
    /// Suggest field names in validation errors.
    pub suggestions: bool,
    /// Answer the root `notes` list over plain row data straight from its
    /// statement's rows ([`super::fast_path`]).
    pub fast_path: bool,
}

/// The schema, run so that every operation is first checked against the
/// operation limits, and every execution and subscription is [`Tracked`]
/// (its loads then batch exactly, docs/batching.md) and bounded by the
/// GraphQL timeout.
///
/// A wrapper rather than a schema extension: with any extension registered,
/// async-graphql runs every field through the extension chain, which costs
/// an allocation per field.
#[derive(Clone)]
pub struct BatchedSchema {
    pub(super) schema: AppSchema,
    /// What a request passes before it executes.
    admission: Admission,
    pub(super) timeout: Duration,
    db_timeout: Duration,
    /// Where each operation is counted, when metrics are on.
    pub(super) metrics: Option<Metrics>,
    /// Where queries may read instead of the primary.
    replica: Option<ReadReplica>,
    /// The fast path of plain row data, when on.
    pub(super) fast: Option<Arc<FastPath>>,
    /// Per-client budgets on cost, when on: the streaming transports are
    /// charged here, `/graphql` by the pipeline's budget stage.
    budgets: Option<Budgets>,
}

impl BatchedSchema {
    /// Counts this schema's operations in `metrics`, and reports the size of
    /// its parsed-document map there.
    pub fn with_metrics(mut self, metrics: Option<Metrics>) -> Result<Self, prometheus::Error> {
        self.admission = self.admission.with_metrics(metrics.clone())?;
        if let (Some(fast), Some(metrics)) = (&self.fast, &metrics) {
            metrics.register(fast.collector())?;
        }
        self.metrics = metrics;
        Ok(self)
    }

    /// Charges operations run through the streaming transports to the
    /// [`Client`] their transport put in the request's (or the session's)
    /// data, refusing with `RATE_LIMITED` when over budget.
    pub fn with_budgets(mut self, budgets: Option<Budgets>) -> Self {
        self.budgets = budgets;
        self
    }

    /// The per-client budgets, when on, for the pipeline's budget stage
    /// and for the transports to name their clients.
    pub fn budgets(&self) -> Option<&Budgets> {
        self.budgets.as_ref()
    }

    /// The checks a request passes before it executes, for the pipeline's
    /// policy stage.
    pub fn admission(&self) -> Admission {
        self.admission.clone()
    }

    /// Executes a request that [`Admission::check`] has passed, tracked
    /// for exact batching and under the GraphQL deadline.
    pub async fn execute_checked(&self, mut request: Request) -> Response {
        let started = Instant::now();
        let (name, kind) = observe::describe(&mut request);
        self.route(&mut request, kind);
        let order = KeyOrder::of_request(&mut request);
        let span = tracing::debug_span!(
            "graphql.execute",
            graphql.operation.name = name.as_deref(),
            graphql.operation.type = kind
        );
        // Created in the span: the batches the execution takes part in
        // link to it.
        let budget = Some(self.budget(started));
        let execution = span.in_scope(|| Tracked::with_budget(Box::pin(self.schema.execute(request)), budget));
        // Dropping the execution drops its pending loads; a statement
        // already sent ends by its own `statement_timeout`, which the
        // hierarchy (DB < GraphQL) makes shorter than this deadline.
        let response = match tokio::time::timeout(self.timeout, execution.instrument(span)).await {
            Ok(mut response) => {
                if let Some(order) = order {
                    order.apply(&mut response.data);
                }
                response
            }
            Err(_) => {
                tracing::warn!(exception.type = "TIMEOUT", "graphql execution timed out");
                Response::from_errors(vec![timed_out()])
            }
        };
        if let Some(metrics) = &self.metrics {
            let operation = Operation {
                name: name.as_deref(),
                kind,
                code: observe::code(&response),
                validated: observe::validated(&response),
                service: observe::service(&response),
            };
            metrics.operation(operation, started.elapsed());
        }
        response
    }
}

impl BatchedSchema {
    /// Admits `request` by the operation limits, then charges its cost to
    /// its client's budget (when budgets are on and the transport named
    /// the client in `request`'s or `session`'s data).
    pub(super) fn admit_and_charge(&self, request: &mut Request, session: Option<&Data>) -> Result<(), ServerError> {
        let cost = self.admission.admit(request)?;
        let Some(budgets) = &self.budgets else { return Ok(()) };
        let client = [Some(&request.data), session]
            .into_iter()
            .flatten()
            .find_map(|data| data.get(&std::any::TypeId::of::<Client>())?.downcast_ref::<Client>().copied());
        match client.and_then(|client| budgets.charge(&client, cost)) {
            Some(verdict) if !verdict.admitted => {
                Err(crate::error::server_error(&crate::error::ApiError::RateLimited(verdict.message().into())))
            }
            _ => Ok(()),
        }
    }

    /// The time budget of an execution started at `started`.
    pub(super) fn budget(&self, started: Instant) -> db::Budget {
        db::Budget { deadline: started + self.timeout, statement_timeout: self.db_timeout }
    }

    /// Lets a query read the read replica when it may ([`crate::replica`]);
    /// mutations and subscriptions read the primary.
    pub(super) fn route(&self, request: &mut Request, kind: &str) {
        if let Some(replica) = &self.replica
            && kind == "query"
        {
            replica.route(request);
        }
    }
}

impl Executor for BatchedSchema {
    fn execute(&self, mut request: Request) -> impl Future<Output = Response> + Send {
        let checked = self.admit_and_charge(&mut request, None);
        async move {
            match checked {
                Ok(()) => self.execute_checked(request).await,
                Err(refusal) => Response::from_errors(vec![refusal]),
            }
        }
    }

    /// Subscriptions stream; a query or mutation sent to a streaming
    /// transport (WebSocket, SSE) runs as over HTTP, under the GraphQL
    /// deadline, and streams its one response.
    fn execute_stream(&self, mut request: Request, session_data: Option<Arc<Data>>) -> BoxStream<'static, Response> {
        if let Err(refusal) = self.admit_and_charge(&mut request, session_data.as_deref()) {
            return Box::pin(stream::once(async move { Response::from_errors(vec![refusal]) }));
        }
        let session = session_data.unwrap_or_default();
        let (_, kind) = observe::describe(&mut request);
        let subscription = kind == "subscription";
        self.route(&mut request, kind);
        let order = KeyOrder::of_request(&mut request);
        // A subscription runs for as long as it is open: its loads get the
        // database timeout alone.
        let budget = (!subscription).then(|| self.budget(Instant::now()));
        let execution = Tracked::with_budget(self.schema.execute_stream_with_session_data(request, session), budget);
        if !subscription {
            let deadline = self.timeout;
            return Box::pin(stream::once(async move {
                let mut execution = execution;
                match tokio::time::timeout(deadline, execution.next()).await {
                    Ok(Some(mut response)) => {
                        if let Some(order) = order {
                            order.apply(&mut response.data);
                        }
                        response
                    }
                    // A query or mutation always yields its one response.
                    Ok(None) => Response::from_errors(vec![internal()]),
                    Err(_) => {
                        tracing::warn!(exception.type = "TIMEOUT", "graphql execution timed out");
                        Response::from_errors(vec![timed_out()])
                    }
                }
            }));
        }
        match order {
            Some(order) => Box::pin(execution.map(move |mut response| {
                order.apply(&mut response.data);
                response
            })),
            None => Box::pin(execution),
        }
    }
}

/// The error of an execution that ran past the GraphQL timeout.
pub(super) fn timed_out() -> ServerError {
    crate::error::server_error(&crate::error::ApiError::Timeout)
}

/// The error of a stream that ended without its response.
fn internal() -> ServerError {
    crate::error::server_error(&crate::error::ApiError::Internal)
}

/// Builds the schema with its shared data and settings.
pub fn build_schema(deps: SchemaDeps, settings: SchemaSettings) -> BatchedSchema {
    let source = Arc::new(Source { pool: deps.pool, loaders: deps.loaders });
    let mut builder = configured(settings)
        .data(Arc::clone(&source))
        .data(SharedEmbedder { embedder: deps.embedder, text_ef_search: settings.text_ef_search })
        .data(deps.events)
        .data(deps.subscription_caps)
        .data(deps.stopping)
        .data(deps.invalidation)
        .data(deps.writes);
    // Fields an operator asked to time are resolved one by one, so the
    // fast path, which resolves none, is off while any are.
    let fast_path = settings.fast_path && deps.hot_fields.is_none();
    if let Some(hot_fields) = deps.hot_fields {
        builder = builder.extension(hot_fields);
    }
    // The fast path validates with a schema configured as this one is, so
    // that it accepts exactly the documents this one accepts.
    let fast = fast_path.then(|| Arc::new(FastPath::new(configured(settings), source)));
    BatchedSchema {
        schema: builder.finish(),
        admission: Admission::new(Limiter::new(settings.limits, settings.parsed_documents_bytes), deps.trusted),
        timeout: settings.timeout,
        db_timeout: settings.db_timeout,
        metrics: None,
        replica: deps.replica,
        fast,
        budgets: None,
    }
}

/// The schema's types, directives and validation settings, without its data.
fn configured(settings: SchemaSettings) -> SchemaBuilder<QueryRoot, MutationRoot, SubscriptionRoot> {
    let mut builder = Schema::build(QueryRoot, MutationRoot, SubscriptionRoot)
        .directive(super::incremental::Defer)
        .directive(super::incremental::Stream);
    if !settings.introspection {
        builder = builder.disable_introspection();
    }
    if !settings.suggestions {
        builder = builder.disable_suggestions();
    }
    builder
}

/// The schema's SDL, for `notegraph print-schema`; needs no database.
pub fn sdl() -> String {
    Schema::build(QueryRoot, MutationRoot, SubscriptionRoot)
        .directive(super::incremental::Defer)
        .directive(super::incremental::Stream)
        .finish()
        .sdl()
}

/// A schema over a pool that never connects, for unit tests of what runs
/// before any resolver (limits, routing of requests through the pipeline).
#[cfg(test)]
pub(crate) fn offline(limits: OperationLimits, timeout: Duration) -> BatchedSchema {
    let pool = db::PgPool::connect_lazy("postgres://nobody@127.0.0.1:9/offline").expect("a lazy pool");
    let deps = SchemaDeps {
        loaders: Loaders::new(&pool, Duration::ZERO),
        pool,
        embedder: Arc::new(embed::HashEmbedder::new(embed::DEFAULT_DIMENSION)),
        events: EventBus::new(16),
        subscription_caps: SubscriptionCaps::new(super::SubscriptionLimits {
            total: 1,
            per_viewer: 1,
            per_connection: 1,
        }),
        stopping: Stopping(tokio::sync::watch::channel(false).1),
        invalidation: Invalidation::new(None, None, Duration::from_secs(1)),
        writes: super::WriteShare::new(1, Duration::from_secs(1)),
        replica: None,
        trusted: None,
        hot_fields: None,
    };
    let settings = SchemaSettings {
        limits,
        parsed_documents_bytes: 1 << 20,
        timeout,
        db_timeout: timeout,
        text_ef_search: None,
        introspection: true,
        suggestions: true,
        fast_path: true,
    };
    build_schema(deps, settings)
}
