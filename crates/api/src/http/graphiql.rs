//! GraphiQL at `/`, served from the binary so that it works with no network:
//! the page, and under `/assets/` the vendored GraphiQL and React bundles
//! (`crates/api/assets/graphiql/`, written by `scripts/vendor-graphiql.sh`)
//! with the small script and style that start them. Each asset's URL holds
//! a hash of its content, so browsers may keep it for good; the page itself
//! is revalidated, and its Content-Security-Policy allows nothing from
//! another origin and no inline script or style.
//!
//! It does not bundle, minify or compress ahead of time: the files are the
//! npm packages' own, and the compression layer gzips them per request.

use std::collections::HashMap;
use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS};
use axum::http::{HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};

/// Where the page sends queries and mutations.
const ENDPOINT: &str = "/graphql";
/// Where the page opens subscriptions (graphql-transport-ws).
const SUBSCRIPTION_ENDPOINT: &str = "/graphql/ws";

/// Scripts, styles and connections from this server only; fonts are the
/// `data:` URLs inside GraphiQL's stylesheet. `connect-src 'self'` covers
/// the WebSocket on the same host and port.
const CONTENT_SECURITY_POLICY_VALUE: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     font-src data:; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// A hashed URL names the same bytes forever.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// One file under `/assets/`.
struct Asset {
    content_type: &'static str,
    bytes: &'static [u8],
}

/// The embedded files, by hashed name, and the page that links them.
struct Site {
    assets: HashMap<String, Asset>,
    page: String,
}

/// Built on first use; hashing the 1.5 MB takes well under a millisecond.
static SITE: LazyLock<Site> = LazyLock::new(|| {
    let files: [(&str, &'static str, &'static [u8]); 7] = [
        ("react.production.min.js", JS, include_bytes!("../../assets/graphiql/react.production.min.js")),
        ("react-dom.production.min.js", JS, include_bytes!("../../assets/graphiql/react-dom.production.min.js")),
        ("graphiql.min.js", JS, include_bytes!("../../assets/graphiql/graphiql.min.js")),
        ("graphiql.min.css", CSS, include_bytes!("../../assets/graphiql/graphiql.min.css")),
        ("THIRD-PARTY-LICENSES.txt", TEXT, include_bytes!("../../assets/graphiql/THIRD-PARTY-LICENSES.txt")),
        ("notegraph.js", JS, include_bytes!("../../assets/notegraph.js")),
        ("notegraph.css", CSS, include_bytes!("../../assets/notegraph.css")),
    ];
    let mut urls = HashMap::new();
    let mut assets = HashMap::new();
    for (file, content_type, bytes) in files {
        let name = hashed_name(file, bytes);
        urls.insert(file, format!("/assets/{name}"));
        assets.insert(name, Asset { content_type, bytes });
    }
    let page = render_page(&urls);
    Site { assets, page }
});

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";

/// `graphiql.min.js` becomes `graphiql.min.<16 hex digits>.js`. xxh3 is not
/// a cryptographic hash and need not be: it tells versions apart, it does
/// not vouch for them (the CSP and same-origin serving do that).
fn hashed_name(file: &str, bytes: &[u8]) -> String {
    let hash = xxhash_rust::xxh3::xxh3_64(bytes);
    match file.rsplit_once('.') {
        Some((stem, extension)) => format!("{stem}.{hash:016x}.{extension}"),
        None => format!("{file}.{hash:016x}"),
    }
}

/// The HTML page, given each asset's hashed URL by file name.
fn render_page(urls: &HashMap<&str, String>) -> String {
    let url = |file: &str| urls[file].as_str();
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Notegraph · GraphiQL</title>
<link rel="stylesheet" href="{graphiql_css}">
<link rel="stylesheet" href="{notegraph_css}">
<link rel="license" href="{licenses}">
<script defer src="{react}"></script>
<script defer src="{react_dom}"></script>
<script defer src="{graphiql}"></script>
<script defer src="{notegraph}"></script>
</head>
<body>
<div id="graphiql" data-endpoint="{ENDPOINT}" data-subscription-endpoint="{SUBSCRIPTION_ENDPOINT}">Loading GraphiQL…</div>
<noscript>GraphiQL needs JavaScript. The API itself is at {ENDPOINT}.</noscript>
</body>
</html>
"#,
        graphiql_css = url("graphiql.min.css"),
        notegraph_css = url("notegraph.css"),
        licenses = url("THIRD-PARTY-LICENSES.txt"),
        react = url("react.production.min.js"),
        react_dom = url("react-dom.production.min.js"),
        graphiql = url("graphiql.min.js"),
        notegraph = url("notegraph.js"),
    )
}

/// `GET /`: the GraphiQL page, pointed at this server.
pub(super) async fn page() -> Response {
    let headers = [
        (CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8")),
        // The page names the current assets: check it on every visit.
        (CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY_VALUE)),
        (X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        (HeaderName::from_static("referrer-policy"), HeaderValue::from_static("no-referrer")),
    ];
    (headers, SITE.page.as_str()).into_response()
}

/// `GET /assets/{name}`: an embedded file by its hashed name; an unknown or
/// outdated name is a 404.
pub(super) async fn asset(Path(name): Path<String>) -> Response {
    let Some(asset) = SITE.assets.get(&name) else {
        return super::not_found().await;
    };
    let headers = [
        (CONTENT_TYPE, HeaderValue::from_static(asset.content_type)),
        (CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE)),
        (X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
    ];
    (headers, asset.bytes).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asset_names_carry_a_hash_of_the_content() {
        let name = hashed_name("graphiql.min.js", b"one");
        assert!(name.starts_with("graphiql.min.") && name.ends_with(".js"), "{name}");
        assert_eq!(name.len(), "graphiql.min..js".len() + 16);
        assert_ne!(name, hashed_name("graphiql.min.js", b"two"));
        assert_eq!(name, hashed_name("graphiql.min.js", b"one"));
    }

    #[test]
    fn the_page_links_every_asset_by_its_hashed_name_and_nothing_else() {
        let page = &SITE.page;
        let linked: Vec<&str> = page.split(['"']).filter_map(|part| part.strip_prefix("/assets/")).collect();
        assert_eq!(linked.len(), SITE.assets.len(), "{page}");
        for name in linked {
            assert!(SITE.assets.contains_key(name), "{name} is linked but not served");
        }
        assert!(!page.contains("http://") && !page.contains("https://"), "{page}");
        assert!(!page.contains("<script>") && !page.contains("<style"), "inline code: {page}");
    }
}
