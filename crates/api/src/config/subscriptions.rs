//! The subscriptions section (docs/SUBSCRIPTIONS.md): the event buffer for
//! slow subscribers, how many subscriptions may be open in the process, per
//! user and per connection, and the SSE heartbeat.

use clap::Args;

/// See [`SubscriptionsConfig::subscription_buffer`]: at a few hundred
/// bytes an event, 4,096 cost about a megabyte however many subscribers
/// there are.
pub const DEFAULT_SUBSCRIPTION_BUFFER: usize = 4_096;
/// See [`SubscriptionsConfig::max_subscriptions`]: about 10 KiB each.
pub const DEFAULT_MAX_SUBSCRIPTIONS: usize = 10_000;
/// See [`SubscriptionsConfig::max_subscriptions_per_viewer`].
pub const DEFAULT_MAX_SUBSCRIPTIONS_PER_VIEWER: usize = 100;
/// See [`SubscriptionsConfig::max_subscriptions_per_connection`].
pub const DEFAULT_MAX_SUBSCRIPTIONS_PER_CONNECTION: usize = 20;
/// See [`SubscriptionsConfig::sse_heartbeat_ms`]: under the 15 to 60 s
/// that proxies commonly allow an idle response.
pub const DEFAULT_SSE_HEARTBEAT_MS: u64 = 12_000;

/// Subscription settings (docs/SUBSCRIPTIONS.md).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Subscriptions")]
pub struct SubscriptionsConfig {
    /// Events the hub keeps for slow subscribers; one that falls further
    /// behind skips ahead and gets an error saying how many it missed.
    #[arg(long, env = "NOTEGRAPH_SUBSCRIPTION_BUFFER", default_value_t = DEFAULT_SUBSCRIPTION_BUFFER, global = true)]
    pub subscription_buffer: usize,
    /// Open subscriptions in this process, over every transport; more are
    /// refused with RATE_LIMITED.
    #[arg(long, env = "NOTEGRAPH_MAX_SUBSCRIPTIONS", default_value_t = DEFAULT_MAX_SUBSCRIPTIONS, global = true)]
    pub max_subscriptions: usize,
    /// Open subscriptions of one signed-in user (anonymous subscribers are
    /// bounded per connection and in total).
    #[arg(long, env = "NOTEGRAPH_MAX_SUBSCRIPTIONS_PER_VIEWER", default_value_t = DEFAULT_MAX_SUBSCRIPTIONS_PER_VIEWER, global = true)]
    pub max_subscriptions_per_viewer: usize,
    /// Open subscriptions on one WebSocket or one single-connection SSE
    /// stream.
    #[arg(long, env = "NOTEGRAPH_MAX_SUBSCRIPTIONS_PER_CONNECTION", default_value_t = DEFAULT_MAX_SUBSCRIPTIONS_PER_CONNECTION, global = true)]
    pub max_subscriptions_per_connection: usize,
    /// Interval of the SSE heartbeat comments that keep proxies from
    /// closing a quiet stream, in milliseconds.
    #[arg(long, env = "NOTEGRAPH_SSE_HEARTBEAT_MS", default_value_t = DEFAULT_SSE_HEARTBEAT_MS, global = true)]
    pub sse_heartbeat_ms: u64,
}
