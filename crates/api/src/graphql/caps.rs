//! Bounds on open subscriptions: in total, per signed-in viewer, and per
//! connection (a WebSocket, or a single-connection SSE stream). Opening one
//! past a bound is `RATE_LIMITED`; a [`Permit`] holds the place and gives
//! it back when the subscription's stream is dropped, however it ends.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use db::UserId;

use crate::error::ApiError;

/// The bounds.
#[derive(Debug, Clone, Copy)]
pub struct SubscriptionLimits {
    /// Open subscriptions in this process.
    pub total: usize,
    /// Open subscriptions of one signed-in user.
    pub per_viewer: usize,
    /// Open subscriptions on one connection.
    pub per_connection: usize,
}

/// The process's open subscriptions, counted against [`SubscriptionLimits`].
#[derive(Clone)]
pub struct SubscriptionCaps(Arc<Counts>);

struct Counts {
    limits: SubscriptionLimits,
    total: AtomicUsize,
    // A std mutex: held for a map update, never across an await.
    by_viewer: Mutex<HashMap<UserId, usize>>,
}

/// The subscriptions open on one connection; transports put one in the
/// connection's data.
#[derive(Clone, Default)]
pub struct ConnectionSubscriptions(Arc<AtomicUsize>);

impl ConnectionSubscriptions {
    /// How many are open now.
    pub fn open(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

impl SubscriptionCaps {
    /// No subscription open yet.
    pub fn new(limits: SubscriptionLimits) -> Self {
        SubscriptionCaps(Arc::new(Counts { limits, total: AtomicUsize::new(0), by_viewer: Mutex::default() }))
    }

    /// How many subscriptions are open in this process (the metrics'
    /// gauge says so in production).
    #[cfg(test)]
    fn open(&self) -> usize {
        self.0.total.load(Ordering::SeqCst)
    }

    /// A place for one more subscription of `viewer` on `connection`, or
    /// RATE_LIMITED naming the bound it would pass.
    pub(crate) fn acquire(
        &self,
        viewer: Option<UserId>,
        connection: Option<&ConnectionSubscriptions>,
    ) -> Result<Permit, ApiError> {
        let limits = self.0.limits;
        // Each count is taken first and given back on refusal, so that two
        // racing subscribers cannot both take the last place. From here on
        // the permit's drop gives back what it holds.
        if self.0.total.fetch_add(1, Ordering::SeqCst) >= limits.total {
            self.0.total.fetch_sub(1, Ordering::SeqCst);
            return Err(refused("the server", limits.total));
        }
        crate::metrics::subscription_opened();
        let mut permit = Permit { caps: self.clone(), viewer: None, connection: None };
        permit.viewer_counted(viewer)?;
        if let Some(connection) = connection {
            if connection.0.fetch_add(1, Ordering::SeqCst) >= limits.per_connection {
                connection.0.fetch_sub(1, Ordering::SeqCst);
                return Err(refused("this connection", limits.per_connection));
            }
            permit.connection = Some(connection.clone());
        }
        Ok(permit)
    }
}

/// One open subscription's place; dropping it frees the place.
pub(crate) struct Permit {
    caps: SubscriptionCaps,
    viewer: Option<UserId>,
    connection: Option<ConnectionSubscriptions>,
}

impl Permit {
    /// Counts the subscription against `viewer`'s bound (anonymous viewers
    /// have none: they cannot be told apart).
    fn viewer_counted(&mut self, viewer: Option<UserId>) -> Result<(), ApiError> {
        let Some(user) = viewer else { return Ok(()) };
        let limit = self.caps.0.limits.per_viewer;
        let mut by_viewer = self.caps.0.by_viewer.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let open = by_viewer.entry(user).or_default();
        if *open >= limit {
            return Err(refused("one user", limit));
        }
        *open += 1;
        self.viewer = Some(user);
        Ok(())
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        crate::metrics::subscription_closed();
        self.caps.0.total.fetch_sub(1, Ordering::SeqCst);
        if let Some(user) = self.viewer {
            let mut by_viewer = self.caps.0.by_viewer.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(open) = by_viewer.get_mut(&user) {
                *open -= 1;
                if *open == 0 {
                    by_viewer.remove(&user);
                }
            }
        }
        if let Some(connection) = &self.connection {
            connection.0.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

fn refused(whose: &str, limit: usize) -> ApiError {
    ApiError::RateLimited(format!("{whose} has {limit} open subscriptions, the most allowed").into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(total: usize, per_viewer: usize, per_connection: usize) -> SubscriptionCaps {
        SubscriptionCaps::new(SubscriptionLimits { total, per_viewer, per_connection })
    }

    #[test]
    fn each_bound_refuses_one_past_it_and_frees_on_drop() {
        let caps = caps(3, 2, 2);
        let connection = ConnectionSubscriptions::default();
        let a = caps.acquire(Some(UserId(1)), Some(&connection)).unwrap();
        let b = caps.acquire(Some(UserId(1)), None).unwrap();
        let err = caps.acquire(Some(UserId(1)), None).err().unwrap();
        assert_eq!(err.code(), "RATE_LIMITED");
        assert_eq!(err.message(), "one user has 2 open subscriptions, the most allowed");
        let c = caps.acquire(Some(UserId(2)), Some(&connection)).unwrap();
        assert_eq!(
            caps.acquire(None, None).err().unwrap().message(),
            "the server has 3 open subscriptions, the most allowed"
        );
        drop(b);
        let err = caps.acquire(None, Some(&connection)).err().unwrap();
        assert_eq!(err.message(), "this connection has 2 open subscriptions, the most allowed");
        assert_eq!((caps.open(), connection.open()), (2, 2));
        drop((a, c));
        assert_eq!((caps.open(), connection.open()), (0, 0));
        assert!(caps.0.by_viewer.lock().unwrap().is_empty());
    }
}
