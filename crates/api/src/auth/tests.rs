//! The authenticator against tokens of every kind, and against a JWKS
//! served over loopback HTTP that counts its fetches.
//! `crates/api/tests/api/jwks.rs` repeats the essentials end to end, over
//! HTTPS.

use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::http::HeaderValue;
use clap::Parser as _;
use serde_json::{Value, json};

use super::*;
use crate::cli::Cli;

#[path = "../../tests/api/signing_keys.rs"]
mod signing_keys;

use signing_keys::{SigningKey, at, hs256, jwks, unsigned};

fn config(args: &[&str]) -> AuthConfig {
    Cli::parse_from(std::iter::once("notegraph").chain(args.iter().copied())).config.auth
}

fn authenticator() -> Authenticator {
    Authenticator::new(&config(&[])).unwrap()
}

fn bearer(token: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("Bearer {token}")).unwrap()
}

/// The user `token` names, or the message of its refusal.
async fn check(auth: &Authenticator, token: &str) -> Result<i64, String> {
    match auth.viewer(Some(&bearer(token))).await {
        Ok(viewer) => Ok(viewer.user.expect("a user").0),
        Err(AuthError::Refused(message)) => Err(message.into_owned()),
        Err(AuthError::KeysUnavailable) => Err("unavailable".to_owned()),
    }
}

fn claims(sub: &str) -> Value {
    json!({ "sub": sub, "exp": at(600) })
}

#[tokio::test]
async fn static_development_token_maps_to_user_one() {
    let viewer = authenticator().viewer(Some(&bearer("test-token"))).await.unwrap();
    assert_eq!(viewer.user, Some(UserId(1)));
}

#[tokio::test]
async fn issued_token_round_trips_with_the_configured_issuer_and_audience() {
    let auth = authenticator();
    let token = auth.issue(UserId(7), Duration::from_secs(60)).unwrap();
    assert_eq!(check(&auth, &token).await, Ok(7));

    let checked = Authenticator::new(&config(&["--jwt-issuer", "me", "--jwt-audience", "a,b"])).unwrap();
    let token = checked.issue(UserId(8), Duration::from_secs(60)).unwrap();
    assert_eq!(check(&checked, &token).await, Ok(8));
    let jwks_only = Authenticator::new(&config(&["--jwks-url", "https://idp.example/jwks"])).unwrap();
    assert!(jwks_only.issue(UserId(1), Duration::from_secs(60)).is_err(), "its own tokens would be refused");
}

#[tokio::test]
async fn other_schemes_and_garbage_are_rejected() {
    let auth = authenticator();
    let basic = auth.viewer(Some(&HeaderValue::from_static("Basic dXNlcjpwdw=="))).await;
    assert_eq!(basic, Err(AuthError::refused("expected `Authorization: Bearer <token>`")));
    assert_eq!(check(&auth, "not-a-jwt").await, Err("the token is malformed".into()));
    assert_eq!(check(&auth, "x.y.z").await, Err("the token is malformed".into()));
    assert!(auth.viewer(None).await.unwrap().user.is_none());
}

#[test]
fn malformed_static_tokens_fail_start_up() {
    assert!(parse_static_tokens("a=1,b").is_err());
    assert!(parse_static_tokens("a=x").is_err());
    assert_eq!(parse_static_tokens("").unwrap().len(), 0);
}

#[tokio::test]
async fn algorithms_without_a_key_are_refused_by_name() {
    let auth = authenticator();
    let secret = crate::config::DEFAULT_JWT_SECRET.as_bytes();

    let none = check(&auth, &unsigned("k", &claims("1"))).await;
    let unknown = check(&auth, &unsigned("k", &claims("1")).replace("eyJhbGciOiJub25l", "eyJhbGciOiJYUzk5")).await;
    let rs256 = check(&auth, &SigningKey::rsa("k").sign(&claims("1"))).await;
    let hs384 = {
        let header = jsonwebtoken::Header::new(Algorithm::HS384);
        jsonwebtoken::encode(&header, &claims("1"), &EncodingKey::from_secret(secret)).unwrap()
    };

    assert_eq!(none, Err("the token's algorithm none is not allowed".into()));
    assert_eq!(unknown, Err("the token's algorithm is not allowed".into()));
    assert_eq!(rs256, Err("the token's algorithm RS256 is not allowed".into()), "no JWKS is configured");
    assert_eq!(check(&auth, &hs384).await, Err("the token's algorithm HS384 is not allowed".into()));
    assert_eq!(check(&auth, &hs256(secret, None, &claims("3"))).await, Ok(3));
}

