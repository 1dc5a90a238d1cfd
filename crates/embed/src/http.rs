//! [`HttpEmbedder`]: an OpenAI-compatible embeddings endpoint
//! (`POST {url}` with `{"model", "input": [...], "dimensions"}`, answered by
//! `{"data": [{"index", "embedding"}]}`), as served by OpenAI and by most
//! self-hosted embedding servers.
//!
//! One pooled keep-alive client; inputs sent in batches of at most the
//! provider's limit; every call has one time budget that covers all its
//! attempts, so a slow provider costs a request at most that long; 429 and
//! 5xx answers are retried a bounded number of times after a jittered
//! exponential backoff, or after the `Retry-After` the provider asked for
//! when that still fits the budget.
//!
//! Over HTTPS the provider's certificate is verified against the platform's
//! authorities plus those of `SSL_CERT_FILE`/`SSL_CERT_DIR` ([`crate::tls`]);
//! one that does not verify fails the call at once (no retry can fix it),
//! with a message that says so. Every failure's cause is logged once, with
//! the provider's host (never the URL's path or query, nor the key), when
//! it starts and again only when it changes, not once per call.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use serde::{Deserialize, Serialize};

use crate::{EmbedError, Embedder};

/// First backoff; doubled on every further retry, before jitter.
const BASE_BACKOFF: Duration = Duration::from_millis(100);

/// Settings of an [`HttpEmbedder`].
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// The embeddings endpoint, e.g. `https://api.openai.com/v1/embeddings`.
    pub url: String,
    /// The model name sent with every request.
    pub model: String,
    /// Bearer token, if the provider wants one.
    pub api_key: Option<String>,
    /// Vector length asked for (`dimensions`) and checked on every answer.
    pub dimension: usize,
    /// Time budget of one `embed` call, all attempts and waits included.
    pub timeout: Duration,
    /// Retries after the first attempt on 429, 5xx or a transport error.
    pub max_retries: u32,
    /// Most inputs per request (the provider's limit).
    pub batch_size: usize,
    /// Adds headers to every request: the server passes the W3C trace
    /// context (`traceparent`) here, so a trace continues into the provider.
    pub propagate: Option<fn(&mut reqwest::header::HeaderMap)>,
}

/// Embeds through an OpenAI-compatible HTTP endpoint.
#[derive(Debug, Clone)]
pub struct HttpEmbedder {
    client: reqwest::Client,
    settings: HttpSettings,
    /// `host[:port]` of the endpoint: what the logs name.
    host: String,
    /// The cause of failure last logged; `failing` is its lock-free shadow,
    /// so a success costs a lock only when it ends a failure.
    reported: Arc<Mutex<Option<String>>>,
    failing: Arc<AtomicBool>,
}

#[derive(Serialize)]
struct Request<'a> {
    model: &'a str,
    input: &'a [&'a str],
    dimensions: usize,
}

#[derive(Deserialize)]
struct Response {
    data: Vec<Datum>,
}

#[derive(Deserialize)]
struct Datum {
    index: usize,
    embedding: Vec<f32>,
}

/// Why one attempt failed, and whether another may succeed.
enum Attempt {
    Retry { after: Option<Duration>, error: EmbedError },
    Fatal(EmbedError),
}

/// A provider failure worth a message of its own.
#[derive(Debug, thiserror::Error)]
enum HttpError {
    #[error("provider answered {0}")]
    Status(StatusCode),
    #[error("provider answered {got} embeddings for {sent} inputs")]
    Count { sent: usize, got: usize },
    #[error("no answer within the embedding time budget")]
    Budget,
    #[error("the embedding provider's certificate did not verify: {0}")]
    Certificate(String),
}

/// A setting the embedder cannot be built with.
#[derive(Debug, thiserror::Error)]
enum SetupError {
    #[error("NOTEGRAPH_EMBED_URL is not an http:// or https:// URL")]
    Url,
}

fn provider(error: impl std::error::Error + Send + Sync + 'static) -> EmbedError {
    EmbedError::Provider(Box::new(error))
}

impl HttpEmbedder {
    /// Builds the embedder and its connection pool (no request is sent).
    ///
    /// # Errors
    ///
    /// When the URL is not an `http` or `https` URL, when `SSL_CERT_FILE`
    /// or `SSL_CERT_DIR` names no certificate, or when the HTTP client
    /// cannot be built.
    pub fn new(settings: HttpSettings) -> Result<Self, EmbedError> {
        let url = reqwest::Url::parse(&settings.url).map_err(|_| provider(SetupError::Url))?;
        let host = match (url.scheme(), url.host_str()) {
            ("http" | "https", Some(host)) => match url.port() {
                Some(port) => format!("{host}:{port}"),
                None => host.to_owned(),
            },
            _ => return Err(provider(SetupError::Url)),
        };
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(crate::tls::client_config().map_err(provider)?)
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_keepalive(Duration::from_secs(30))
            .build()
            .map_err(provider)?;
        Ok(Self {
            client,
            settings: HttpSettings { batch_size: settings.batch_size.max(1), ..settings },
            host,
            reported: Arc::default(),
            failing: Arc::default(),
        })
    }

