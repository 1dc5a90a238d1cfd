//! Per-client budgets on operation cost (docs/SECURITY.md, "Per-client
//! budgets"): each operation's cost, as the operation limits measure it
//! ([`crate::graphql::Admission::check`]), is taken from a token bucket of
//! the client that sent it: the viewer's user id when authenticated, the
//! client's address when anonymous ([`Budgets::client`], which reads
//! `Forwarded`/`X-Forwarded-For` only from trusted proxies). An operation
//! that does not fit is refused with `RATE_LIMITED`, by the `/graphql`
//! pipeline's budget stage and by the streaming transports alike.
//!
//! The buckets live in a moka cache bounded by `NOTEGRAPH_BUDGET_MAX_CLIENTS`
//! with a time-to-idle of the longest full refill: a bucket idle that long
//! is full again, so forgetting it changes nothing. The bucket itself is a
//! dozen lines, written here rather than taken from `governor`, whose
//! keyed store grows without bound unless it is pruned by hand
//! (`retain_recent`), and whose GCRA cell cannot say how much is left,
//! which the `RateLimit` header reports.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use ipnet::IpNet;
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{IntCounterVec, IntGauge, Opts};

use crate::auth::Viewer;
use crate::config::{Allowance, BudgetsConfig};

/// `RateLimit-Policy`: the quota policy (draft-ietf-httpapi-ratelimit-headers-11).
pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
/// `RateLimit`: what is left of the quota now (same draft).
pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// Who is charged: a user, or an anonymous address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientKey {
    /// An authenticated viewer, by user id.
    User(i64),
    /// An anonymous client, by address.
    Address(IpAddr),
}

/// The class of a client: which allowance it gets, and the metrics label
/// (bounded: never the address or the user id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// No credentials: budgeted by address.
    Anonymous,
    /// A viewer: budgeted by user id.
    Authenticated,
}

impl Class {
    /// The label and the `RateLimit` policy name.
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Anonymous => "anonymous",
            Class::Authenticated => "authenticated",
        }
    }
}

/// A client as the budgets see it: its key and its class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Client {
    /// Whose bucket is charged.
    pub key: ClientKey,
    /// Which allowance applies (unless the viewers file names the user).
    pub class: Class,
}

/// How a charge went, and the numbers the headers report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The cost fitted and was taken.
    pub admitted: bool,
    /// The policy's name in the headers: the class.
    pub policy: &'static str,
    /// The bucket's size.
    pub quota: u64,
    /// Seconds to refill an empty bucket.
    pub window: u64,
    /// Whole cost units left now.
    pub remaining: u64,
    /// Seconds until the bucket is full again.
    pub full_in: u64,
    /// Refused: seconds until the cost fits.
    pub retry_after: u64,
}

impl Verdict {
    /// `RateLimit-Policy` and `RateLimit`, in the structured-fields form of
    /// draft-ietf-httpapi-ratelimit-headers-11, plus `Retry-After` when
    /// refused.
    pub fn headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let value = |text: String| HeaderValue::from_str(&text).expect("digits and a token are a valid header");
        headers.insert(RATELIMIT_POLICY, value(format!("\"{}\";q={};w={}", self.policy, self.quota, self.window)));
        headers.insert(RATELIMIT, value(format!("\"{}\";r={};t={}", self.policy, self.remaining, self.full_in)));
        if !self.admitted {
            headers.insert(axum::http::header::RETRY_AFTER, value(self.retry_after.to_string()));
        }
        headers
    }

    /// The message of the `RATE_LIMITED` error.
    pub fn message(&self) -> String {
        format!(
            "over this client's budget of {} cost units (refilled in {} s): retry in {} s",
            self.quota, self.window, self.retry_after
        )
    }
}

/// One client's bucket: what it holds, as of when.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Every client's budget; a clone shares them.
#[derive(Clone)]
pub struct Budgets {
    inner: Arc<Inner>,
}

