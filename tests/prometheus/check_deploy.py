#!/usr/bin/env python3
"""Static checks of deploy/: Kubernetes manifests, Grafana provisioning and dashboard, compose files.

Without a cluster kubectl cannot validate against the API schema, so this checks what
the deployment relies on: the StatefulSet keeps its RocksDB state on a volume claim,
the exporter runs as a sidecar pointing at the daemon in the same pod, the probes use
gRPC health, Prometheus scrape annotations point at the exporter's port, selectors
match, the ConfigMap has the flag files, the dashboard uses the provisioned datasource
and the variables its queries reference. Every flag in a flag file, a container's args
or a compose command is one the binary that reads it defines (ABSL_FLAG in the sources
it links, found through the CMakeLists; no binary needed). The scale-out deployment
(k8s-scaleout, docker-compose.scaleout.yml): dedup instances with --role=dedup, no state
volume, the shared key file from the Secret and distinct transactional ids; metrics
replicas with --role=metrics checked like the role-all pod; both roles on the same
--unique_topic; the replica counts; Prometheus scraping every replica's exporter.
Exits 77 (skipped) without PyYAML.

  check_deploy.py --deploy DEPLOY_DIR [--src SOURCE_DIR]
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
    """The value of --name=... in flag-file lines or args; the last one, as absl takes it."""
    value = None
    for line in lines:
        m = re.fullmatch(rf"--{name}=(.*)", line.strip())
        if m:
            value = m.group(1)
    return value


# absl's own flags, accepted by every binary.
ABSL_BUILTIN_FLAGS = {"flagfile", "fromenv", "tryfromenv", "undefok", "help", "helpfull",
                      "helpshort", "helppackage", "version", "only_check_args"}


class Flags:
    """The flags (and string defaults) each binary defines: the ABSL_FLAGs of its sources
    and of the hm_library targets it links, read from the CMakeLists of lib/ and services/."""

    def __init__(self, src):
        self.targets = {}  # name -> (sources, deps)
        for top in ("lib", "services"):
            for root, _, files in os.walk(os.path.join(src, top)):
                if "CMakeLists.txt" not in files:
                    continue
                text = open(os.path.join(root, "CMakeLists.txt"), encoding="utf-8").read()
                text = re.sub(r"#[^\n]*", "", text)
                for m in re.finditer(r"hm_(?:library|binary)\(\s*(\S+)([^)]*)\)", text):
                    srcs, deps, mode = [], [], None
                    for tok in m.group(2).split():
                        if tok in ("SRCS", "DEPS"):
                            mode = tok
                        elif mode == "SRCS":
                            srcs.append(os.path.join(root, tok))
                        elif mode == "DEPS":
                            deps.append(tok)
                    self.targets[m.group(1)] = (srcs, deps)
        self.cache = {}

    def of(self, binary):
        """{flag name: default string or None} of a binary target, e.g. hubmetricsd."""
        if binary in self.cache:
            return self.cache[binary]
        flags, seen, todo = {}, set(), [binary]
        while todo:
            t = todo.pop()
            if t in seen or t not in self.targets:
                continue
            seen.add(t)
            srcs, deps = self.targets[t]
            todo += deps
            for path in srcs:
                text = open(path, encoding="utf-8").read()
                for m in re.finditer(r"ABSL_FLAG\(\s*([^,]+?)\s*,\s*(\w+)\s*,\s*(\"(?:[^\"\\]|\\.)*\")?", text):
                    flags[m.group(2)] = m.group(3)[1:-1] if m.group(3) else None
        check(len(flags) >= 3, f"flags of {binary} found in its sources (got {sorted(flags)})")
        self.cache[binary] = flags
        return flags

    def check_line(self, binary, line, where):
        """A flag-file line or argument names a flag of `binary`; returns (name, value)."""
        line = line.strip()
        if not line or line.startswith("#"):
            return None
        m = re.fullmatch(r"--?(\w+)(?:=(.*))?", line, re.S)
        if not check(m is not None, f"{where}: '{line}' is a --flag=value"):
            return None
        name, value = m.group(1), m.group(2)
        known = set(self.of(binary)) | ABSL_BUILTIN_FLAGS
        check(name in known or (value is None and name.startswith("no") and name[2:] in known),
              f"{where}: --{name} is a flag of {binary}")
        return name, value


def binary_of(container):
    """The binary target a container runs: its command, else the image's entrypoint."""
    cmd = container.get("command") or container.get("entrypoint") or ["/usr/local/bin/hubmetricsd"]
    if isinstance(cmd, str):
        cmd = cmd.split()
    return os.path.basename(cmd[0])


