//! The budgets section: how much operation cost each client may spend per
//! second (docs/SECURITY.md, "Per-client budgets"), per class (anonymous
//! clients by address, authenticated ones by user id) and optionally per
//! viewer from a file, and which proxies may name the client's address
//! (`X-Forwarded-For`, `Forwarded`). Off by default: a rate of 0 is no
//! budget, so the published load tests (one address, one token, 1,000
//! requests a second) run as before.

use std::path::PathBuf;

use clap::Args;
use ipnet::IpNet;

/// See [`BudgetsConfig::budget_max_clients`]: about 270 bytes of RSS a
/// bucket (measured by `just budget-memory`), so some 26 MiB at the cap.
pub const DEFAULT_BUDGET_MAX_CLIENTS: u64 = 100_000;

/// Per-client budgets on operation cost.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Budgets")]
pub struct BudgetsConfig {
    /// Cost units per second an anonymous client (one address) may spend; 0: no budget.
    #[arg(long, env = "NOTEGRAPH_BUDGET_ANONYMOUS_RATE", default_value_t = 0, global = true)]
    pub budget_anonymous_rate: u64,
    /// Cost an anonymous client may spend at once (the bucket's size); 0: NOTEGRAPH_MAX_COMPLEXITY, the least that
    /// admits every operation the limits admit.
    #[arg(long, env = "NOTEGRAPH_BUDGET_ANONYMOUS_BURST", default_value_t = 0, global = true)]
    pub budget_anonymous_burst: u64,
    /// Cost units per second an authenticated client (one user id) may spend; 0: no budget.
    #[arg(long, env = "NOTEGRAPH_BUDGET_AUTHENTICATED_RATE", default_value_t = 0, global = true)]
    pub budget_authenticated_rate: u64,
    /// Cost an authenticated client may spend at once; 0: NOTEGRAPH_MAX_COMPLEXITY.
    #[arg(long, env = "NOTEGRAPH_BUDGET_AUTHENTICATED_BURST", default_value_t = 0, global = true)]
    pub budget_authenticated_burst: u64,
    /// A file of per-viewer budgets, one `user_id rate burst` a line (`#` starts a comment), read at start-up;
    /// listed viewers get theirs in place of the authenticated one.
    #[arg(long, env = "NOTEGRAPH_BUDGET_VIEWERS_FILE", global = true)]
    pub budget_viewers_file: Option<PathBuf>,
    /// Most clients whose budgets are remembered at once; past it the least recently used are forgotten
    /// (a forgotten client starts again with a full budget).
    #[arg(long, env = "NOTEGRAPH_BUDGET_MAX_CLIENTS", default_value_t = DEFAULT_BUDGET_MAX_CLIENTS, global = true)]
    pub budget_max_clients: u64,
    /// Proxies (IPs or CIDRs, comma-separated) whose `X-Forwarded-For` or `Forwarded` header names the client's
    /// address; from any other peer the headers are ignored.
    #[arg(long, env = "NOTEGRAPH_TRUSTED_PROXIES", value_delimiter = ',', value_parser = parse_proxy, global = true)]
    pub trusted_proxies: Vec<IpNet>,
}

/// One class's rate and burst, with the burst's default filled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allowance {
    /// Cost units refilled per second; 0: no budget.
    pub rate: u64,
    /// The bucket's size.
    pub burst: u64,
}

impl BudgetsConfig {
    /// The anonymous class's allowance, the burst defaulting to `max_complexity`.
    pub fn anonymous(&self, max_complexity: u64) -> Allowance {
        allowance(self.budget_anonymous_rate, self.budget_anonymous_burst, max_complexity)
    }

    /// The authenticated class's allowance, the burst defaulting to `max_complexity`.
    pub fn authenticated(&self, max_complexity: u64) -> Allowance {
        allowance(self.budget_authenticated_rate, self.budget_authenticated_burst, max_complexity)
    }