struct Inner {
    anonymous: Allowance,
    authenticated: Allowance,
    viewers: HashMap<i64, Allowance>,
    proxies: Vec<IpNet>,
    buckets: moka::sync::Cache<ClientKey, Arc<Mutex<Bucket>>>,
    refused: IntCounterVec,
    clients: IntGauge,
}

impl Budgets {
    /// The budgets `config` sets, with the per-viewer ones read from its
    /// file; `None` when no client has a budget (every rate 0 and no
    /// viewers file), so the path costs nothing.
    pub fn new(config: &BudgetsConfig, max_complexity: u64) -> Result<Option<Self>, String> {
        config.check(max_complexity)?;
        let viewers = match &config.budget_viewers_file {
            Some(path) => read_viewers(path, max_complexity)?,
            None => HashMap::new(),
        };
        let (anonymous, authenticated) = (config.anonymous(max_complexity), config.authenticated(max_complexity));
        if anonymous.rate == 0 && authenticated.rate == 0 && viewers.values().all(|a| a.rate == 0) {
            return Ok(None);
        }
        let refill = |a: &Allowance| if a.rate == 0 { 0 } else { a.burst.div_ceil(a.rate) };
        let longest = [anonymous, authenticated].iter().chain(viewers.values()).map(refill).max().unwrap_or(0);
        let buckets = moka::sync::Cache::builder()
            .max_capacity(config.budget_max_clients)
            .time_to_idle(Duration::from_secs(longest.max(1)))
            .build();
        let refused = IntCounterVec::new(
            Opts::new(
                "notegraph_rate_limited_total",
                "Operations refused RATE_LIMITED for being over their client's budget, by class.",
            ),
            &["class"],
        )
        .map_err(|err| err.to_string())?;
        let clients = IntGauge::new(
            "notegraph_budget_clients",
            "Clients whose budget buckets are remembered now (NOTEGRAPH_BUDGET_MAX_CLIENTS bounds it).",
        )
        .map_err(|err| err.to_string())?;
        let proxies = config.trusted_proxies.clone();
        Ok(Some(Budgets {
            inner: Arc::new(Inner { anonymous, authenticated, viewers, proxies, buckets, refused, clients }),
        }))
    }

    /// Who is charged for a request from `viewer` on a connection from
    /// `peer` with `headers`: the user when authenticated, else the
    /// client's address ([`client_address`]).
    pub fn client(&self, viewer: &Viewer, peer: Option<SocketAddr>, headers: &HeaderMap) -> Option<Client> {
        if let Some(user) = viewer.user {
            return Some(Client { key: ClientKey::User(user.0), class: Class::Authenticated });
        }
        let address = client_address(peer?.ip(), headers, &self.inner.proxies);
        Some(Client { key: ClientKey::Address(address), class: Class::Anonymous })
    }

    /// Takes `cost` (at least 1) from `client`'s bucket when it fits;
    /// `None` when the client has no budget.
    pub fn charge(&self, client: &Client, cost: u64) -> Option<Verdict> {
        let inner = &self.inner;
        let allowance = match (client.key, client.class) {
            (ClientKey::User(user), _) if inner.viewers.contains_key(&user) => inner.viewers[&user],
            (_, Class::Anonymous) => inner.anonymous,
            (_, Class::Authenticated) => inner.authenticated,
        };
        if allowance.rate == 0 {
            return None;
        }
        let now = Instant::now();
        let burst = allowance.burst as f64;
        let bucket = inner.buckets.get_with(client.key, || Arc::new(Mutex::new(Bucket { tokens: burst, at: now })));
        let mut bucket = bucket.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let rate = allowance.rate as f64;
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(burst);
        bucket.at = now;
        let cost = cost.max(1) as f64;
        let admitted = cost <= bucket.tokens;
        if admitted {
            bucket.tokens -= cost;
        } else {
            inner.refused.with_label_values(&[client.class.as_str()]).inc();
        }
        let seconds = |units: f64| (units.max(0.0) / rate).ceil() as u64;
        Some(Verdict {
            admitted,
            policy: client.class.as_str(),
            quota: allowance.burst,
            window: allowance.burst.div_ceil(allowance.rate),
            remaining: bucket.tokens.floor() as u64,
            full_in: seconds(burst - bucket.tokens),
            retry_after: if admitted { 0 } else { seconds(cost - bucket.tokens).max(1) },
        })
    }

