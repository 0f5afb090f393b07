#!/usr/bin/env python3
"""Collects the figures of one scripts/bench run into one JSON object (full run: docs/BENCHMARKS.md).

scripts/bench calls it at the end; it reads what the steps left in --workdir:
  micro/<name>.json       Google Benchmark JSON of each bench/micro binary
  e2e.json                last line of bench/e2e/run_e2e.py --mode run
  e2e-produce.json        last line of bench/e2e/run_e2e.py --mode produce
  kstreams.json           last stdout line of bench/peers/kstreams/run
  kstreams-produce.json   run_e2e.py --mode produce of the kstreams topic, when it has its own N
  duckdb.json             last stdout line of bench/peers/duckdb/compare.py
  steps.json              {"errors": [...], "commands": [...], ...} written by scripts/bench
A missing or unreadable file gives null figures and an entry in "errors".

  report.py --workdir DIR --mode quick|full [--json_out FILE] [--md_out docs/BENCHMARKS.md]

Prints the JSON object as one line on stdout (scripts/bench's last line). Exit 0 always; the
caller decides from "errors".
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
    return {"nproc": os.cpu_count(), "cpu_model": model, "ram_gib": mem_gib,
            "kernel": platform.release(), "os": platform.platform()}


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


def build(workdir: str, mode: str, repo: str) -> dict:
    errors: list[str] = []
    steps = load_json_line(os.path.join(workdir, "steps.json"), errors, "steps") or {}
    errors = list(steps.get("errors", [])) + errors
    micro = micro_figures(workdir, errors)
    e2e = load_json_line(os.path.join(workdir, "e2e.json"), errors, "e2e") or {}
    produce = load_json_line(os.path.join(workdir, "e2e-produce.json"), errors, "e2e produce") or {}
    ks = load_json_line(os.path.join(workdir, "kstreams.json"), errors, "kstreams")
    ks_produce = None
    if os.path.exists(os.path.join(workdir, "kstreams-produce.json")):
        ks_produce = load_json_line(os.path.join(workdir, "kstreams-produce.json"), errors,
                                    "kstreams produce")
    duck = load_json_line(os.path.join(workdir, "duckdb.json"), errors, "duckdb")
    for name, part in (("e2e", e2e), ("e2e produce", produce)):
        errors += [f"{name}: {e}" for e in part.get("errors", [])]
    if duck is not None and duck.get("answers_equal") is not True:
        errors.append(f"duckdb: answers_equal is {duck.get('answers_equal')}")

    def g(d, k):
        return None if d is None else d.get(k)

    events_per_sec = e2e.get("events_per_sec")
    ks_eps = g(ks, "events_per_sec")
    result = {
        "mode": mode,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "git_commit": git_commit(repo),
        "machine": machine(),
        "events": e2e.get("events"),
        "events_per_sec": events_per_sec,
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
        "query_realtime_p50_ms": e2e.get("query_realtime_p50_ms"),
        "query_realtime_p99_ms": e2e.get("query_realtime_p99_ms"),
        "freshness_p99_ms_during_realtime_queries":
            e2e.get("freshness_p99_ms_during_realtime_queries"),
        "kstreams_events": g(ks, "events"),
        "kstreams_same_topic": steps.get("kstreams_same_topic"),
        "kstreams_events_per_sec": ks_eps,
        "kstreams_cpu_seconds_per_million_events": (
            round(ks["cpu_seconds"] / ks["events"] * 1e6, 3)
            if ks and ks.get("cpu_seconds") and ks.get("events") else None),
        "kstreams_peak_rss_mb": g(ks, "peak_rss_mb"),
        "ratio_vs_kstreams": ratio(events_per_sec, ks_eps),
        "duckdb_events": g(duck, "events"),
        "duckdb_seconds": g(duck, "duckdb_seconds"),
        "hubmetrics_seconds_same_file": g(duck, "hubmetrics_seconds_same_file"),
        "ratio_vs_duckdb": ratio(g(duck, "duckdb_seconds"),
                                 g(duck, "hubmetrics_seconds_same_file")),
        "duckdb_answers_equal": g(duck, "answers_equal"),
        "update_ns_at_1e7": micro.get("BM_Add/10000000"),
        "recompute_ns_at_1e7": micro.get("BM_RecomputeConcentration/10000000"),
        "micro_ns": micro,
        "e2e": e2e or None,
        "e2e_produce": produce or None,
        "kstreams": ks,
        "kstreams_produce": ks_produce,
        "duckdb": duck,
        "commands": steps.get("commands", []),
        "warnings": list(steps.get("notes", [])) + list(e2e.get("warnings", [])),
        "errors": errors,
    }
    return result


def targets(r: dict) -> list[tuple[str, str, str]]:
    """(target, measured, met/missed/not measured) of issue 5."""

    def check(value, ok, fmt):
        if value is None:
            return "—", "not measured"
        return fmt.format(value), "met" if ok(value) else "missed"

    rows = []
    rows.append(("≥ 1,000,000 raw events/s end to end into exact, crash-safe state",
                 *check(r["events_per_sec"], lambda v: v >= 1e6, "{:,} events/s")))
    rows.append(("≥ 5× the Kafka Streams peer on the same topic",
                 *check(r["ratio_vs_kstreams"], lambda v: v >= 5, "{}×")))
    rows.append(("freshness p99 < 1 s at 100,000 events/s",
                 *check(r["freshness_p99_ms"], lambda v: v < 1000, "{} ms")))
    rows.append(("GetConcentration p99 < 1 ms at 5,000 requests/s during ingest",
                 *check(r["query_p99_ms"], lambda v: v < 1, "{} ms")))
    measured, verdict = check(r.get("query_realtime_p99_ms"), lambda v: v < 1, "{} ms")
    if r.get("freshness_p99_ms_during_realtime_queries") is not None:
        measured += (f" (freshness p99 meanwhile "
                     f"{fmt(r['freshness_p99_ms_during_realtime_queries'])} ms)")
    rows.append(("the same with `--grpc_realtime_priority=10` (gRPC's threads and the client "
                 "at SCHED_FIFO)", measured, verdict))
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


LIMITS_HEADING = "## What limits it now"
SOAK_HEADING = "## Soak"
SCALEOUT_HEADING = "## Scale-out"


def section_span(text: str, heading: str) -> tuple[int, int] | None:
    """[start, end) of the section `heading` (a "## " line) up to the next "## " heading or the
    end of the text."""
    i = 0 if text.startswith(heading + "\n") else text.find("\n" + heading + "\n")
    if i < 0:
        return None
    if i > 0:
        i += 1
    j = text.find("\n## ", i + len(heading))
    return i, (len(text) if j < 0 else j + 1)


def kept_section(md_path: str | None, heading: str) -> str | None:
    """The section `heading` of an existing BENCHMARKS.md, if any."""
    if not md_path or not os.path.exists(md_path):
        return None
    with open(md_path) as f:
        text = f.read()
    span = section_span(text, heading)
    return None if span is None else text[span[0]:span[1]].rstrip() + "\n"


def kept_limits(md_path: str | None) -> str | None:
    """The "What limits it now" section of an existing BENCHMARKS.md (written by people), if any."""
    section = kept_section(md_path, LIMITS_HEADING)
    return None if section is None or "(The lead fills this in" in section else section


def markdown(r: dict, limits: str | None = None, json_name: str | None = None,
             soak: str | None = None, scaleout: str | None = None) -> str:
    m = r["machine"]
    e2e = r.get("e2e") or {}
    fr = e2e.get("freshness") or {}
    frq = e2e.get("freshness_during_queries") or {}
    q = e2e.get("query") or {}
    ks = r.get("kstreams") or {}
    duck = r.get("duckdb") or {}
    out = []
    w = out.append
    w("# Benchmarks")
    w("")
    w("Written by `scripts/bench` (full run) from the figures of that run; its raw JSON is")
    w(f"`{json_name or 'bench/results/<date>T<HHMM>Z-full.json'}`. Issue 5 defines the work and the")
    w(f"targets. Date {r['date']}, git commit `{r['git_commit']}`.")
    w("")
    w("## Machine")
    w("")
    w(f"- {m['nproc']} cores: {m['cpu_model']}")
    w(f"- RAM {m['ram_gib']} GiB; kernel {m['kernel']} ({m['os']})")
    w("- One machine for everything: the Kafka broker (Apache Kafka 4.1.1, KRaft, single node,")
    w("  3 partitions, `scripts/kafka-local`), the producers, hubmetricsd, the peers and the")
    w("  clients (at 5,000 requests/s query_load takes about two thirds of a core, and")
    w("  hubmetricsd's gRPC serving as much again: see \"What limits it now\").")
    w("")
    w("## Targets (issue 5)")
    w("")
    w("| target | measured | |")
    w("|---|---|---|")
    for t, measured, verdict in targets(r):
        w(f"| {t} | {measured} | {verdict} |")
    w("")
    w("## End to end (hubmetricsd on the real broker)")
    w("")
    w(f"Workload: {fmt(r['events'])} loadgen events (binary `DownloadEvent`, 3 partitions,")
    w("produced before timing): `"
      + str((r.get('e2e_produce') or {}).get('loadgen_args', '')) + "`.")
    w("")
    w("| figure | value |")
    w("|---|---|")
    for label, key, suffix in (
        ("events/s, process start to lag 0", "events_per_sec", ""),
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
    w("Freshness (marker download produced → new value in `WatchConcentration`,")
    w("model/all/direct, window all; the server sends at most one update per 100 ms):")
    w("")
    w("| phase | background rate achieved | markers | p50 | p99 | max | lost |")
    w("|---|---|---|---|---|---|---|")
    for label, f in (("freshness phase", fr), ("during the query phase", frq)):
        w(f"| {label} | {fmt(f.get('rate_achieved'))}/s | {fmt(f.get('markers'))} | "
          f"{fmt(f.get('p50_ms'), ' ms')} | {fmt(f.get('p99_ms'), ' ms')} | "
          f"{fmt(f.get('max_ms'), ' ms')} | {fmt(f.get('lost_markers'))} |")
    w("")
    w("GetConcentration at a fixed rate (open loop, latency from the scheduled send time; views")
    w("model/developer/country × windows all/trailing:4/trailing:52) while the probe ingests:")
    w("")
    w("| target rps | achieved | requests | errors | p50 | p90 | p99 | p99.9 | max |")
    w("|---|---|---|---|---|---|---|---|---|")
    if q:
        w(f"| {fmt(q.get('rps_target'))} | {fmt(q.get('rps_achieved'))} | "
          f"{fmt(q.get('requests'))} | {fmt(q.get('errors'))} | {q.get('p50_us')} µs | {q.get('p90_us')} µs | "
          f"{q.get('p99_us')} µs | {q.get('p999_us')} µs | {q.get('max_us')} µs |")
    else:
        w("| null | | | | | | | | |")
    w("")
    qrt = e2e.get("query_realtime") or {}
    if qrt.get("by_rps"):
        w(f"The same with hubmetricsd restarted with `--grpc_realtime_priority={qrt.get('priority')}`")
        w("and query_load at `--realtime_priority` (both SCHED_FIFO; ingest, the broker and the")
        w("probe time-shared), one phase per rate, with the freshness of the probe's traffic meanwhile:")
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
    w("## Kafka Streams peer (`bench/peers/kstreams`)")
    w("")
    same = "the same topic as hubmetricsd" if r.get("kstreams_same_topic") else \
        "a topic of its own produced the same way with a smaller N (see the shortfalls below " \
        "when the full N did not finish in 30 minutes)"
    w(f"{fmt(r.get('kstreams_events'))} events on {same}.")
    w("")
    w("| figure | Kafka Streams | hubmetricsd | ratio |")
    w("|---|---|---|---|")
    w(f"| events | {fmt(r.get('kstreams_events'))} | {fmt(r.get('events'))} | |")
    w(f"| events/s | {fmt(r.get('kstreams_events_per_sec'))} | {fmt(r.get('events_per_sec'))} | "
      f"{fmt(r.get('ratio_vs_kstreams'), '×')} |")
    w(f"| CPU s per million events | {fmt(r.get('kstreams_cpu_seconds_per_million_events'))} | "
      f"{fmt(r.get('cpu_seconds_per_million_events'))} | |")
    w(f"| peak RSS | {fmt(ks.get('peak_rss_mb'), ' MB')} | {fmt(r.get('peak_rss_mb'), ' MB')} | |")
    w(f"| unique downloads | {fmt(ks.get('unique_downloads'))} | "
      f"{fmt(r.get('unique_downloads'))} | |")
    w("")
    w("## DuckDB batch peer (`bench/peers/duckdb`)")
    w("")
    w(f"{fmt(r.get('duckdb_events'))} events as an NDJSON file; DuckDB from file to answer against")
    w("hubmetricsd ingesting the same file (`--events_file`) until source_exhausted.")
    w("")
    w("| DuckDB | hubmetricsd, same file | DuckDB / hubmetricsd | answers equal |")
    w("|---|---|---|---|")
    w(f"| {fmt(r.get('duckdb_seconds'), ' s')} | "
      f"{fmt(r.get('hubmetrics_seconds_same_file'), ' s')} | "
      f"{fmt(r.get('ratio_vs_duckdb'), '×')} | {r.get('duckdb_answers_equal')} |")
    w("")
    w("## Micro benchmarks (Google Benchmark, real time per iteration)")
    w("")
    w("| benchmark | ns |")
    w("|---|---|")
    for name, ns in r.get("micro_ns", {}).items():
        w(f"| `{name}` | {fmt(ns)} |")
    w("")
    w("## Commands")
    w("")
    w("```sh")
    w("scripts/bench            # this run; scripts/bench --quick for the < 10 minute version")
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
    if limits:
        w(limits)
    else:
        w(LIMITS_HEADING)
        w("")
        w("(The lead fills this in from the profile of this run; scripts/bench keeps this section")
        w("when it rewrites the file.)")
        w("")
    if soak:
        w(soak)
    if scaleout:
        w(scaleout)
    return "\n".join(out)


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
    args = ap.parse_args()
    r = build(args.workdir, args.mode, args.repo)
    if args.json_out:
        os.makedirs(os.path.dirname(os.path.abspath(args.json_out)), exist_ok=True)
        with open(args.json_out, "w") as f:
            json.dump(r, f, indent=2, sort_keys=False)
            f.write("\n")
    if args.md_out:
        limits = kept_limits(args.md_out)
        soak = kept_section(args.md_out, SOAK_HEADING)  # written by bench/e2e/soak.py
        scaleout = kept_section(args.md_out, SCALEOUT_HEADING)  # by bench/e2e/scaleout.py
        json_name = None
        if args.json_out:
            json_name = os.path.relpath(os.path.abspath(args.json_out), args.repo)
            if json_name.startswith(".."):
                json_name = args.json_out
        with open(args.md_out, "w") as f:
            f.write(markdown(r, limits, json_name, soak, scaleout))
    print(json.dumps(r, separators=(",", ":")), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
