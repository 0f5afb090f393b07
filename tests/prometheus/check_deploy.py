#!/usr/bin/env python3
"""Static checks of deploy/: Kubernetes manifests, Grafana provisioning and dashboard, compose mounts.

Without a cluster kubectl cannot validate against the API schema, so this checks what
the deployment relies on: the StatefulSet keeps its RocksDB state on a volume claim,
the exporter runs as a sidecar pointing at the daemon in the same pod, the probes use
gRPC health, Prometheus scrape annotations point at the exporter's port, selectors
match, the ConfigMap has the flag files, the dashboard uses the provisioned datasource
and the variables its queries reference. Exits 77 (skipped) without PyYAML.

  check_deploy.py --deploy DEPLOY_DIR
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys

try:
    import yaml
except ImportError:
    print("SKIP: python3 has no yaml module (PyYAML)")
    sys.exit(77)

failures = []


def check(ok, what):
    if not ok:
        failures.append(what)
        print(f"FAIL {what}", flush=True)
    return ok


def load_all(path):
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d]


def flag(lines, name):
    for line in lines:
        m = re.fullmatch(rf"--{name}=(.*)", line.strip())
        if m:
            return m.group(1)
    return None


def check_k8s(k8s):
    docs = []
    for name in sorted(os.listdir(k8s)):
        if name.endswith(".yaml") and name != "kustomization.yaml":
            docs += load_all(os.path.join(k8s, name))
    by_kind = {}
    for d in docs:
        check(isinstance(d, dict) and "apiVersion" in d and "kind" in d and "metadata" in d,
              f"k8s document without apiVersion/kind/metadata: {str(d)[:80]}")
        by_kind.setdefault(d["kind"], []).append(d)
    sts_list = by_kind.get("StatefulSet", [])
    if not check(len(sts_list) == 1, "exactly one StatefulSet"):
        return
    sts = sts_list[0]
    spec = sts["spec"]
    pod = spec["template"]
    pod_labels = pod["metadata"]["labels"]
    check(all(pod_labels.get(k) == v for k, v in spec["selector"]["matchLabels"].items()),
          "StatefulSet selector matches its pod labels")
    containers = {c["name"]: c for c in pod["spec"]["containers"]}
    check(set(containers) == {"hubmetricsd", "exporter"}, f"containers hubmetricsd + exporter sidecar, got {sorted(containers)}")
    if len(containers) != 2:
        return
    check(pod["spec"].get("securityContext", {}).get("runAsNonRoot") is True, "pod runs as non-root")

    cms = {c["metadata"]["name"]: c for c in by_kind.get("ConfigMap", [])}
    volumes = {v["name"]: v for v in pod["spec"].get("volumes", [])}
    cm_name = volumes.get("config", {}).get("configMap", {}).get("name")
    if not check(cm_name in cms, f"ConfigMap {cm_name} referenced by the pod exists"):
        return
    data = cms[cm_name]["data"]
    daemon_flags = data.get("hubmetricsd.flags", "").splitlines()
    exporter_flags = data.get("exporter.flags", "").splitlines()

    d = containers["hubmetricsd"]
    check(any("--flagfile=/etc/hubmetrics/hubmetricsd.flags" == a for a in d.get("args", [])), "daemon reads its flag file")
    grpc_port = next((p["containerPort"] for p in d["ports"] if p["name"] == "grpc"), None)
    check(flag(daemon_flags, "grpc_listen") == f"0.0.0.0:{grpc_port}", "daemon listens on its grpc containerPort")
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        check(d.get(probe, {}).get("grpc", {}).get("port") == grpc_port, f"daemon {probe} is a gRPC health probe on {grpc_port}")
    claims = {c["metadata"]["name"] for c in spec.get("volumeClaimTemplates", [])}
    state_dir = flag(daemon_flags, "state_dir")
    mounts = {m["mountPath"]: m["name"] for m in d.get("volumeMounts", [])}
    check(state_dir in mounts and mounts[state_dir] in claims,
          f"--state_dir {state_dir} is on a volumeClaimTemplate (mounts {mounts}, claims {claims})")

    e = containers["exporter"]
    check(any("--flagfile=/etc/hubmetrics/exporter.flags" == a for a in e.get("args", [])), "exporter reads its flag file")
    check(flag(exporter_flags, "target") == f"127.0.0.1:{grpc_port}", "exporter sidecar targets the daemon in its pod")
    metrics_port = next((p["containerPort"] for p in e["ports"] if p["name"] == "metrics"), None)
    check(flag(exporter_flags, "listen") == f"0.0.0.0:{metrics_port}", "exporter listens on its metrics containerPort")
    ann = pod["metadata"].get("annotations", {})
    check(ann.get("prometheus.io/scrape") == "true" and ann.get("prometheus.io/port") == str(metrics_port)
          and ann.get("prometheus.io/path") == "/metrics", "pod scrape annotations point at the exporter")

    services = {s["metadata"]["name"]: s for s in by_kind.get("Service", [])}
    check(spec["serviceName"] in services and services[spec["serviceName"]]["spec"].get("clusterIP") == "None",
          "serviceName names a headless Service")
    for s in services.values():
        check(all(pod_labels.get(k) == v for k, v in s["spec"]["selector"].items()),
              f"Service {s['metadata']['name']} selects the pod")
        for p in s["spec"]["ports"]:
            check(p["targetPort"] in ("grpc", "metrics"), f"Service port {p['name']} targets a named port")

    kubectl = shutil.which("kubectl")
    if kubectl:
        r = subprocess.run([kubectl, "kustomize", k8s], capture_output=True, timeout=60)
        check(r.returncode == 0, f"kubectl kustomize: {r.stderr.decode()[:300]}")


def check_k8s_tls(overlay):
    """The TLS overlay rendered by kubectl: each container's TLS flags name files of a
    Secret mounted into it (the exporter's --web_tls_* too: /metrics over HTTPS), the pod
    tells Prometheus to scrape with https, and no daemon probe is a (plaintext) gRPC probe."""
    kubectl = shutil.which("kubectl")
    if not kubectl:
        print("note: kubectl not installed, the TLS overlay (deploy/k8s-tls) is not rendered")
        return
    r = subprocess.run([kubectl, "kustomize", overlay], capture_output=True, timeout=60)
    if not check(r.returncode == 0, f"kubectl kustomize {overlay}: {r.stderr.decode()[:300]}"):
        return
    docs = [d for d in yaml.safe_load_all(r.stdout) if d]
    sts = next((d for d in docs if d["kind"] == "StatefulSet"), None)
    if not check(sts is not None, "the TLS overlay renders the StatefulSet"):
        return
    annotations = sts["spec"]["template"].get("metadata", {}).get("annotations", {})
    check(annotations.get("prometheus.io/scheme") == "https" and annotations.get("prometheus.io/scrape") == "true",
          f"TLS overlay: the pod is scraped with https (annotations {annotations})")
    pod = sts["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    containers = {c["name"]: c for c in pod["containers"]}
    wanted = {"hubmetricsd": {"tls_cert_file", "tls_key_file", "tls_client_ca_file"},
              "exporter": {"tls_ca_file", "tls_cert_file", "tls_key_file",
                           "web_tls_cert_file", "web_tls_key_file"}}
    for name, flags in wanted.items():
        c = containers.get(name, {})
        args = c.get("args", [])
        given = {m.group(1) for a in args if (m := re.fullmatch(r"--(\w+_file)=.*", a))}
        check(flags <= given, f"TLS overlay: {name} has {sorted(flags)} in its args (has {sorted(given)})")
        probe_args = [a for p in ("startupProbe", "readinessProbe", "livenessProbe")
                      for a in c.get(p, {}).get("exec", {}).get("command", [])]
        for a in args + probe_args:
            m = re.fullmatch(r"--\w+_file=(.*)", a)
            if not m:
                continue
            path = m.group(1)
            mount = next((mt for mt in c.get("volumeMounts", [])
                          if path.startswith(mt["mountPath"].rstrip("/") + "/")), None)
            secret = volumes.get(mount["name"], {}).get("secret") if mount else None
            items = {i["path"] for i in (secret or {}).get("items", [])}
            check(secret is not None and os.path.relpath(path, mount["mountPath"]) in items,
                  f"TLS overlay: {name}'s {a} is a file of a Secret mounted into it")
    for p in ("startupProbe", "readinessProbe", "livenessProbe"):
        probe = containers.get("hubmetricsd", {}).get(p, {})
        check(probe and "grpc" not in probe,
              f"TLS overlay: the daemon's {p} is not kubelet's plaintext gRPC probe")


def check_grafana(deploy):
    ds = yaml.safe_load(open(os.path.join(deploy, "grafana/provisioning/datasources/prometheus.yml")))
    uids = {d["uid"] for d in ds["datasources"]}
    prov = yaml.safe_load(open(os.path.join(deploy, "grafana/provisioning/dashboards/provider.yml")))
    paths = {p["options"]["path"] for p in prov["providers"]}
    dash = json.load(open(os.path.join(deploy, "grafana/dashboards/hubmetrics.json"), encoding="utf-8"))
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    check({"filter", "attribution", "window"} <= set(variables), "variables filter, attribution, window")
    check(set(variables["filter"]["query"].split(",")) == {"all", "rolling_1y"}, "filter values")
    check(set(variables["attribution"]["query"].split(",")) == {"direct", "recursive"}, "attribution values")
    titles = [p["title"] for p in dash["panels"]]
    for level in ("Model", "Developer", "Country"):
        check(any(t.startswith(level) and "concentration" in t for t in titles if True), f"a row for {level}")
    check(any(t.startswith("Ingest") for t in titles), "an ingest health row")
    for p in dash["panels"]:
        if p["type"] == "row":
            continue
        check(p.get("datasource", {}).get("uid") in uids, f"panel {p['title']} uses the provisioned datasource")
        check(bool(p.get("targets")), f"panel {p['title']} has queries")
        for t in p.get("targets", []):
            for var in re.findall(r"\$(\w+)", t["expr"]):
                check(var in variables or var.startswith("__"), f"panel {p['title']}: ${var} is defined")
    return paths


def check_compose(deploy, provider_paths):
    compose = yaml.safe_load(open(os.path.join(deploy, "docker-compose.yml")))
    targets = set()
    for name, svc in compose["services"].items():
        for v in svc.get("volumes", []):
            src, dst = v.split(":")[:2]
            targets.add(dst)
            if src.startswith("."):
                check(os.path.exists(os.path.join(deploy, src)), f"compose {name}: {src} exists")
        for p in svc.get("ports", []):
            check(str(p).startswith("127.0.0.1:"), f"compose {name}: port {p} published on 127.0.0.1 only")
    check(provider_paths <= targets, f"Grafana provider path {provider_paths} is mounted")
    check({"kafka", "hubmetricsd", "exporter", "prometheus", "grafana"} <= set(compose["services"]), "compose services")
    check("KAFKA_PROCESS_ROLES" in compose["services"]["kafka"]["environment"], "Kafka runs in KRaft mode")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--deploy", required=True)
    args = ap.parse_args()
    check_k8s(os.path.join(args.deploy, "k8s"))
    check_k8s_tls(os.path.join(args.deploy, "k8s-tls"))
    check_compose(args.deploy, check_grafana(args.deploy))
    print(f"deploy checks: {len(failures)} failed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