def load_k8s_dir(k8s):
    docs = []
    for name in sorted(os.listdir(k8s)):
        if name.endswith(".yaml") and name != "kustomization.yaml":
            docs += load_all(os.path.join(k8s, name))
    by_kind = {}
    for d in docs:
        check(isinstance(d, dict) and "apiVersion" in d and "kind" in d and "metadata" in d,
              f"k8s document without apiVersion/kind/metadata: {str(d)[:80]}")
        by_kind.setdefault(d["kind"], []).append(d)
    return by_kind


def pod_flag_files(sts, by_kind, where):
    """{container name: lines of the flag file it reads} through the pod's config volume,
    or None when the ConfigMap is missing. Checks that every key of the ConfigMap is read."""
    pod = sts["spec"]["template"]
    cms = {c["metadata"]["name"]: c for c in by_kind.get("ConfigMap", [])}
    volumes = {v["name"]: v for v in pod["spec"].get("volumes", [])}
    cm_name = volumes.get("config", {}).get("configMap", {}).get("name")
    if not check(cm_name in cms, f"{where}ConfigMap {cm_name} referenced by the pod exists"):
        return None
    data = cms[cm_name]["data"]
    files = {}
    for c in pod["spec"]["containers"]:
        mount = next((m["mountPath"] for m in c.get("volumeMounts", []) if m["name"] == "config"), None)
        for a in c.get("args", []):
            m = re.fullmatch(r"--flagfile=(.*)", a)
            if m and mount and os.path.dirname(m.group(1)) == mount.rstrip("/"):
                key = os.path.basename(m.group(1))
                if check(key in data, f"{where}{c['name']} reads {key}, a key of ConfigMap {cm_name}"):
                    files[c["name"]] = (key, data[key].splitlines())
    return files


def check_container_flags(flags, container, flag_file, where):
    """The container's args and its flag file name flags of the binary it runs."""
    binary = binary_of(container)
    for a in container.get("args", []):
        flags.check_line(binary, a, f"{where}{container['name']} args")
    if flag_file:
        key, lines = flag_file
        for line in lines:
            flags.check_line(binary, line, f"{where}{key}")


def check_server_pod(sts, by_kind, flags, where=""):
    """A pod of hubmetricsd serving the API (role all or metrics) with its exporter
    sidecar and its state on a volume claim. Returns the daemon's flag-file lines."""
    spec = sts["spec"]
    pod = spec["template"]
    pod_labels = pod["metadata"]["labels"]
    check(all(pod_labels.get(k) == v for k, v in spec["selector"]["matchLabels"].items()),
          f"{where}StatefulSet selector matches its pod labels")
    containers = {c["name"]: c for c in pod["spec"]["containers"]}
    check(set(containers) == {"hubmetricsd", "exporter"}, f"{where}containers hubmetricsd + exporter sidecar, got {sorted(containers)}")
    if len(containers) != 2:
        return None
    check(pod["spec"].get("securityContext", {}).get("runAsNonRoot") is True, f"{where}pod runs as non-root")

    files = pod_flag_files(sts, by_kind, where)
    if files is None:
        return None
    d_key, daemon_flags = files.get("hubmetricsd", (None, []))
    _, exporter_flags = files.get("exporter", (None, []))
    for name, c in containers.items():
        check_container_flags(flags, c, files.get(name), where)

    d = containers["hubmetricsd"]
    check(d_key is not None, f"{where}daemon reads its flag file")
    grpc_port = next((p["containerPort"] for p in d["ports"] if p["name"] == "grpc"), None)
    check(flag(daemon_flags, "grpc_listen") == f"0.0.0.0:{grpc_port}", f"{where}daemon listens on its grpc containerPort")
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        check(((d.get(probe) or {}).get("grpc") or {}).get("port") == grpc_port, f"{where}daemon {probe} is a gRPC health probe on {grpc_port}")
    claims = {c["metadata"]["name"] for c in spec.get("volumeClaimTemplates", [])}
    state_dir = flag(daemon_flags, "state_dir")
    mounts = {m["mountPath"]: m["name"] for m in d.get("volumeMounts", [])}
    check(state_dir in mounts and mounts[state_dir] in claims,
          f"{where}--state_dir {state_dir} is on a volumeClaimTemplate (mounts {mounts}, claims {claims})")

    e = containers["exporter"]
    check(any("--flagfile=/etc/hubmetrics/exporter.flags" == a for a in e.get("args", [])), f"{where}exporter reads its flag file")
    check(flag(exporter_flags, "target") == f"127.0.0.1:{grpc_port}", f"{where}exporter sidecar targets the daemon in its pod")
    metrics_port = next((p["containerPort"] for p in e["ports"] if p["name"] == "metrics"), None)
    check(flag(exporter_flags, "listen") == f"0.0.0.0:{metrics_port}", f"{where}exporter listens on its metrics containerPort")
    ann = pod["metadata"].get("annotations", {})
    check(ann.get("prometheus.io/scrape") == "true" and ann.get("prometheus.io/port") == str(metrics_port)
          and ann.get("prometheus.io/path") == "/metrics", f"{where}pod scrape annotations point at the exporter")
    return daemon_flags