    /// Refuses a burst below the largest cost the limits admit: an
    /// operation costing more than the bucket holds would be refused
    /// forever, however long its client waited. Also refuses a cap of 0
    /// clients while budgets are on.
    pub fn check(&self, max_complexity: u64) -> Result<(), String> {
        let classes = [
            ("ANONYMOUS", self.budget_anonymous_rate, self.budget_anonymous_burst),
            ("AUTHENTICATED", self.budget_authenticated_rate, self.budget_authenticated_burst),
        ];
        for (class, rate, burst) in classes {
            if rate > 0 && burst != 0 && burst < max_complexity {
                return Err(format!(
                    "NOTEGRAPH_BUDGET_{class}_BURST ({burst}) is below NOTEGRAPH_MAX_COMPLEXITY ({max_complexity}): \
                     an operation the limits admit could never fit the budget; raise the burst (or leave it 0 for \
                     NOTEGRAPH_MAX_COMPLEXITY) or lower NOTEGRAPH_MAX_COMPLEXITY"
                ));
            }
        }
        if self.budget_max_clients == 0 {
            return Err("NOTEGRAPH_BUDGET_MAX_CLIENTS must be above 0".into());
        }
        Ok(())
    }
}

/// A rate and a burst, 0 standing for `max_complexity`.
fn allowance(rate: u64, burst: u64, max_complexity: u64) -> Allowance {
    Allowance { rate, burst: if burst == 0 { max_complexity } else { burst } }
}

/// One entry of `NOTEGRAPH_TRUSTED_PROXIES`: an address (a /32 or /128)
/// or a CIDR block.
fn parse_proxy(value: &str) -> Result<IpNet, String> {
    let value = value.trim();
    if let Ok(ip) = value.parse::<std::net::IpAddr>() {
        return Ok(IpNet::from(ip));
    }
    value
        .parse::<IpNet>()
        .map_err(|_| format!("`{value}` is neither an IP address nor a CIDR block (e.g. 10.0.0.7 or 10.0.0.0/8)"))
}

#[cfg(test)]
mod tests {
    use super::super::testing::{parse, try_parse};
    use super::*;

    #[test]
    fn off_by_default_with_the_burst_of_the_largest_admitted_cost() {
        let config: BudgetsConfig = parse(&[]);
        assert_eq!(config.anonymous(25_000), Allowance { rate: 0, burst: 25_000 });
        assert_eq!(config.authenticated(25_000), Allowance { rate: 0, burst: 25_000 });
        assert!(config.trusted_proxies.is_empty());
        assert_eq!(config.budget_max_clients, DEFAULT_BUDGET_MAX_CLIENTS);
        assert!(config.check(25_000).is_ok());
    }

    #[test]
    fn a_burst_below_the_largest_admitted_cost_is_refused_naming_both_settings() {
        let config: BudgetsConfig =
            parse(&["--budget-authenticated-rate", "100", "--budget-authenticated-burst", "1000"]);
        let err = config.check(25_000).unwrap_err();
        assert!(err.contains("NOTEGRAPH_BUDGET_AUTHENTICATED_BURST (1000)"), "{err}");
        assert!(err.contains("NOTEGRAPH_MAX_COMPLEXITY (25000)"), "{err}");
        assert!(config.check(1_000).is_ok());
        // No rate, no budget: the burst does not matter.
        let off: BudgetsConfig = parse(&["--budget-anonymous-burst", "10"]);
        assert!(off.check(25_000).is_ok());
        let no_room: BudgetsConfig = parse(&["--budget-max-clients", "0"]);
        assert!(no_room.check(25_000).unwrap_err().contains("NOTEGRAPH_BUDGET_MAX_CLIENTS"));
    }

    #[test]
    fn trusted_proxies_are_addresses_or_blocks() {
        let config: BudgetsConfig = parse(&["--trusted-proxies", "10.0.0.7, 192.168.0.0/16,::1"]);
        let listed: Vec<String> = config.trusted_proxies.iter().map(ToString::to_string).collect();
        assert_eq!(listed, ["10.0.0.7/32", "192.168.0.0/16", "::1/128"]);
        let err = try_parse::<BudgetsConfig>(&["--trusted-proxies", "proxy.internal"]).unwrap_err().to_string();
        assert!(err.contains("`proxy.internal` is neither an IP address nor a CIDR block"), "{err}");
    }
}
