//! Bearer tokens: a good JWT authenticates; expired, forged, `alg: none`
//! and garbage tokens are UNAUTHENTICATED (never a silent anonymous).

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{EncodingKey, Header, encode};
use reqwest::StatusCode;
use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::helpers::TestApp;

/// `{"alg":"none"}` with `{"sub":"1","exp":9999999999}` and no signature.
const ALG_NONE: &str = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiIxIiwiZXhwIjo5OTk5OTk5OTk5fQ.";

fn jwt(secret: &str, sub: &str, exp_from_now: i64) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    let claims = json!({ "sub": sub, "exp": now + exp_from_now });
    encode(&Header::default(), &claims, &EncodingKey::from_secret(secret.as_bytes())).unwrap()
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn a_valid_jwt_names_the_viewer(_: PgPoolOptions, options: PgConnectOptions) {
    let app = TestApp::spawn(options).await;
    let token = jwt(api::config::DEFAULT_JWT_SECRET, "2", 600);
    let data = app.data_as(Some(&token), "{ me { id name } }", json!({})).await;
    assert_eq!(data, json!({ "me": { "id": "2", "name": "Grace Hopper" } }));
    let anonymous = app.data("{ me { id } }").await;
    assert_eq!(anonymous, json!({ "me": null }));
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn bad_tokens_are_unauthenticated(_: PgPoolOptions, options: PgConnectOptions) {
    let app = TestApp::spawn(options).await;
    let expired = jwt(api::config::DEFAULT_JWT_SECRET, "1", -3600);
    let forged = jwt("some-other-secret", "1", 600);
    let not_a_user = jwt(api::config::DEFAULT_JWT_SECRET, "abc", 600);
    for (name, token) in [
        ("expired", expired.as_str()),
        ("forged", &forged),
        ("alg none", ALG_NONE),
        ("garbage", "x.y.z"),
        ("bad sub", &not_a_user),
    ] {
        let (status, body) = app.post(Some(token), "{ me { id } }", json!({})).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{name}: {body}");
        assert_eq!(body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED", "{name}: {body}");
        assert!(body.get("data").is_none(), "{name}: {body}");
    }
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn a_token_for_a_user_that_does_not_exist_cannot_write(_: PgPoolOptions, options: PgConnectOptions) {
    let app = TestApp::spawn(options).await;
    let ghost = jwt(api::config::DEFAULT_JWT_SECRET, "999", 600);
    let code = app
        .error_code(Some(&ghost), "mutation { createNote(input: { title: \"t\", body: \"b\" }) { id } }", json!({}))
        .await;
    assert_eq!(code, "UNAUTHENTICATED");
}