def check_flag_files_read(by_kind, statefulsets, where=""):
    """Every flag file of the ConfigMaps is read by a container (none is left over)."""
    read = {key for sts in statefulsets for key, _ in (pod_flag_files(sts, by_kind, where) or {}).values()}
    for cm in by_kind.get("ConfigMap", []):
        unread = sorted(set(cm["data"]) - read)
        check(not unread, f"{where}every flag file of ConfigMap {cm['metadata']['name']} is read (unread: {unread})")


def check_services(by_kind, statefulsets, where=""):
    """Each StatefulSet's serviceName is a headless Service; each Service selects the pods
    of exactly one StatefulSet and targets named ports of those pods."""
    services = {s["metadata"]["name"]: s for s in by_kind.get("Service", [])}
    for sts in statefulsets:
        name = sts["spec"]["serviceName"]
        check(name in services and services[name]["spec"].get("clusterIP") == "None",
              f"{where}serviceName {name} of {sts['metadata']['name']} names a headless Service")
        check(name in services and all(sts["spec"]["template"]["metadata"]["labels"].get(k) == v
                                       for k, v in services[name]["spec"]["selector"].items()),
              f"{where}headless Service {name} selects the pods of {sts['metadata']['name']}")
    for s in services.values():
        selected = [t for t in statefulsets
                    if all(t["spec"]["template"]["metadata"]["labels"].get(k) == v
                           for k, v in s["spec"]["selector"].items())]
        if not check(len(selected) == 1, f"{where}Service {s['metadata']['name']} selects the pods of one StatefulSet "
                     f"(selects {[t['metadata']['name'] for t in selected]})"):
            continue
        port_names = {p.get("name") for c in selected[0]["spec"]["template"]["spec"]["containers"]
                      for p in c.get("ports", [])}
        for p in s["spec"].get("ports", []):
            check(p["targetPort"] in ("grpc", "metrics") and p["targetPort"] in port_names,
                  f"{where}Service {s['metadata']['name']} port {p['name']} targets a named port of its pods")
    return services


def check_kustomize(k8s, by_kind, where=""):
    """kustomization.yaml lists every manifest of the directory, and kubectl (when installed)
    renders exactly the objects the files hold."""
    kust = yaml.safe_load(open(os.path.join(k8s, "kustomization.yaml"), encoding="utf-8"))
    files = {n for n in os.listdir(k8s) if n.endswith(".yaml") and n != "kustomization.yaml"}
    check(set(kust.get("resources", [])) == files,
          f"{where}kustomization.yaml resources {kust.get('resources')} are the directory's manifests {sorted(files)}")
    kubectl = shutil.which("kubectl")
    if not kubectl:
        print(f"note: kubectl not installed, {k8s} is not rendered")
        return
    r = subprocess.run([kubectl, "kustomize", k8s], capture_output=True, timeout=60)
    if not check(r.returncode == 0, f"{where}kubectl kustomize: {r.stderr.decode()[:300]}"):
        return
    rendered = {(d["kind"], d["metadata"]["name"]) for d in yaml.safe_load_all(r.stdout) if d}
    parsed = {(k, d["metadata"]["name"]) for k, ds in by_kind.items() for d in ds}
    check(rendered == parsed, f"{where}kubectl kustomize renders the parsed objects ({sorted(rendered ^ parsed)} differ)")


