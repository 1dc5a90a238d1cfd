//! Read-your-writes across server replicas: a viewer who writes through one
//! server and reads at once through another must see the write there too.
//!
//! The other server learns of the write only when its `NOTIFY` arrives
//! (milliseconds, more under load), and until then it may answer from its
//! cache or from the read replica. So every write's answer sets a short-
//! lived cookie naming the write (`notegraph-write=<server>.<write>`);
//! browsers and most HTTP clients send it back by themselves. A server that
//! gets a request carrying a write it has not heard of yet waits for that
//! write's event (up to [`WAIT`]), after which its cache and replica
//! routing already know of it; if the event is later still, the request
//! skips the cache and reads the primary.
//!
//! A viewer's writes are acknowledged one after another, and events arrive
//! in commit order, so having heard the latest write means having heard the
//! earlier ones: one cookie, the latest write, is enough.
//!
//! Hand-written: this is the server's own protocol over its own events.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, header};
use db::notify::Writer;
use tokio::sync::Notify;

/// The cookie naming the viewer's latest write.
pub const COOKIE: &str = "notegraph-write";
/// Longest a request waits for the event of a write its cookie names.
pub const WAIT: Duration = Duration::from_millis(500);

/// This server's writes and the writes it has heard of; cheap to clone.
#[derive(Clone)]
pub struct ReadYourWrites(Arc<Inner>);

struct Inner {
    /// This server, as named in its events and cookies.
    origin: u64,
    /// The last write number handed out.
    writes: AtomicU64,
    /// Writes heard of over `LISTEN`, kept for as long as their cookies live.
    heard: moka::sync::Cache<(u64, u64), ()>,
    /// Woken whenever a write is heard of.
    arrived: Notify,
    /// `Max-Age` of the cookie, in seconds.
    remember_secs: u64,
}

impl ReadYourWrites {
    /// The state of server `origin`, whose cookies live `remember`.
    pub fn new(origin: u64, remember: Duration) -> Self {
        let remember_secs = remember.as_secs().max(1);
        ReadYourWrites(Arc::new(Inner {
            origin,
            writes: AtomicU64::new(0),
            heard: moka::sync::Cache::builder().time_to_live(Duration::from_secs(remember_secs + 1)).build(),
            arrived: Notify::new(),
            remember_secs,
        }))
    }

    /// This server's identity in events.
    pub fn origin(&self) -> u64 {
        self.0.origin
    }

    /// Names the next write this server makes.
    pub fn next_write(&self) -> Writer {
        Writer { origin: self.0.origin, write: self.0.writes.fetch_add(1, Ordering::Relaxed) + 1 }
    }

    /// The `Set-Cookie` value that names `writer`'s write.
    pub fn cookie(&self, writer: Writer) -> HeaderValue {
        let value = format!(
            "{COOKIE}={:x}.{}; Max-Age={}; Path=/; HttpOnly; SameSite=Lax",
            writer.origin, writer.write, self.0.remember_secs
        );
        // Hex digits, digits and fixed ASCII: always a valid header value.
        HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static(""))
    }

    /// Records that another server's write arrived (its invalidation and
    /// replica bookkeeping done), and wakes requests waiting for it.
    pub fn heard(&self, writer: Writer) {
        self.0.heard.insert((writer.origin, writer.write), ());
        self.0.arrived.notify_waiters();
    }

    /// True when the request's cookie names another server's write, which
    /// [`ReadYourWrites::caught_up`] may have to wait for.
    pub fn names_others_write(&self, headers: &HeaderMap) -> bool {
        cookie_write(headers).is_some_and(|writer| writer.origin != self.0.origin)
    }

    /// Waits (up to [`WAIT`]) until the write the request's cookie names,
    /// if any, is known here; false when it is still unheard, so the
    /// request must skip the cache and read the primary.
    pub async fn caught_up(&self, headers: &HeaderMap) -> bool {
        let Some(writer) = cookie_write(headers) else { return true };
        if writer.origin == self.0.origin {
            // Its own writes are invalidated and counted before they answer.
            return true;
        }
        let key = (writer.origin, writer.write);
        let waited = tokio::time::timeout(WAIT, async {
            loop {
                let arrived = self.0.arrived.notified();
                if self.0.heard.contains_key(&key) {
                    return;
                }
                arrived.await;
            }
        });
        waited.await.is_ok()
    }
}

/// The write named by the request's `notegraph-write` cookie.
fn cookie_write(headers: &HeaderMap) -> Option<Writer> {
    let cookies = headers.get_all(header::COOKIE).into_iter().filter_map(|v| v.to_str().ok());
    let value = cookies.flat_map(|line| line.split(';')).find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        (name == COOKIE).then_some(value)
    })?;
    let (origin, write) = value.split_once('.')?;
    Some(Writer { origin: u64::from_str_radix(origin, 16).ok()?, write: write.parse().ok()? })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_cookie(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn the_cookie_names_the_write_and_reads_back() {
        let server = ReadYourWrites::new(0xabc, Duration::from_secs(5));
        let writer = server.next_write();
        let set = server.cookie(writer);
        let set = set.to_str().unwrap();
        assert!(set.starts_with("notegraph-write=abc.1; Max-Age=5;"), "{set}");
        let sent = with_cookie(&format!("theme=dark; {}", set.split(';').next().unwrap()));
        assert_eq!(cookie_write(&sent), Some(writer));
        assert_eq!(cookie_write(&with_cookie("notegraph-write=zz.1")), None);
        assert_eq!(cookie_write(&HeaderMap::new()), None);
    }

    #[tokio::test]
    async fn a_request_waits_for_the_write_it_names_and_no_longer() {
        let here = ReadYourWrites::new(1, Duration::from_secs(5));
        let cookie = with_cookie("notegraph-write=2.7");
        // Heard while waiting: caught up.
        let arriving = here.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            arriving.heard(Writer { origin: 2, write: 7 });
        });
        assert!(here.caught_up(&cookie).await);
        // Never heard: not caught up, after the wait.
        let started = std::time::Instant::now();
        assert!(!here.caught_up(&with_cookie("notegraph-write=2.8")).await);
        assert!(started.elapsed() >= WAIT);
        // Its own writes and requests without the cookie never wait.
        assert!(here.caught_up(&with_cookie("notegraph-write=1.99")).await);
        assert!(here.caught_up(&HeaderMap::new()).await);
    }
}
