#!/usr/bin/env python3
"""Offline checks of the deploy manifests that no schema covers.

The Compose spec and Kubernetes' built-in kinds are schema-validated by
check-jsonschema and kubernetes-validate (crates/api/tests/api/deploy_*.rs
run them). What a schema cannot see is checked here: that the pieces name
each other correctly (a Service's selector and the pods' labels, the
CloudNativePG secret and services the Deployment uses, the ConfigMap name
with its hash suffix in the k6 TestRun), that the shutdown timing adds up,
and that every file docker-compose.yml mounts exists. The CRD kinds
(CloudNativePG Cluster, PodMonitor, PrometheusRule, k6 TestRun) have no schema in any
package registry, so their fields that matter are checked here by hand.

    check.py compose docker-compose.yml    (prints the notegraph commands, as JSON)
    check.py k8s RENDERED.yaml [--replicas N] [--db-instances N]
    check.py testrun TESTRUN.yaml APP.yaml OUT_DIR

Exit 0 when every check passes; otherwise each failure on its own line and
exit 1. `testrun` also reproduces the TestRun's script volume under OUT_DIR
(ConfigMap keys at their item paths) and prints, as JSON, the script path
inside it, the k6 arguments and the SQL of the data-file init container.
"""

import argparse
import json
import re
import sys
from pathlib import Path
from urllib.parse import urlparse

import yaml

failures = []


def expect(condition, message):
    """Records `message` as a failure unless `condition` holds."""
    if not condition:
        failures.append(message)
    return condition


def load_all(path):
    return [doc for doc in yaml.safe_load_all(Path(path).read_text()) if doc]


def by_kind(docs, kind):
    return [doc for doc in docs if doc.get("kind") == kind]


def one(docs, kind):
    found = by_kind(docs, kind)
    expect(len(found) == 1, f"expected one {kind}, found {len(found)}")
    return found[0] if found else {}


def subset(small, big):
    return bool(small) and all(big.get(k) == v for k, v in small.items())


# --- docker-compose.yml ----------------------------------------------------


