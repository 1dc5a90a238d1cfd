//! Identity: who asks, from `Authorization` (no header: anonymous;
//! credentials that do not verify: 401 with `WWW-Authenticate: Bearer`,
//! never a fall-back to anonymous; a token whose key could not be fetched:
//! 503 with `Retry-After`), and whether the request must read past
//! the cache and from the primary because its read-your-writes cookie
//! names a write made through another server that this one has not heard
//! of yet ([`crate::read_your_writes`]).

use axum::http::header;

use super::call::{Answer, Call, Rejection};
use super::chain::{Next, Stage};
use crate::auth::Authenticator;
use crate::read_your_writes::ReadYourWrites;

/// The stage: see the module.
#[derive(Clone)]
pub struct Identity {
    auth: Authenticator,
    writes: ReadYourWrites,
}

impl Identity {
    /// Authenticates with `auth`; waits for writes heard through `writes`.
    pub fn new(auth: Authenticator, writes: ReadYourWrites) -> Self {
        Identity { auth, writes }
    }
}

impl<N: Next<Call>> Stage<N> for Identity {
    type In = Call;
    type Out = Answer;

    async fn run(&self, mut call: Call, next: &N) -> Answer {
        call.viewer = match self.auth.viewer(call.headers.get(header::AUTHORIZATION)).await {
            Ok(viewer) => viewer,
            Err(err) => return Answer::Refused(Rejection::credentials(&err)),
        };
        call.read_primary = !self.writes.caught_up(&call.headers).await;
        next.run(call).await
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::body::Bytes;
    use axum::http::{HeaderMap, HeaderValue, StatusCode};

    use super::*;
    use crate::auth::Viewer;
    use crate::pipeline::call::Encoded;
    use crate::pipeline::call::{Method, Reply, XCache};
    use crate::pipeline::chain::Fake;

    fn identity() -> Identity {
        let cli = <crate::Cli as clap::Parser>::try_parse_from(["notegraph"]).unwrap();
        let writes = ReadYourWrites::new(7, Duration::from_secs(60));
        Identity::new(Authenticator::new(&cli.config.auth).unwrap(), writes)
    }

    fn call(headers: &[(header::HeaderName, &str)]) -> Call {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.insert(name.clone(), HeaderValue::from_str(value).unwrap());
        }
        Call::new(Method::Get, map, Bytes::new())
    }

    /// Answers with what the stage learnt: the viewer and the primary flag.
    fn report() -> Fake<impl Fn(Call) -> std::future::Ready<Answer> + Send + Sync + 'static> {
        Fake(|call: Call| {
            let body = format!("{:?} {}", call.viewer.user, call.read_primary);
            std::future::ready(Answer::Reply(Reply::of(Encoded::ok(body.into()), XCache::Bypass)))
        })
    }

    fn body(answer: Answer) -> String {
        match answer {
            Answer::Reply(reply) => String::from_utf8(reply.encoded.body.to_vec()).unwrap(),
            Answer::Refused(rejection) => panic!("refused: {rejection:?}"),
        }
    }

    #[tokio::test]
    async fn no_credentials_is_anonymous_and_a_token_names_its_user() {
        let stage = identity();

        let anonymous = stage.run(call(&[]), &report()).await;
        let signed_in = stage.run(call(&[(header::AUTHORIZATION, "Bearer test-token")]), &report()).await;

        assert_eq!(body(anonymous), "None false");
        assert_eq!(body(signed_in), format!("{:?} false", Viewer { user: Some(db::UserId(1)) }.user));
    }

    #[tokio::test]
    async fn credentials_that_do_not_verify_are_refused_not_made_anonymous() {
        let stage = identity();
        let unreachable = Fake(|_: Call| async { panic!("handed on") });

        for value in ["Bearer not-a-token", "Basic dXNlcjpwYXNz", "Bearer"] {
            let answer = stage.run(call(&[(header::AUTHORIZATION, value)]), &unreachable).await;
            let Answer::Refused(rejection) = answer else { panic!("{value} was let through") };
            assert_eq!(rejection.status, StatusCode::UNAUTHORIZED);
            assert_eq!(rejection.code, "UNAUTHENTICATED");
            assert_eq!(rejection.header.unwrap().1, "Bearer");
        }
    }

    /// Waits the half second an unheard write is waited for.
    #[tokio::test]
    async fn a_cookie_naming_an_unheard_write_reads_the_primary() {
        let stage = identity();

        let own = stage.run(call(&[(header::COOKIE, "notegraph-write=7.5")]), &report()).await;
        let unheard = stage.run(call(&[(header::COOKIE, "notegraph-write=8.5")]), &report()).await;

        assert_eq!(body(own), "None false", "its own writes are always heard");
        assert_eq!(body(unheard), "None true");
    }
}