    /// Buckets remembered now, once the cache's pending evictions have run.
    pub fn clients(&self) -> u64 {
        self.inner.buckets.run_pending_tasks();
        self.inner.buckets.entry_count()
    }

    /// The collector of the refusals and of the buckets remembered, for
    /// `/metrics`.
    pub fn collector(&self) -> Box<dyn Collector> {
        Box::new(BudgetsCollector { budgets: self.clone() })
    }
}

/// `notegraph_rate_limited_total{class}` and `notegraph_budget_clients`,
/// the latter read at each scrape.
struct BudgetsCollector {
    budgets: Budgets,
}

impl Collector for BudgetsCollector {
    fn desc(&self) -> Vec<&Desc> {
        let inner = &self.budgets.inner;
        inner.refused.desc().into_iter().chain(inner.clients.desc()).collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let inner = &self.budgets.inner;
        inner.clients.set(i64::try_from(self.budgets.clients()).unwrap_or(i64::MAX));
        inner.refused.collect().into_iter().chain(inner.clients.collect()).collect()
    }
}

/// The client's address: the peer's, unless the peer is a trusted proxy;
/// then the forwarded chain (`Forwarded`, else `X-Forwarded-For`) is
/// walked from the right, past every trusted proxy, to the first address
/// that is not one (or the leftmost). A chain with anything that is not an
/// address in it is not believed: the peer's address is used.
pub fn client_address(peer: IpAddr, headers: &HeaderMap, proxies: &[IpNet]) -> IpAddr {
    let peer = peer.to_canonical();
    let trusted = |ip: &IpAddr| proxies.iter().any(|net| net.contains(ip));
    if !trusted(&peer) {
        return peer;
    }
    let Some(chain) = forwarded_chain(headers) else { return peer };
    let mut address = peer;
    for hop in chain.into_iter().rev() {
        address = hop;
        if !trusted(&hop) {
            break;
        }
    }
    address
}

/// The forwarded addresses, leftmost (the original client) first: from
/// `Forwarded`'s `for=` when present, else `X-Forwarded-For`. `None` when
/// neither is sent or any hop is not an address (`unknown`, an obfuscated
/// name, garbage).
fn forwarded_chain(headers: &HeaderMap) -> Option<Vec<IpAddr>> {
    let joined = |name: &str| {
        let values: Vec<&str> = headers.get_all(name).iter().map(|v| v.to_str().ok()).collect::<Option<_>>()?;
        (!values.is_empty()).then(|| values.join(","))
    };
    if let Some(forwarded) = joined("forwarded") {
        return forwarded.split(',').map(|element| forwarded_for(element.trim())).collect();
    }
    let list = joined("x-forwarded-for")?;
    list.split(',').map(|hop| parse_hop(hop.trim())).collect()
}

/// The `for=` address of one `Forwarded` element (RFC 7239).
fn forwarded_for(element: &str) -> Option<IpAddr> {
    let value = element.split(';').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        name.trim().eq_ignore_ascii_case("for").then_some(value.trim())
    })?;
    parse_hop(value.trim_matches('"'))
}

/// One hop: `ip`, `ip:port`, `[v6]` or `[v6]:port`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Some(rest) = hop.strip_prefix('[') {
        let (ip, after) = rest.split_once(']')?;
        if after.is_empty() || after.strip_prefix(':').is_some_and(|port| port.parse::<u16>().is_ok()) {
            return ip.parse::<std::net::Ipv6Addr>().ok().map(|ip| IpAddr::V6(ip).to_canonical());
        }
        return None;
    }
    hop.parse::<SocketAddr>().ok().map(|addr| addr.ip().to_canonical())
}