def check_compose(path):
    root = Path(path).resolve().parent
    compose = yaml.safe_load(Path(path).read_text())
    services = compose.get("services", {})
    named_volumes = set((compose.get("volumes") or {}).keys())
    mounts = {}  # service -> {target: source path}
    for name, service in services.items():
        build = service.get("build")
        if build is not None:
            context = root / (build if isinstance(build, str) else build.get("context", "."))
            expect(context.is_dir(), f"{name}: build context {context} does not exist")
            if isinstance(build, dict) and "dockerfile" in build:
                expect((context / build["dockerfile"]).is_file(), f"{name}: dockerfile {build['dockerfile']} does not exist")
        for volume in service.get("volumes", []):
            source, target = (volume.split(":")[:2]) if isinstance(volume, str) else (volume["source"], volume["target"])
            if source.startswith((".", "/")):
                if expect((root / source).exists(), f"{name}: mounted path {source} does not exist"):
                    mounts.setdefault(name, {})[target] = root / source
            else:
                expect(source in named_volumes, f"{name}: volume {source} is not declared under volumes:")
        for env_file in service.get("env_file", []) if isinstance(service.get("env_file"), list) else []:
            expect((root / env_file).is_file(), f"{name}: env_file {env_file} does not exist")
        depends = service.get("depends_on", [])
        for other in depends if isinstance(depends, list) else depends.keys():
            expect(other in services, f"{name}: depends_on names no service {other}")

    def host_is_service(owner, url, what):
        host = urlparse(url if "://" in url else f"tcp://{url}").hostname
        expect(host in services, f"{owner}: {what} {url} does not name a compose service")

    # The API's settings name services of the stack.
    api = services.get("api", {})
    env = api.get("environment", {})
    host_is_service("api", env.get("DATABASE_URL", ""), "DATABASE_URL")
    expect("NOTEGRAPH_OTLP_ENDPOINT" in env, "api: NOTEGRAPH_OTLP_ENDPOINT is not set")
    host_is_service("api", env.get("NOTEGRAPH_OTLP_ENDPOINT", ""), "NOTEGRAPH_OTLP_ENDPOINT")
    api_port = urlparse("tcp://" + env.get("NOTEGRAPH_LISTEN", "")).port

    # Prometheus: the mounted config's rule files are mounted beside it, and
    # it scrapes the API where it listens.
    prometheus = mounts.get("prometheus", {})
    config = prometheus.get("/etc/prometheus/prometheus.yml")
    if expect(config is not None, "prometheus: no prometheus.yml mounted at /etc/prometheus/prometheus.yml"):
        scrape = yaml.safe_load(config.read_text())
        for rule_file in scrape.get("rule_files", []):
            target = rule_file if rule_file.startswith("/") else f"/etc/prometheus/{rule_file}"
            expect(target in prometheus, f"prometheus: rule file {rule_file} is not mounted at {target}")
        targets = [t for job in scrape["scrape_configs"] for sc in job.get("static_configs", []) for t in sc["targets"]]
        expect(f"api:{api_port}" in targets, f"prometheus: scrapes {targets}, not the api at api:{api_port}")

    # Grafana's data source and the collector's exporter name services.
    for target, source in mounts.get("grafana", {}).items():
        for file in sorted(source.rglob("*.yml")) if source.is_dir() else []:
            for datasource in (yaml.safe_load(file.read_text()) or {}).get("datasources", []):
                host_is_service("grafana", datasource["url"], f"data source in {file.name}")
            for provider in (yaml.safe_load(file.read_text()) or {}).get("providers", []):
                expect(provider["options"]["path"] in mounts["grafana"], f"grafana: dashboards path {provider['options']['path']} is not mounted")
    collectors = list(mounts.get("otel-collector", {}).values())
    if expect(collectors, "otel-collector: no configuration mounted"):
        collector = yaml.safe_load(collectors[0].read_text())
        for exporter in collector.get("exporters", {}).values():
            host_is_service("otel-collector", exporter["endpoint"], "exporter endpoint")
        for pipeline in collector["service"]["pipelines"].values():
            for part in ("receivers", "processors", "exporters"):
                for component in pipeline.get(part, []):
                    expect(component in collector.get(part, {}), f"otel-collector: pipeline uses undefined {component}")

    # The notegraph commands the stack runs, for the caller to parse with
    # the real binary.
    image = api.get("image")
    commands = {name: s.get("command", []) for name, s in services.items() if image and s.get("image") == image}
    commands["api healthcheck"] = api.get("healthcheck", {}).get("test", [])[2:]
    expect(api.get("healthcheck", {}).get("test", [])[:2] == ["CMD", "/usr/local/bin/notegraph"], "api healthcheck does not run /usr/local/bin/notegraph")
    print(json.dumps(commands))


# --- Kubernetes --------------------------------------------------------------


def env_of(container):
    return {e["name"]: e for e in container.get("env", [])}


def generated_config(docs, container):
    """The values of the ConfigMaps the container takes with envFrom."""
    values = {}
    names = {c["metadata"]["name"]: c for c in by_kind(docs, "ConfigMap")}
    for source in container.get("envFrom", []):
        ref = source.get("configMapRef")
        if ref and expect(ref["name"] in names, f"envFrom names ConfigMap {ref['name']}, which is not rendered"):
            values.update(names[ref["name"]].get("data", {}))
    return values