def check_k8s(k8s, flags):
    by_kind = load_k8s_dir(k8s)
    sts_list = by_kind.get("StatefulSet", [])
    if not check(len(sts_list) == 1, "exactly one StatefulSet"):
        return
    if check_server_pod(sts_list[0], by_kind, flags) is None:
        return
    check_flag_files_read(by_kind, sts_list)
    check_services(by_kind, sts_list)
    check_kustomize(k8s, by_kind)


def effective(lines, name, flags, binary="hubmetricsd"):
    """A flag's value in a flag file or args, else the binary's default."""
    v = flag(lines, name)
    return v if v is not None else flags.of(binary).get(name)


def check_k8s_scaleout(k8s, flags):
    """deploy/k8s-scaleout: hubmetrics-dedup (3, --role=dedup, nothing on disk, the key
    from the Secret, a transactional id of its own per pod) and hubmetrics-metrics (2,
    --role=metrics, checked like the role-all pod), on the same unique topic."""
    w = "k8s-scaleout: "
    by_kind = load_k8s_dir(k8s)
    sts = {s["metadata"]["name"]: s for s in by_kind.get("StatefulSet", [])}
    if not check(set(sts) == {"hubmetrics-dedup", "hubmetrics-metrics"},
                 f"{w}StatefulSets hubmetrics-dedup and hubmetrics-metrics, got {sorted(sts)}"):
        return
    dedup, metrics = sts["hubmetrics-dedup"], sts["hubmetrics-metrics"]
    check(dedup["spec"].get("replicas") == 3, f"{w}3 dedup instances (replicas {dedup['spec'].get('replicas')})")
    check(metrics["spec"].get("replicas") == 2, f"{w}2 metrics replicas (replicas {metrics['spec'].get('replicas')})")
    check(dedup["spec"]["template"]["metadata"]["labels"] != metrics["spec"]["template"]["metadata"]["labels"],
          f"{w}the dedup and metrics pods are labelled apart")

    mw = w + "metrics: "
    metrics_flags = check_server_pod(metrics, by_kind, flags, mw)
    if metrics_flags is not None:
        check(flag(metrics_flags, "role") == "metrics", f"{mw}--role=metrics")
        check(flag(metrics_flags, "kafka_brokers"), f"{mw}--kafka_brokers is set (the metrics role reads Kafka)")

    dw = w + "dedup: "
    spec = dedup["spec"]
    pod = spec["template"]
    check(all(pod["metadata"]["labels"].get(k) == v for k, v in spec["selector"]["matchLabels"].items()),
          f"{dw}StatefulSet selector matches its pod labels")
    check(pod["spec"].get("securityContext", {}).get("runAsNonRoot") is True, f"{dw}pod runs as non-root")
    containers = {c["name"]: c for c in pod["spec"]["containers"]}
    check(set(containers) == {"hubmetricsd"}, f"{dw}one container hubmetricsd (no API, no exporter), got {sorted(containers)}")
    files = pod_flag_files(dedup, by_kind, dw) or {}
    dedup_flags = files.get("hubmetricsd", (None, []))[1]
    d = containers.get("hubmetricsd", {})
    check_container_flags(flags, d, files.get("hubmetricsd"), dw)
    args = d.get("args", [])
    check(flag(dedup_flags + args, "role") == "dedup", f"{dw}--role=dedup")
    check(flag(dedup_flags + args, "kafka_brokers"), f"{dw}--kafka_brokers is set")
    check(flag(dedup_flags + args, "state_dir") is None, f"{dw}no --state_dir")
    check(not spec.get("volumeClaimTemplates"), f"{dw}no volumeClaimTemplates")
    volumes = {v["name"]: v for v in pod["spec"].get("volumes", [])}
    check(all(set(v) - {"name"} <= {"configMap", "secret"} for v in volumes.values()),
          f"{dw}only ConfigMap and Secret volumes, nothing to keep state on ({sorted(volumes)})")
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        check((d.get(probe) or {}).get("grpc") is None, f"{dw}{probe} is not a gRPC probe (the dedup role serves no API)")
    # One transactional id for all would make the instances fence each other: the
    # default (hubmetrics-dedup-<pod name>), or args that the kubelet expands per pod
    # ($(POD_NAME)); never the shared flag file.
    tid_file, tid_args = flag(dedup_flags, "transactional_id"), flag(args, "transactional_id")
    check(tid_file is None and (tid_args is None or "$(" in tid_args),
          f"{dw}no shared --transactional_id ({tid_file or tid_args}): each pod defaults to its own name")
    key = flag(dedup_flags + args, "user_hash_key_file")
    mount = next((m for m in d.get("volumeMounts", []) if key and key.startswith(m["mountPath"].rstrip("/") + "/")), None)
    secret = volumes.get(mount["name"], {}).get("secret") if mount else None
    items = {i["path"] for i in (secret or {}).get("items", [])}
    check(secret is not None and secret.get("secretName") == "hubmetrics-user-hash-key"
          and (not items or os.path.relpath(key, mount["mountPath"]) in items),
          f"{dw}--user_hash_key_file {key} is a file of the Secret hubmetrics-user-hash-key mounted into it")

    if metrics_flags is not None:
        for name in ("unique_topic", "kafka_brokers", "events_format"):
            a, b = effective(dedup_flags + args, name, flags), effective(metrics_flags, name, flags)
            check(a == b, f"{w}dedup and metrics have the same --{name} ({a} vs {b})")
    check_flag_files_read(by_kind, [dedup, metrics], w)
    services = check_services(by_kind, [dedup, metrics], w)
    api = [s for s in services.values() if s["spec"].get("clusterIP") != "None"]
    metrics_labels = metrics["spec"]["template"]["metadata"]["labels"]
    check(len(api) == 1 and {p["port"] for p in api[0]["spec"]["ports"]} == {50051, 9464}
          and all(metrics_labels.get(k) == v for k, v in api[0]["spec"]["selector"].items()),
          f"{w}one Service, over the metrics replicas, with ports 50051 and 9464")
    check_kustomize(k8s, by_kind, w)


