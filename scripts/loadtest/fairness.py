"""The `fairness` scenario's two halves: before k6, the greedy viewer's
token and rate (ten times what its budget admits, from the cost the server
charges for its page); after, the polite viewer's p99 beside the greedy
one against its p99 alone, from k6's summary."""
import json
import math
import subprocess
import urllib.request

from . import stack

#: The greedy viewer's page (k6/scenarios/fairness.js sends the same).
GREEDY_QUERY = "{ notes(first: 50) { id title author { name } tags { name } } }"
#: How much slower the polite viewer's p99 may be beside the greedy one.
P99_RATIO_BOUND = 1.5
#: How many times its budget the greedy viewer asks for.
GREED = 10


def quota(header):
    """{"q"|"r"|"w"|"t": int} from a `RateLimit` or `RateLimit-Policy` value such as `"authenticated";r=9;t=3`."""
    return {key: int(value) for key, value in
            (part.split("=", 1) for part in header.split(";")[1:] if "=" in part)}


def greedy(binary, base_url, viewer):
    """k6's GREEDY_TOKEN and GREEDY_RATE (and GREEDY_COST, for the log): one
    request of the page on a full bucket tells the cost (burst less what is
    left) and the budget (the policy's quota over its window)."""
    token = subprocess.run([str(binary), "token", str(viewer), "--ttl", "7200"], env=stack.child_env(),
                           check=True, capture_output=True, text=True).stdout.strip()
    request = urllib.request.Request(f"{base_url}/graphql", json.dumps({"query": GREEDY_QUERY}).encode(),
                                     {"content-type": "application/json", "authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        left, policy = response.headers.get("RateLimit"), response.headers.get("RateLimit-Policy")
    if not left or not policy:
        raise RuntimeError("the server sent no RateLimit headers: are budgets on (NOTEGRAPH_BUDGET_AUTHENTICATED_RATE)?")
    policy, left = quota(policy), quota(left)
    cost = policy["q"] - left["r"]
    rate_per_s = policy["q"] / policy["w"]
    return {"GREEDY_TOKEN": token, "GREEDY_RATE": str(math.ceil(GREED * rate_per_s / cost)),
            "GREEDY_COST": str(cost)}


def _metric(summary, name):
    """One metric of k6's `--summary-export` file: its figures (`p(99)`, `med`; `value` for a rate), or {}."""
    return summary.get("metrics", {}).get(name, {})


def analyse(summary):
    """The report's lines and figures: the polite viewer's answers and p99
    alone and together, their ratio against the bound, the greedy viewer's
    refusals."""
    alone = _metric(summary, "http_req_duration{scenario:polite_alone}")
    together = _metric(summary, "http_req_duration{scenario:polite_together}")
    failed_alone = _metric(summary, "failures{scenario:polite_alone}").get("value")
    failed_together = _metric(summary, "failures{scenario:polite_together}").get("value")
    limited = _metric(summary, "greedy_limited")
    checks = _metric(summary, "checks{scenario:greedy}")
    p99_alone, p99_together = alone.get("p(99)"), together.get("p(99)")
    ratio = p99_together / p99_alone if p99_alone and p99_together is not None else None
    held = (ratio is not None and ratio <= P99_RATIO_BOUND and failed_alone == 0 and failed_together == 0
            and (limited.get("value") or 0) > 0 and checks.get("value") == 1)
    result = {"p99_alone_ms": p99_alone, "p99_together_ms": p99_together, "p99_ratio": ratio,
              "p50_alone_ms": alone.get("med"), "p50_together_ms": together.get("med"),
              "polite_failed_alone": failed_alone, "polite_failed_together": failed_together,
              "greedy_limited_share": limited.get("value"), "greedy_checks_passed": checks.get("value"),
              "bound": P99_RATIO_BOUND, "held": held}

    def ms(value):
        return "n/a" if value is None else f"{value:.2f} ms"

    lines = [
        "## Fairness", "",
        f"- **Polite viewer p99: {ms(p99_alone)} alone, {ms(p99_together)} beside the greedy one: "
        f"{'n/a' if ratio is None else f'{ratio:.2f}'}x** (bound {P99_RATIO_BOUND}x); p50 {ms(alone.get('med'))} "
        f"and {ms(together.get('med'))}.",
        f"- Polite requests failed: {failed_alone} alone, {failed_together} together (every one must succeed).",
        f"- Greedy requests refused with 429: {100 * (limited.get('value') or 0):.1f}%; their checks (RATE_LIMITED, "
        f"Retry-After, RateLimit, RateLimit-Policy) passed: {100 * (checks.get('value') or 0):.1f}%.",
        f"- **{'Held' if held else 'FAILED'}.**", "",
    ]
    return lines, result