def check_k8s(path, replicas, db_instances):
    docs = load_all(path)
    deployment, service = one(docs, "Deployment"), one(docs, "Service")
    hpa, pdb = one(docs, "HorizontalPodAutoscaler"), one(docs, "PodDisruptionBudget")
    monitor, cluster = one(docs, "PodMonitor"), one(docs, "Cluster")
    rule = one(docs, "PrometheusRule")
    namespaces = {doc["metadata"].get("namespace") for doc in docs}
    expect(len(namespaces) == 1, f"resources are spread over namespaces {namespaces}")

    pod = deployment["spec"]["template"]
    pod_labels = pod["metadata"]["labels"]
    container = pod["spec"]["containers"][0]
    port_names = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
    expect(subset(deployment["spec"]["selector"]["matchLabels"], pod_labels), "Deployment selector does not match its pods")
    # The autoscaler owns the count: a Deployment `replicas` would be reset
    # by every apply.
    expect("replicas" not in deployment["spec"], f"Deployment sets replicas ({deployment['spec'].get('replicas')}), which the HPA owns")
    if replicas is not None:
        expect(hpa["spec"]["minReplicas"] == replicas, f"HPA minReplicas {hpa['spec']['minReplicas']} != {replicas}")

    # Service, PodMonitor, HPA, PDB point at the Deployment's pods.
    expect(subset(service["spec"]["selector"], pod_labels), "Service selector does not match the pods' labels")
    service_ports = {p["name"]: p for p in service["spec"]["ports"]}
    for port in service_ports.values():
        expect(port["targetPort"] in port_names or port["targetPort"] in port_names.values(), f"Service targetPort {port['targetPort']} is no container port")
    # /metrics on its own port (NOTEGRAPH_METRICS_LISTEN), scraped from the
    # pods, and not exposed by the public Service.
    config = generated_config(docs, container)
    metrics_port = urlparse("tcp://" + config.get("NOTEGRAPH_METRICS_LISTEN", "")).port
    expect(metrics_port is not None and metrics_port == port_names.get("metrics"),
           f"NOTEGRAPH_METRICS_LISTEN port {metrics_port} is not the container port named metrics ({port_names.get('metrics')})")
    for port in service_ports.values():
        expect(port["targetPort"] not in ("metrics", metrics_port), f"the public Service exposes the metrics port ({port['name']})")
    expect(subset(monitor["spec"]["selector"]["matchLabels"], pod_labels), "PodMonitor selector does not match the pods' labels")
    for endpoint in monitor["spec"]["podMetricsEndpoints"]:
        expect(endpoint.get("port") == "metrics", f"PodMonitor port {endpoint.get('port')} is not the metrics port")
        expect(endpoint.get("path") == "/metrics", "PodMonitor does not scrape /metrics")
    # Without a jobLabel the operator names the job <namespace>/<name>:
    # NotegraphDown (deploy/prometheus/alerts.yml) watches up{job="notegraph"}.
    job = pod_labels.get(monitor["spec"].get("jobLabel", "")) or f"{monitor['metadata'].get('namespace')}/{monitor['metadata']['name']}"
    expect(job == "notegraph", f"scraped as job {job}, but the alerts expect job notegraph")
    # The PrometheusRule carries exactly the alerts promtool tests.
    alerts = yaml.safe_load((Path(__file__).resolve().parents[2] / "deploy/prometheus/alerts.yml").read_text())
    expect(rule["spec"].get("groups") == alerts["groups"], "the PrometheusRule's groups differ from deploy/prometheus/alerts.yml")
    target = hpa["spec"]["scaleTargetRef"]
    expect((target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"]), "HPA does not scale the Deployment")
    expect(any(m["type"] == "Resource" and m["resource"]["name"] == "cpu" for m in hpa["spec"]["metrics"]), "HPA does not scale on CPU")
    expect(subset(pdb["spec"]["selector"]["matchLabels"], pod_labels), "PodDisruptionBudget selector does not match the pods")

    # Probes on the server's endpoints, on a declared port.
    probes = {name: container.get(name) for name in ("readinessProbe", "livenessProbe", "startupProbe")}
    for name, path_ in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz"), ("startupProbe", "/healthz")):
        probe = probes[name]
        if expect(probe is not None, f"no {name}"):
            expect(probe["httpGet"]["path"] == path_, f"{name} checks {probe['httpGet']['path']}, not {path_}")
            expect(probe["httpGet"]["port"] in port_names, f"{name} port {probe['httpGet']['port']} is no container port")

    # Non-root, read-only root filesystem.
    pod_security, security = pod["spec"].get("securityContext", {}), container.get("securityContext", {})
    expect(pod_security.get("runAsNonRoot") is True, "pod does not require runAsNonRoot")
    expect(security.get("readOnlyRootFilesystem") is True, "root filesystem is writable")
    expect(security.get("allowPrivilegeEscalation") is False, "privilege escalation is allowed")

    # Shutdown: the readiness delay and the drain fit in the grace period.
    delay_ms = int(config.get("NOTEGRAPH_SHUTDOWN_DELAY_MS", 0))
    grace_secs = int(config.get("NOTEGRAPH_SHUTDOWN_GRACE_SECS", 10))
    pre_stop = container.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
    expect(delay_ms > 0 or pre_stop > 0, "neither NOTEGRAPH_SHUTDOWN_DELAY_MS nor a preStop sleep: pods drain while still in the endpoints")
    period = pod["spec"].get("terminationGracePeriodSeconds", 30)
    expect(period > pre_stop + delay_ms / 1000 + grace_secs,
           f"terminationGracePeriodSeconds {period} <= preStop {pre_stop} s + delay {delay_ms} ms + grace {grace_secs} s")
    expect(probes["readinessProbe"] is None or probes["readinessProbe"]["periodSeconds"] * probes["readinessProbe"].get("failureThreshold", 3) * 1000 <= delay_ms + pre_stop * 1000,
           "readiness needs longer to fail than the shutdown delay lasts")
    # One failed or slow database query must not take every pod out of the
    # Service at once.
    expect(probes["readinessProbe"] is None or probes["readinessProbe"].get("failureThreshold", 3) >= 2,
           "readiness fails on a single probe: one database blip takes every pod out of the Service")

    # CloudNativePG: the secret and services the Cluster creates.
    name, spec = cluster["metadata"]["name"], cluster["spec"]
    if db_instances is not None:
        expect(spec["instances"] == db_instances, f"Cluster instances {spec['instances']} != {db_instances}")
    expect(spec["instances"] >= 2, "Cluster has no replica, so the -ro service has no endpoint")
    initdb = spec["bootstrap"]["initdb"]
    expect(any(re.fullmatch(r"create extension (if not exists )?vector;?", sql.strip(), re.I) for sql in initdb.get("postInitApplicationSQL", [])),
           "Cluster does not create the vector extension (bootstrap.initdb.postInitApplicationSQL)")
    env = env_of(container)
    secret_ref = lambda var: env.get(var, {}).get("valueFrom", {}).get("secretKeyRef", {})
    expect(secret_ref("DATABASE_URL") == {"name": f"{name}-app", "key": "uri"}, f"DATABASE_URL is not {name}-app's uri: {secret_ref('DATABASE_URL')}")
    read_url = urlparse(env.get("DATABASE_READ_URL", {}).get("value", ""))
    expect(read_url.hostname == f"{name}-ro", f"DATABASE_READ_URL host {read_url.hostname} is not {name}-ro")
    expect(read_url.path.lstrip("/") == initdb["database"], f"DATABASE_READ_URL database {read_url.path} is not {initdb['database']}")
    expect(read_url.password is None, "DATABASE_READ_URL carries a password in the manifest")
    expect(secret_ref("PGUSER") == {"name": f"{name}-app", "key": "username"}, "PGUSER is not the app secret's username")
    expect(secret_ref("PGPASSWORD") == {"name": f"{name}-app", "key": "password"}, "PGPASSWORD is not the app secret's password")

    # Secrets the overlay generates carry the keys the pods read.
    secrets = {s["metadata"]["name"]: s for s in by_kind(docs, "Secret")}
    for var in ("NOTEGRAPH_JWT_SECRET", "NOTEGRAPH_STATIC_TOKENS"):
        ref = secret_ref(var)
        expect(ref, f"{var} does not come from a Secret")
        if ref.get("name") in secrets:
            expect(ref["key"] in secrets[ref["name"]].get("data", {}), f"{var}: secret {ref['name']} has no key {ref['key']}")

    # Sizing: every pod's pool fits max_connections at the HPA's maximum,
    # with 10 left for superusers and CloudNativePG itself.
    pool = int(config.get("NOTEGRAPH_DB_MAX_CONNECTIONS", 16))
    max_connections = int(spec["postgresql"]["parameters"].get("max_connections", 100))
    expect(hpa["spec"]["maxReplicas"] * pool <= max_connections - 10,
           f"{hpa['spec']['maxReplicas']} pods x {pool} connections exceed max_connections {max_connections} - 10")


# --- k6-operator TestRun -------------------------------------------------------


def check_testrun(path, app_path, out_dir):
    docs, app = load_all(path), load_all(app_path)
    run = one(docs, "TestRun")
    configmaps = {c["metadata"]["name"]: c for c in by_kind(docs, "ConfigMap")}
    spec, runner = run["spec"], run["spec"]["runner"]
    expect(isinstance(spec.get("parallelism"), int) and spec["parallelism"] >= 1, "TestRun parallelism is not a positive integer")
    script = spec["script"].get("localFile", "")
    volumes = {v["name"]: v for v in runner.get("volumes", [])}
    out = Path(out_dir)
    mounted = False
    for mount in runner.get("volumeMounts", []):
        volume = volumes.get(mount["name"])
        expect(volume is not None, f"runner mounts undeclared volume {mount['name']}")
        if not volume or "configMap" not in volume:
            continue
        name = volume["configMap"]["name"]
        if not expect(name in configmaps, f"TestRun volume names ConfigMap {name}, which is not the generated one ({list(configmaps)})"):
            continue
        data = configmaps[name]["data"]
        for item in volume["configMap"].get("items", [{"key": k, "path": k} for k in data]):
            if expect(item["key"] in data, f"ConfigMap {name} has no key {item['key']}"):
                file = out / mount["mountPath"].lstrip("/") / item["path"]
                file.parent.mkdir(parents=True, exist_ok=True)
                file.write_text(data[item["key"]])
        mounted = mounted or script.startswith(mount["mountPath"].rstrip("/") + "/")
    expect(mounted and (out / script.lstrip("/")).is_file(), f"script {script} is not in a mounted ConfigMap")

    # The runners reach the API's Service; the data file comes from the -ro service.
    env = env_of(runner)
    service, cluster = one(app, "Service"), one(app, "Cluster")
    base = urlparse(env.get("BASE_URL", {}).get("value", ""))
    ports = [p["port"] for p in service.get("spec", {}).get("ports", [])]
    expect(base.hostname == service.get("metadata", {}).get("name") and base.port in ports, f"BASE_URL {base.geturl()} is not the Service's address")
    data_file = env.get("DATA_FILE", {}).get("value", "")
    init = runner.get("initContainers", [])
    sql = None
    if expect(len(init) == 1, "expected one init container writing the data file"):
        init_env = env_of(init[0])
        db = cluster["metadata"]["name"]
        expect(init_env.get("PGHOST", {}).get("value") == f"{db}-ro", "the data file is not read from the -ro service")
        for var, key in (("PGUSER", "username"), ("PGPASSWORD", "password")):
            ref = init_env.get(var, {}).get("valueFrom", {}).get("secretKeyRef", {})
            expect(ref.get("name") == f"{db}-app" and ref.get("key") == key, f"init container {var} is not {db}-app's {key}")
        expect(init_env.get("PGDATABASE", {}).get("value") == cluster["spec"]["bootstrap"]["initdb"]["database"], "init container PGDATABASE is not the Cluster's database")
        command = init[0]["command"]
        expect(f"--output={data_file}" in command, f"init container does not write DATA_FILE {data_file}")
        sql = command[command.index("--command") + 1] if "--command" in command else None
        expect(sql is not None, "init container runs no --command")
    print(json.dumps({"script": script.lstrip("/"), "arguments": spec.get("arguments", "").split(), "sql": sql}))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    sub.add_parser("compose").add_argument("file")
    k8s = sub.add_parser("k8s")
    k8s.add_argument("file")
    k8s.add_argument("--replicas", type=int)
    k8s.add_argument("--db-instances", type=int)
    testrun = sub.add_parser("testrun")
    testrun.add_argument("file")
    testrun.add_argument("app")
    testrun.add_argument("out_dir")
    args = parser.parse_args()
    try:
        if args.what == "compose":
            check_compose(args.file)
        elif args.what == "k8s":
            check_k8s(args.file, args.replicas, args.db_instances)
        else:
            check_testrun(args.file, args.app, args.out_dir)
    except (KeyError, TypeError, IndexError, AttributeError) as error:
        failures.append(f"a required field is missing or malformed: {type(error).__name__} {error}")
    for failure in failures:
        print(failure, file=sys.stderr)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