def check_k8s_tls(overlay, flags):
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
    for name, want in wanted.items():
        c = containers.get(name, {})
        args = c.get("args", [])
        given = {m.group(1) for a in args if (m := re.fullmatch(r"--(\w+_file)=.*", a))}
        check_container_flags(flags, c, None, "TLS overlay: ")
        check(want <= given, f"TLS overlay: {name} has {sorted(want)} in its args (has {sorted(given)})")
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


def check_grafana(deploy, flags):
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
    # The attribute rows read hubmetrics_attribute_share; their variables offer only what the
    # exporter exports by default (else a panel would be empty out of the box).
    for row in ("Organization types", "Sizes", "Modalities", "Licenses", "Derivations"):
        check(any(p["type"] == "row" and p["title"].startswith(row) for p in dash["panels"]), f"a row for {row}")
    exporter_flags = flags.of("hubmetrics-exporter")
    for var, flag_name in (("window", "windows"), ("share_window", "share_windows"), ("sample", "share_samples")):
        default = exporter_flags.get(flag_name)
        if check(var in variables and default is not None,
                 f"variable {var} and the exporter's --{flag_name} default exist"):
            values = set(variables[var]["query"].split(","))
            check(values <= set(default.split(",")),
                  f"variable {var} values {sorted(values)} are among the exporter's --{flag_name}={default}")
    check(any(t.startswith("Ingest") for t in titles), "an ingest health row")
    # Issue 19: the week-over-week ΔHHI decomposition and the alert that points at it.
    check(any(t.startswith("Who moved concentration this week") for t in titles),
          "a panel 'who moved concentration this week'")
    check(any("hubmetrics_hhi_change_contribution" in t["expr"] for p in dash["panels"]
              for t in p.get("targets", [])), "a panel reads hubmetrics_hhi_change_contribution")
    check("change_top" in exporter_flags and "hhi_change_alert_bound" in exporter_flags,
          "the exporter defines --change_top and --hhi_change_alert_bound")
    for p in dash["panels"]:
        if p["type"] == "row":
            continue
        check(p.get("datasource", {}).get("uid") in uids, f"panel {p['title']} uses the provisioned datasource")
        check(bool(p.get("targets")), f"panel {p['title']} has queries")
        for t in p.get("targets", []):
            for var in re.findall(r"\$(\w+)", t["expr"]):
                check(var in variables or var.startswith("__"), f"panel {p['title']}: ${var} is defined")
    return paths