#[tokio::test]
async fn each_failed_claim_check_is_named() {
    let auth =
        Authenticator::new(&config(&["--jwt-issuer", "https://idp.example/", "--jwt-audience", "notegraph"])).unwrap();
    let secret = crate::config::DEFAULT_JWT_SECRET.as_bytes();
    let good = json!({ "sub": "5", "exp": at(600), "iss": "https://idp.example/", "aud": ["other", "notegraph"] });
    let with = |changes: Value| {
        let mut claims = good.clone();
        for (name, value) in changes.as_object().unwrap() {
            match value {
                Value::Null => claims.as_object_mut().unwrap().remove(name),
                value => claims.as_object_mut().unwrap().insert(name.clone(), value.clone()),
            };
        }
        hs256(secret, None, &claims)
    };
    let cases = [
        (json!({}), Ok(5)),
        (json!({ "exp": at(-3) }), Ok(5)),
        (json!({ "exp": at(-60) }), Err("the token has expired")),
        (json!({ "exp": null }), Err("the token has no expiry (`exp`)")),
        (json!({ "nbf": at(60) }), Err("the token is not valid yet (`nbf`)")),
        (json!({ "iss": "https://evil.example/" }), Err("the token's issuer (`iss`) is not the expected one")),
        (json!({ "iss": null }), Err("the token's issuer (`iss`) is not the expected one")),
        (json!({ "aud": "other" }), Err("the token's audience (`aud`) is not the expected one")),
        (json!({ "aud": null }), Err("the token's audience (`aud`) is not the expected one")),
        (json!({ "sub": "auth0|5f7c8ec7c33c6c004bbafe82" }), Err("claim `sub` is not a Notegraph user id")),
        (json!({ "sub": null }), Err("claim `sub` is missing")),
        (json!({ "sub": 6 }), Ok(6)),
    ];
    for (changes, expected) in cases {
        let outcome = check(&auth, &with(changes.clone())).await;
        assert_eq!(outcome, expected.map_err(str::to_owned), "{changes}");
    }
    let forged = hs256(b"another secret", None, &good);
    assert_eq!(check(&auth, &forged).await, Err("the token's signature is invalid".into()));
}

#[tokio::test]
async fn the_user_claim_and_leeway_are_settings() {
    let auth = Authenticator::new(&config(&["--jwt-user-claim", "notegraph_user", "--jwt-leeway-secs", "0"])).unwrap();
    let secret = crate::config::DEFAULT_JWT_SECRET.as_bytes();

    let custom = hs256(secret, None, &json!({ "sub": "google-248289761001", "notegraph_user": 9, "exp": at(60) }));
    let missing = hs256(secret, None, &json!({ "sub": "9", "exp": at(60) }));
    let just_expired = hs256(secret, None, &json!({ "notegraph_user": "9", "exp": at(-2) }));

    assert_eq!(check(&auth, &custom).await, Ok(9));
    assert_eq!(check(&auth, &missing).await, Err("claim `notegraph_user` is missing".into()));
    assert_eq!(check(&auth, &just_expired).await, Err("the token has expired".into()));
    let issued = auth.issue(UserId(4), Duration::from_secs(60)).unwrap();
    assert_eq!(check(&auth, &issued).await, Ok(4));
}

/// A loopback JWKS endpoint whose document and status the test changes,
/// counting the fetches it answers.
#[derive(Clone)]
struct Issuer {
    document: Arc<Mutex<Value>>,
    status: Arc<AtomicU16>,
    fetches: Arc<AtomicUsize>,
    url: String,
}

impl Issuer {
    async fn serve(document: Value) -> Issuer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = Issuer {
            document: Arc::new(Mutex::new(document)),
            status: Arc::new(AtomicU16::new(200)),
            fetches: Arc::new(AtomicUsize::new(0)),
            url: format!("http://{}/jwks.json", listener.local_addr().unwrap()),
        };
        let state = issuer.clone();
        let router = axum::Router::new().route(
            "/jwks.json",
            axum::routing::get(move || {
                let state = state.clone();
                async move {
                    state.fetches.fetch_add(1, Ordering::SeqCst);
                    let status = StatusCode::from_u16(state.status.load(Ordering::SeqCst)).unwrap();
                    (status, axum::Json(state.document.lock().unwrap().clone()))
                }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, router).await });
        issuer
    }

    fn publish(&self, keys: &[&SigningKey]) {
        *self.document.lock().unwrap() = jwks(keys);
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }

    fn authenticator(&self, extra: &[&str]) -> Authenticator {
        let args = [&["--jwks-url", self.url.as_str(), "--jwks-min-refresh-secs", "1"], extra].concat();
        Authenticator::new(&config(&args)).unwrap()
    }
}

