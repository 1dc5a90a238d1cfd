//! Budget: the operation's cost, as [`super::policy`] measured it, is
//! taken from its client's budget ([`crate::budgets`]): the viewer's when
//! authenticated, the client address's when anonymous. Over budget, 429
//! `RATE_LIMITED` with `Retry-After` (seconds until the cost fits), before
//! the cache and execution, so a refused request runs no SQL. Every answer
//! that was costed carries `RateLimit-Policy` and `RateLimit`
//! (draft-ietf-httpapi-ratelimit-headers-11). Response-cache hits are
//! charged too: the cost is the request's, whatever answers it (and a
//! request sent again byte for byte is costed too: with budgets on,
//! [`super::replay`] is skipped). With budgets off the stage hands every
//! request on untouched.

use axum::http::StatusCode;

use super::call::{Answer, Operation, Rejection};
use super::chain::{Next, Stage};
use crate::budgets::Budgets;

/// The stage: see the module.
#[derive(Clone)]
pub struct Budget {
    budgets: Option<Budgets>,
}

impl Budget {
    /// Charges `budgets`, when on.
    pub fn new(budgets: Option<Budgets>) -> Self {
        Budget { budgets }
    }
}

impl<N: Next<Operation>> Stage<N> for Budget {
    type In = Operation;
    type Out = Answer;

    async fn run(&self, operation: Operation, next: &N) -> Answer {
        let Some(budgets) = &self.budgets else { return next.run(operation).await };
        let call = &operation.call;
        let verdict = budgets
            .client(&call.viewer, call.peer, &call.headers)
            .and_then(|client| budgets.charge(&client, call.cost));
        let Some(verdict) = verdict else { return next.run(operation).await };
        if !verdict.admitted {
            // At debug: a greedy client would flood the log; the counter
            // (notegraph_rate_limited_total) says how many.
            tracing::debug!(exception.type = "RATE_LIMITED", ratelimit.policy = verdict.policy, "over budget");
            let mut rejection = Rejection::new(StatusCode::TOO_MANY_REQUESTS, verdict.message(), "RATE_LIMITED");
            rejection.headers = Some(Box::new(verdict.headers()));
            return Answer::Refused(rejection);
        }
        let mut answer = next.run(operation).await;
        let headers = match &mut answer {
            Answer::Reply(reply) => &mut reply.headers,
            Answer::Refused(rejection) => rejection.headers.get_or_insert_default(),
        };
        headers.extend(verdict.headers());
        answer
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::body::Bytes;
    use axum::http::{HeaderMap, HeaderValue, header};

    use super::*;
    use crate::auth::Viewer;
    use crate::budgets::{RATELIMIT, RATELIMIT_POLICY};
    use crate::pipeline::call::{Call, Encoded, Method, Reply, XCache};
    use crate::pipeline::chain::Fake;

    fn budget(args: &[&str]) -> Budget {
        let args = std::iter::once("notegraph").chain(args.iter().copied());
        let cli = <crate::Cli as clap::Parser>::try_parse_from(args).unwrap();
        Budget::new(Budgets::new(&cli.config.budgets, 100).unwrap())
    }

    fn operation(peer: &str, forwarded: Option<&str>, user: Option<i64>, cost: u64) -> Operation {
        let mut headers = HeaderMap::new();
        if let Some(forwarded) = forwarded {
            headers.insert("x-forwarded-for", HeaderValue::from_str(forwarded).unwrap());
        }
        let mut call = Call::new(Method::Post, headers, Bytes::new());
        call.peer = Some(peer.parse::<SocketAddr>().unwrap());
        call.viewer = Viewer { user: user.map(db::UserId) };
        call.cost = cost;
        Operation { call, request: async_graphql::Request::new("{ a }") }
    }

    /// Counts the operations handed on, answering each with a miss.
    fn counting(count: Arc<AtomicUsize>) -> Fake<impl Fn(Operation) -> std::future::Ready<Answer> + Send + Sync> {
        Fake(move |_: Operation| {
            count.fetch_add(1, Ordering::SeqCst);
            std::future::ready(Answer::Reply(Reply::of(Encoded::ok("ran".into()), XCache::Miss)))
        })
    }

    #[tokio::test]
    async fn off_hands_everything_on_without_headers() {
        let ran = Arc::new(AtomicUsize::new(0));
        let stage = budget(&[]);

        for _ in 0..10 {
            let Answer::Reply(reply) =
                stage.run(operation("192.0.2.1:5", None, None, 100), &counting(ran.clone())).await
            else {
                panic!("refused with budgets off")
            };
            assert!(reply.headers.is_empty());
        }
        assert_eq!(ran.load(Ordering::SeqCst), 10);
    }

    #[tokio::test]
    async fn over_budget_is_429_with_its_headers_and_never_handed_on() {
        let ran = Arc::new(AtomicUsize::new(0));
        let stage = budget(&["--budget-anonymous-rate", "1", "--budget-anonymous-burst", "100"]);
        let next = counting(ran.clone());

        let first = stage.run(operation("192.0.2.1:5", None, None, 70), &next).await;
        let second = stage.run(operation("192.0.2.1:6", None, None, 70), &next).await;

        let Answer::Reply(reply) = first else { panic!("the first fits") };
        assert_eq!(reply.headers[RATELIMIT_POLICY], "\"anonymous\";q=100;w=100");
        assert_eq!(reply.headers[RATELIMIT], "\"anonymous\";r=30;t=70");
        let Answer::Refused(rejection) = second else { panic!("over budget, handed on") };
        assert_eq!((rejection.status, rejection.code), (StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED"));
        let headers = rejection.headers.expect("the budget's headers");
        let retry: u64 = headers[header::RETRY_AFTER].to_str().unwrap().parse().unwrap();
        assert!((39..=40).contains(&retry), "40 units at 1/s: {retry}");
        assert!(headers.contains_key(RATELIMIT));
        assert_eq!(ran.load(Ordering::SeqCst), 1, "the refused one never reached the cache or execution");
    }

    #[tokio::test]
    async fn clients_are_charged_apart_by_user_and_by_address() {
        let ran = Arc::new(AtomicUsize::new(0));
        let stage = budget(&[
            "--budget-anonymous-rate",
            "1",
            "--budget-anonymous-burst",
            "100",
            "--budget-authenticated-rate",
            "1",
            "--budget-authenticated-burst",
            "100",
            "--trusted-proxies",
            "127.0.0.1",
        ]);
        let next = counting(ran.clone());

        for op in [
            operation("192.0.2.1:5", None, None, 100),
            operation("192.0.2.2:5", None, None, 100),
            operation("192.0.2.1:5", None, Some(1), 100),
            operation("192.0.2.1:5", None, Some(2), 100),
            operation("127.0.0.1:5", Some("198.51.100.1"), None, 100),
            operation("127.0.0.1:5", Some("198.51.100.2"), None, 100),
            // Not a trusted proxy: its header is ignored, and 192.0.2.2 has spent its budget.
            operation("192.0.2.2:5", Some("198.51.100.3"), None, 100),
        ] {
            stage.run(op, &next).await;
        }

        assert_eq!(ran.load(Ordering::SeqCst), 6);
    }
}
