#!/usr/bin/env python3
"""Writes deploy/k8s/base/prometheusrule.yaml from deploy/prometheus/alerts.yml.

The alert rules have one source, alerts.yml (checked by promtool and its
unit tests); the Kubernetes overlays ship the same groups as a Prometheus
operator PrometheusRule. `just prometheus-rule` regenerates it; with
--check this exits 1 when the committed file differs (the test suite runs
that).
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "deploy/prometheus/alerts.yml"
TARGET = ROOT / "deploy/k8s/base/prometheusrule.yaml"

HEADER = """\
# GENERATED from deploy/prometheus/alerts.yml by
# deploy/prometheus/prometheusrule.py (`just prometheus-rule`): edit the
# source, then regenerate. The Prometheus operator loads these alerts when
# its ruleSelector matches this rule's labels (kube-prometheus-stack
# selects `release: <its release name>` by default: add that label in an
# overlay); docs/DEPLOY.md, "What to watch".
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: notegraph
  labels:
    app.kubernetes.io/name: notegraph
spec:
"""


def render() -> str:
    lines = SOURCE.read_text().splitlines()
    # alerts.yml's own heading comment describes that file, not this one.
    while lines and lines[0].startswith("#"):
        lines.pop(0)
    body = "".join(f"  {line}\n" if line else "\n" for line in lines)
    return HEADER + body


def main() -> int:
    text = render()
    if sys.argv[1:] == ["--check"]:
        if TARGET.exists() and TARGET.read_text() == text:
            return 0
        print(f"{TARGET.relative_to(ROOT)} is stale: run `just prometheus-rule`", file=sys.stderr)
        return 1
    TARGET.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