#[tokio::test]
async fn provider_tokens_verify_with_the_key_their_kid_names() {
    let (rsa, ec, ed) = (SigningKey::rsa("rsa-1"), SigningKey::ec("ec-1"), SigningKey::ed("ed-1"));
    let issuer = Issuer::serve(jwks(&[&rsa, &ec, &ed])).await;
    let auth = issuer.authenticator(&[]);

    for (key, user) in [(&rsa, "11"), (&ec, "12"), (&ed, "13")] {
        assert_eq!(check(&auth, &key.sign(&claims(user))).await, Ok(user.parse().unwrap()), "{:?}", key.alg);
    }

    assert_eq!(issuer.fetches(), 1, "one fetch, then the keys are held");
    let impostor = SigningKey::ec("ec-1");
    assert_eq!(check(&auth, &impostor.sign(&claims("12"))).await, Err("the token's signature is invalid".into()));
    let mismatched = ec.sign_as(Some("rsa-1"), &claims("12"));
    assert_eq!(
        check(&auth, &mismatched).await,
        Err("the token's algorithm ES256 does not match its signing key".into())
    );
    let confused = hs256(&rsa.public_bytes(), Some("rsa-1"), &claims("11"));
    assert_eq!(check(&auth, &confused).await, Err("the token's algorithm HS256 is not allowed".into()));
    let none = unsigned("rsa-1", &claims("11"));
    assert_eq!(check(&auth, &none).await, Err("the token's algorithm none is not allowed".into()));
    let nameless = ec.sign_as(None, &claims("12"));
    assert_eq!(check(&auth, &nameless).await, Err("the token names no signing key (`kid`)".into()));
    assert_eq!(check(&auth, "test-token").await, Ok(1), "static tokens still work");
}

#[tokio::test]
async fn hs256_beside_a_jwks_needs_a_secret_of_ones_own_and_never_a_public_key() {
    let rsa = SigningKey::rsa("rsa-1");
    let issuer = Issuer::serve(jwks(&[&rsa])).await;
    let auth = issuer.authenticator(&["--jwt-secret", "our own secret"]);

    let confused = hs256(&rsa.public_bytes(), Some("rsa-1"), &claims("11"));
    let ours = hs256(b"our own secret", None, &claims("11"));

    assert_eq!(check(&auth, &confused).await, Err("the token's signature is invalid".into()));
    assert_eq!(check(&auth, &ours).await, Ok(11));
    let nameless = rsa.sign_as(None, &claims("11"));
    assert_eq!(check(&auth, &nameless).await, Ok(11), "a set of one key is that key");
}

#[tokio::test]
async fn an_rsa_key_without_alg_verifies_every_rsa_algorithm_and_one_with_alg_only_that() {
    let mut any = SigningKey::rsa("any");
    any.jwk.as_object_mut().unwrap().remove("alg");
    let pinned = SigningKey::rsa("pinned");
    let issuer = Issuer::serve(jwks(&[&any, &pinned])).await;
    let auth = issuer.authenticator(&[]);

    for alg in [Algorithm::RS256, Algorithm::RS384, Algorithm::RS512, Algorithm::PS256, Algorithm::PS512] {
        let mut key = SigningKey::rsa("any");
        key.alg = alg;
        assert_eq!(check(&auth, &key.sign(&claims("4"))).await, Ok(4), "{alg:?}");
    }
    let mut pss = SigningKey::rsa("pinned");
    pss.alg = Algorithm::PS256;
    let refused = check(&auth, &pss.sign(&claims("4"))).await;
    assert_eq!(refused, Err("the token's algorithm PS256 does not match its signing key".into()));
}

#[tokio::test]
async fn keys_the_server_must_not_trust_are_skipped() {
    let ec = SigningKey::ec("ec-1");
    let mut encrypting = SigningKey::ec("enc-1");
    encrypting.jwk["use"] = json!("enc");
    let mut wrong_alg = SigningKey::ec("alg-1");
    wrong_alg.jwk["alg"] = json!("RS256");
    let mut document = jwks(&[&ec, &encrypting, &wrong_alg]);
    let oct = json!({ "kty": "oct", "k": "c2VjcmV0", "kid": "oct-1", "alg": "HS256" });
    document["keys"].as_array_mut().unwrap().extend([oct, json!({ "kty": "EC", "crv": "P-521", "kid": "p521" })]);
    let issuer = Issuer::serve(document).await;
    let auth = issuer.authenticator(&[]);

    assert_eq!(check(&auth, &ec.sign(&claims("1"))).await, Ok(1));
    for (key, what) in [(&encrypting, "an encryption key"), (&wrong_alg, "a key whose alg does not fit")] {
        assert_eq!(
            check(&auth, &key.sign(&claims("1"))).await,
            Err("the token's signing key (`kid`) is unknown".into()),
            "{what}"
        );
    }
    let oct_token = hs256(b"secret", Some("oct-1"), &claims("1"));
    assert_eq!(check(&auth, &oct_token).await, Err("the token's algorithm HS256 is not allowed".into()));
}