/// Reads the per-viewer budgets: one `user_id rate burst` a line, blank
/// lines and `#` comments ignored. An error names the file, the line and
/// what to fix; a burst below `max_complexity` is refused as the classes'
/// are.
fn read_viewers(path: &Path, max_complexity: u64) -> Result<HashMap<i64, Allowance>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|err| format!("reading NOTEGRAPH_BUDGET_VIEWERS_FILE {}: {err}", path.display()))?;
    parse_viewers(&text, max_complexity).map_err(|err| format!("{} {err}", path.display()))
}

/// See [`read_viewers`].
fn parse_viewers(text: &str, max_complexity: u64) -> Result<HashMap<i64, Allowance>, String> {
    let mut viewers = HashMap::new();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let line = line.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [user, rate, burst] = fields[..] else {
            return Err(format!("line {number}: expected `user_id rate burst`, found `{line}`"));
        };
        let number_of = |what: &str, value: &str| {
            value.parse::<u64>().map_err(|_| format!("line {number}: the {what} `{value}` is not a whole number"))
        };
        let user = user.parse::<i64>().map_err(|_| format!("line {number}: the user id `{user}` is not a number"))?;
        let (rate, burst) = (number_of("rate", rate)?, number_of("burst", burst)?);
        if rate > 0 && burst < max_complexity {
            return Err(format!(
                "line {number}: the burst {burst} is below NOTEGRAPH_MAX_COMPLEXITY ({max_complexity}), so some \
                 admitted operations could never run"
            ));
        }
        if viewers.insert(user, Allowance { rate, burst }).is_some() {
            return Err(format!("line {number}: user {user} is listed twice"));
        }
    }
    Ok(viewers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(args: &[&str]) -> BudgetsConfig {
        let cli =
            <crate::Cli as clap::Parser>::try_parse_from(std::iter::once("notegraph").chain(args.iter().copied()));
        cli.unwrap().config.budgets
    }

    fn budgets(args: &[&str]) -> Budgets {
        Budgets::new(&config(args), 100).unwrap().expect("budgets on")
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(HeaderName::from_bytes(name.as_bytes()).unwrap(), HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn off_unless_a_rate_is_set() {
        assert!(Budgets::new(&config(&[]), 100).unwrap().is_none());
    }

    #[test]
    fn a_bucket_takes_costs_until_empty_then_says_when_the_cost_fits() {
        let budgets = budgets(&["--budget-anonymous-rate", "10", "--budget-anonymous-burst", "100"]);
        let client = Client { key: ClientKey::Address(ip("192.0.2.1")), class: Class::Anonymous };

        let first = budgets.charge(&client, 60).unwrap();
        let second = budgets.charge(&client, 60).unwrap();

        assert!(first.admitted);
        assert_eq!((first.quota, first.window, first.remaining, first.full_in), (100, 10, 40, 6));
        assert!(!second.admitted, "{second:?}");
        assert!((1..=2).contains(&second.retry_after), "20 units at 10/s: {second:?}");
        let headers = second.headers();
        assert_eq!(headers[RATELIMIT_POLICY], "\"anonymous\";q=100;w=10");
        assert!(headers[RATELIMIT].to_str().unwrap().starts_with("\"anonymous\";r=40;t="), "{headers:?}");
        assert!(headers.contains_key(axum::http::header::RETRY_AFTER));
        assert!(!first.headers().contains_key(axum::http::header::RETRY_AFTER));
    }

    #[test]
    fn classes_and_listed_viewers_get_their_own_allowance() {
        let budgets = budgets(&["--budget-authenticated-rate", "1", "--budget-authenticated-burst", "100"]);
        let user = Client { key: ClientKey::User(7), class: Class::Authenticated };
        let anonymous = Client { key: ClientKey::Address(ip("192.0.2.1")), class: Class::Anonymous };

        assert_eq!(budgets.charge(&user, 100).unwrap().remaining, 0);
        assert!(!budgets.charge(&user, 1).unwrap().admitted);
        assert!(budgets.charge(&anonymous, 1_000_000).is_none(), "anonymous has no budget");
        let viewers = parse_viewers("# user rate burst\n7 0 0\n8 5 200 # a partner\n\n", 100).unwrap();
        assert_eq!(viewers[&7], Allowance { rate: 0, burst: 0 });
        assert_eq!(viewers[&8], Allowance { rate: 5, burst: 200 });
    }

    #[test]
    fn a_bad_viewers_file_names_the_line() {
        for (text, expected) in [
            ("1 10 100\n2 10\n", "line 2: expected `user_id rate burst`"),
            ("x 10 100\n", "line 1: the user id `x` is not a number"),
            ("1 ten 100\n", "line 1: the rate `ten` is not a whole number"),
            ("\n\n1 10 50\n", "line 3: the burst 50 is below NOTEGRAPH_MAX_COMPLEXITY (100)"),
            ("1 10 100\n1 10 100\n", "line 2: user 1 is listed twice"),
        ] {
            let err = parse_viewers(text, 100).unwrap_err();
            assert!(err.starts_with(expected), "{text:?}: {err}");
        }
    }

    #[test]
    fn forwarded_addresses_are_believed_only_from_trusted_proxies() {
        let proxies: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap(), "127.0.0.1/32".parse().unwrap()];
        let xff = headers(&[("x-forwarded-for", "203.0.113.9, 198.51.100.4, 10.1.1.1")]);

        assert_eq!(client_address(ip("192.0.2.50"), &xff, &proxies), ip("192.0.2.50"), "untrusted peer");
        assert_eq!(client_address(ip("127.0.0.1"), &xff, &proxies), ip("198.51.100.4"), "rightmost untrusted hop");
        let all_trusted = headers(&[("x-forwarded-for", "10.0.0.1, 10.0.0.2")]);
        assert_eq!(client_address(ip("127.0.0.1"), &all_trusted, &proxies), ip("10.0.0.1"));
        let garbage = headers(&[("x-forwarded-for", "203.0.113.9, not-an-ip")]);
        assert_eq!(client_address(ip("127.0.0.1"), &garbage, &proxies), ip("127.0.0.1"), "garbage: the peer");
        let forwarded = headers(&[("forwarded", "for=192.0.2.60;proto=http, for=\"[2001:db8::17]:4711\"")]);
        assert_eq!(client_address(ip("10.2.2.2"), &forwarded, &proxies), ip("2001:db8::17"));
        let obfuscated = headers(&[("forwarded", "for=_hidden")]);
        assert_eq!(client_address(ip("10.2.2.2"), &obfuscated, &proxies), ip("10.2.2.2"));
        let split = headers(&[("x-forwarded-for", "203.0.113.9"), ("x-forwarded-for", "198.51.100.4:8080")]);
        assert_eq!(client_address(ip("127.0.0.1"), &split, &proxies), ip("198.51.100.4"));
        assert_eq!(client_address(ip("::ffff:192.0.2.50"), &HeaderMap::new(), &proxies), ip("192.0.2.50"));
    }

    #[test]
    fn buckets_are_bounded_by_the_cap() {
        let budgets = budgets(&["--budget-anonymous-rate", "10", "--budget-max-clients", "100"]);
        for n in 0..5_000u32 {
            let address = IpAddr::V4(std::net::Ipv4Addr::from(n));
            budgets.charge(&Client { key: ClientKey::Address(address), class: Class::Anonymous }, 1);
        }
        assert!(budgets.clients() <= 100, "{}", budgets.clients());
    }
}
