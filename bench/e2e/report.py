#!/usr/bin/env python3
"""Collects the figures of one scripts/bench run into one JSON object (full run: docs/BENCHMARKS.md).

scripts/bench calls it at the end; it reads what the steps left in --workdir:
  micro/<name>.json       Google Benchmark JSON of each bench/micro binary
  e2e.json                last line of bench/e2e/run_e2e.py --mode run
  e2e-produce.json        last line of bench/e2e/run_e2e.py --mode produce
  versus.json             last line of bench/e2e/versus.py (interleaved rounds of hubmetricsd,
                          the consume ceiling and the Kafka Streams peer; the sweep; the
                          --sync_commits catch-up)
  live.json, live-sync.json  last lines of run_e2e.py --mode live (defaults, --sync_commits)
  duckdb.json             last stdout line of bench/peers/duckdb/compare.py
  steps.json              {"errors": [...], "commands": [...], ...} written by scripts/bench
A missing or unreadable file gives null figures and an entry in "errors"; so do peer answers
that differ from hubmetricsd's.

  report.py --workdir DIR --mode quick|full [--json_out FILE] [--md_out docs/BENCHMARKS.md]
      [--results_dir bench/results]

Every table and sentence of the markdown is computed from the run's JSON (and, for the History
section, from the earlier full runs' JSON in --results_dir); only the "Soak" and "Scale-out"
sections of an existing file are kept, which soak.py and scaleout.py write from their own runs.
Commands are shown relative to the repository. Prints the JSON object as one line on stdout
(scripts/bench's last line). Exit 0 always; the caller decides from "errors".
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess

UNIT_NS = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}


def load_json_line(path: str, errors: list[str], what: str) -> dict | None:
    try:
        with open(path) as f:
            lines = [ln for ln in f.read().splitlines() if ln.strip().startswith("{")]
        if not lines:
            raise ValueError("no JSON line")
        return json.loads(lines[-1])
    except (OSError, ValueError) as e:
        errors.append(f"{what}: no result ({os.path.basename(path)}: {e})")
        return None


def micro_figures(workdir: str, errors: list[str]) -> dict:
    """{benchmark name: ns per iteration (real time)} over every micro/*.json."""
    out: dict[str, float] = {}
    d = os.path.join(workdir, "micro")
    if not os.path.isdir(d):
        errors.append("micro: no results")
        return out
    for name in sorted(os.listdir(d)):
        if not name.endswith(".json"):
            continue
        try:
            with open(os.path.join(d, name)) as f:
                data = json.load(f)
        except (OSError, ValueError) as e:
            errors.append(f"micro {name}: {e}")
            continue
        for b in data.get("benchmarks", []):
            if b.get("run_type", "iteration") != "iteration" or "error_occurred" in b:
                continue
            ns = float(b["real_time"]) * UNIT_NS.get(b.get("time_unit", "ns"), 1.0)
            out[b["name"]] = round(ns, 2)
    return out


def cpu_model() -> str:
    """lscpu's "Model name" (/proc/cpuinfo's "model name" where lscpu is missing)."""
    try:
        r = subprocess.run(["lscpu"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                           text=True, timeout=10, env={**os.environ, "LC_ALL": "C"})
        for line in r.stdout.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""



def cpu_flags() -> list[str]:
    """The CPU's flags (/proc/cpuinfo's first "flags" line)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return line.split(":", 1)[1].split()
    except OSError:
        pass
    return []


def java_version() -> str | None:
    """The first line of `java -version` (the JVM of the Kafka Streams peer and the broker)."""
    try:
        r = subprocess.run(["java", "-version"], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=30)
        lines = [ln for ln in r.stdout.splitlines() if ln.strip()]
        return " / ".join(lines[:2]) if lines else None
    except (OSError, subprocess.SubprocessError):
        return None


def load_average() -> list[float] | None:
    try:
        with open("/proc/loadavg") as f:
            return [float(x) for x in f.read().split()[:3]]
    except (OSError, ValueError):
        return None


def machine() -> dict:
    model = cpu_model()
    mem_gib = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    mem_gib = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu_model": model, "cpu_flags": cpu_flags(),
            "ram_gib": mem_gib, "kernel": platform.release(), "os": platform.platform(),
            "java": java_version(), "load_average": load_average()}


def git_commit(repo: str) -> str:
    try:
        r = subprocess.run(["git", "-C", repo, "rev-parse", "HEAD"], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True, timeout=10)
        commit = r.stdout.strip()
        r = subprocess.run(["git", "-C", repo, "status", "--porcelain", "--untracked-files=no"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, timeout=10)
        return commit + ("+dirty" if r.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def ratio(a, b):
    if a is None or b is None or not b:
        return None
    return round(a / b, 2)


def relative_command(cmd: str, repo: str) -> str:
    """A command as a user of the repository types it: the repository's absolute path removed
    (paths become relative to its root), the home directory as ~, `python3 bench/...` as
    `bench/...`; a build dir outside the repository shows as $BENCH_BUILD_DIR."""
    repo = os.path.abspath(repo).rstrip("/") + "/"
    out = cmd.replace(repo, "")
    build = os.environ.get("BENCH_BUILD_DIR")
    if build and os.path.isabs(build) and not os.path.abspath(build).startswith(repo):
        out = out.replace(os.path.abspath(build).rstrip("/"), "$BENCH_BUILD_DIR")
    home = os.path.expanduser("~")
    if home and home != "/":
        out = out.replace(home + "/", "~/")
    if out.startswith("python3 bench/"):
        out = out[len("python3 "):]
    return out


def without_repo_paths(x, repo: str):
    """`x` with the repository's absolute path removed from every string in it (paths become
    relative to its root): the results JSON is committed, and the scratch files it names (answers,
    dumps) are where the run kept them in the repository's build dir."""
    prefix = os.path.abspath(repo).rstrip("/") + "/"
    if isinstance(x, dict):
        return {k: without_repo_paths(v, repo) for k, v in x.items()}
    if isinstance(x, list):
        return [without_repo_paths(v, repo) for v in x]
    if isinstance(x, str):
        return x.replace(prefix, "")
    return x


def median_of(f: dict | None):
    return None if not f else f.get("median")


def build(workdir: str, mode: str, repo: str) -> dict:
    errors: list[str] = []
    steps = load_json_line(os.path.join(workdir, "steps.json"), errors, "steps") or {}
    errors = list(steps.get("errors", [])) + errors
    micro = micro_figures(workdir, errors)
    e2e = load_json_line(os.path.join(workdir, "e2e.json"), errors, "e2e") or {}
    produce = load_json_line(os.path.join(workdir, "e2e-produce.json"), errors, "e2e produce") or {}
    vs = load_json_line(os.path.join(workdir, "versus.json"), errors, "versus") or {}
    live = {}
    for tag in ("live", "live-sync"):
        path = os.path.join(workdir, f"{tag}.json")
        if os.path.exists(path):
            live[tag] = (load_json_line(path, errors, tag) or {}).get("live")
        elif steps.get("live_expected"):
            errors.append(f"{tag}: no result ({tag}.json missing)")
    duck = load_json_line(os.path.join(workdir, "duckdb.json"), errors, "duckdb")
    for name, part in (("e2e", e2e), ("e2e produce", produce), ("versus", vs)):
        errors += [f"{name}: {e}" for e in part.get("errors", [])]
    for tag, lv in live.items():
        if lv is None:
            errors.append(f"{tag}: no live search in its result")
    if duck is not None and duck.get("answers_equal") is not True:
        errors.append(f"duckdb: answers_equal is {duck.get('answers_equal')}")
    if vs and vs.get("answers_equal") is not True:
        errors.append(f"kstreams: answers_equal is {vs.get('answers_equal')} (the peer's unique "
                      f"downloads, rejects and weekly per-model counts must equal hubmetricsd's)")

    def g(d, k):
        return None if d is None else d.get(k)

    summ = vs.get("summary") or {}
    rounds = vs.get("rounds") or []
    peer_cfg = vs.get("peer_config") or {}
    peer_last = next((r.get("peer") for r in reversed(rounds) if r.get("peer")), None) or {}
    hub_med = median_of(summ.get("hub_events_per_sec"))
    # The headline catch-up rate: the median of the interleaved rounds when they ran on the e2e
    # topic, else the e2e run's own catch-up.
    catchup_eps = hub_med if (hub_med is not None and vs.get("same_topic_as_e2e")) \
        else e2e.get("events_per_sec")
    commit_ms = None
    for f in peer_cfg.get("flags") or []:
        if f.startswith("--commit_interval_ms="):
            commit_ms = int(f.split("=", 1)[1])
    sync = vs.get("sync_commits") or {}
    result = {
        "mode": mode,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "started": steps.get("started"),
        "git_commit": git_commit(repo),
        "machine": machine(),
        "load_average_at_start": steps.get("load_average_at_start"),
        "events": e2e.get("events") or vs.get("events"),
        "events_per_sec": catchup_eps,
        "events_per_sec_is": ("catch-up: median of the interleaved rounds, process start to lag 0 "
                              "on a topic written beforehand" if catchup_eps == hub_med and
                              hub_med is not None else
                              "catch-up: the e2e run, process start to lag 0 on a topic written "
                              "beforehand"),
        "e2e_ingest_events_per_sec": e2e.get("events_per_sec"),
        "cpu_seconds_per_million_events": e2e.get("cpu_seconds_per_million_events"),
        "peak_rss_mb": e2e.get("peak_rss_mb"),
        "peak_rss_mb_all_phases": e2e.get("peak_rss_mb_all_phases"),
        "state_bytes_per_unique": e2e.get("state_bytes_per_unique"),
        "state_bytes_per_unique_excluding_wal": e2e.get("state_bytes_per_unique_excluding_wal"),
        "unique_downloads": e2e.get("unique_downloads"),
        "duplicates": e2e.get("duplicates"),
        "rejected": e2e.get("rejected"),
        "freshness_p50_ms": e2e.get("freshness_p50_ms"),
        "freshness_p99_ms": e2e.get("freshness_p99_ms"),
        "query_p50_ms": e2e.get("query_p50_ms"),
        "query_p99_ms": e2e.get("query_p99_ms"),
        "query_p99_ms_client_realtime": e2e.get("query_p99_ms_client_realtime"),
        "query_floor_p99_ms": e2e.get("query_floor_p99_ms"),
        "query_realtime_p50_ms": e2e.get("query_realtime_p50_ms"),
        "query_realtime_p99_ms": e2e.get("query_realtime_p99_ms"),
        "freshness_p99_ms_during_realtime_queries":
            e2e.get("freshness_p99_ms_during_realtime_queries"),
        "kstreams_events": vs.get("rounds_events"),
        "kstreams_same_topic": True if rounds else None,
        "kstreams_rounds": len([r for r in rounds if r.get("ratio") is not None]),
        "kstreams_events_per_sec": median_of(summ.get("peer_events_per_sec")),
        "kstreams_cpu_seconds_per_million_events":
            median_of(summ.get("peer_cpu_seconds_per_million_events")),
        "kstreams_peak_rss_mb": median_of(summ.get("peer_peak_rss_mb")),
        "kstreams_config": peer_cfg.get("name"),
        "kstreams_commit_interval_ms": commit_ms,
        "kstreams_answers_equal": vs.get("answers_equal") if vs else None,
        "ratio_vs_kstreams": median_of(summ.get("ratio")),
        "ratio_vs_kstreams_range": ([summ["ratio"]["min"], summ["ratio"]["max"]]
                                    if summ.get("ratio") else None),
        "consume_ceiling_events_per_sec": median_of(summ.get("consume_ceiling_events_per_sec")),
        "fraction_of_consume_ceiling": median_of(summ.get("fraction_of_consume_ceiling")),
        "sync_commits_events_per_sec": sync.get("events_per_sec"),
        "live_max_events_per_sec": g(live.get("live"), "max_events_per_sec"),
        "live_limited_by": g(live.get("live"), "limited_by"),
        "live_sync_commits_max_events_per_sec": g(live.get("live-sync"), "max_events_per_sec"),
        "live_sync_commits_limited_by": g(live.get("live-sync"), "limited_by"),
        "duckdb_events": g(duck, "events"),
        "duckdb_seconds": g(duck, "duckdb_seconds"),
        "hubmetrics_seconds_same_file": g(duck, "hubmetrics_seconds_same_file"),
        # The median of the rounds' paired ratios (compare.py interleaves DuckDB and hubmetricsd).
        "ratio_vs_duckdb": g(duck, "ratio_duckdb_over_hubmetrics"),
        "ratio_vs_duckdb_range": g(duck, "ratio_range"),
        "duckdb_rounds": g(duck, "rounds"),
        "duckdb_parquet_seconds": g(duck, "duckdb_parquet_seconds"),
        "ratio_vs_duckdb_parquet": g(duck, "ratio_duckdb_parquet_over_hubmetrics"),
        "duckdb_answers_equal": g(duck, "answers_equal"),
        "query_server_cpu_us": e2e.get("query_server_cpu_us"),
        "batch_answers_per_sec": e2e.get("batch_answers_per_sec"),
        "batch_p99_ms": e2e.get("batch_p99_ms"),
        "batch_size": e2e.get("batch_size"),
        "update_ns_at_1e7": micro.get("BM_Add/10000000"),
        "recompute_ns_at_1e7": micro.get("BM_RecomputeConcentration/10000000"),
        "micro_ns": micro,
        "e2e": e2e or None,
        "e2e_produce": produce or None,
        "versus": vs or None,
        "kstreams": peer_last or None,
        "live": live.get("live"),
        "live_sync_commits": live.get("live-sync"),
        "duckdb": duck,
        "commands": [relative_command(c, repo) for c in steps.get("commands", [])],
        "warnings": [relative_command(x, repo) for x in
                     list(steps.get("notes", [])) + list(vs.get("notes", []))
                     + list(e2e.get("warnings", []))],
        "errors": [relative_command(x, repo) for x in errors],
    }
    return without_repo_paths(result, repo)


def targets(r: dict) -> list[tuple[str, str, str]]:
    """(target, measured, met/missed/not measured) of issues 5 and 18."""

    def check(value, ok, fmt_):
        if value is None:
            return "—", "not measured"
        return fmt_.format(value), "met" if ok(value) else "missed"

    rows = []
    rows.append(("≥ 1,000,000 raw events/s catch-up (a topic written beforehand) into exact, "
                 "crash-safe state",
                 *check(r["events_per_sec"], lambda v: v >= 1e6, "{:,} events/s")))
    rng = r.get("ratio_vs_kstreams_range")
    measured, verdict = check(r["ratio_vs_kstreams"], lambda v: v >= 5, "{}×")
    if rng and r.get("kstreams_rounds", 0) > 1:
        measured += f" (median of {r['kstreams_rounds']} rounds, range {rng[0]}–{rng[1]}×)"
    rows.append(("≥ 5× the tuned Kafka Streams peer on the same topic, interleaved",
                 measured, verdict))
    rows.append(("the peer's unique downloads, rejects and weekly per-model counts equal "
                 "hubmetricsd's",
                 *check(r.get("kstreams_answers_equal"), lambda v: v is True, "{}")))
    rows.append(("`ratio_vs_duckdb` ≥ 2 (DuckDB seconds / hubmetricsd seconds, same file)",
                 *check(r.get("ratio_vs_duckdb"), lambda v: v >= 2, "{}×")))
    rows.append(("freshness p99 < 1 s at 100,000 events/s",
                 *check(r["freshness_p99_ms"], lambda v: v < 1000, "{} ms")))
    rps = ((r.get("e2e") or {}).get("query") or {}).get("rps_target")
    measured, verdict = check(r["query_p99_ms"], lambda v: v < 1, "{} ms")
    if r.get("query_server_cpu_us") is not None:
        measured += f" (server CPU {fmt(r['query_server_cpu_us'])} µs per call)"
    if r.get("query_floor_p99_ms") is not None:
        measured += f"; a do-nothing gRPC server under the same load: {r['query_floor_p99_ms']} ms"
    rows.append((f"GetConcentration p99 < 1 ms at {fmt(rps)} requests/s during ingest, non-live "
                 "windows in the mix", measured, verdict))
    measured, verdict = check(r.get("batch_p99_ms"), lambda v: v < 1, "{} ms")
    if r.get("batch_answers_per_sec") is not None:
        qb = (r.get("e2e") or {}).get("query_batch") or {}
        measured = (f"{fmt(r['batch_answers_per_sec'])} answers/s (batches of "
                    f"{fmt(r.get('batch_size'))} at {fmt(qb.get('batch_rps'))} calls/s), p99 "
                    f"{measured}")
    rows.append(("GetConcentrations (the batch RPC): answers/s at p99 < 1 ms per call during "
                 "ingest", measured, verdict))
    rows.append(("distribution update < 1 µs at 10^7 entities",
                 *check(r["update_ns_at_1e7"], lambda v: v < 1000, "{} ns")))
    big = (r.get("events") or 0) >= 50_000_000
    rss_ok = (lambda v: v < 2048) if big else (lambda v: False)
    measured, verdict = check(r["peak_rss_mb"], rss_ok, "{} MB")
    if r["peak_rss_mb"] is not None and not big:
        verdict = "not measured at 50M events"
    rows.append(("peak RSS < 2 GiB for 50 million events", measured, verdict))
    return rows


def fmt(v, suffix=""):
    if v is None:
        return "null"
    if isinstance(v, float):
        return f"{v:,.3f}".rstrip("0").rstrip(".") + suffix
    if isinstance(v, int):
        return f"{v:,}{suffix}"
    return f"{v}{suffix}"


SOAK_HEADING = "## Soak"
SCALEOUT_HEADING = "## Scale-out"


def section_span(text: str, heading: str) -> tuple[int, int] | None:
    """[start, end) of the section `heading` (a "## " line) up to the next "## " heading, marker
    comment or the end of the text."""
    i = 0 if text.startswith(heading + "\n") else text.find("\n" + heading + "\n")
    if i < 0:
        return None
    if i > 0:
        i += 1
    # A section also ends where a block that another script writes between marker comments
    # (ON_DEMAND_BEGIN) starts.
    ends = [j for j in (text.find("\n## ", i + len(heading)), text.find("\n<!-- ", i + len(heading)))
            if j >= 0]
    return i, (min(ends) + 1 if ends else len(text))


def kept_section(md_path: str | None, heading: str) -> str | None:
    """The section `heading` of an existing BENCHMARKS.md, if any."""
    if not md_path or not os.path.exists(md_path):
        return None
    with open(md_path) as f:
        text = f.read()
    span = section_span(text, heading)
    return None if span is None else text[span[0]:span[1]].rstrip() + "\n"


HISTORY_HEADING = "## History"
# bench/micro/on_demand_report.py writes its section between these lines.
ON_DEMAND_BEGIN = "<!-- on-demand:begin -->"
ON_DEMAND_END = "<!-- on-demand:end -->"


def kept_marked(md_path: str | None, begin: str, end: str) -> str | None:
    """The text from the line `begin` to the line `end` (both kept) of an existing
    BENCHMARKS.md, if both are there."""
    if not md_path or not os.path.exists(md_path):
        return None
    with open(md_path) as f:
        text = f.read()
    i = text.find(begin)
    j = text.find(end, i + len(begin)) if i >= 0 else -1
    return None if j < 0 else text[i:j + len(end)] + "\n"


def spread_text(f: dict | None, suffix: str = "") -> str:
    """"median [min–max]" of a versus.py summary figure ("median" alone for one value)."""
    if not f:
        return "null"
    if f.get("n", 1) <= 1 or f.get("min") == f.get("max"):
        return fmt(f.get("median"), suffix)
    return f"{fmt(f.get('median'), suffix)} [{fmt(f.get('min'))}–{fmt(f.get('max'))}]"


def range_text(r: list | None, suffix: str = "") -> str:
    """"min–max" of a [min, max] pair (compare.py's *_range), "null" without one."""
    if not r or len(r) != 2:
        return "null"
    return f"{fmt(r[0])}–{fmt(r[1], suffix)}"


def overlap(a: dict | None, b: dict | None) -> bool | None:
    if not a or not b or a.get("n", 1) <= 1 or b.get("n", 1) <= 1:
        return None
    return a["min"] <= b["max"] and b["min"] <= a["max"]


def history_rows(results_dir: str | None, current: dict | None,
                 current_json: str | None) -> list[dict]:
    """One row per full run in results_dir (and the current run), oldest first: date, commit,
    catch-up events/s, the peer's events/s and N, the ratio, loadgen's produce rate, and whether
    the peer and hubmetricsd were interleaved."""
    rows = []
    names = sorted(os.listdir(results_dir)) if results_dir and os.path.isdir(results_dir) else []
    for name in names:
        if not name.endswith(".json") or not ("-full" in name or "-kstreams-" in name):
            continue
        path = os.path.join(results_dir, name)
        if current_json and os.path.abspath(path) == os.path.abspath(current_json):
            continue
        try:
            with open(path) as f:
                d = json.load(f)
        except (OSError, ValueError):
            continue
        if d.get("peer") == "kstreams":  # a peer-only record: its date is in the file name
            rows.append({"file": name, "date": name[:10], "commit": None, "events_per_sec": None,
                         "kstreams_events_per_sec": d.get("events_per_sec"),
                         "kstreams_events": d.get("events"), "ratio": None,
                         "produce_events_per_sec": None, "rounds": None})
            continue
        rows.append(history_row(d, name))
    if current is not None:
        rows.append(history_row(current, os.path.basename(current_json) if current_json
                                else "(this run)"))
    return rows


def history_row(d: dict, name: str) -> dict:
    return {"file": name, "date": d.get("date"), "commit": (d.get("git_commit") or "")[:7] or None,
            "events_per_sec": d.get("events_per_sec"),
            "kstreams_events_per_sec": d.get("kstreams_events_per_sec"),
            "kstreams_events": d.get("kstreams_events"), "ratio": d.get("ratio_vs_kstreams"),
            "produce_events_per_sec": (d.get("e2e_produce") or {}).get("produce_events_per_sec"),
            "rounds": d.get("kstreams_rounds")}


def markdown(r: dict, json_name: str | None = None, soak: str | None = None,
             scaleout: str | None = None, history: list[dict] | None = None,
             on_demand: str | None = None) -> str:
    m = r["machine"]
    e2e = r.get("e2e") or {}
    fr = e2e.get("freshness") or {}
    frq = e2e.get("freshness_during_queries") or {}
    q = e2e.get("query") or {}
    vs = r.get("versus") or {}
    summ = vs.get("summary") or {}
    rounds = vs.get("rounds") or []
    cfg = vs.get("peer_config") or {}
    nproc = m.get("nproc")
    out = []
    w = out.append
    w("# Benchmarks")
    w("")
    w(f"Written by `scripts/bench` (a {r.get('mode')} run) from the figures of one run: every "
      "table and every")
    w("sentence below is computed by `bench/e2e/report.py` from that run's JSON, "
      f"`{json_name or 'bench/results/<date>T<HHMM>Z-full.json'}`")
    w(f"(the \"Soak\", \"Scale-out\" and \"On-demand views\" sections by `bench/e2e/soak.py`, "
      f"`bench/e2e/scaleout.py` and `bench/micro/on_demand_report.py` from their own runs). "
      f"Run of {r['date']} (started "
      f"{r.get('started') or 'null'}), git commit `{r['git_commit']}`. Issues 5 and 18 define "
      f"the targets.")
    w("")
    w("## Machine")
    w("")
    w(f"- {nproc} cores: {m.get('cpu_model')}; RAM {m.get('ram_gib')} GiB; kernel "
      f"{m.get('kernel')} ({m.get('os')})")
    w(f"- JVM (the Kafka Streams peer and the broker): {m.get('java')}")
    la = r.get("load_average_at_start")
    if la:
        w(f"- load average when the run started (1, 5, 15 min): {', '.join(str(x) for x in la)} "
          f"(other work on the machine shows here)")
    w("- One machine for everything: the Kafka broker (Apache Kafka 4.1.1, KRaft, single node, "
      "3 partitions, `scripts/kafka-local`), the producers, hubmetricsd, the peers and the "
      "clients.")
    w(f"- CPU flags: {' '.join(m.get('cpu_flags') or []) or 'null'}")
    w("")
    w("## Targets")
    w("")
    w("| target | measured | |")
    w("|---|---|---|")
    for t, measured, verdict in targets(r):
        w(f"| {t} | {measured} | {verdict} |")
    w("")
    versus_section(r, w, vs, summ, rounds, cfg, nproc)
    live_section(r, w)
    sweep_section(w, vs)
    w("## End to end (hubmetricsd on the real broker)")
    w("")
    w(f"Workload: {fmt(r['events'])} loadgen events (binary `DownloadEvent`, 3 partitions, "
      "produced before anything is timed): `"
      + str((r.get('e2e_produce') or {}).get('loadgen_args', '')) + "`. The first figure is "
      "catch-up again (process start to lag 0 on the topic written beforehand), measured once "
      "more here because the state it leaves is what the other rows measure.")
    w("")
    w("| figure | value |")
    w("|---|---|")
    for label, key, suffix in (
        ("catch-up events/s, process start to lag 0", "e2e_ingest_events_per_sec", ""),
        ("CPU seconds per million events (utime+stime)", "cpu_seconds_per_million_events", " s"),
        ("peak RSS (VmHWM) at the end of ingest", "peak_rss_mb", " MB"),
        ("peak RSS after the freshness and query phases too", "peak_rss_mb_all_phases", " MB"),
        ("state bytes per unique download (all files after a clean stop, WAL included)",
         "state_bytes_per_unique", " B"),
        ("state bytes per unique download, WAL excluded", "state_bytes_per_unique_excluding_wal",
         " B"),
        ("unique downloads", "unique_downloads", ""),
        ("duplicates", "duplicates", ""),
        ("rejected", "rejected", ""),
    ):
        w(f"| {label} | {fmt(r.get(key), suffix)} |")
    w(f"| ingest seconds | {fmt(e2e.get('ingest_seconds'), ' s')} |")
    w(f"| CPU seconds | {fmt(e2e.get('cpu_seconds'), ' s')} |")
    w(f"| restart on the state to lag 0 | {fmt(e2e.get('restart_seconds'), ' s')} |")
    w(f"| loadgen produce rate (not part of the timing) | "
      f"{fmt((r.get('e2e_produce') or {}).get('produce_events_per_sec'))} events/s |")
    w("")
    w("Freshness (marker download produced → new value in `WatchConcentration`, model/all/direct, "
      "window all; the server sends at most one update per 100 ms):")
    w("")
    w("| phase | background rate achieved | markers | p50 | p99 | max | lost |")
    w("|---|---|---|---|---|---|---|")
    for label, f in (("freshness phase", fr), ("during the query phase", frq)):
        w(f"| {label} | {fmt(f.get('rate_achieved'))}/s | {fmt(f.get('markers'))} | "
          f"{fmt(f.get('p50_ms'), ' ms')} | {fmt(f.get('p99_ms'), ' ms')} | "
          f"{fmt(f.get('max_ms'), ' ms')} | {fmt(f.get('lost_markers'))} |")
    w("")
    live_windows = [x for x in (q.get("windows") or []) if x not in (q.get("non_live_windows")
                                                                      or [])]
    w("GetConcentration at a fixed rate (open loop, latency from the scheduled send time) while "
      "the probe ingests; the mix: every live level (filter all, attribution direct) × the live "
      f"windows {', '.join(f'`{x}`' for x in live_windows) or 'null'} and the windows computed "
      f"on request {', '.join(f'`{x}`' for x in q.get('non_live_windows') or []) or 'null'}. "
      "Server CPU per call: hubmetricsd's utime+stime during the load minus its rate over the "
      "seconds just before (ingest), per call:")
    w("")
    w("| target rps | achieved | requests | errors | p50 | p90 | p99 | p99.9 | max | "
      "server CPU per call |")
    w("|---|---|---|---|---|---|---|---|---|---|")
    if q:
        w(f"| {fmt(q.get('rps_target'))} | {fmt(q.get('rps_achieved'))} | "
          f"{fmt(q.get('requests'))} | {fmt(q.get('errors'))} | {q.get('p50_us')} µs | "
          f"{q.get('p90_us')} µs | {q.get('p99_us')} µs | {q.get('p999_us')} µs | "
          f"{q.get('max_us')} µs | {fmt(q.get('server_cpu_us_per_call'), ' µs')} |")
    else:
        w("| null | | | | | | | | | |")
    w("")
    q0 = e2e.get("query_floor") or {}
    if q0:
        floor_p99, p99 = q0.get("p99_us"), (q.get("p99_us") if q else None)
        if floor_p99 is not None and p99 is not None and p99 > floor_p99:
            than = (f"; hubmetricsd's p99 is {fmt(p99 - floor_p99)} µs above it "
                    f"({p99 / floor_p99:.2f}× the floor)")
        elif floor_p99 is not None and p99 is not None:
            than = "; hubmetricsd's p99 was not above it"
        else:
            than = ""
        if floor_p99 is None:
            verdict = ""
        elif floor_p99 >= 1000:
            verdict = ("; so under this load on this machine not even a server that only answers "
                       "gets a p99 under 1 ms")
        else:
            verdict = "; so this machine allows a p99 under 1 ms under this load"
        w(f"The floor: the same load and the same background traffic into hubmetricsd, with "
          f"query_load sending to `bench/e2e/query_floor_server` instead (a fixed answer of the "
          f"same shape at once, one thread on gRPC's asynchronous API): p50 {q0.get('p50_us')} µs, "
          f"p99 {floor_p99} µs, p99.9 {q0.get('p999_us')} µs, server CPU "
          f"{fmt(q0.get('server_cpu_us_per_call'), ' µs')} per call{than}{verdict}.")
        w("")
    qc = e2e.get("query_client_realtime") or {}
    if qc:
        shared_p99 = q.get("p99_us") if q else None
        rt_p99 = qc.get("p99_us")
        if shared_p99 is not None and rt_p99 is not None and rt_p99 < shared_p99:
            why = (": the difference is the client's own wait for a core on this machine, which a "
                   "client elsewhere does not have.")
        elif shared_p99 is not None and rt_p99 is not None:
            why = (": the real-time client did not do better, so the client's own wait for a core "
                   "is not what sets the p99 in this run.")
        else:
            why = "."
        w(f"The same load with only query_load at SCHED_FIFO (hubmetricsd unchanged, time-shared): "
          f"p50 {qc.get('p50_us')} µs, p99 {rt_p99} µs, p99.9 {qc.get('p999_us')} µs, "
          f"server CPU {fmt(qc.get('server_cpu_us_per_call'), ' µs')} per call; the time-shared "
          f"client's p99 was {shared_p99 if shared_p99 is not None else 'null'} µs{why}")
        w("")
    qb = e2e.get("query_batch") or {}
    if qb.get("steps"):
        w(f"GetConcentrations (the batch RPC) with {fmt(qb.get('batch_size'))} items per call "
          "from the same mix, at each call rate, while the probe ingests; "
          f"`batch_answers_per_sec` is {qb.get('rule')}: "
          f"{fmt(qb.get('batch_answers_per_sec'))} answers/s at p99 "
          f"{fmt(qb.get('batch_p99_ms'), ' ms')}.")
        w("")
        w("| calls/s target | achieved | answers/s | errors | item errors | p50 | p99 | p99.9 | "
          "max | server CPU per answer |")
        w("|---|---|---|---|---|---|---|---|---|---|")
        for st in qb["steps"]:
            bq = st.get("query") or {}
            w(f"| {fmt(bq.get('rps_target'))} | {fmt(bq.get('rps_achieved'))} | "
              f"{fmt(bq.get('answers_per_sec'))} | {fmt(bq.get('errors'))} | "
              f"{fmt(bq.get('item_errors'))} | {bq.get('p50_us')} µs | {bq.get('p99_us')} µs | "
              f"{bq.get('p999_us')} µs | {bq.get('max_us')} µs | "
              f"{fmt(bq.get('server_cpu_us_per_answer'), ' µs')} |")
        w("")
    qrt = e2e.get("query_realtime") or {}
    if qrt.get("by_rps"):
        w(f"The same with hubmetricsd restarted with `--grpc_realtime_priority="
          f"{qrt.get('priority')}` and query_load at `--realtime_priority` (both SCHED_FIFO; "
          f"ingest, the broker and the probe time-shared), one phase per rate, with the freshness "
          f"of the probe's traffic meanwhile:")
        w("")
        w("| target rps | achieved | errors | p50 | p90 | p99 | p99.9 | max | freshness p50 | "
          "freshness p99 |")
        w("|---|---|---|---|---|---|---|---|---|---|")
        for _, v in sorted(qrt["by_rps"].items(), key=lambda kv: int(kv[0])):
            qq = v.get("query") or {}
            ff = v.get("freshness_during_queries") or {}
            w(f"| {fmt(qq.get('rps_target'))} | {fmt(qq.get('rps_achieved'))} | "
              f"{fmt(qq.get('errors'))} | {qq.get('p50_us')} µs | {qq.get('p90_us')} µs | "
              f"{qq.get('p99_us')} µs | {qq.get('p999_us')} µs | {qq.get('max_us')} µs | "
              f"{fmt(ff.get('p50_ms'), ' ms')} | {fmt(ff.get('p99_ms'), ' ms')} |")
        w("")
    w("## DuckDB batch peer (`bench/peers/duckdb`)")
    w("")
    dk = r.get("duckdb") or {}
    w(f"The workload: {fmt(r.get('duckdb_events'))} events of loadgen's traffic (every one valid) "
      f"as an NDJSON file of {fmt(dk.get('events_file_bytes'))} bytes, and the same events' "
      f"model_id, user_id and time as a Parquet file (zstd) of "
      f"{fmt(dk.get('parquet_file_bytes'))} bytes, written once beforehand and not timed. Both "
      "sides answer the same questions: unique downloads (one per user, model and UTC day), "
      "summed per model and ISO week, and HHI, Gini and the top-1/10/100 shares for every one of "
      f"the {fmt(dk.get('weeks_compared'))} weeks and for all time. DuckDB "
      f"{dk.get('duckdb_version')} ({fmt(dk.get('duckdb_threads'))} threads) runs it as one SQL "
      "statement, timed from process start to its answer; hubmetricsd ingests the NDJSON file "
      "(`--events_file`, default flags), timed from process start until it has read the file to "
      f"its end and can answer. {fmt(r.get('duckdb_rounds'))} rounds interleave DuckDB (NDJSON), "
      "hubmetricsd and DuckDB (Parquet); the ratio is each round's DuckDB seconds over the same "
      f"round's hubmetricsd seconds. {fmt(dk.get('figures_compared'))} figures were compared "
      f"with both DuckDB answers; answers equal: {r.get('duckdb_answers_equal')}.")
    w("")
    w("| | median | range | CPU s (median) | peak RSS (median) |")
    w("|---|---|---|---|---|")
    w(f"| DuckDB, NDJSON | {fmt(r.get('duckdb_seconds'), ' s')} | "
      f"{range_text(dk.get('duckdb_seconds_range'), ' s')} | "
      f"{fmt(dk.get('duckdb_cpu_seconds'))} | {fmt(dk.get('duckdb_peak_rss_mb'), ' MB')} |")
    w(f"| hubmetricsd, same NDJSON file | {fmt(r.get('hubmetrics_seconds_same_file'), ' s')} | "
      f"{range_text(dk.get('hubmetrics_seconds_range'), ' s')} | "
      f"{fmt(dk.get('hubmetrics_cpu_seconds'))} | "
      f"{fmt(dk.get('hubmetrics_peak_rss_mb'), ' MB')} |")
    w(f"| DuckDB, Parquet | {fmt(r.get('duckdb_parquet_seconds'), ' s')} | "
      f"{range_text(dk.get('duckdb_parquet_seconds_range'), ' s')} | "
      f"{fmt(dk.get('duckdb_parquet_cpu_seconds'))} | "
      f"{fmt(dk.get('duckdb_parquet_peak_rss_mb'), ' MB')} |")
    w(f"| **DuckDB (NDJSON) / hubmetricsd** | **{fmt(r.get('ratio_vs_duckdb'), '×')}** | "
      f"{range_text(r.get('ratio_vs_duckdb_range'), '×')} | | |")
    w(f"| DuckDB (Parquet) / hubmetricsd | {fmt(r.get('ratio_vs_duckdb_parquet'), '×')} | "
      f"{range_text(dk.get('ratio_parquet_range'), '×')} | | |")
    w("")
    w("## Micro benchmarks (Google Benchmark, real time per iteration)")
    w("")
    w("| benchmark | ns |")
    w("|---|---|")
    for name, ns in r.get("micro_ns", {}).items():
        w(f"| `{name}` | {fmt(ns)} |")
    w("")
    if history:
        history_section(w, history)
    w("## Commands")
    w("")
    w("Run from the repository's root (build dir `build-bench` unless `BENCH_BUILD_DIR` says "
      "otherwise):")
    w("")
    w("```sh")
    w(f"scripts/bench{'' if r.get('mode') == 'full' else ' --quick'}   # this run, every step "
      "below")
    for c in r.get("commands", []):
        w(c)
    w("```")
    w("")
    for key, heading in (("warnings", "Shortfalls seen in this run"),
                         ("errors", "Errors in this run")):
        if r.get(key):
            w(f"## {heading}")
            w("")
            for e in r[key]:
                w(f"- {e}")
            w("")
    if soak:
        w(soak)
    if scaleout:
        w(scaleout)
    if on_demand:
        w(on_demand)
    return "\n".join(out)


def versus_section(r, w, vs, summ, rounds, cfg, nproc) -> None:
    w("## Catch-up: hubmetricsd, the consume ceiling and the Kafka Streams peer, interleaved")
    w("")
    if not rounds:
        w("Not measured in this run (see the errors below).")
        w("")
        return
    n = vs.get("rounds_events")
    topic_note = ("the topic of the end-to-end run" if vs.get("same_topic_as_e2e") else
                  "a topic of their own (the peer did not finish the full N; see the shortfalls)")
    w(f"{fmt(n)} events on {topic_note}, written before anything was timed: every figure here "
      f"is **catch-up** from a topic already written (for live traffic see \"Live\"). Each "
      f"round ran back to back on that topic: (A) hubmetricsd on a fresh state dir and consumer "
      f"group, from process start until it had read all {fmt(n)} with lag 0 "
      f"(`run_e2e.py --mode catchup`); (C) `consume_ceiling`, a librdkafka consumer with "
      f"hubmetricsd's client settings that reads the topic to its end and does nothing else; "
      f"(B) the Kafka Streams peer (configuration `{cfg.get('name')}`: "
      f"`{' '.join(cfg.get('flags') or [])}`, JVM `{cfg.get('jvm_opts')}`) with a fresh "
      f"application id, from process start until its committed offsets reach the end of its "
      f"input and repartition topics. After each round the peer's unique downloads, rejects by "
      f"reason and weekly per-model counts were compared with hubmetricsd's "
      f"(`bench/peers/kstreams/compare_weekly.py`). Broker CPU and bytes written to storage "
      f"(`/proc/PID/io` write_bytes) are over each run's interval.")
    w("")
    w("| round | hubmetricsd events/s | consume ceiling events/s | hubmetricsd / ceiling | "
      "peer events/s | hubmetricsd / peer | answers equal | broker CPU s (A / C / B) | "
      "broker bytes written (A / C / B) | load average before |")
    w("|---|---|---|---|---|---|---|---|---|---|")
    for x in rounds:
        a, c, b = x.get("hub") or {}, x.get("ceiling") or {}, x.get("peer") or {}
        w(f"| {x.get('round')} | {fmt(a.get('events_per_sec'))} | {fmt(c.get('events_per_sec'))} "
          f"| {fmt(x.get('fraction_of_consume_ceiling'))} | {fmt(b.get('events_per_sec'))} | "
          f"{fmt(x.get('ratio'), '×')} | {x.get('answers_equal')} | "
          f"{fmt(a.get('broker_cpu_seconds'))} / {fmt(c.get('broker_cpu_seconds'))} / "
          f"{fmt(b.get('broker_cpu_seconds'))} | {fmt(a.get('broker_write_bytes'))} / "
          f"{fmt(c.get('broker_write_bytes'))} / {fmt(b.get('broker_write_bytes'))} | "
          f"{(x.get('load_average_before') or ['null'])[0]} |")
    w("")
    k = len(rounds)
    w(f"Median [min–max] over the {k} round{'s' if k != 1 else ''}:")
    w("")
    w("| figure | hubmetricsd (A) | consume ceiling (C) | Kafka Streams (B) |")
    w("|---|---|---|---|")
    w(f"| events/s | {spread_text(summ.get('hub_events_per_sec'))} | "
      f"{spread_text(summ.get('consume_ceiling_events_per_sec'))} | "
      f"{spread_text(summ.get('peer_events_per_sec'))} |")
    w(f"| CPU s per million events | {spread_text(summ.get('hub_cpu_seconds_per_million_events'))}"
      f" | {spread_text(summ.get('ceiling_cpu_seconds_per_million_events'))} | "
      f"{spread_text(summ.get('peer_cpu_seconds_per_million_events'))} |")
    w(f"| broker CPU s per million events | "
      f"{spread_text(summ.get('broker_cpu_seconds_per_million_events_hub'))} | "
      f"{spread_text(summ.get('broker_cpu_seconds_per_million_events_ceiling'))} | "
      f"{spread_text(summ.get('broker_cpu_seconds_per_million_events_peer'))} |")
    w(f"| broker bytes written per event | "
      f"{spread_text(summ.get('broker_write_bytes_per_event_hub'))} | | "
      f"{spread_text(summ.get('broker_write_bytes_per_event_peer'))} |")
    w(f"| cores busy (process + broker) | {spread_text(summ.get('cores_busy_hub_and_broker'))} | "
      f"{spread_text(summ.get('cores_busy_ceiling_and_broker'))} | "
      f"{spread_text(summ.get('cores_busy_peer_and_broker'))} |")
    w(f"| peak RSS | {spread_text(summ.get('hub_peak_rss_mb'), ' MB')} | | "
      f"{spread_text(summ.get('peer_peak_rss_mb'), ' MB')} |")
    w(f"| hubmetricsd / peer | {spread_text(summ.get('ratio'), '×')} | | |")
    w(f"| hubmetricsd / consume ceiling | {spread_text(summ.get('fraction_of_consume_ceiling'))} "
      f"| | |")
    w("")
    hub, peer, ceil = (summ.get("hub_events_per_sec"), summ.get("peer_events_per_sec"),
                       summ.get("consume_ceiling_events_per_sec"))
    rt, frac = summ.get("ratio"), summ.get("fraction_of_consume_ceiling")
    w(f"hubmetricsd caught up at a median {fmt(median_of(hub))} events/s and the peer at "
      f"{fmt(median_of(peer))}: hubmetricsd was {fmt(median_of(rt))}× as fast "
      + (f"(per round {fmt(rt['min'])}× to {fmt(rt['max'])}×)." if rt and rt.get("n", 1) > 1
         else "(one round: no spread to judge it against).")
      + (" Every round's answers were equal." if vs.get("answers_equal") else
         " **The answers differed** (see the errors below)."))
    if hub and hub.get("n", 1) > 1 and median_of(hub):
        w(f"hubmetricsd's own rate moved by {pct(hub['max'] - hub['min'], median_of(hub))} of "
          f"its median across the rounds and the peer's by "
          f"{pct(peer['max'] - peer['min'], median_of(peer)) if peer else 'null'}.")
    if ceil and frac:
        hc = median_of(summ.get("hub_cpu_seconds_per_million_events"))
        cc = median_of(summ.get("ceiling_cpu_seconds_per_million_events"))
        busy = median_of(summ.get("cores_busy_hub_and_broker"))
        w(f"The consume ceiling (reading the same topic with the same client settings and doing "
          f"nothing else) was {fmt(median_of(ceil))} events/s, so hubmetricsd's catch-up ran at "
          f"{pct(median_of(frac), 1)} of it (`fraction_of_consume_ceiling` "
          f"{fmt(median_of(frac))}). Per million events hubmetricsd used {fmt(hc)} CPU s "
          f"against the ceiling's {fmt(cc)} s: "
          + (f"{fmt(round(hc - cc, 3))} CPU s of decoding, hashing, dedup, aggregation and "
             f"state writes on top of reading." if hc is not None and cc is not None
             else "null."))
        if busy is not None and nproc:
            if busy >= 0.9 * nproc:
                w(f"During hubmetricsd's runs it and the broker kept {fmt(busy)} of the "
                  f"{nproc} cores busy: the machine was CPU-bound, so the time above the ceiling "
                  f"is that extra CPU work, not waiting.")
            else:
                idle = round(nproc - busy, 2)
                w(f"During hubmetricsd's runs it and the broker kept {fmt(busy)} of the {nproc} "
                  f"cores busy: {fmt(idle)} core(s) were left, so part of its time was waiting "
                  f"(group join and assignment at the start, fetches, its commits), not CPU.")
    bh = median_of(summ.get("broker_cpu_seconds_per_million_events_hub"))
    bp = median_of(summ.get("broker_cpu_seconds_per_million_events_peer"))
    wh = median_of(summ.get("broker_write_bytes_per_event_hub"))
    wp = median_of(summ.get("broker_write_bytes_per_event_peer"))
    if bh is not None and bp is not None:
        w(f"The broker worked {fmt(bp)} CPU s per million events during the peer's runs and "
          f"{fmt(bh)} during hubmetricsd's"
          + (f", and wrote {fmt(wp)} bytes per event to storage against {fmt(wh)}" if
             wp is not None and wh is not None else "")
          + (": the peer's repartition and changelog topics and transactions go through the "
             "broker's write path, hubmetricsd's state does not, so a broker slowed by its disk "
             "slows the peer more than hubmetricsd." if bp > 2 * bh else "."))
    sync = vs.get("sync_commits") or {}
    if sync.get("events_per_sec"):
        w(f"With `--sync_commits` (an fsync of the state per commit, for power-loss safety) "
          f"hubmetricsd caught up at {fmt(sync['events_per_sec'])} events/s, "
          f"{pct(sync['events_per_sec'], median_of(hub))} of its median without it "
          f"({fmt(sync.get('cpu_seconds_per_million_events'))} CPU s per million events; one "
          f"run, to be read against the spread of the rounds above).")
    w("")


def live_section(r, w) -> None:
    w("## Live: the highest steady rate hubmetricsd keeps up with")
    w("")
    lv, ls = r.get("live"), r.get("live_sync_commits")
    if not lv and not ls:
        w("Not measured in this run.")
        w("")
        return
    w("Each step: a fresh topic and a fresh hubmetricsd caught up on it (empty), then loadgen "
      "producing at a steady rate (`--rate`) while hubmetricsd's consumer lag is sampled every "
      "0.5 s (`run_e2e.py --mode live`). Rule: " + str((lv or ls).get("rule")) + ".")
    w("")
    w("| hubmetricsd flags | target events/s | loadgen achieved | max lag, second half "
      "(events) | read everything after | kept up |")
    w("|---|---|---|---|---|---|")
    for x in (lv, ls):
        if not x:
            continue
        flags = " ".join(x.get("daemon_flags") or []) or "(defaults)"
        for s in x.get("steps") or []:
            w(f"| {flags} | {fmt(s.get('rate_target'))} | {fmt(s.get('rate_achieved'))} | "
              f"{fmt(s.get('max_lag_second_half'))} | {fmt(s.get('drain_seconds'), ' s')} | "
              f"{'yes' if s.get('keeps_up') else 'no'}"
              + ("" if s.get("producer_reached_rate") else " (producer short of the rate)")
              + " |")
    w("")
    for x, what in ((lv, "With its defaults"), (ls, "With `--sync_commits`")):
        if not x:
            continue
        best, lim = x.get("max_events_per_sec"), x.get("limited_by")
        if best is None:
            w(f"{what} hubmetricsd kept up with none of the rates tried"
              + (" (the producer did not reach the first rate)." if lim == "producer" else "."))
        elif lim == "producer":
            w(f"{what} hubmetricsd kept up with {fmt(best)} events/s, the most loadgen could "
              f"produce on this machine beside it and the broker: a lower bound, not "
              f"hubmetricsd's limit.")
        elif lim == "hubmetricsd":
            w(f"{what} hubmetricsd kept up with {fmt(best)} events/s and fell behind at "
              f"{fmt(x.get('first_rate_not_kept'))}.")
        else:
            w(f"{what} hubmetricsd kept up with {fmt(best)} events/s, the last rate tried "
              f"within the time budget.")
    w("")


def sweep_section(w, vs) -> None:
    sw = vs.get("sweep")
    w("## Kafka Streams peer: tuning sweep")
    w("")
    if not sw:
        cfg = vs.get("peer_config") or {}
        w(f"No sweep in this run (`scripts/bench --sweep`; full runs sweep by default). The peer "
          f"ran as `{cfg.get('name')}`.")
        w("")
        return
    runs = sw.get("runs") or []
    base = {"events_per_sec": sw.get("base_events_per_sec")}
    w(f"Each configuration once on {fmt(sw.get('events'))} events (topic `{sw.get('topic')}`), "
      f"one after another, each compared with hubmetricsd's answers on that topic "
      f"({fmt((sw.get('hub') or {}).get('events_per_sec'))} events/s catch-up there). `base` is "
      f"the peer as first written, run first and again after the single knobs (`base_again`); "
      f"\"vs base\" is against the mean of the two ({fmt(sw.get('base_events_per_sec'))} "
      f"events/s). Every other row changes one knob of base, and `combined` takes every knob "
      f"that beat base by more than 3% (the best of each kind).")
    w("")
    w("| configuration | change from base | events/s | vs base | CPU s per million events | "
      "peak RSS | broker bytes written | answers equal |")
    w("|---|---|---|---|---|---|---|---|")
    for x in runs:
        what = ", ".join(f"{k}={v}" if k != "jvm" else f"JVM {v}"
                         for k, v in (x.get("changes") or {}).items()) or "—"
        w(f"| {x['name']} | {what} | {fmt(x.get('events_per_sec'))} | "
          f"{pct(x.get('events_per_sec'), base.get('events_per_sec'))} | "
          f"{fmt(x.get('cpu_seconds_per_million_events'))} | {fmt(x.get('peak_rss_mb'), ' MB')} "
          f"| {fmt(x.get('broker_write_bytes'))} | {x.get('answers_equal')} |")
    w("")
    best = next((x for x in runs if x["name"] == sw.get("best")), None)
    b1 = next((x.get("events_per_sec") for x in runs if x["name"] == "base"), None)
    b2 = next((x.get("events_per_sec") for x in runs if x["name"] == "base_again"), None)
    drift = change(b1, b2)
    if best:
        w(f"The fastest configuration with equal answers was `{best['name']}` "
          f"({fmt(best.get('events_per_sec'))} events/s, "
          f"{pct(best.get('events_per_sec'), base.get('events_per_sec'))} of base); it was the "
          f"peer of the interleaved rounds above. Each configuration ran once, so differences "
          f"of a few percent are within this machine's run-to-run spread: base and base_again "
          f"differed by {drift}.")
    else:
        w("No configuration finished with equal answers; the rounds used the default peer.")
    w("")


def history_section(w, rows: list[dict]) -> None:
    w(HISTORY_HEADING)
    w("")
    w("Every full run kept in `bench/results` (and this one), by date and commit. Runs without a "
      "round count timed hubmetricsd and the peer once each, not interleaved.")
    w("")
    w("| date | commit | catch-up events/s | Kafka Streams events/s | peer N | ratio | rounds | "
      "loadgen produce events/s | file |")
    w("|---|---|---|---|---|---|---|---|---|")
    for x in rows:
        w(f"| {x.get('date')} | {x.get('commit') or '—'} | {fmt(x.get('events_per_sec'))} | "
          f"{fmt(x.get('kstreams_events_per_sec'))} | {fmt(x.get('kstreams_events'))} | "
          f"{fmt(x.get('ratio'), '×')} | {fmt(x['rounds']) if x.get('rounds') else '—'} | "
          f"{fmt(x.get('produce_events_per_sec'))} | `{x.get('file')}` |")
    w("")
    ks = [(x["date"], x["kstreams_events_per_sec"]) for x in rows
          if x.get("kstreams_events_per_sec") and x.get("kstreams_events") == 50_000_000]
    pr = [(x["date"], x["produce_events_per_sec"]) for x in rows if x.get("produce_events_per_sec")]
    if len(ks) > 1:
        lo, hi = min(ks, key=lambda t: t[1]), max(ks, key=lambda t: t[1])
        w(f"On 50,000,000 events the peer ranged from {fmt(lo[1])} events/s ({lo[0]}) to "
          f"{fmt(hi[1])} ({hi[0]})"
          + (f"; loadgen's produce rate, which goes through the same broker write path, from "
             f"{fmt(min(p for _, p in pr))} to {fmt(max(p for _, p in pr))} events/s" if pr
             else "")
          + ". Ratios of runs hours apart compare machines of different speed as much as "
            "code: the interleaved rounds are the comparison.")
        w("")


def soak_markdown(s: dict) -> str:
    """The "Soak" section of BENCHMARKS.md from the JSON line of bench/e2e/soak.py; every figure
    and verdict comes from that line."""
    m = s.get("machine") or {}
    out = []
    w = out.append
    w(SOAK_HEADING)
    w("")
    w(f"Written by `bench/e2e/soak.py --write_doc` from its run of {s.get('date')} (git commit "
      f"`{s.get('git_commit')}`) on {m.get('nproc')} cores ({m.get('cpu_model')}), RAM "
      f"{m.get('ram_gib')} GiB, one machine for the broker, the daemon and the clients:")
    w("")
    w("```sh")
    w(str(s.get("command")))
    w("```")
    w("")
    w(f"{fmt(s.get('duration_seconds'), ' s')} of `freshness_probe` traffic at "
      f"{fmt(s.get('rate_target'))} events/s ({fmt(s.get('probe_users'))} distinct users) "
      f"through a local Kafka broker into hubmetricsd, while "
      f"`query_load` sent GetConcentration at {fmt(s.get('query_rps_target'))} requests/s; "
      f"hubmetricsd sampled every {fmt(s.get('sample_every_seconds'), ' s')} "
      f"({fmt(len(s.get('samples') or []))} samples), the first "
      f"{fmt(s.get('warmup_seconds'), ' s')} counted as warm-up.")
    w("")
    w("| figure | value |")
    w("|---|---|")
    for label, key, suffix in (
        ("events ingested (events_read during the traffic)", "events_ingested", ""),
        ("ingest rate", "events_per_sec", " events/s"),
        ("probe's production rate", "probe_rate_achieved", " events/s"),
        ("hubmetricsd CPU seconds per million events (utime+stime)",
         "cpu_seconds_per_million_events", " s"),
        ("hubmetricsd peak RSS (VmHWM, seed catch-up included)", "peak_rss_mb", " MB"),
        ("new unique downloads", "unique_downloads_added", ""),
        ("RSS growth after the warm-up per million new unique downloads",
         "rss_mb_per_million_new_uniques", " MB"),
        ("GetConcentration p50", "query_p50_ms", " ms"),
        ("GetConcentration p99", "query_p99_ms", " ms"),
        ("GetConcentration requests / errors", None, ""),
        ("freshness p50", "freshness_p50_ms", " ms"),
        ("freshness p99", "freshness_p99_ms", " ms"),
        ("consumer lag at the end (messages)", "lag_end", ""),
        ("consumer lag, max of the samples (messages)", "lag_max", ""),
        ("hubmetricsd exit status on SIGTERM at the end", "daemon_exit_code", ""),
    ):
        if key is None:
            q = s.get("query") or {}
            w(f"| {label} | {fmt(q.get('requests'))} / {fmt(q.get('errors'))} |")
        else:
            w(f"| {label} | {fmt(s.get(key), suffix)} |")
    w("")
    w("| hubmetricsd | first after warm-up | last | max | least-squares slope per hour |")
    w("|---|---|---|---|---|")
    for label, key in (("RSS (VmRSS, MB)", "rss_mb"), ("open files", "fds"),
                       ("threads", "threads"), ("state dir (MB)", "state_mb"),
                       ("RocksDB write buffers + block cache (MB)", "state_memory_mb")):
        f = s.get(key) or {}
        w(f"| {label} | {fmt(f.get('first'))} | {fmt(f.get('last'))} | {fmt(f.get('max'))} | "
          f"{fmt(f.get('slope_per_hour'))} |")
    w("")
    w(f"Verdict: **flat: {str(s.get('flat')).lower()}**. Rule: {s.get('flat_rule')}.")
    w(f"Lag: **{'bounded' if s.get('lag_ok') else 'grew'}**. Rule: {s.get('lag_rule')}.")
    w("")
    for key, heading in (("failures", "Failures"), ("errors", "Errors"),
                         ("warnings", "Shortfalls")):
        if s.get(key):
            w(f"{heading} in this run:")
            w("")
            for e in s[key]:
                w(f"- {e}")
            w("")
    return "\n".join(out)


def write_section(md_path: str, heading: str, section: str) -> None:
    """Puts `section` in md_path in place of its section `heading` (appended when it has none);
    every other section is kept as it is."""
    text = ""
    if os.path.exists(md_path):
        with open(md_path) as f:
            text = f.read()
    span = section_span(text, heading)
    if span is not None:
        rest = text[span[1]:]
        text = text[:span[0]] + section + ("\n" + rest if rest else "")
    elif text.strip():
        text = text.rstrip() + "\n\n" + section
    else:
        text = "# Benchmarks\n\n" + section
    with open(md_path, "w") as f:
        f.write(text)


def write_soak_section(md_path: str, s: dict) -> None:
    """Puts soak_markdown(s) in md_path in place of its "Soak" section (appended when it has none);
    every other section is kept as it is."""
    write_section(md_path, SOAK_HEADING, soak_markdown(s))


def pct(a, b) -> str:
    """a as a percentage of b ("97%"), "null" when either is missing."""
    if a is None or not b:
        return "null"
    return f"{a / b * 100:.0f}%"


def change(a, b) -> str:
    """The change from a to b ("+4.1%"), "null" when either is missing."""
    if a is None or b is None or not a:
        return "null"
    return f"{(b - a) / a * 100:+.1f}%"


def med_range(f: dict | None, suffix: str = "") -> str:
    """"median [min–max]" of one figure of scaleout.py's by_n."""
    if not f:
        return "null"
    if f.get("min") == f.get("max"):
        return fmt(f.get("median"), suffix)
    return f"{fmt(f.get('median'), suffix)} [{fmt(f.get('min'))}–{fmt(f.get('max'))}]"


def scaleout_markdown(s: dict) -> str:
    """The "Scale-out" section of BENCHMARKS.md from the JSON line of bench/e2e/scaleout.py; every
    figure and every sentence of analysis comes from that line."""
    m = s.get("machine") or {}
    by_n = s.get("by_n") or {}
    ns = [int(n) for n in s.get("instances") or []]
    runs = s.get("runs") or []
    reb = s.get("rebuild") or {}
    produce = s.get("produce") or {}
    out = []
    w = out.append
    w(SCALEOUT_HEADING)
    w("")
    w(f"Written by `bench/e2e/scaleout.py --write_doc` from its run of {s.get('date')} (git commit "
      f"`{s.get('git_commit')}`) on {m.get('nproc')} cores ({m.get('cpu_model')}), RAM "
      f"{m.get('ram_gib')} GiB, one machine for the broker, the dedup instances, the replica "
      f"and the clients:")
    w("")
    w("```sh")
    w(str(s.get("command")))
    w("```")
    w("")
    order = ", ".join(str(n) for n in ns)
    w(f"{fmt(s.get('events'))} loadgen events (binary `DownloadEvent`, keyed by user id) on a "
      f"{fmt(s.get('partitions'))}-partition events topic, produced once before anything was "
      f"timed (`{produce.get('loadgen_args', '')}`). Each configuration: N `--role=dedup` "
      f"instances in a fresh consumer group writing a fresh unique topic, and one "
      f"`--role=metrics` replica on an empty state dir, timed from starting the dedup instances "
      f"until the replica had applied everything (its events_read = {fmt(s.get('events'))} and "
      f"the downloads of view model/all/direct, window all = its unique_downloads). CPU is "
      f"utime+stime of the processes (the broker's from the start of the clock), read just "
      f"before they were stopped. The configurations "
      f"ran interleaved (N = {order}, after an unmeasured warm-up) in {fmt(s.get('rounds'))} "
      f"round(s); each cell is the median [min–max] over the rounds.")
    w("")
    w("| dedup instances | catch-up events/s | seconds | dedup CPU s per million events | "
      "replica CPU s per million events | dedup + replica | broker CPU s per million events | "
      "cores busy (dedup + replica + broker) | unique-topic bytes per unique download |")
    w("|---|---|---|---|---|---|---|---|---|")
    for n in ns:
        f = by_n.get(str(n)) or {}
        w(f"| {n} | {med_range(f.get('events_per_sec'))} | {med_range(f.get('seconds'))} | "
          f"{med_range(f.get('dedup_cpu_seconds_per_million_events'))} | "
          f"{med_range(f.get('replica_cpu_seconds_per_million_events'))} | "
          f"{med_range(f.get('total_cpu_seconds_per_million_events'))} | "
          f"{med_range(f.get('broker_cpu_seconds_per_million_events'))} | "
          f"{med_range(f.get('cores_busy'))} | "
          f"{med_range(f.get('unique_topic_bytes_per_unique'))} |")
    w("")

    def med(n, key):
        return ((by_n.get(str(n)) or {}).get(key) or {}).get("median")

    def rng(n, key):
        f = (by_n.get(str(n)) or {}).get(key) or {}
        return f.get("min"), f.get("max")

    def inst(n):
        return f"{n} instance" + ("" if n == 1 else "s")

    if ns and by_n:
        base, top = ns[0], ns[-1]
        eps, dedup = "events_per_sec", "dedup_cpu_seconds_per_million_events"
        both, busy = "total_cpu_seconds_per_million_events", "cores_busy"
        rates = "; ".join(f"{inst(n)} {pct(med(n, eps), med(base, eps))}" for n in ns[1:])
        if rates:
            w(f"Catch-up rate (median) as a share of {inst(base)}'s: {rates}.")
        lo_b, hi_b = rng(base, eps)
        lo_t, hi_t = rng(top, eps)
        if None not in (lo_b, hi_b, lo_t, hi_t) and base != top:
            if len(runs) <= len(ns):
                w("One round only: no spread to judge the difference against.")
            elif lo_b <= hi_t and lo_t <= hi_b:
                w(f"The ranges of {inst(base)} and {inst(top)} overlap: the difference is "
                  f"within this machine's run-to-run spread.")
            else:
                w(f"The ranges of {inst(base)} and {inst(top)} do not overlap.")
        ga = "assigned_after_seconds"
        if med(base, ga) is not None and med(top, ga) is not None:
            rebuilt = sum(x.get("partitions_rebuilt") or 0 for x in runs)
            w(f"Of each run's time, the consumer group took {fmt(med(base, ga))} s (median) to "
              f"give {inst(base)} its partitions and {fmt(med(top, ga))} s for {inst(top)}; "
              f"{fmt(rebuilt)} partition(s) moved after being read and had to be re-read.")
        w(f"Meanwhile the dedup instances, the replica and the broker kept "
          f"{fmt(med(base, busy))} of the {fmt(m.get('nproc'))} cores busy on average with "
          f"{inst(base)} and {fmt(med(top, busy))} with {inst(top)}.")
        w(f"Dedup CPU per million events went from {fmt(med(base, dedup))} s with {inst(base)} "
          f"to {fmt(med(top, dedup))} s with {inst(top)} "
          f"({change(med(base, dedup), med(top, dedup))}); "
          f"with the replica's, from {fmt(med(base, both))} s to {fmt(med(top, both))} s "
          f"({change(med(base, both), med(top, both))}).")
        cores = m.get("nproc")
        if cores is not None and cores <= top:
            w(f"This machine has {cores} cores for the broker, every dedup instance and the "
              f"replica together, so more instances cannot add CPU here: what the figures show is "
              f"what splitting the work costs per event (more, smaller transactions; each "
              f"rebalance makes an instance re-read its new partitions' open days), how much of "
              f"the cores one catch-up keeps busy, and that it stays exact, not how far it scales "
              f"when each instance has cores of its own.")
        elif cores is not None:
            w(f"The broker, every dedup instance and the replica shared this machine's {cores} "
              f"cores: the figures show what splitting the work costs and that it stays exact, "
              f"not how far it scales when each instance has a machine of its own.")
    w("")
    exact = ", ".join(f"{fmt(s.get(k))} {k.replace('_', ' ')}" for k in
                      ("events_read", "unique_downloads", "duplicates", "rejected"))
    if s.get("answers_equal") is True:
        w(f"Exactness: every run, and the rebuilt replica below, ended with the same counts "
          f"({exact}).")
    else:
        w(f"Exactness: **the counts differed** between configurations (answers_equal "
          f"{s.get('answers_equal')}); see the errors below.")
    w("")
    uniq = s.get("unique_downloads")
    segs = s.get("unique_topic_segments")
    w(f"Unique topic on disk (run {s.get('unique_topic_of_run')}): "
      f"{fmt(s.get('unique_topic_log_bytes'))} bytes of log segments for {fmt(uniq)} unique "
      f"downloads, {fmt(s.get('unique_topic_bytes_per_unique'))} bytes per unique download; "
      f"{fmt(reb.get('records'))} records read_committed "
      f"({fmt(ratio(reb.get('records'), uniq))} per unique download).")
    if s.get("unique_topic_uncompacted") is True:
        w(f"Each of its {fmt(s.get('partitions'))} partitions was still one active segment, which "
          f"Kafka never compacts: this is the uncompacted size, every version of a count that "
          f"changed from batch to batch included.")
    elif segs is not None:
        w(f"It had {fmt(segs)} segments: the log cleaner may have compacted the closed ones, so "
          f"this is the size as it was after the run, not the uncompacted size.")
    w("")
    w(f"Rebuild: a fresh replica (empty state dir) read that topic in "
      f"{fmt(reb.get('seconds'), ' s')}, {fmt(reb.get('records_per_sec'))} records/s "
      f"({fmt(reb.get('cpu_seconds'), ' s')} CPU), until it had applied everything.")
    last_catchup = next((x.get("seconds") for x in runs
                         if f"n{x.get('n')}-r{x.get('round')}" == reb.get("of_run")), None)
    if last_catchup and reb.get("seconds"):
        w(f"That is {pct(reb.get('seconds'), last_catchup)} of the {fmt(last_catchup, ' s')} the "
          f"run that wrote the topic took from its raw events.")
    w("")
    w("Every run, in the order run:")
    w("")
    w("| N | round | seconds | events/s | partitions assigned after | dedup CPU s | replica CPU s "
      "| broker CPU s | unique-topic log bytes | segments | dedup exit | replica exit |")
    w("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for x in runs:
        w(f"| {x.get('n')} | {x.get('round')} | {fmt(x.get('seconds'))} | "
          f"{fmt(x.get('events_per_sec'))} | {fmt(x.get('assigned_after_seconds'), ' s')} | "
          f"{fmt(x.get('dedup_cpu_seconds'))} | {fmt(x.get('replica_cpu_seconds'))} | "
          f"{fmt(x.get('broker_cpu_seconds'))} | {fmt(x.get('unique_topic_log_bytes'))} | "
          f"{fmt(x.get('unique_topic_segments'))} | "
          f"{','.join(str(c) for c in x.get('dedup_exit_codes') or [])} | "
          f"{x.get('replica_exit_code')} |")
    w("")
    for key, heading in (("errors", "Errors"), ("warnings", "Shortfalls")):
        if s.get(key):
            w(f"{heading} in this run:")
            w("")
            for e in s[key]:
                w(f"- {e}")
            w("")
    return "\n".join(out)


def write_scaleout_section(md_path: str, s: dict) -> None:
    """Puts scaleout_markdown(s) in md_path in place of its "Scale-out" section (appended when it
    has none); every other section is kept as it is."""
    write_section(md_path, SCALEOUT_HEADING, scaleout_markdown(s))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--mode", choices=["quick", "full"], required=True)
    ap.add_argument("--repo", default=os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))))
    ap.add_argument("--json_out", help="write the whole JSON object here too (indented)")
    ap.add_argument("--md_out", help="write docs/BENCHMARKS.md here")
    ap.add_argument("--results_dir", help="earlier full runs' JSON, for the History section "
                                          "(default <repo>/bench/results)")
    args = ap.parse_args()
    r = build(args.workdir, args.mode, args.repo)
    if args.json_out:
        os.makedirs(os.path.dirname(os.path.abspath(args.json_out)), exist_ok=True)
        with open(args.json_out, "w") as f:
            json.dump(r, f, indent=2, sort_keys=False)
            f.write("\n")
    if args.md_out:
        soak = kept_section(args.md_out, SOAK_HEADING)  # written by bench/e2e/soak.py
        scaleout = kept_section(args.md_out, SCALEOUT_HEADING)  # by bench/e2e/scaleout.py
        on_demand = kept_marked(args.md_out, ON_DEMAND_BEGIN, ON_DEMAND_END)
        json_name = None
        if args.json_out:
            json_name = os.path.relpath(os.path.abspath(args.json_out), args.repo)
            if json_name.startswith(".."):
                json_name = os.path.basename(args.json_out)
        results_dir = args.results_dir or os.path.join(args.repo, "bench", "results")
        history = history_rows(results_dir, r, args.json_out)
        with open(args.md_out, "w") as f:
            f.write(markdown(r, json_name, soak, scaleout, history, on_demand))
    print(json.dumps(r, separators=(",", ":")), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
