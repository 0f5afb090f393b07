#!/usr/bin/env python3
"""Soak benchmark: hubmetricsd under steady traffic and queries for a long time (default 30 min).

Steps (each bounded by a timeout; the broker and every process started here are stopped on every
exit path, Ctrl-C and SIGTERM included):
 1. Its own Kafka broker: scripts/kafka-local on a free loopback port, KAFKA_STATE_DIR and the
    broker's data under the work dir.
 2. A seed workload (run_e2e.py's produce(): loadgen, --seed_events events, 2025 dates) and
    hubmetricsd on a fresh state dir until it has read them with lag 0, so that the view
    model/all/direct has the models freshness_probe draws its traffic from.
 3. The soak: freshness_probe at --rate events/s (today's timestamps, Zipf over 2,000 existing
    models, --users users, 30% repeats, a marker every --marker_every_ms (50 ms)) for --minutes, and from its 4th
    second query_load at --rps GetConcentration requests/s until the traffic ends. Every
    --sample_seconds: hubmetricsd's VmRSS and Threads (/proc/PID/status), open files
    (/proc/PID/fd), state dir bytes, and consumer_lag, events_read, unique_downloads,
    state_memory_bytes (RocksDB's write buffers and block cache; `hubctl --json stats`).
 4. hubmetricsd is stopped with SIGTERM (its exit status is reported), then the broker.

The warm-up is 10% of the run, at most 120 s (--warmup_seconds). For RSS, open files, threads and
state bytes the JSON gives the first sample after the warm-up, the last, the max and the
least-squares slope per hour over the samples after the warm-up.
  flat: RSS last <= (1 + --rss_growth) x RSS first after the warm-up, and open files and threads
        within +-(--fd_slack, --thread_slack) of their first value after the warm-up at every later
        sample.
  lag:  consumer lag of the last sample <= --lag_seconds x --rate messages.

With the probe's 2,000,000 users (the default) most events are new unique downloads of today, and
hubmetricsd holds the (model, user) pairs of the days it still accepts in memory (its dedup sets):
RSS grows with them by design until the oldest day is dropped, so a run of minutes fails the RSS
part of the flat rule; rss_mb_per_million_new_uniques shows that share. --users 200 (400,000
pairs, seen within minutes) leaves little but leaks to grow.

  bench/e2e/soak.py [--minutes 30] [--rate 100000] [--rps 1000] [--users 2000000]
                    [--sample_seconds 30] [--build_dir build] [--json_out FILE]
                    [--write_doc [docs/BENCHMARKS.md]]
  bench/e2e/soak.py --from_json FILE --write_doc      (the doc section from a saved JSON line)

The last stdout line is one JSON object (machine, command, date, duration_seconds,
events_ingested, events_per_sec, query_p50_ms, query_p99_ms, freshness_p99_ms, rss_mb / fds /
threads / state_mb {first, last, max, slope_per_hour}, flat, flat_rule, lag_end, lag_ok, lag_rule,
samples, failures (the verdicts that failed, the daemon's death or exit status), errors (the
harness), warnings (failed queries, lost markers)). --write_doc puts a "Soak" section made from
it into docs/BENCHMARKS.md (report.py's write_soak_section; the other sections are kept).
Exit 0 when the daemon stayed up and stopped cleanly, the lag stayed bounded and the flat rule
held; 1 otherwise.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import report  # noqa: E402
import run_e2e  # noqa: E402
from run_e2e import (Daemon, Failed, Procs, cpu_seconds, dir_bytes, free_port,  # noqa: E402
                     last_json_line, log, status_field, u64, vm_hwm_mb)

SAMPLE_FIELDS = ["t", "rss_mb", "fds", "threads", "state_bytes", "state_memory_bytes",
                 "consumer_lag", "events_read", "unique_downloads"]


def relative_command(argv: list[str], script: str = "bench/e2e/soak.py") -> str:
    """This command (`script` with argv) as run from the repository: paths under it made
    relative, other absolute paths (this machine's) written as <path>."""
    args = []
    for a in argv:
        head, sep, val = a.partition("=") if a.startswith("--") else ("", "", a)
        if os.path.isabs(val):
            inside = os.path.abspath(val).startswith(REPO + os.sep)
            val = os.path.relpath(val, REPO) if inside else "<path>"
        args.append(head + sep + val)
    return shlex.join([script] + args)


def free_port_pair() -> int:
    """A free loopback port P with P+1 free too (kafka-local's controller listens on P+1)."""
    for _ in range(100):
        p = free_port()
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", p + 1))
            except OSError:
                continue
        return p
    raise Failed("no two adjacent free ports for the broker")


class Broker:
    """scripts/kafka-local with its state (and data, via TMPDIR) under `state_dir`."""

    def __init__(self, state_dir: str):
        self.port = free_port_pair()
        self.brokers = f"127.0.0.1:{self.port}"
        os.makedirs(state_dir, exist_ok=True)
        self.env = {**os.environ, "KAFKA_PORT": str(self.port), "KAFKA_STATE_DIR": state_dir,
                    "TMPDIR": state_dir}
        self.script = os.path.join(REPO, "scripts", "kafka-local")
        self.started = False

    def start(self) -> None:
        log(f"starting Kafka on {self.brokers}")
        self.started = True  # from here on, stop() runs even if start is interrupted
        r = subprocess.run([self.script, "start"], env=self.env, stdout=sys.stderr, timeout=300)
        if r.returncode != 0:
            raise Failed(f"scripts/kafka-local start exited with {r.returncode}")

    def stop(self) -> None:
        if not self.started:
            return
        self.started = False
        try:
            subprocess.run([self.script, "stop"], env=self.env, stdout=sys.stderr, timeout=120)
        except (OSError, subprocess.SubprocessError) as e:
            log(f"could not stop the broker: {e}")


def slope_per_hour(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, value) points, per hour."""
    if len(points) < 2:
        return None
    n = len(points)
    mt = sum(t for t, _ in points) / n
    mv = sum(v for _, v in points) / n
    var = sum((t - mt) ** 2 for t, _ in points)
    if var == 0:
        return None
    return sum((t - mt) * (v - mv) for t, v in points) / var * 3600


def series(samples: list[dict], key: str, warmup: float, scale: float = 1.0) -> dict:
    """first (after the warm-up), last, max and slope per hour of one sampled figure."""
    pts = [(x["t"], x[key] if scale == 1 else x[key] * scale) for x in samples
           if x["t"] >= warmup and x[key] is not None]
    if not pts:
        return {"first": None, "last": None, "max": None, "slope_per_hour": None}
    slope = slope_per_hour(pts)
    return {"first": round(pts[0][1], 1), "last": round(pts[-1][1], 1),
            "max": round(max(v for _, v in pts), 1), "samples": len(pts),
            "slope_per_hour": None if slope is None else round(slope, 1)}


def rss_per_unique(samples: list[dict], warmup: float) -> float | None:
    """RSS growth per million new unique downloads between the first sample after the warm-up and
    the last (today's dedup set, held in memory, grows with them)."""
    post = [x for x in samples if x["t"] >= warmup and x["rss_mb"] is not None
            and x["unique_downloads"] is not None]
    if len(post) < 2 or post[-1]["unique_downloads"] == post[0]["unique_downloads"]:
        return None
    return round((post[-1]["rss_mb"] - post[0]["rss_mb"]) * 1e6 /
                 (post[-1]["unique_downloads"] - post[0]["unique_downloads"]), 1)


def sample(daemon: Daemon, state_dir: str, t0: float) -> dict:
    pid = daemon.proc.pid
    x = {"t": round(time.monotonic() - t0, 1)}
    try:
        x["rss_mb"] = round(status_field(pid, "VmRSS") / 1024.0, 1)
        x["threads"] = status_field(pid, "Threads")
        x["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:  # the daemon is gone; the caller sees it
        x.update({"rss_mb": None, "threads": None, "fds": None})
    x["state_bytes"] = dir_bytes(state_dir)[0]
    st = daemon.stats()
    for k in ("consumer_lag", "events_read", "unique_downloads", "state_memory_bytes"):
        x[k] = None if st is None else u64(st, k)
    return x


def verdicts(r: dict, opts) -> None:
    """flat and lag, with their rules in words, into r."""
    rss, fds, thr = r["rss_mb"], r["fds"], r["threads"]
    post = [x for x in r["samples_dicts"] if x["t"] >= r["warmup_seconds"]]
    limit_pct = round(opts.rss_growth * 100, 1)
    r["flat_rule"] = (f"RSS of the last sample <= {fmt_pct(limit_pct)} more than the first after "
                      f"the warm-up, and open files within +-{opts.fd_slack} and threads within "
                      f"+-{opts.thread_slack} of their first value after the warm-up at every "
                      f"later sample")
    if len(post) < 2 or rss["first"] is None:
        r["flat"] = False
        r["errors"].append(f"fewer than 2 samples after the warm-up ({len(post)}): no verdict")
    else:
        growth = (rss["last"] - rss["first"]) / rss["first"]
        r["rss_growth_pct"] = round(growth * 100, 1)
        fd_vals = [x["fds"] for x in post if x["fds"] is not None]
        thr_vals = [x["threads"] for x in post if x["threads"] is not None]
        fd_dev = max((abs(v - fds["first"]) for v in fd_vals), default=0)
        thr_dev = max((abs(v - thr["first"]) for v in thr_vals), default=0)
        r["fds_max_deviation"] = fd_dev
        r["threads_max_deviation"] = thr_dev
        r["flat"] = growth <= opts.rss_growth and fd_dev <= opts.fd_slack and \
            thr_dev <= opts.thread_slack
        r["flat_rule"] += (f": RSS {rss['first']} -> {rss['last']} MB "
                           f"({r['rss_growth_pct']:+}%), open files at most {fd_dev} and threads "
                           f"at most {thr_dev} away")
    limit = int(opts.lag_seconds * opts.rate)
    r["lag_limit"] = limit
    r["lag_rule"] = (f"consumer lag of the last sample <= {opts.lag_seconds:g} s of traffic "
                     f"({limit:,} messages at {opts.rate:,} events/s)")
    if r["lag_end"] is None:
        r["lag_ok"] = False
        r["errors"].append("no consumer lag in the last sample (hubctl stats failed)")
    else:
        r["lag_ok"] = r["lag_end"] <= limit
        r["lag_rule"] += f": {r['lag_end']:,}"
        if not r["lag_ok"]:
            r["failures"].append(f"lag grew without bound: {r['lag_end']:,} messages at the "
                                 f"end, more than {opts.lag_seconds:g} s of traffic ({limit:,})")
    if not r["flat"] and len(post) >= 2:
        r["failures"].append(
            f"not flat: RSS {r['rss_growth_pct']:+}% (limit +{fmt_pct(limit_pct)}), open files "
            f"+-{r['fds_max_deviation']} (limit {opts.fd_slack}), threads "
            f"+-{r['threads_max_deviation']} (limit {opts.thread_slack})")


def fmt_pct(p: float) -> str:
    return f"{p:g}%"


def soak(opts, procs: Procs, broker: Broker, r: dict) -> None:
    broker.start()
    opts.brokers = broker.brokers
    # The seed workload (models for the probe's pool), with run_e2e's loadgen shape.
    opts.events = opts.seed_events
    opts.produce_timeout = max(300, opts.seed_events / 20000)
    r["seed"] = run_e2e.produce(opts)
    state_dir = os.path.join(opts.workdir, "state")
    os.makedirs(state_dir)
    daemon = Daemon(procs, opts, state_dir, free_port(), os.path.join(opts.workdir,
                                                                      "hubmetricsd.log"))
    t0 = daemon.start()
    secs, st, _ = daemon.wait_caught_up(opts.seed_events, t0, max(300, opts.seed_events / 10000))
    log(f"seed: {opts.seed_events} events read in {secs:.1f}s")
    base = st

    duration = opts.minutes * 60
    probe_out = os.path.join(opts.workdir, "probe.json")
    probe_warmup = 3
    with open(probe_out, "w") as pf:
        probe = procs.start([os.path.join(opts.bench_bin_dir, "freshness_probe"),
                             f"--brokers={opts.brokers}", f"--topic={opts.topic}",
                             f"--addr={daemon.addr}", f"--rate={opts.rate}",
                             f"--users={opts.users}",
                             f"--marker_every_ms={opts.marker_every_ms}", f"--seconds={duration}",
                             f"--warmup_seconds={probe_warmup}", f"--run=soak{int(time.time())}"],
                            stdout=pf)
    t0 = time.monotonic()
    cpu0 = cpu_seconds(daemon.proc.pid)
    cpu_end = hwm_end = None
    query_out = os.path.join(opts.workdir, "query.json")
    query = None
    samples: list[dict] = []
    next_sample = t0
    end = t0 + probe_warmup + duration
    died = None
    while True:  # bounded: ends at `end` (every call inside has its own timeout)
        now = time.monotonic()
        if query is None and now >= t0 + probe_warmup + 1:
            with open(query_out, "w") as qf:
                query = procs.start([os.path.join(opts.bench_bin_dir, "query_load"),
                                     f"--addr={daemon.addr}", f"--rps={opts.rps}",
                                     f"--seconds={max(1, end - now - 1):.0f}"], stdout=qf)
        if daemon.proc.poll() is not None:
            died = daemon.proc.returncode
            break
        if now >= next_sample or now >= end:
            x = sample(daemon, state_dir, t0)
            samples.append(x)
            log(f"t={x['t']:.0f}s rss {x['rss_mb']} MB fds {x['fds']} threads {x['threads']} "
                f"state {x['state_bytes'] / 1e6:.0f} MB lag {x['consumer_lag']} events_read "
                f"{x['events_read']}")
            next_sample += opts.sample_seconds
            if now >= end:
                try:
                    cpu_end, hwm_end = cpu_seconds(daemon.proc.pid), vm_hwm_mb(daemon.proc.pid)
                except OSError:
                    pass
                break
        if probe.poll() is not None and probe.returncode != 0:
            r["errors"].append(f"freshness_probe exited early with {probe.returncode}")
            break
        time.sleep(max(0.05, min(1.0, next_sample - time.monotonic(), end - time.monotonic())))
    traffic_seconds = time.monotonic() - t0 - probe_warmup

    for name, p, out in (("query_load", query, query_out), ("freshness_probe", probe, probe_out)):
        if p is None:
            continue
        try:
            p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            r["errors"].append(f"{name} did not finish within 60 s of the end; stopped")
            procs.stop(p)
        if p.returncode != 0:
            r["errors"].append(f"{name} exited with {p.returncode}")
        try:
            with open(out) as f:
                r["query" if name == "query_load" else "freshness"] = last_json_line(f.read())
        except (OSError, ValueError, Failed) as e:
            r["errors"].append(f"{name}: no result ({e})")

    if died is None and daemon.proc.poll() is not None:
        died = daemon.proc.returncode
    if died is not None:
        r["daemon_alive"] = False
        r["failures"].append(f"hubmetricsd died during the soak with exit status {died} "
                           f"(log {daemon.log_path})")
    else:
        r["daemon_alive"] = True
        rc = daemon.stop()
        r["daemon_exit_code"] = rc
        if rc != 0:
            r["failures"].append(f"hubmetricsd exited with {rc} on SIGTERM")

    q = r.get("query") or {}
    fr = r.get("freshness") or {}
    last = samples[-1] if samples else {}
    ev_end = last.get("events_read")
    warmup = opts.warmup_seconds if opts.warmup_seconds is not None else min(120.0, 0.1 * duration)
    r.update({
        "duration_seconds": round(traffic_seconds, 1),
        "events_ingested": None if ev_end is None else ev_end - u64(base, "events_read"),
        "events_per_sec": None if ev_end is None else
        round((ev_end - u64(base, "events_read")) / max(1e-9, last["t"])),
        "probe_rate_achieved": fr.get("rate_achieved"),
        "cpu_seconds_per_million_events": None if cpu_end is None or not ev_end else
        round((cpu_end - cpu0) * 1e6 / max(1, ev_end - u64(base, "events_read")), 3),
        "peak_rss_mb": None if hwm_end is None else round(hwm_end, 1),
        "unique_downloads_added": None if last.get("unique_downloads") is None else
        last["unique_downloads"] - u64(base, "unique_downloads"),
        "query_p50_ms": None if "p50_us" not in q else round(q["p50_us"] / 1000, 3),
        "query_p99_ms": None if "p99_us" not in q else round(q["p99_us"] / 1000, 3),
        "query_errors": q.get("errors"),
        "freshness_p50_ms": fr.get("p50_ms"),
        "freshness_p99_ms": fr.get("p99_ms"),
        "freshness_lost_markers": fr.get("lost_markers"),
        "warmup_seconds": round(warmup, 1),
        "rss_mb": series(samples, "rss_mb", warmup),
        "fds": series(samples, "fds", warmup),
        "threads": series(samples, "threads", warmup),
        "state_mb": series(samples, "state_bytes", warmup, 1e-6),
        "state_memory_mb": series(samples, "state_memory_bytes", warmup, 1e-6),
        "rss_mb_per_million_new_uniques": rss_per_unique(samples, warmup),
        "lag_end": last.get("consumer_lag"),
        "lag_max": max((x["consumer_lag"] for x in samples if x["consumer_lag"] is not None),
                       default=None),
        "samples_dicts": samples,
    })
    if q.get("errors"):
        r["warnings"].append(f"query_load: {q['errors']} of {q.get('requests')} requests failed "
                             "(deadline 5 s)")
    if fr.get("lost_markers"):
        r["warnings"].append(f"freshness_probe: {fr['lost_markers']} of {fr.get('markers')} "
                             "markers did not show within its drain time")
    verdicts(r, opts)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=30, help="traffic duration (default 30)")
    ap.add_argument("--rate", type=int, default=100000, help="events/s of freshness_probe")
    ap.add_argument("--rps", type=int, default=1000, help="GetConcentration requests/s")
    ap.add_argument("--users", type=int, default=2000000,
                    help="freshness_probe's distinct users (its default, 2,000,000: most events "
                         "are new unique downloads of today, which hubmetricsd's dedup set holds "
                         "in memory; a few hundred saturate the pairs within minutes)")
    ap.add_argument("--marker_every_ms", type=int, default=50,
                    help="freshness_probe's marker interval: each marker is a brand-new model, "
                         "so markers add entities (and memory) for as long as the run lasts; "
                         "1000 keeps that to one model a second")
    ap.add_argument("--sample_seconds", type=float, default=30)
    ap.add_argument("--warmup_seconds", type=float,
                    help="samples before this are warm-up (default 10%% of the run, <= 120 s)")
    ap.add_argument("--rss_growth", type=float, default=0.10,
                    help="flat rule: RSS may grow this fraction after the warm-up (0.10)")
    ap.add_argument("--fd_slack", type=int, default=16, help="flat rule: open files +- this")
    ap.add_argument("--thread_slack", type=int, default=4, help="flat rule: threads +- this")
    ap.add_argument("--lag_seconds", type=float, default=10,
                    help="lag rule: lag at the end <= this many seconds of traffic (10)")
    ap.add_argument("--seed_events", type=int, default=1000000,
                    help="loadgen events ingested before the soak (the probe's model pool)")
    ap.add_argument("--build_dir", default=os.path.join(REPO, "build"),
                    help="build dir with services/ and bench/ (default build)")
    ap.add_argument("--workdir", help="state and logs (default: a temporary dir, removed)")
    ap.add_argument("--json_out", help="write the JSON object here too")
    ap.add_argument("--write_doc", nargs="?", const=os.path.join(REPO, "docs", "BENCHMARKS.md"),
                    help="write the Soak section of this file (default docs/BENCHMARKS.md)")
    ap.add_argument("--from_json", help="no run: the JSON line of an earlier run (--write_doc)")
    opts = ap.parse_args()
    run_e2e.LOG_NAME = "soak"

    if opts.from_json:
        with open(opts.from_json) as f:
            r = last_json_line(f.read())
        if opts.write_doc:
            report.write_soak_section(opts.write_doc, r)
            log(f"wrote the Soak section of {opts.write_doc}")
        return 0
    if opts.minutes <= 0 or opts.rate <= 0 or opts.rps <= 0 or opts.sample_seconds <= 0:
        ap.error("--minutes, --rate, --rps and --sample_seconds must be > 0")

    build = os.path.abspath(opts.build_dir)
    opts.bin_dir = os.path.join(build, "services")
    opts.bench_bin_dir = os.path.join(build, "bench")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    opts.topic = f"soak.downloads.{stamp}"
    opts.models_topic = f"{opts.topic}.models"
    opts.group_id = f"hubmetrics-soak-{stamp}"
    opts.seed = 1
    own_workdir = not opts.workdir
    opts.workdir = os.path.abspath(opts.workdir or tempfile.mkdtemp(prefix="hm-soak-"))
    os.makedirs(opts.workdir, exist_ok=True)

    signal.signal(signal.SIGTERM, run_e2e._raise_exit)
    signal.signal(signal.SIGINT, run_e2e._raise_exit)
    signal.signal(signal.SIGHUP, run_e2e._raise_exit)
    r: dict = {
        "benchmark": "soak",
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "git_commit": report.git_commit(REPO),
        "machine": report.machine(),
        "command": relative_command(sys.argv[1:]),
        "minutes": opts.minutes, "rate_target": opts.rate, "query_rps_target": opts.rps,
        "probe_users": opts.users,
        "sample_every_seconds": opts.sample_seconds, "flat": False, "lag_ok": False,
        "daemon_alive": None, "daemon_exit_code": None, "failures": [], "errors": [],
        "warnings": [],
    }
    procs = Procs()
    broker = Broker(os.path.join(opts.workdir, "kafka"))
    interrupted = True
    try:
        soak(opts, procs, broker, r)
        interrupted = False
    except (Failed, subprocess.SubprocessError, OSError) as e:
        interrupted = False
        r["errors"].append(str(e))
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):  # a second Ctrl-C waits
            signal.signal(sig, signal.SIG_IGN)
        procs.stop_all()
        broker.stop()
        if interrupted and own_workdir:
            shutil.rmtree(opts.workdir, ignore_errors=True)
    ok = r["daemon_alive"] is True and r["daemon_exit_code"] == 0 and r["flat"] and r["lag_ok"] \
        and not r["errors"] and not r["failures"]
    for f in r["failures"]:
        log(f"FAIL: {f}")
    if own_workdir and ok:
        shutil.rmtree(opts.workdir, ignore_errors=True)
    elif own_workdir:  # the logs are kept for a look, not the state
        shutil.rmtree(os.path.join(opts.workdir, "state"), ignore_errors=True)
        log(f"logs kept in {opts.workdir}")
    samples = r.pop("samples_dicts", [])
    r["sample_fields"] = SAMPLE_FIELDS
    r["samples"] = [[x[k] for k in SAMPLE_FIELDS] for x in samples]
    line = json.dumps(r, separators=(",", ":"))
    if opts.json_out:
        with open(opts.json_out, "w") as f:
            f.write(line + "\n")
    if opts.write_doc:
        report.write_soak_section(opts.write_doc, r)
        log(f"wrote the Soak section of {opts.write_doc}")
    print(line, flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
