//! [`Requests`]: the fingerprint each request, as sent, was found to have.
//!
//! A request's fingerprint comes from parsing and normalizing its document,
//! which costs more than answering it from the cache: under the published
//! mix, with ids written into the documents, parsing was about a tenth of
//! the server's CPU (docs/PERFORMANCE.md). Clients send the same bytes again
//! and again, so the caller hashes the bytes it received ([`Fingerprint::of`]
//! over the method and the body or query string) and looks here first; only
//! bytes never seen, or forgotten, are parsed.
//!
//! An entry never goes stale: a request's fingerprint depends only on its
//! bytes and the server's fixed configuration. So nothing here is
//! invalidated, and the map holds two hashes per entry, not the bytes.

use moka::sync::Cache;

use crate::Fingerprint;

/// Fingerprints by the hash of the request bytes that gave them, the most
/// used kept (moka's TinyLFU), up to a count of entries.
#[derive(Clone)]
pub struct Requests(Cache<Fingerprint, Fingerprint>);

impl Requests {
    /// A map of at most `max_entries` requests.
    pub fn new(max_entries: u64) -> Self {
        Requests(Cache::new(max_entries))
    }

    /// The fingerprint the request whose bytes hash to `sent` was found to
    /// have, if it was seen and is still remembered.
    pub fn get(&self, sent: Fingerprint) -> Option<Fingerprint> {
        self.0.get(&sent)
    }

    /// Remembers that the request whose bytes hash to `sent` has the
    /// fingerprint `found`.
    pub fn insert(&self, sent: Fingerprint, found: Fingerprint) {
        self.0.insert(sent, found);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Requests remembered now, once moka has applied its pending writes.
    fn len(requests: &Requests) -> u64 {
        requests.0.run_pending_tasks();
        requests.0.entry_count()
    }

    #[test]
    fn remembers_what_it_was_told_and_forgets_the_least_used_past_its_bound() {
        // Arrange
        let requests = Requests::new(100);
        let sent = |i: u32| Fingerprint::of([b"POST".as_slice(), &i.to_le_bytes()]);
        let found = |i: u32| Fingerprint::of([b"found".as_slice(), &i.to_le_bytes()]);

        // Act
        for i in 0..1_000 {
            requests.insert(sent(i), found(i));
            // The first ten are asked for again and again.
            for hot in 0..10 {
                let _ = requests.get(sent(hot));
            }
        }

        // Assert
        let held = len(&requests);
        assert!(held <= 100, "{held} entries");
        for hot in 0..10 {
            assert_eq!(requests.get(sent(hot)), Some(found(hot)), "hot request {hot} forgotten");
        }
        assert_eq!(requests.get(sent(5_000)), None);
    }
}