#[tokio::test]
async fn a_new_kid_costs_one_shared_fetch_and_made_up_kids_one_per_interval() {
    let (old, new) = (SigningKey::ec("old"), SigningKey::ed("new"));
    let issuer = Issuer::serve(jwks(&[&old])).await;
    let auth = issuer.authenticator(&[]);
    assert_eq!(check(&auth, &old.sign(&claims("1"))).await, Ok(1));
    assert_eq!(issuer.fetches(), 1);

    // The issuer rotates a key in; a second later tokens name it.
    issuer.publish(&[&old, &new]);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let token = new.sign(&claims("2"));
    let verdicts = futures::future::join_all((0..50).map(|_| check(&auth, &token))).await;
    assert!(verdicts.iter().all(|verdict| *verdict == Ok(2)), "{verdicts:?}");
    assert_eq!(issuer.fetches(), 2, "50 concurrent requests share one fetch");

    // A flood of made-up kids, once the interval has passed: one fetch per
    // interval (1 s) at most, however long the flood takes.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let started = tokio::time::Instant::now();
    let flood = futures::future::join_all((0..1000).map(|i| {
        let (auth, token) = (auth.clone(), new.sign_as(Some(&format!("forged-{i}")), &claims("2")));
        async move { check(&auth, &token).await }
    }))
    .await;
    let seconds = started.elapsed().as_secs() as usize;
    assert!(flood.iter().all(|v| *v == Err("the token's signing key (`kid`) is unknown".to_owned())));
    let fetched = issuer.fetches() - 2;
    assert!((1..=1 + seconds).contains(&fetched), "{fetched} fetches in {seconds} s");
    assert_eq!(check(&auth, &old.sign(&claims("1"))).await, Ok(1), "known keys are never held up");
}

#[tokio::test]
async fn the_background_refresh_retires_removed_keys() {
    let (old, new) = (SigningKey::rsa("old"), SigningKey::ec("new"));
    let issuer = Issuer::serve(jwks(&[&old, &new])).await;
    let args = ["--jwks-url", issuer.url.as_str(), "--jwks-min-refresh-secs", "1", "--jwks-refresh-secs", "1"];
    let auth = Authenticator::start(&config(&args)).unwrap();
    let token = old.sign(&claims("1"));
    assert_eq!(check(&auth, &token).await, Ok(1));

    issuer.publish(&[&new]);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while check(&auth, &token).await == Ok(1) {
        assert!(tokio::time::Instant::now() < deadline, "the removed key still works after 10 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    assert_eq!(check(&auth, &token).await, Err("the token's signing key (`kid`) is unknown".into()));
    assert_eq!(check(&auth, &new.sign(&claims("2"))).await, Ok(2));
}

#[tokio::test]
async fn an_unreachable_jwks_answers_unavailable_and_recovers_in_the_background() {
    let key = SigningKey::ed("ed-1");
    let issuer = Issuer::serve(jwks(&[&key])).await;
    issuer.status.store(503, Ordering::SeqCst);
    let args = ["--jwks-url", issuer.url.as_str(), "--jwks-min-refresh-secs", "2"];
    let auth = Authenticator::start(&config(&args)).unwrap();
    let token = key.sign(&claims("3"));

    assert_eq!(auth.viewer(Some(&bearer(&token))).await, Err(AuthError::KeysUnavailable));
    assert_eq!(auth.viewer(None).await, Ok(Viewer { user: None }), "anonymous requests are served");
    assert_eq!(check(&auth, "test-token").await, Ok(1));

    issuer.status.store(200, Ordering::SeqCst);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while check(&auth, &token).await != Ok(3) {
        assert!(tokio::time::Instant::now() < deadline, "not recovered within 10 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Once held, keys outlive a failing refresh.
    issuer.status.store(500, Ordering::SeqCst);
    let unknown = key.sign_as(Some("rotated"), &claims("3"));
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(auth.viewer(Some(&bearer(&unknown))).await, Err(AuthError::KeysUnavailable));
    assert_eq!(check(&auth, &token).await, Ok(3));
}

#[test]
fn cache_control_max_age_is_read() {
    let max_age = |value: &'static str| jwks::max_age(Some(&HeaderValue::from_static(value)));
    assert_eq!(max_age("public, max-age=3600, must-revalidate"), Some(Duration::from_secs(3600)));
    assert_eq!(max_age("no-store"), Some(Duration::ZERO));
    assert_eq!(max_age("public"), None);
    assert_eq!(max_age("max-age=soon"), None);
}