def compose_binary(svc):
    """The binary a compose service of the hubmetrics image runs (its command is args)."""
    return binary_of({"entrypoint": svc.get("entrypoint")})


def compose_command(svc):
    cmd = svc.get("command", [])
    return cmd.split() if isinstance(cmd, str) else list(cmd)


def check_compose_services(deploy, compose, flags, where, sources_exist=True):
    """Mounted files exist, ports are published on 127.0.0.1 only, and the hubmetrics
    services' commands name flags of the binary they run. Returns the mount targets."""
    targets = set()
    for name, svc in compose["services"].items():
        for v in svc.get("volumes", []):
            src, dst = v.split(":")[:2]
            targets.add(dst)
            if src.startswith(".") and sources_exist:
                check(os.path.exists(os.path.join(deploy, src)), f"{where}{name}: {src} exists")
        for p in svc.get("ports", []):
            check(str(p).startswith("127.0.0.1:"), f"{where}{name}: port {p} published on 127.0.0.1 only")
        if str(svc.get("image", "")).startswith("hubmetrics:"):
            binary = compose_binary(svc)
            if binary in ("hubmetricsd", "hubmetrics-exporter"):
                for a in compose_command(svc):
                    flags.check_line(binary, a, f"{where}{name} command")
    return targets


def merge_compose(base, override):
    """docker compose's merge of an override, as far as these checks need: keys of a
    service replaced, volumes merged by their target in the container."""
    merged = {"services": {n: dict(s) for n, s in base["services"].items()},
              "volumes": dict(base.get("volumes") or {})}
    for name, svc in override["services"].items():
        m = merged["services"].setdefault(name, {})
        for k, v in svc.items():
            if k == "volumes":
                by_target = {x.split(":")[1]: x for x in m.get("volumes", [])}
                by_target.update({x.split(":")[1]: x for x in v})
                m["volumes"] = list(by_target.values())
            else:
                m[k] = v
    merged["volumes"].update(override.get("volumes") or {})
    return merged


def check_compose(deploy, provider_paths, flags):
    compose = yaml.safe_load(open(os.path.join(deploy, "docker-compose.yml")))
    targets = check_compose_services(deploy, compose, flags, "compose ")
    check(provider_paths <= targets, f"Grafana provider path {provider_paths} is mounted")
    check({"kafka", "hubmetricsd", "exporter", "prometheus", "grafana"} <= set(compose["services"]), "compose services")
    check("KAFKA_PROCESS_ROLES" in compose["services"]["kafka"]["environment"], "Kafka runs in KRaft mode")
    tls = yaml.safe_load(open(os.path.join(deploy, "docker-compose.tls.yml")))
    # deploy/tls/ is made by the user and never committed.
    check_compose_services(deploy, merge_compose(compose, tls), flags, "compose + tls ", sources_exist=False)
    return compose


