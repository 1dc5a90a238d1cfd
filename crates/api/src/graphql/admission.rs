//! What may run: a document that is not trusted (when only trusted ones
//! may), then one over any operation limit, is refused before any resolver
//! runs. The document is parsed here, behind the size limits, and kept in
//! the request, so execution does not parse it again. The `/graphql`
//! pipeline's policy stage checks with [`Admission::check`]; the streaming
//! transports through [`super::BatchedSchema`]'s `Executor`.

use std::sync::Arc;
use std::time::Duration;

use async_graphql::{Request, ServerError};

use super::limits::Limiter;
use super::trusted::TrustedDocuments;
use crate::metrics::{Metrics, Operation};

/// The checks every request passes before it executes. A clone shares
/// them.
#[derive(Clone)]
pub struct Admission {
    limiter: Arc<Limiter>,
    trusted: Option<Arc<TrustedDocuments>>,
    /// Where refusals are counted, when metrics are on.
    metrics: Option<Metrics>,
}

impl Admission {
    /// Admits by `limiter`, and only `trusted` documents when set.
    pub(crate) fn new(limiter: Limiter, trusted: Option<Arc<TrustedDocuments>>) -> Self {
        Admission { limiter: Arc::new(limiter), trusted, metrics: None }
    }

    /// Counts refusals in `metrics`, and reports the size of the
    /// parsed-document map there.
    pub(crate) fn with_metrics(mut self, metrics: Option<Metrics>) -> Result<Self, prometheus::Error> {
        if let (Some(metrics), Some(parsed)) = (&metrics, self.limiter.parsed_documents()) {
            metrics.watch_parsed_documents(parsed.clone())?;
        }
        self.metrics = metrics;
        Ok(self)
    }

    /// Refuses a request that may not run, counting the refusal as an
    /// operation. Called before the response cache parses the document for
    /// its key, so no document skips the limits or reaches the parser
    /// unbounded. An admitted request's cost is returned, measured once,
    /// for the per-client budgets ([`crate::budgets`]).
    pub fn check(&self, request: &mut Request) -> Result<u64, ServerError> {
        let span = tracing::debug_span!("graphql.validate");
        let checked = span.in_scope(|| self.admit(request));
        if let (Err(refusal), Some(metrics)) = (&checked, &self.metrics) {
            let code = refusal.extensions.as_ref().and_then(|e| e.get("code"));
            let code = match code {
                Some(async_graphql::Value::String(code)) if code == "QUERY_TOO_COMPLEX" => "QUERY_TOO_COMPLEX",
                _ => "BAD_USER_INPUT",
            };
            let name = request.operation_name.as_deref();
            let operation = Operation { name, kind: "unknown", code, validated: false, service: "" };
            metrics.operation(operation, Duration::ZERO);
        }
        checked
    }

    /// Refuses a document that is not trusted (when only trusted ones may
    /// run), then one over any operation limit; else the operation's cost.
    pub(crate) fn admit(&self, request: &mut Request) -> Result<u64, ServerError> {
        if let Some(trusted) = &self.trusted
            && !trusted.admits(&request.query)
        {
            return Err(crate::error::server_error(&crate::error::ApiError::Forbidden(
                "only trusted documents run on this server, and this is not one of them".into(),
            )));
        }
        self.limiter.check(request)
    }
}