    /// Logs a failure's cause if it is not the one last logged.
    fn report(&self, error: &EmbedError) {
        let cause = error.cause();
        let mut reported = self.reported.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if reported.as_deref() == Some(cause.as_str()) {
            return;
        }
        let certificate = matches!(error, EmbedError::Provider(source)
            if matches!(source.downcast_ref::<HttpError>(), Some(HttpError::Certificate(_))));
        // A certificate is a setting to fix, not weather to wait out.
        if certificate {
            tracing::error!(host = %self.host, error.message = %cause, "embedding provider unavailable");
        } else {
            tracing::warn!(host = %self.host, error.message = %cause, "embedding provider unavailable");
        }
        *reported = Some(cause);
        self.failing.store(true, Ordering::Release);
    }

    /// After a success: a failure logged before is over.
    fn recovered(&self) {
        if self.failing.swap(false, Ordering::AcqRel) {
            let mut reported = self.reported.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if reported.take().is_some() {
                tracing::info!(host = %self.host, "embedding provider answering again");
            }
        }
    }

    /// One batch, retried within the budget that ends at `deadline`.
    async fn embed_batch(&self, texts: &[&str], deadline: Instant) -> Result<Vec<Vec<f32>>, EmbedError> {
        let mut retries = 0;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(provider(HttpError::Budget));
            }
            let (after, error) = match self.attempt(texts, remaining).await {
                Ok(vectors) => return Ok(vectors),
                Err(Attempt::Fatal(error)) => return Err(error),
                Err(Attempt::Retry { after, error }) => (after, error),
            };
            if retries == self.settings.max_retries {
                return Err(error);
            }
            let wait = after.unwrap_or_else(|| backoff(retries));
            if Instant::now() + wait >= deadline {
                return Err(error);
            }
            tracing::debug!(retry = retries + 1, wait_ms = wait.as_millis() as u64, error = %error, "embedding retry");
            tokio::time::sleep(wait).await;
            retries += 1;
        }
    }

    async fn attempt(&self, texts: &[&str], timeout: Duration) -> Result<Vec<Vec<f32>>, Attempt> {
        let body = Request { model: &self.settings.model, input: texts, dimensions: self.settings.dimension };
        let mut request = self.client.post(&self.settings.url).timeout(timeout).json(&body);
        if let Some(key) = &self.settings.api_key {
            request = request.bearer_auth(key);
        }
        if let Some(propagate) = self.settings.propagate {
            let mut headers = reqwest::header::HeaderMap::new();
            propagate(&mut headers);
            request = request.headers(headers);
        }
        let response = request.send().await.map_err(|error| match crate::tls::certificate_failure(&error) {
            // Retrying cannot make a certificate verify.
            Some(reason) => Attempt::Fatal(provider(HttpError::Certificate(reason))),
            None => Attempt::Retry { after: None, error: provider(error.without_url()) },
        })?;
        let status = response.status();
        if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            let after = retry_after(response.headers());
            return Err(Attempt::Retry { after, error: provider(HttpError::Status(status)) });
        }
        if !status.is_success() {
            return Err(Attempt::Fatal(provider(HttpError::Status(status))));
        }
        let parsed: Response =
            response.json().await.map_err(|e| Attempt::Retry { after: None, error: provider(e.without_url()) })?;
        self.in_order(texts.len(), parsed).map_err(Attempt::Fatal)
    }

    /// The answer's vectors in input order, each of the promised dimension.
    fn in_order(&self, sent: usize, response: Response) -> Result<Vec<Vec<f32>>, EmbedError> {
        let got = response.data.len();
        let mut vectors: Vec<Option<Vec<f32>>> = vec![None; sent];
        for datum in response.data {
            if datum.embedding.len() != self.settings.dimension {
                return Err(EmbedError::Dimension { expected: self.settings.dimension, actual: datum.embedding.len() });
            }
            if let Some(slot) = vectors.get_mut(datum.index) {
                *slot = Some(datum.embedding);
            }
        }
        vectors.into_iter().collect::<Option<Vec<_>>>().ok_or_else(|| provider(HttpError::Count { sent, got }))
    }
}

/// The wait before retry number `retry + 1`: 100 ms doubled per retry, with
/// "full jitter" (uniform between half and all of it) so that clients that
/// failed together do not come back together.
fn backoff(retry: u32) -> Duration {
    let ceiling = BASE_BACKOFF.saturating_mul(1 << retry.min(10));
    ceiling.mul_f64(0.5 + rand::random::<f64>() * 0.5)
}

/// `Retry-After` in seconds (the HTTP-date form is rare for APIs and is
/// treated as absent).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let seconds: f64 = headers.get(RETRY_AFTER)?.to_str().ok()?.trim().parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds))
}

#[async_trait]
impl Embedder for HttpEmbedder {
    fn dimension(&self) -> usize {
        self.settings.dimension
    }

    fn identity(&self) -> String {
        format!("{}/{}", self.settings.model, self.settings.dimension)
    }

    async fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let deadline = Instant::now() + self.settings.timeout;
        let mut vectors = Vec::with_capacity(texts.len());
        for batch in texts.chunks(self.settings.batch_size) {
            match self.embed_batch(batch, deadline).await {
                Ok(batch) => vectors.extend(batch),
                Err(error) => {
                    self.report(&error);
                    return Err(error);
                }
            }
        }
        self.recovered();
        Ok(vectors)
    }
}
