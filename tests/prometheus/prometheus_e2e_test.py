#!/usr/bin/env python3
"""End-to-end: hubmetricsd -> hubmetrics-exporter -> the real Prometheus -> the dashboard's queries.

1. loadgen writes a sample (or, without loadgen, a small NDJSON sample written here);
   hubmetricsd ingests it from files until source_exhausted.
2. hubmetrics-exporter polls the daemon; Prometheus (Debian's server) scrapes the
   exporter every second with deploy/prometheus/rules.yml loaded.
3. Every query of every panel of deploy/grafana/dashboards/hubmetrics.json, with the
   dashboard variables substituted (each combination of their values: filter,
   attribution and window of the concentration rows, sample and share_window of the
   attribute rows), returns data from Prometheus' /api/v1/query.
4. hubmetrics_hhi in Prometheus equals GetConcentration's hhi (via hubctl --json) to
   1e-9 relative, for a trailing window and for week:current; the attribute families
   (hubmetrics_attribute_share and _downloads) of a few levels, samples and windows hold
   exactly the daemon's leaderboard (GetTopEntities via hubctl): its top --share_top
   entities, and "(other)" = the total minus theirs. The week-over-week change families hold
   ExplainChange's answer (hubctl change) for every concentration view, and the alert
   HubmetricsHhiMovedThisWeek fires for exactly the views whose |ΔHHI| is above the
   exporter's bound (set between two views' changes), naming the command that explains it.
5. The daemon is stopped: the exporter keeps answering /metrics, with hubmetrics_up 0.

All processes listen on 127.0.0.1 and are stopped at the end, also on failure.
Python standard library only. Prints "N passed, N failed" last; exits 77 (skipped)
when the prometheus server is not installed.

  prometheus_e2e_test.py --bin_dir BUILD/services --deploy DEPLOY_DIR [--events 20000] [--keep]
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "e2e"))
from e2e_test import free_port  # noqa: E402

REL_TOL = 1e-9
SHARE_TOP = 3  # the exporter's --share_top: small, so that "(other)" holds several values
CHANGE_TOP = 3  # the exporter's --change_top
OTHER = "(other)"
DEADLINE_S = 420  # the whole test; ctest's own limit is 600 s


def log(msg: str) -> None:
    print(f"[prometheus-e2e {time.strftime('%H:%M:%S')}] {msg}", flush=True)


class Checker:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, ok: bool, what: str, detail: str = "") -> bool:
        if ok:
            self.passed += 1
        else:
            self.failed += 1
            print(f"FAIL {what}" + (f"\n    {detail}" if detail else ""), flush=True)
        return ok


def http_get(url: str, timeout: float = 5) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode("utf-8", errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", errors="replace")
    except (urllib.error.URLError, OSError) as e:
        return 0, str(e)


def wait_for(what: str, predicate, timeout: float, interval: float = 0.25):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


class Processes:
    """Everything started here, stopped in reverse order whatever happens."""

    def __init__(self, work: str):
        self.work = work
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str, argv: list[str]) -> subprocess.Popen:
        logf = open(os.path.join(self.work, f"{name}.log"), "ab")
        p = subprocess.Popen(argv, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        logf.close()
        self.procs[name] = p
        return p

    def stop(self, name: str, timeout: float = 20) -> int | None:
        p = self.procs.get(name)
        if p is None or p.poll() is not None:
            return None if p is None else p.returncode
        p.send_signal(signal.SIGTERM)
        try:
            return p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            return p.wait()

    def stop_all(self) -> None:
        for name in reversed(list(self.procs)):
            self.stop(name, timeout=10)

    def tail(self, name: str, lines: int = 15) -> str:
        try:
            with open(os.path.join(self.work, f"{name}.log"), errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""


def write_small_sample(events_path: str, models_path: str) -> None:
    """A fallback sample when loadgen is not built: a few models with every catalog field the
    attribute levels read (and one with no record), skewed downloads, duplicates and a rejected
    record. Country has more values than SHARE_TOP, so "(other)" holds some."""
    models = [
        {"model_id": "org-a/big", "developer": "org-a", "country": "US", "org_type": "company",
         "created_at": "2024-11-02T00:00:00Z", "license": "apache-2.0", "pipeline_tag": "text-generation",
         "parameters": "7000000000"},
        {"model_id": "org-a/small", "developer": "org-a", "country": "US", "org_type": "company",
         "created_at": "2024-12-01T00:00:00Z", "license": "mit", "pipeline_tag": "image-classification",
         "parameters": "90000000"},
        {"model_id": "org-b/tune", "developer": "org-b", "country": "CN", "org_type": "university",
         "created_at": "2025-01-01T00:00:00Z", "base_model": "org-a/big", "base_relation": "finetune",
         "license": "llama2", "pipeline_tag": "text-generation", "parameters": "7000000000"},
        {"model_id": "org-c/other", "developer": "org-c", "country": "FR", "org_type": "non_profit",
         "created_at": "2025-01-10T00:00:00Z", "license": "cc-by-4.0",
         "pipeline_tag": "automatic-speech-recognition", "parameters": "300000000"},
        {"model_id": "org-d/q4", "developer": "org-d", "country": "DE", "org_type": "user",
         "created_at": "2025-01-20T00:00:00Z", "base_model": "org-a/big", "base_relation": "quantized",
         "pipeline_tag": "text-generation", "parameters": "7000000000"},
    ]
    # "solo" has no catalog record: country Unknown, every attribute unknown.
    weights = {"org-a/big": 40, "org-a/small": 10, "org-b/tune": 25, "org-c/other": 5, "org-d/q4": 8,
               "solo": 3}
    with open(models_path, "w") as f:
        for m in models:
            f.write(json.dumps(m) + "\n")
    with open(events_path, "w") as f:
        for day in range(1, 29):
            for model, n in weights.items():
                for u in range(n):
                    e = {"model_id": model, "user_id": f"u-{u}", "time": f"2025-02-{day:02d}T12:00:00Z"}
                    f.write(json.dumps(e) + "\n")
                    if u % 7 == 0:
                        f.write(json.dumps(e) + "\n")  # a duplicate
        f.write('{"model_id": 12}\n')  # rejected


def iso_week(day: datetime.date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def substitute(expr: str, values: dict[str, str]) -> str:
    builtins = {"__rate_interval": "1m", "__interval": "1s", "__range": "5m"}

    def repl(m: re.Match) -> str:
        name = m.group(1) or m.group(2)
        if name in values:
            return values[name]
        if name in builtins:
            return builtins[name]
        raise KeyError(f"dashboard variable ${name} has no value")

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", repl, expr)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin_dir", required=True)
    ap.add_argument("--deploy", required=True)
    ap.add_argument("--events", type=int, default=20000)
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()

    prometheus = shutil.which("prometheus")
    if prometheus is None:
        print("SKIP: the prometheus server is not installed (scripts/bootstrap installs it)")
        return 77
    bins = {
        "hubmetricsd": os.path.join(args.bin_dir, "hubmetricsd", "hubmetricsd"),
        "hubctl": os.path.join(args.bin_dir, "hubctl", "hubctl"),
        "exporter": os.path.join(args.bin_dir, "exporter", "hubmetrics-exporter"),
    }
    for name, path in bins.items():
        if not os.access(path, os.X_OK):
            print(f"FAIL {name} is not built at {path}")
            print("0 passed, 1 failed")
            return 1
    loadgen = os.path.join(args.bin_dir, "loadgen", "loadgen")

    c = Checker()
    started = time.monotonic()
    work = tempfile.mkdtemp(prefix="hubmetrics-prom-e2e-")
    procs = Processes(work)
    try:
        events = os.path.join(work, "events.ndjson")
        models = os.path.join(work, "models.ndjson")
        if os.access(loadgen, os.X_OK):
            log(f"loadgen: {args.events} events")
            subprocess.run([loadgen, f"--out={events}", f"--models_out={models}",
                            f"--events={args.events}", "--seed=7"],
                           check=True, capture_output=True, timeout=120)
        else:
            log("loadgen not built: writing a small sample")
            write_small_sample(events, models)

        grpc_addr = f"127.0.0.1:{free_port()}"
        procs.start("hubmetricsd", [bins["hubmetricsd"], f"--state_dir={os.path.join(work, 'state')}",
                                    f"--grpc_listen={grpc_addr}", f"--events_file={events}",
                                    f"--models_file={models}"])

        def hubctl(*argv: str) -> dict | None:
            p = subprocess.run([bins["hubctl"], f"--addr={grpc_addr}", "--json", *argv],
                               capture_output=True, timeout=30)
            if p.returncode != 0:
                return None
            try:
                return json.loads(p.stdout)
            except ValueError:
                return None

        def exhausted():
            if procs.procs["hubmetricsd"].poll() is not None:
                raise RuntimeError(f"hubmetricsd exited:\n{procs.tail('hubmetricsd')}")
            s = hubctl("stats")
            return s if s and s.get("source_exhausted") else None

        stats = wait_for("hubmetricsd to ingest the sample", exhausted, 180)
        log(f"daemon ingested: unique={stats.get('unique_downloads')} rejected={stats.get('rejected')}")

        # The week-over-week change of every concentration view, as the daemon explains it; the
        # alert bound is put between two of them, so that some views fire and some do not.
        wm = stats.get("watermark")
        changes: dict[tuple[str, str, str], dict] = {}
        bound = 0.5
        if c.check(bool(wm), "the daemon has a watermark"):
            day = datetime.date.fromisoformat(wm[:10])
            to_week, from_week = iso_week(day), iso_week(day - datetime.timedelta(days=7))
            for view in itertools.product(("model", "developer", "country"), ("all", "rolling_1y"),
                                          ("direct", "recursive")):
                got = hubctl("change", f"--level={view[0]}", f"--filter={view[1]}",
                             f"--attribution={view[2]}", f"--from=week:{from_week}",
                             f"--to=week:{to_week}", f"--k={CHANGE_TOP}")
                if c.check(got is not None, f"hubctl change {'/'.join(view)} answers"):
                    changes[view] = got
            moves = sorted({abs(float(g.get("delta_hhi", 0.0))) for g in changes.values()})
            if c.check(len(moves) >= 2, "views moved by different amounts week over week", str(moves)):
                mid = len(moves) // 2
                bound = (moves[mid - 1] + moves[mid]) / 2
            log(f"week over week {from_week} -> {to_week}: |ΔHHI| {moves}; alert bound {bound!r}")

        metrics_addr = f"127.0.0.1:{free_port()}"
        procs.start("exporter", [bins["exporter"], f"--target={grpc_addr}", f"--listen={metrics_addr}",
                                 "--poll_interval=500ms", "--top_entities=10", f"--share_top={SHARE_TOP}",
                                 f"--change_top={CHANGE_TOP}", f"--hhi_change_alert_bound={bound!r}"])
        metrics_url = f"http://{metrics_addr}/metrics"
        wait_for("the exporter to report hubmetrics_up 1",
                 lambda: "\nhubmetrics_up 1\n" in ("\n" + http_get(metrics_url)[1]), 30)

        prom_addr = f"127.0.0.1:{free_port()}"
        rules = os.path.join(work, "rules.yml")
        shutil.copy(os.path.join(args.deploy, "prometheus", "rules.yml"), rules)
        prom_config = os.path.join(work, "prometheus.yml")
        with open(prom_config, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                    f"rule_files:\n  - {rules}\n"
                    "scrape_configs:\n  - job_name: hubmetrics\n"
                    f"    static_configs:\n      - targets: ['{metrics_addr}']\n")
        procs.start("prometheus", [prometheus, f"--config.file={prom_config}",
                                   f"--storage.tsdb.path={os.path.join(work, 'tsdb')}",
                                   f"--web.listen-address={prom_addr}", "--log.level=warn"])
        api = f"http://{prom_addr}/api/v1/query?"

        def query(expr: str) -> tuple[list | None, str]:
            status, body = http_get(api + urllib.parse.urlencode({"query": expr}), timeout=10)
            try:
                doc = json.loads(body)
            except ValueError:
                return None, f"HTTP {status}: {body[:200]}"
            if doc.get("status") != "success":
                return None, f"{doc.get('errorType')}: {doc.get('error')}"
            return doc["data"]["result"], ""

        # Enough samples for rate() over 1m: at least 5 scrapes of the exporter.
        wait_for("Prometheus to hold 5 scrapes of the exporter",
                 lambda: (query('count_over_time(hubmetrics_up[1m]) >= 5')[0] or None), 90, 0.5)
        rules_status, rules_body = http_get(f"http://{prom_addr}/api/v1/rules")
        c.check(rules_status == 200 and '"HubmetricsRejectedShareHigh"' in rules_body,
                "Prometheus loaded deploy/prometheus/rules.yml", rules_body[:200])

        # 3. Every panel's queries, every combination of the dashboard variables.
        with open(os.path.join(args.deploy, "grafana", "dashboards", "hubmetrics.json"), encoding="utf-8") as f:
            dash = json.load(f)
        variables = {v["name"]: [o["value"] for o in v["options"]] for v in dash["templating"]["list"]}
        names = sorted(variables)
        panels = [p for p in dash["panels"] if p["type"] != "row"]
        queries = 0
        seen = set()  # an expression that does not use a variable is asked once
        for combo in itertools.product(*(variables[n] for n in names)):
            values = dict(zip(names, combo))
            for p in panels:
                for t in p["targets"]:
                    expr = substitute(t["expr"], values)
                    if expr in seen:
                        continue
                    seen.add(expr)
                    result, err = query(expr)
                    queries += 1
                    c.check(bool(result), f"panel '{p['title']}' {t['refId']} with {values} returns data",
                            f"{expr}\n    {err or 'empty result'}")
        log(f"{queries} dashboard queries run over {len(panels)} panels")

        # 4. Prometheus holds what GetConcentration answers.
        watermark_week = f"week:{iso_week(datetime.date.fromisoformat(wm[:10]))}" if wm else None
        for level, filt, attribution, window, request_window in (
                ("model", "all", "direct", "trailing:4", "trailing:4"),
                ("developer", "rolling_1y", "recursive", "trailing:52", "trailing:52"),
                ("country", "all", "direct", "week:current", watermark_week)):
            what = f"hubmetrics_hhi {level}/{filt}/{attribution} {window}"
            if not c.check(request_window is not None, f"{what}: daemon has a watermark"):
                continue
            got = hubctl("concentration", f"--level={level}", f"--filter={filt}",
                         f"--attribution={attribution}", f"--window={request_window}")
            result, err = query(f'hubmetrics_hhi{{level="{level}",filter="{filt}",'
                                f'attribution="{attribution}",window="{window}"}}')
            if not c.check(got is not None and bool(result) and len(result) == 1, f"{what}: both answer",
                           f"hubctl {got!r:.200}; prometheus {result!r:.200} {err}"):
                continue
            expected = float(got.get("hhi", 0.0))
            actual = float(result[0]["value"][1])
            c.check(expected > 0 and abs(actual - expected) <= REL_TOL * abs(expected),
                    f"{what}: Prometheus {actual!r} == GetConcentration {expected!r}")

        # 4b. The attribute families hold the daemon's leaderboard of each share view: the top
        # SHARE_TOP by name and "(other)" for the rest, downloads exact, shares to REL_TOL.
        folded = False
        for level, sample, window in (("org_type", "all", "all"), ("size", "head", "trailing:52"),
                                      ("license", "all", "week:current"), ("derivation", "head", "all"),
                                      ("country", "all", "trailing:52")):
            what = f"hubmetrics_attribute_* {level} sample {sample} {window}"
            got = hubctl("top", f"--level={level}", f"--sample={sample}", f"--window={window}", "--k=10000")
            selector = (f'{{level="{level}",filter="all",attribution="direct",sample="{sample}",'
                        f'window="{window}"}}')
            downloads, err_d = query(f"hubmetrics_attribute_downloads{selector}")
            shares, err_s = query(f"hubmetrics_attribute_share{selector}")
            if not c.check(got is not None and bool(downloads) and bool(shares), f"{what}: both answer",
                           f"hubctl {got!r:.200}; prometheus {downloads!r:.200} {err_d} {err_s}"):
                continue
            top = got.get("top", [])
            total = int(got.get("total_downloads", 0))
            c.check(total > 0 and len(top) == int(got.get("entities", 0)),
                    f"{what}: the daemon listed every entity ({len(top)} of {got.get('entities')})")
            expected = {e["entity"]: int(e.get("downloads", 0)) for e in top[:SHARE_TOP]}
            expected[OTHER] = total - sum(expected.values())
            expected_share = {e["entity"]: float(e.get("share", 0.0)) for e in top[:SHARE_TOP]}
            expected_share[OTHER] = expected[OTHER] / total if total else 0.0
            actual = {r["metric"].get("entity"): int(float(r["value"][1])) for r in downloads}
            c.check(actual == expected, f"{what}: downloads equal the daemon's top {SHARE_TOP} and the rest",
                    f"prometheus {actual}\n    daemon     {expected}")
            c.check(len(actual) <= SHARE_TOP + 1, f"{what}: at most {SHARE_TOP} + 1 series")
            c.check(sum(actual.values()) == total, f"{what}: the series add up to the daemon's total {total}")
            actual_share = {r["metric"].get("entity"): float(r["value"][1]) for r in shares}
            c.check(actual_share.keys() == expected_share.keys()
                    and all(abs(actual_share[k] - v) <= REL_TOL * max(abs(v), 1e-300)
                            for k, v in expected_share.items()),
                    f"{what}: shares equal the daemon's",
                    f"prometheus {actual_share}\n    daemon     {expected_share}")
            folded = folded or expected[OTHER] > 0
        c.check(folded, f"some view has more than {SHARE_TOP} entities, summed into {OTHER}")

        # 4c. Who moved concentration: the change families hold ExplainChange's answer (the top
        # movers by name, the other parts, adding up to the change), and the alert fires for
        # exactly the views whose |ΔHHI| is above the bound, naming the command that explains it.
        series, err = query("hubmetrics_hhi_week_over_week_change")
        exported = {(r["metric"].get("level"), r["metric"].get("filter"), r["metric"].get("attribution")):
                    r for r in (series or [])}
        c.check(set(exported) == set(changes), "a week-over-week change series per concentration view",
                f"prometheus {sorted(exported)} {err}\n    daemon     {sorted(changes)}")
        for view, got in changes.items():
            what = f"ΔHHI {'/'.join(view)}"
            r = exported.get(view)
            if r is None:
                continue
            delta = float(got.get("delta_hhi", 0.0))
            c.check(abs(float(r["value"][1]) - delta) <= REL_TOL * max(abs(delta), 1e-300)
                    and r["metric"].get("from_week") == from_week and r["metric"].get("to_week") == to_week,
                    f"{what}: Prometheus equals ExplainChange, weeks {from_week} -> {to_week}",
                    f"{r} vs {delta}")
            parts, err = query(f'hubmetrics_hhi_change_contribution{{level="{view[0]}",'
                               f'filter="{view[1]}",attribution="{view[2]}"}}')
            actual = {(x["metric"].get("part"), x["metric"].get("entity")): float(x["value"][1])
                      for x in (parts or [])}
            expected = {("top_mover", m["entity"]): float(m.get("contribution", 0.0))
                        for m in got.get("top_movers", [])}
            for part, entity in (("other_entrants", "(other entrants)"), ("other_exits", "(other exits)"),
                                 ("rest", "(rest)")):
                expected[(part, entity)] = float(got.get(part, {}).get("contribution", 0.0))
            c.check(actual.keys() == expected.keys()
                    and all(abs(actual[k] - v) <= 1e-12 + REL_TOL * abs(v) for k, v in expected.items()),
                    f"{what}: contributions equal ExplainChange's top {CHANGE_TOP} and parts",
                    f"prometheus {actual} {err}\n    daemon     {expected}")
            c.check(abs(sum(actual.values()) - delta) <= 1e-12, f"{what}: the parts add up to the change",
                    f"{sum(actual.values())!r} vs {delta!r}")

        firing_expected = {v for v, g in changes.items() if abs(float(g.get("delta_hhi", 0.0))) > bound}

        def firing():
            status, body = http_get(f"http://{prom_addr}/api/v1/alerts")
            if status != 200:
                return None
            alerts = [a for a in json.loads(body)["data"]["alerts"]
                      if a["labels"].get("alertname") == "HubmetricsHhiMovedThisWeek" and a["state"] == "firing"]
            got = {(a["labels"].get("level"), a["labels"].get("filter"), a["labels"].get("attribution")): a
                   for a in alerts}
            return got if set(got) == firing_expected else None
        try:
            alerts = wait_for(f"HubmetricsHhiMovedThisWeek to fire for {len(firing_expected)} views",
                              firing, 30, 0.5)
            c.check(bool(firing_expected) and len(firing_expected) < len(changes),
                    f"the alert fires for the {len(firing_expected)} of {len(changes)} views above the bound")
            for view, a in alerts.items():
                command = (f"hubctl change --level={view[0]} --filter={view[1]} --attribution={view[2]} "
                           f"--from=week:{from_week} --to=week:{to_week}")
                c.check(command in a["annotations"].get("description", ""),
                        f"the alert on {'/'.join(view)} names `{command}`", str(a["annotations"]))
        except TimeoutError as e:
            status, body = http_get(f"http://{prom_addr}/api/v1/alerts")
            c.check(False, "HubmetricsHhiMovedThisWeek fires for exactly the views above the bound",
                    f"{e}; expected {sorted(firing_expected)}; alerts {body[:600]}")

        # 5. The daemon goes away; the exporter stays up and says so.
        log("stopping hubmetricsd")
        procs.stop("hubmetricsd")

        def down():
            status, body = http_get(metrics_url)
            return status == 200 and "\nhubmetrics_up 0\n" in "\n" + body and body
        try:
            body = wait_for("hubmetrics_up 0 on the exporter", down, 30)
            c.check(True, "hubmetrics_up drops to 0 while the daemon is down")
            # A poll that was under way when the daemon stopped keeps the views it had already
            # fetched (a failing view does not drop the others); the first poll that finds the
            # daemon gone (GetIngestStats fails) drops them all.
            try:
                body = wait_for("the view gauges to be dropped",
                                lambda: (b := down()) and "hubmetrics_hhi{" not in b and b, 15)
                c.check(True, "stale view gauges are dropped while the daemon is down")
            except TimeoutError as e:
                c.check(False, "stale view gauges are dropped while the daemon is down", str(e))
            errors = re.search(r"^hubmetrics_exporter_scrape_errors_total (\S+)$", body, re.M)
            c.check(errors is not None and float(errors.group(1)) >= 1, "the failed polls are counted")
        except TimeoutError as e:
            c.check(False, "hubmetrics_up drops to 0 while the daemon is down", str(e))
        c.check(procs.procs["exporter"].poll() is None, "the exporter is still running")
        status, _ = http_get(metrics_url)
        c.check(status == 200, "the exporter still answers /metrics", f"HTTP {status}")
        wait_for("Prometheus to see hubmetrics_up 0",
                 lambda: query("hubmetrics_up == 0")[0] or None, 20, 0.5)
        c.check(True, "Prometheus sees hubmetrics_up 0")
    except (TimeoutError, RuntimeError, subprocess.SubprocessError, OSError) as e:
        c.check(False, "the test ran to its end", f"{type(e).__name__}: {e}")
        for name in procs.procs:
            print(f"--- {name} log (tail) ---\n{procs.tail(name)}", flush=True)
    finally:
        procs.stop_all()
        if args.keep:
            log(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    log(f"took {time.monotonic() - started:.0f}s")
    print(f"{c.passed} passed, {c.failed} failed")
    return 1 if c.failed else 0


if __name__ == "__main__":
    signal.signal(signal.SIGALRM, lambda *_: (_ for _ in ()).throw(TimeoutError("whole-test deadline")))
    signal.alarm(DEADLINE_S)
    sys.exit(main())
