//! Headless Chromium driven over the Chrome DevTools Protocol, for tests
//! that need a real browser: it starts `chromium` from `PATH` on a fresh
//! profile, opens one page, and sends commands over the browser's
//! WebSocket, keeping the events that arrive meanwhile. It downloads
//! nothing: without Chromium, [`Chromium::find`] says so and the test skips.

use std::process::Stdio;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Set by `.ci/run`: there, a missing Chromium fails the test instead of
/// skipping it.
const REQUIRED: &str = "NOTEGRAPH_REQUIRE_CHROMIUM";

/// The `chromium` executable on `PATH`.
pub(crate) struct Chromium(std::path::PathBuf);

impl Chromium {
    /// Finds `chromium`; `None` (after saying why the test is skipped) when
    /// it is not installed, unless [`REQUIRED`] is set.
    pub(crate) fn find(test: &str) -> Option<Chromium> {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let found = std::env::split_paths(&path).map(|dir| dir.join("chromium")).find(|file| file.is_file());
        if found.is_none() {
            assert!(std::env::var_os(REQUIRED).is_none(), "{REQUIRED} is set but chromium is not on PATH");
            eprintln!("skipping {test}: chromium is not on PATH (Debian: apt-get install chromium)");
        }
        found.map(Chromium)
    }

    /// Starts the browser with one blank page of `width`×`height` pixels.
    pub(crate) async fn launch(&self, width: u32, height: u32) -> Page {
        let profile = tempfile::tempdir().expect("profile directory");
        let mut child = Command::new(&self.0)
            .args(["--headless", "--disable-gpu", "--no-first-run", "--no-default-browser-check"])
            // The sandbox needs user namespaces, which containers (and root) lack.
            .arg("--no-sandbox")
            // A container's /dev/shm is often too small for the renderer.
            .arg("--disable-dev-shm-usage")
            .arg("--remote-debugging-port=0")
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(format!("--window-size={width},{height}"))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            // Its own process group, so that dropping the page ends the
            // renderer and helper processes too.
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .expect("start chromium");
        let mut stderr = BufReader::new(child.stderr.take().expect("stderr")).lines();
        let endpoint = tokio::time::timeout(Duration::from_secs(90), async {
            let mut said = Vec::new();
            while let Some(line) = stderr.next_line().await.expect("chromium stderr") {
                if let Some(url) = line.strip_prefix("DevTools listening on ") {
                    return url.to_owned();
                }
                said.push(line);
            }
            panic!("chromium exited before listening for DevTools; it said:\n{}", said.join("\n"));
        })
        .await
        .expect("chromium listens for DevTools within 90 s");
        // Keep draining its log so that it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = stderr.next_line().await {} });
        let (socket, _) = tokio_tungstenite::connect_async(endpoint.as_str()).await.expect("DevTools WebSocket");
        let mut page = Page { child, _profile: profile, socket, session: None, next_id: 0, events: Vec::new() };
        let target = page.call("Target.createTarget", json!({ "url": "about:blank" })).await;
        let attached =
            page.call("Target.attachToTarget", json!({ "targetId": target["targetId"], "flatten": true })).await;
        page.session = Some(attached["sessionId"].as_str().expect("session id").to_owned());
        page
    }
}

/// One browser page; the browser stops when it is dropped.
pub(crate) struct Page {
    child: Child,
    _profile: TempDir,
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// The page's session on the browser connection, once attached.
    session: Option<String>,
    next_id: u64,
    /// Every event received so far, as `{method, params}`.
    pub(crate) events: Vec<Value>,
}

impl Page {
    /// Sends a command to the page (or to the browser before a page is
    /// attached) and returns its result; a protocol error fails the test.
    pub(crate) async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut command = json!({ "id": id, "method": method, "params": params });
        if let Some(session) = &self.session {
            command["sessionId"] = json!(session);
        }
        self.socket.send(Message::Text(command.to_string().into())).await.expect("send to DevTools");
        loop {
            let message = tokio::time::timeout(Duration::from_secs(60), self.socket.next())
                .await
                .unwrap_or_else(|_| panic!("no answer to {method} within 60 s"))
                .expect("DevTools connection open")
                .expect("DevTools message");
            let Message::Text(text) = message else { continue };
            let message: Value = serde_json::from_str(&text).expect("DevTools JSON");
            if message["id"] == id {
                assert!(message.get("error").is_none(), "{method} failed: {message}");
                return message["result"].clone();
            }
            if message.get("method").is_some() {
                self.events.push(message);
            }
        }
    }

    /// Evaluates a JavaScript expression in the page; returns its value
    /// (awaited when it is a promise). An exception fails the test.
    pub(crate) async fn evaluate(&mut self, expression: &str) -> Value {
        let params = json!({ "expression": expression, "returnByValue": true, "awaitPromise": true });
        let result = self.call("Runtime.evaluate", params).await;
        assert!(result.get("exceptionDetails").is_none(), "{expression} threw: {}", result["exceptionDetails"]);
        result["result"]["value"].clone()
    }

    /// Evaluates `expression` until it is neither null nor false, and returns
    /// that value; fails the test, naming `what`, after `limit`.
    pub(crate) async fn wait_for(&mut self, what: &str, expression: &str, limit: Duration) -> Value {
        self.poll_for(expression, limit).await.unwrap_or_else(|| panic!("no {what} within {limit:?}"))
    }

    /// Evaluates `expression` until it is neither null nor false, and
    /// returns that value; `None` after `limit`.
    pub(crate) async fn poll_for(&mut self, expression: &str, limit: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let value = self.evaluate(expression).await;
            if !value.is_null() && value != false {
                return Some(value);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Clicks the middle of the element `selector` matches, with the mouse,
    /// as a person would.
    pub(crate) async fn click(&mut self, selector: &str) {
        let found = format!(
            "(() => {{ const r = document.querySelector({selector:?}).getBoundingClientRect(); \
             return [r.x + r.width / 2, r.y + r.height / 2]; }})()"
        );
        let point = self.evaluate(&found).await;
        for kind in ["mouseMoved", "mousePressed", "mouseReleased"] {
            let event = json!({ "type": kind, "x": point[0], "y": point[1], "button": "left", "clickCount": 1 });
            self.call("Input.dispatchMouseEvent", event).await;
        }
    }

    /// The page as a PNG.
    pub(crate) async fn screenshot(&mut self) -> Vec<u8> {
        use base64::Engine as _;
        let shot = self.call("Page.captureScreenshot", json!({ "format": "png" })).await;
        let data = shot["data"].as_str().expect("screenshot data");
        base64::engine::general_purpose::STANDARD.decode(data).expect("base64 PNG")
    }
}

impl Drop for Page {
    fn drop(&mut self) {
        // The whole process group: Chromium's helpers outlive a killed parent.
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill").args(["-KILL", "--", &format!("-{pid}")]).status();
        }
    }
}
