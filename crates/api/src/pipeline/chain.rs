//! How stages join: each stage calls the rest of the path through
//! [`Next`], which takes `&self`. A tower `Service` takes `&mut self`, so
//! with tower services each stage would clone the rest of the path for
//! every request; tower's `ServiceBuilder` and `Layer` still build the
//! list ([`stage`] makes a stage a layer), and only the [`Head`] of the
//! list is a tower `Service` (for axum, and for the shedding layers in
//! front of it).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::Request as HttpRequest;
use axum::response::Response as HttpResponse;
use tower::{Layer, Service};

use super::call::Answer;

/// The rest of the path after a stage: what a stage hands its input to.
pub trait Next<In, Out = Answer>: Send + Sync + 'static {
    /// Runs the rest of the path on `input`.
    fn run(&self, input: In) -> impl Future<Output = Out> + Send;
}

/// One step of the path, handing on to `N`.
pub trait Stage<N>: Send + Sync + 'static {
    /// What the stage receives.
    type In;
    /// What the stage answers with.
    type Out;
    /// Answers `input`, or hands it on to `next`.
    fn run(&self, input: Self::In, next: &N) -> impl Future<Output = Self::Out> + Send;
}

/// A stage joined to the rest of the path.
pub struct Link<T, N> {
    stage: T,
    next: N,
}

impl<T: Stage<N>, N: Send + Sync + 'static> Next<T::In, T::Out> for Link<T, N> {
    /// Each stage's future is boxed, so that the stage before it holds a
    /// pointer, not the rest of the path. Unboxed, every stage's future
    /// contained all the futures after it (16 KB at the head), and each
    /// was copied whole into its caller's as the request went in: nine
    /// allocations a request cost less than those copies (a tenth of the
    /// mix's instructions; docs/PERFORMANCE.md, "Futures moved whole").
    fn run(&self, input: T::In) -> impl Future<Output = T::Out> + Send {
        Box::pin(self.stage.run(input, &self.next))
    }
}

/// A stage as a tower `Layer`, for the list in [`graphql`].
pub fn stage<T: Clone>(stage: T) -> StageLayer<T> {
    StageLayer(stage)
}

/// See [`stage`].
#[derive(Clone)]
pub struct StageLayer<T>(T);

impl<T: Clone, N> Layer<N> for StageLayer<T> {
    type Service = Link<T, N>;

    fn layer(&self, next: N) -> Link<T, N> {
        Link { stage: self.0.clone(), next }
    }
}

/// The head of the path as a tower `Service`: one `Arc` clone per request.
pub struct Head<N>(Arc<N>);

impl<N> Head<N> {
    /// The path `path`, shared by every request.
    pub fn new(path: N) -> Self {
        Head(Arc::new(path))
    }
}

impl<N> Clone for Head<N> {
    fn clone(&self) -> Self {
        Head(Arc::clone(&self.0))
    }
}

impl<N: Next<HttpRequest, HttpResponse>> Service<HttpRequest> for Head<N> {
    type Response = HttpResponse;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: HttpRequest) -> Self::Future {
        let path = Arc::clone(&self.0);
        Box::pin(async move { Ok(path.run(request).await) })
    }
}

/// A closure as the rest of the path, for the stages' unit tests.
#[cfg(test)]
pub(crate) struct Fake<F>(pub F);

#[cfg(test)]
impl<F, Fut, In, Out> Next<In, Out> for Fake<F>
where
    F: Fn(In) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Out> + Send,
{
    fn run(&self, input: In) -> impl Future<Output = Out> + Send {
        (self.0)(input)
    }
}