def check_compose_scaleout(deploy, base, flags):
    """docker-compose.yml + docker-compose.scaleout.yml: 3 dedup instances with their own
    transactional ids and one key file, 2 metrics replicas on volumes of their own, each
    polled by an exporter that Prometheus scrapes, all on one unique topic."""
    w = "compose scaleout: "
    c = merge_compose(base, yaml.safe_load(open(os.path.join(deploy, "docker-compose.scaleout.yml"))))
    check_compose_services(deploy, c, flags, w)
    svcs = c["services"]
    daemons = {n: compose_command(s) for n, s in svcs.items()
               if str(s.get("image", "")).startswith("hubmetrics:") and compose_binary(s) == "hubmetricsd"}
    dedups = {n: a for n, a in daemons.items() if flag(a, "role") == "dedup"}
    metrics = {n: a for n, a in daemons.items() if flag(a, "role") == "metrics"}
    check(len(dedups) == 3, f"{w}3 dedup services, got {sorted(dedups)}")
    check(len(metrics) == 2, f"{w}2 metrics replicas, got {sorted(metrics)}")
    check(set(daemons) == set(dedups) | set(metrics), f"{w}no hubmetricsd of role all ({sorted(set(daemons) - set(dedups) - set(metrics))})")

    def volume_of(name, path):
        return next((v.split(":")[0] for v in svcs[name].get("volumes", [])
                     if path and (path + "/").startswith(v.split(":")[1].rstrip("/") + "/")), None)

    # A container's hostname changes when it is recreated: each needs its id spelled out.
    tids = [flag(a, "transactional_id") for a in dedups.values()]
    check(None not in tids and len(set(tids)) == len(tids), f"{w}distinct --transactional_id per dedup instance ({tids})")
    keys = {(flag(a, "user_hash_key_file"), volume_of(n, flag(a, "user_hash_key_file"))) for n, a in dedups.items()}
    check(len(keys) == 1 and None not in next(iter(keys)),
          f"{w}the dedup instances read one --user_hash_key_file from one volume ({keys})")
    check(all(flag(a, "state_dir") is None for a in dedups.values()), f"{w}no --state_dir on the dedup instances")
    check(len({effective(a, "group_id", flags) for a in dedups.values()}) == 1, f"{w}the dedup instances share one --group_id")
    for name in ("unique_topic", "kafka_brokers"):
        values = {n: effective(a, name, flags) for n, a in {**dedups, **metrics}.items()}
        check(len(set(values.values())) == 1, f"{w}dedup and metrics have the same --{name} ({values})")

    state = {n: volume_of(n, flag(a, "state_dir")) for n, a in metrics.items()}
    others = {v.split(":")[0] for n, s in svcs.items() if n not in metrics for v in s.get("volumes", [])}
    check(None not in state.values() and len(set(state.values())) == len(state)
          and all(v in c["volumes"] and v not in others for v in state.values()),
          f"{w}each metrics replica keeps --state_dir on a named volume of its own ({state})")

    exporters = {n: compose_command(s) for n, s in svcs.items()
                 if str(s.get("image", "")).startswith("hubmetrics:") and compose_binary(s) == "hubmetrics-exporter"}
    scrape = set()
    for n, a in metrics.items():
        port = (flag(a, "grpc_listen") or "").rsplit(":", 1)[-1]
        polled = [e for e, ea in exporters.items() if flag(ea, "target") == f"{n}:{port}"]
        if check(len(polled) == 1, f"{w}one exporter polls {n}:{port} ({polled})"):
            scrape.add(f"{polled[0]}:{(flag(exporters[polled[0]], 'listen') or '').rsplit(':', 1)[-1]}")
    prom = next((v.split(":")[0] for v in svcs.get("prometheus", {}).get("volumes", [])
                 if v.split(":")[1] == "/etc/prometheus/prometheus.yml"), None)
    if check(prom is not None and os.path.exists(os.path.join(deploy, prom)), f"{w}Prometheus has a config ({prom})"):
        config = yaml.safe_load(open(os.path.join(deploy, prom)))
        jobs = {j["job_name"]: {t for sc in j.get("static_configs", []) for t in sc["targets"]}
                for j in config["scrape_configs"]}
        check(jobs.get("hubmetrics") == scrape,
              f"{w}Prometheus job hubmetrics scrapes every replica's exporter {sorted(scrape)} ({prom}: {jobs})")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--deploy", required=True)
    ap.add_argument("--src", help="source tree whose flag definitions are checked (default: DEPLOY_DIR/..)")
    args = ap.parse_args()
    flags = Flags(args.src or os.path.join(args.deploy, ".."))
    check_k8s(os.path.join(args.deploy, "k8s"), flags)
    check_k8s_tls(os.path.join(args.deploy, "k8s-tls"), flags)
    check_k8s_scaleout(os.path.join(args.deploy, "k8s-scaleout"), flags)
    base = check_compose(args.deploy, check_grafana(args.deploy, flags), flags)
    check_compose_scaleout(args.deploy, base, flags)
    print(f"deploy checks: {len(failures)} failed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
