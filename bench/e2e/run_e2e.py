#!/usr/bin/env python3
"""End-to-end benchmark of hubmetricsd against a real Kafka broker (issue 5).

Phases (each bounded by a timeout; every process started here is stopped on every exit path):
 (a) produce: loadgen (Kafka mode, binary values, --rate=0) writes the catalog to --models_topic and
     exactly N events to --topic BEFORE anything is timed. The topic is auto-created by the broker
     with its default partition count (3 with scripts/kafka-local) by a metadata request
     (`kcat -L -t`) before loadgen starts, so that loadgen's messages spread over the partitions
     from the first one (producing to a topic that does not exist yet queues them all and then
     puts them on one partition). Traffic scales with N: --days=clamp(N/400000, 14, 70),
     --models=clamp(N/2000, 3000, 100000), --users=clamp(N/25, 60000, 5000000); loadgen's other
     defaults (realistic popularity, duplicates, 1% bad records of every reject reason) are kept,
     except --start=2025-03-10T00:00:00Z: one of loadgen's invalid_time strings,
     "2025-3-4T12:00:00Z" (one-digit month and day), is accepted by the protobuf JSON parser
     when loadgen converts records to binary values, so it arrives as a VALID event of
     2025-03-04T12:00Z; with loadgen's default start (2025-01-06) that event moves the watermark
     two months ahead and turns almost every later event into a too_late reject. Starting after
     it keeps it a too_late reject, as intended.
     Days scale so that a day holds >= ~200k events at every size: the Hub's real feed is far
     denser than that, and hubmetricsd's watermark is global across partitions, so a sparse
     stream whose partitions are consumed unevenly would turn good events into too_late rejects.
 (b) ingest: hubmetricsd with a fresh --state_dir and its crash-safe defaults (one RocksDB
     WriteBatch with the offsets per batch, WAL on), timed from process start until
     `hubctl stats --json` shows events_read == N and consumer_lag == 0 (the end seen in its log,
     where it writes when it has caught up, within 10 ms, then checked with hubctl; meanwhile
     hubctl runs once a second for progress: one every 100 ms took CPU from the daemon timed).
     CPU = utime+stime of hubmetricsd from /proc/<pid>/stat at that moment. Then hubmetricsd is
     stopped with SIGTERM (clean shutdown) and the state directory is measured:
     state_bytes_per_unique = every file of the state dir (SST, WAL, MANIFEST, OPTIONS, key file)
     / unique_downloads; state_bytes_per_unique_excluding_wal leaves the WAL (*.log) out. Measured
     here, before phases (c)/(d), so that it holds exactly the N-event workload; hubmetricsd is
     then restarted on the same state (restart_seconds: start until serving with lag 0).
 (c) freshness: freshness_probe at --rate=100000 background events/s with a marker every 50 ms,
     for --freshness_seconds (quick 20 s, full 60 s).
 (d) query: freshness_probe's background traffic (markers on, so freshness under query load is
     reported too) while query_load sends GetConcentration at --rps (1000) for --query_seconds
     (quick 15 s, full 60 s); every thread time-shared, as hubmetricsd runs by default. The mix:
     the live levels x the live windows all, trailing:4, trailing:52 and two windows computed on
     request, the workload's middle week (week:W) and the range of all its weeks (range:A..B).
     query_server_cpu_us: hubmetricsd's CPU (utime+stime) during the load minus its background
     rate (measured over --server_baseline_seconds just before, the probe already running), per
     call.
 (d0) query floor: phase (d) again, the probe's traffic still going into hubmetricsd, with
     query_load sending to query_floor_server instead (it answers at once with a fixed answer of
     the same shape, one thread on gRPC's async API): query_floor_p99_ms, the latency this
     machine allows any gRPC server under this load; hubmetricsd's p99 is read against it.
 (d2) query, real-time client: phase (d) again with query_load at SCHED_FIFO --realtime_priority
     and hubmetricsd unchanged (time-shared, default flags): query_p99_ms_client_realtime, what a
     client on another machine would see, without the client's own waits for a core here (its
     sender and its completion thread share the two cores with the broker and the probe).
 (d') batch: the same with GetConcentrations of --batch_size (32) items at each call rate of
     --batch_rps (100,200,400) for --batch_seconds (quick 8, full 20) each; batch_answers_per_sec
     is the answers/s of the highest rate whose p99 per call stayed under 1 ms (else of the lowest
     rate; batch_p99_ms says which), batch_server_cpu_us_per_answer its CPU per answer.
 (e) real-time query: hubmetricsd restarted with --grpc_realtime_priority=P and query_load at
     --realtime_priority=P (P = --realtime_priority, 10), then phase (d) again at each rate of
     --realtime_rps (1000,2500,5000): query_realtime_p99_ms (at --rps) and the freshness of the
     background traffic meanwhile (freshness_p99_ms_during_realtime_queries), since real-time
     query threads run ahead of ingest. Skipped with a warning where SCHED_FIFO is refused (no
     CAP_SYS_NICE or RLIMIT_RTPRIO).
 peak_rss_mb is VmHWM of hubmetricsd read at the end of phase (b), just before its clean stop: the
 peak for the N-event workload (issue 5's "under 2 GiB for 50 million events").
 peak_rss_mb_all_phases is the larger of that and VmHWM of the restarted daemon read just before
 the final stop, after the probes' extra events (about 100,000/s for the freshness and query
 phases, most of them new unique downloads of today).

  run_e2e.py --bin_dir build-e2e/services --bench_bin_dir build-e2e/bench \\
      --brokers 127.0.0.1:19292 --events 3000000 [--quick] [--workdir DIR] [--topic T]
      [--mode all|produce|run]

--mode produce runs (a) only; --mode run assumes --topic/--models_topic already hold the workload
(e.g. so that another consumer can be timed on the same topic before the probe adds events to it).
--mode catchup runs (b)'s clock only, on a fresh state dir and consumer group (--tag names them),
with --daemon_flag extras (e.g. --sync_commits), the broker's CPU seconds and bytes written to
storage (/proc/PID/io write_bytes) over the same interval, and with --hub_answers FILE saves
hubmetricsd's answers (unique downloads, rejects by reason, weekly per-model counts) for
bench/peers/kstreams/compare_weekly.py. It is catch-up: the topic was written before hubmetricsd
started.
--mode live: the highest steady produce rate hubmetricsd keeps up with. Each step is a fresh
topic and a fresh hubmetricsd (with --daemon_flag extras), caught up on the empty topic; loadgen
then produces at a steady --rate for --live_step_seconds (quick 8, full 20) while hubmetricsd's
consumer lag is sampled every 0.5 s. A rate is kept up with when the lag over the step's second
half stayed <= --live_lag_bound_s (2) seconds of traffic and hubmetricsd had read every event
<= that bound after loadgen stopped; loadgen must reach >= 90% of the rate (its own rate counts
its final flush). Rates start at
--live_start_rate (100,000) and grow by --live_factor (1.5) until one is not kept up with, the
producer cannot reach it (then the figure is a lower bound: limited_by "producer"), or
--live_budget_s (quick 75, full 600) is spent; then --live_refine (quick 1, full 2) bisections.
Result: live.max_events_per_sec, live.limited_by, every step.
The last stdout line is one JSON object (events_per_sec, cpu_seconds_per_million_events,
peak_rss_mb, state_bytes_per_unique, unique_downloads, duplicates, rejected, freshness_p50_ms,
freshness_p99_ms, query_p50_ms, query_p99_ms, query_floor_p99_ms, query_server_cpu_us,
batch_answers_per_sec, batch_p99_ms, ..., errors). Exit 0 when every phase ran, else 1.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "tests", "e2e"))
from e2e_test import free_port  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "peers", "kstreams"))
import compare_weekly  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
LOG_NAME = "run_e2e"  # the prefix of log lines; scripts that import these helpers set their own


def log(msg: str) -> None:
    print(f"[{LOG_NAME} {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class Failed(Exception):
    """A phase could not complete."""


def _raise_exit(signum, _frame):
    raise SystemExit(128 + signum)


def last_json_line(text: str) -> dict:
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            return json.loads(line)
    raise Failed(f"no JSON line in output: {text[-500:]!r}")


class Procs:
    """Every child process started here, stopped on exit (TERM, then KILL)."""

    def __init__(self):
        self.procs: list[subprocess.Popen] = []

    def start(self, args: list[str], **kw) -> subprocess.Popen:
        p = subprocess.Popen(args, **kw)
        self.procs.append(p)
        return p

    def stop(self, p: subprocess.Popen, timeout: float = 60) -> int | None:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                log(f"pid {p.pid} did not stop in {timeout}s; killing it")
                p.kill()
                p.wait(timeout=10)
        return p.returncode

    def stop_all(self):
        for p in reversed(self.procs):
            try:
                self.stop(p, timeout=20)
            except Exception as e:  # noqa: BLE001 - best effort on the way out
                log(f"could not stop pid {p.pid}: {e}")


def run(args: list[str], timeout: float, what: str) -> str:
    """Runs a tool to completion (stderr passes through); returns its stdout."""
    log(f"{what}: {' '.join(args)}")
    try:
        r = subprocess.run(args, stdout=subprocess.PIPE, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise Failed(f"{what} did not finish within {timeout:.0f}s") from e
    if r.returncode != 0:
        raise Failed(f"{what} exited with {r.returncode}: {r.stdout[-500:]}")
    return r.stdout


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is the state (field 3); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def status_field(pid: int, name: str) -> int:
    """A number of /proc/<pid>/status ("VmHWM", "VmRSS" in kB, "Threads"); 0 when absent."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(name + ":"):
                return int(line.split()[1])
    return 0


def vm_hwm_mb(pid: int) -> float:
    return status_field(pid, "VmHWM") / 1024.0


def dir_bytes(path: str) -> tuple[int, int]:
    """(all regular files, WAL *.log files) under path, in bytes."""
    total = wal = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            p = os.path.join(root, name)
            try:
                if not os.path.isfile(p) or os.path.islink(p):
                    continue
                size = os.path.getsize(p)
            except FileNotFoundError:  # deleted meanwhile (a live daemon's compaction)
                continue
            total += size
            if name.endswith(".log") and name[:-4].isdigit():
                wal += size
    return total, wal


def u64(obj: dict, name: str) -> int:
    return int(obj.get(name, 0) or 0)


class Daemon:
    """One hubmetricsd run on Kafka, with `hubctl stats --json` polling."""

    def __init__(self, procs: Procs, opts, state_dir: str, port: int, log_path: str,
                 group_id: str | None = None, topic: str | None = None,
                 models_topic: str | None = None):
        self.procs = procs
        self.opts = opts
        self.group_id = group_id or opts.group_id
        self.topic = topic or opts.topic
        self.models_topic = models_topic or opts.models_topic
        self.state_dir = state_dir
        self.addr = f"127.0.0.1:{port}"
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None
        self.hubctl = os.path.join(opts.bin_dir, "hubctl", "hubctl")

    def start(self, extra: list[str] | None = None) -> float:
        args = [
            os.path.join(self.opts.bin_dir, "hubmetricsd", "hubmetricsd"),
            f"--state_dir={self.state_dir}",
            f"--grpc_listen={self.addr}",
            f"--kafka_brokers={self.opts.brokers}",
            f"--events_topic={self.topic}",
            f"--models_topic={self.models_topic}",
            f"--dlq_topic={self.topic}.dlq",
            f"--group_id={self.group_id}",
            "--events_format=binary",
        ] + (extra or [])
        log(f"hubmetricsd: {' '.join(args)}")
        logf = open(self.log_path, "a")
        self.log_offset = logf.tell()  # this run's lines start here
        t0 = time.monotonic()
        self.proc = self.procs.start(args, stdout=logf, stderr=subprocess.STDOUT)
        logf.close()
        return t0

    def stats(self) -> dict | None:
        try:
            r = subprocess.run([self.hubctl, f"--addr={self.addr}", "--json", "--timeout=2s",
                                "stats"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               text=True, timeout=10)
        except subprocess.TimeoutExpired:
            return None
        if r.returncode != 0 or not r.stdout.strip():
            return None
        return json.loads(r.stdout.strip().splitlines()[-1])

    # hubmetricsd logs this the first time after an assignment that every partition is read and
    # committed to its end (lib/kafka/kafka_sources.cc), with the events read in all.
    CAUGHT_UP = re.compile(rb"caught up with (\S+): \d+ partitions read and committed to their "
                           rb"end, (\d+) events read in all")

    def caught_up_line(self, offset: int) -> tuple[int, int | None]:
        """(new offset, events read) of this run's log from `offset`: the events read of a
        caught-up line of this topic, None when there is none yet (whole lines only)."""
        with open(self.log_path, "rb") as f:
            f.seek(offset)
            chunk = f.read()
        end = chunk.rfind(b"\n") + 1
        events = None
        for m in self.CAUGHT_UP.finditer(chunk[:end]):
            if m.group(1).decode() == self.topic:
                events = int(m.group(2))
        return offset + end, events

    def wait_caught_up(self, n: int, t0: float, timeout: float) -> tuple[float, dict, float]:
        """Until events_read >= n and lag 0; (seconds, stats, cpu). The end is seen in the log
        (watched every 10 ms: the line hubmetricsd writes when it has caught up) and then checked
        with one `hubctl stats`; a hubctl process every 100 ms took CPU from the daemon being
        timed. Stats are polled once a second as well, for progress and in case the line came
        before the N-th event (a topic still being written)."""
        deadline = t0 + timeout
        last_log = last_poll = time.monotonic()
        offset = self.log_offset
        while True:
            if self.proc.poll() is not None:
                raise Failed(f"hubmetricsd exited with {self.proc.returncode} "
                             f"(log {self.log_path})")
            offset, events = self.caught_up_line(offset)
            now = time.monotonic()
            st = None
            if (events is not None and events >= n) or now - last_poll >= 1.0:
                last_poll = now
                st = self.stats()
            if st is not None and u64(st, "events_read") >= n and u64(st, "consumer_lag") == 0 \
                    and st.get("partitions") and all(
                        int(p.get("high_watermark", -1)) >= 0 for p in st["partitions"]):
                cpu = cpu_seconds(self.proc.pid)
                return now - t0, st, cpu
            if now > deadline:
                raise Failed(f"hubmetricsd not caught up after {timeout:.0f}s: {st}")
            if now - last_log > 10 and st is not None:
                log(f"  events_read {u64(st, 'events_read')} lag {u64(st, 'consumer_lag')} "
                    f"({u64(st, 'events_read') / max(1e-9, now - t0):.0f}/s so far)")
                last_log = now
            time.sleep(0.01)

    def stop(self) -> int | None:
        rc = self.procs.stop(self.proc, timeout=120)
        log(f"hubmetricsd stopped with {rc}")
        return rc


START = datetime.date(2025, 3, 10)


def workload_shape(n: int) -> dict:
    """loadgen's traffic shape for N events (module docstring, (a))."""
    return {"models": min(100000, max(3000, n // 2000)), "users": min(5000000, max(60000, n // 25)),
            "days": min(70, max(14, n // 400000)), "start": START}


def loadgen_args(opts, topic: str, models_topic: str, n: int, rate: int = 0) -> list[str]:
    shape = workload_shape(n)
    return [os.path.join(opts.bin_dir, "loadgen", "loadgen"),
            f"--kafka_brokers={opts.brokers}", f"--events_topic={topic}",
            f"--models_topic={models_topic}", "--events_format=binary", f"--rate={rate}",
            f"--total={n}", f"--events={n}", f"--models={shape['models']}",
            f"--users={shape['users']}", f"--start={shape['start'].isoformat()}T00:00:00Z",
            f"--days={shape['days']}", f"--seed={opts.seed}", "--progress_every=10s"]


def produce(opts) -> dict:
    n = opts.events
    create_topic(opts)
    args = loadgen_args(opts, opts.topic, opts.models_topic, n)
    t0 = time.monotonic()
    run(args, timeout=opts.produce_timeout, what="produce")
    seconds = time.monotonic() - t0
    partitions = topic_partitions(opts)
    log(f"produced {n} events in {seconds:.1f}s ({n / seconds:.0f}/s); topic {opts.topic} has "
        f"{partitions} partitions")
    return {"events": n, "produce_seconds": round(seconds, 2),
            "produce_events_per_sec": round(n / seconds), "partitions": partitions,
            "loadgen_args": " ".join(args[1:])}


def require_kcat() -> None:
    """kcat creates the topics and counts their partitions: without it those checks cannot run,
    so its absence is a failure, not a pass."""
    if not shutil.which("kcat"):
        raise Failed("kcat not found (scripts/bootstrap installs it): the topic cannot be "
                     "pre-created nor its partitions checked")


def create_topic(opts, topic: str | None = None) -> None:
    """Auto-creates `topic` (default --topic) with the broker's default partitions (a metadata
    request)."""
    require_kcat()
    topic = topic or opts.topic
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if (topic_partitions(opts, topic) or 0) > 0:
            return
        time.sleep(0.5)
    raise Failed(f"topic {topic} was not created within 30 s")


def topic_partitions(opts, topic: str | None = None) -> int:
    require_kcat()
    r = subprocess.run(["kcat", "-L", "-b", opts.brokers, "-t", topic or opts.topic, "-m", "10"],
                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, timeout=30)
    return sum(1 for line in r.stdout.splitlines() if line.strip().startswith("partition ")
               and "leader" in line)


def percentile_fields(prefix: str, probe: dict) -> dict:
    return {f"{prefix}_p50_ms": probe.get("p50_ms"), f"{prefix}_p99_ms": probe.get("p99_ms"),
            f"{prefix}_max_ms": probe.get("max_ms")}


def realtime_refused(priority: int) -> str:
    """Why this machine refuses SCHED_FIFO at `priority` (needs CAP_SYS_NICE or RLIMIT_RTPRIO)."""
    r = subprocess.run([sys.executable, "-c",
                        f"import os; os.sched_setscheduler(0, os.SCHED_FIFO, "
                        f"os.sched_param({priority}))"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=30)
    return "" if r.returncode == 0 else (r.stderr.strip().splitlines() or ["refused"])[-1]


def iso_week(d: datetime.date) -> str:
    y, w, _ = d.isocalendar()
    return f"{y}-W{w:02d}"


def non_live_windows(n: int) -> list[str]:
    """The query mix's windows that hubmetricsd computes on request: the middle ISO week of the
    N-event workload and the range of all its weeks (loadgen's days; the probes' events are of
    today, so these weeks hold the workload's counts)."""
    shape = workload_shape(n)
    first = shape["start"]
    last = first + datetime.timedelta(days=shape["days"] - 1)
    mid = first + (last - first) // 2
    return [f"week:{iso_week(mid)}", f"range:{iso_week(first)}..{iso_week(last)}"]


def query_phase(opts, procs: Procs, probe_common: list[str], rps: int, priority: int, tag: str,
                warnings: list[str], errors: list[str], server_pid: int | None = None,
                seconds: float | None = None, extra: list[str] | None = None,
                addr: str | None = None) -> tuple[dict, dict | None]:
    """query_load at `rps` for `seconds` (default --query_seconds; at SCHED_FIFO `priority` when
    > 0; `extra` flags such as --batch=N) over the mix with the workload's non-live windows, with
    hubmetricsd's CPU per call when `server_pid` is given, while the probe sends its background
    traffic with markers; (query result, probe result or None). `addr`: another server to query
    than hubmetricsd (the floor server), the background traffic still going to hubmetricsd."""
    seconds = seconds or opts.query_seconds
    baseline = opts.server_baseline_seconds if server_pid else 0
    probe_out = os.path.join(opts.workdir, f"probe-during-queries-{tag}.json")
    warmup = 3
    with open(probe_out, "w") as pf:
        probe = procs.start(probe_common + [f"--seconds={seconds + baseline + 2}",
                                            f"--warmup_seconds={warmup}",
                                            f"--run=q{tag}{int(time.time())}"], stdout=pf)
    time.sleep(warmup + 1)
    args = [os.path.join(opts.bench_bin_dir, "query_load"),
            f"--addr={addr or opts.daemon_addr}", f"--rps={rps}", f"--seconds={seconds}",
            f"--non_live_windows={','.join(non_live_windows(opts.events))}"]
    if server_pid:
        args += [f"--server_pid={server_pid}", f"--server_baseline_seconds={baseline}"]
    if priority > 0:
        args.append(f"--realtime_priority={priority}")
    args += extra or []
    out = run(args, timeout=seconds + baseline + 60, what="query load")
    q = last_json_line(out)
    if q.get("errors"):
        warnings.append(f"query {tag}: {q['errors']} of {q.get('requests')} requests failed "
                        "(deadline 5 s)")
    if q.get("item_errors"):
        warnings.append(f"query {tag}: {q['item_errors']} batch items answered with an error")
    try:
        probe.wait(timeout=seconds + baseline + 60)
    except subprocess.TimeoutExpired:
        procs.stop(probe)
    if probe.returncode != 0:
        errors.append(f"background probe during queries ({tag}) exited with {probe.returncode}")
        return q, None
    with open(probe_out) as pf:
        return q, last_json_line(pf.read())


def floor_phase(opts, procs: Procs, probe_common: list[str], warnings: list[str],
                errors: list[str]) -> dict:
    """Phase (d0): query_load at --rps against query_floor_server (a fixed answer at once, one
    thread on gRPC's async API) while the probe feeds hubmetricsd as in (d): the latency the
    machine itself allows a GetConcentration under this load."""
    seconds = opts.query_seconds + opts.server_baseline_seconds + 120
    args = [os.path.join(opts.bench_bin_dir, "query_floor_server"), "--listen=127.0.0.1:0",
            f"--seconds={seconds:.0f}"]
    log(f"query floor server: {' '.join(args)}")
    server = procs.start(args, stdout=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline().strip()
        if not line.startswith("listening on "):
            raise Failed(f"query_floor_server did not start (said {line!r}, exit "
                         f"{server.poll()})")
        addr = line[len("listening on "):]
        q, _ = query_phase(opts, procs, probe_common, opts.rps, 0, "d0", warnings, errors,
                           server_pid=server.pid, addr=addr)
        return q
    finally:
        procs.stop(server)


def batch_phase(opts, procs: Procs, probe_common: list[str], server_pid: int,
                warnings: list[str], errors: list[str]) -> dict:
    """GetConcentrations of --batch_size items at each call rate of --batch_rps (phase (d')), each
    for --batch_seconds during the probe's background traffic. batch_answers_per_sec: the answers/s
    of the highest rate whose p99 per call stayed under 1 ms, else of the lowest rate (its
    batch_p99_ms then shows the miss)."""
    steps = []
    for rps in opts.batch_rps:
        try:
            q, pq = query_phase(opts, procs, probe_common, rps, 0, f"b{rps}", warnings, errors,
                                server_pid=server_pid, seconds=opts.batch_seconds,
                                extra=[f"--batch={opts.batch_size}"])
        except Failed as e:
            errors.append(f"batch query at {rps} calls/s: {e}")
            continue
        steps.append({"rps": rps, "query": q,
                      "ingest_rate": pq.get("rate_achieved") if pq else None})
    met = [s for s in steps if s["query"]["p99_us"] < 1000 and not s["query"].get("errors")]
    chosen = max(met, key=lambda s: s["query"]["answers_per_sec"]) if met else \
        (min(steps, key=lambda s: s["rps"]) if steps else None)
    out = {"batch_size": opts.batch_size, "steps": steps,
           "rule": "the answers/s of the highest call rate whose p99 per call < 1 ms (no failed "
                   "call); when none, the lowest rate's"}
    if chosen:
        cq = chosen["query"]
        out.update({"batch_answers_per_sec": round(cq["answers_per_sec"]),
                    "batch_p99_ms": round(cq["p99_us"] / 1000, 3),
                    "batch_rps": chosen["rps"],
                    "batch_server_cpu_us_per_answer": cq.get("server_cpu_us_per_answer")})
    return out


def run_phases(opts, procs: Procs, result: dict) -> None:
    errors = result["errors"]
    warnings = result["warnings"]
    n = opts.events
    state_dir = os.path.join(opts.workdir, "state")
    shutil.rmtree(state_dir, ignore_errors=True)
    os.makedirs(state_dir)
    daemon = Daemon(procs, opts, state_dir, opts.grpc_port or free_port(),
                    os.path.join(opts.workdir, "hubmetricsd.log"))
    opts.daemon_addr = daemon.addr

    # (b) ingest from process start to lag 0.
    t0 = daemon.start()
    seconds, st, cpu = daemon.wait_caught_up(n, t0, opts.ingest_timeout)
    rss_ingest = vm_hwm_mb(daemon.proc.pid)
    events_read = u64(st, "events_read")
    result.update({
        "ingest_seconds": round(seconds, 3),
        "events_per_sec": round(n / seconds),
        "events_read": events_read,
        "cpu_seconds": round(cpu, 2),
        "cpu_seconds_per_million_events": round(cpu / n * 1e6, 3),
        "peak_rss_mb": round(rss_ingest, 1),
        "unique_downloads": u64(st, "unique_downloads"),
        "duplicates": u64(st, "duplicates"),
        "rejected": u64(st, "rejected"),
        "state_disk_bytes_live": u64(st, "state_disk_bytes"),
    })
    if events_read != n:
        errors.append(f"events_read {events_read} != {n}: the topic holds other events")
    log(f"ingest: {n} events in {seconds:.2f}s = {n / seconds:.0f}/s, cpu {cpu:.1f}s, "
        f"VmHWM {rss_ingest:.0f} MB, unique {result['unique_downloads']}")

    # State on disk after a clean shutdown, for exactly this workload.
    rc = daemon.stop()
    if rc != 0:
        errors.append(f"hubmetricsd exited with {rc} on SIGTERM")
    total, wal = dir_bytes(state_dir)
    uniq = max(1, result["unique_downloads"])
    result.update({
        "state_disk_bytes": total, "state_wal_bytes": wal,
        "state_bytes_per_unique": round(total / uniq, 2),
        "state_bytes_per_unique_excluding_wal": round((total - wal) / uniq, 2),
    })
    log(f"state after clean shutdown: {total} bytes ({wal} WAL) = "
        f"{total / uniq:.1f} bytes per unique download")

    # Restart on the same state for the live phases.
    t0 = daemon.start()
    restart_s, _, _ = daemon.wait_caught_up(0, t0, 300)
    result["restart_seconds"] = round(restart_s, 2)
    log(f"restarted on the state in {restart_s:.2f}s")

    bench = opts.bench_bin_dir
    probe_bin = os.path.join(bench, "freshness_probe")
    probe_common = [probe_bin, f"--brokers={opts.brokers}", f"--topic={opts.topic}",
                    f"--addr={daemon.addr}", f"--rate={opts.rate}", "--marker_every_ms=50"]

    # (c) freshness.
    try:
        out = run(probe_common + [f"--seconds={opts.freshness_seconds}",
                                  f"--run=f{int(time.time())}"],
                  timeout=opts.freshness_seconds + 120, what="freshness")
        fr = last_json_line(out)
        result["freshness"] = fr
        result.update(percentile_fields("freshness", fr))
        if fr.get("lost_markers"):
            warnings.append(f"freshness: {fr['lost_markers']} of {fr.get('markers')} markers "
                            "did not show within the drain time")
    except Failed as e:
        errors.append(f"freshness: {e}")
        result.update({"freshness": None, "freshness_p50_ms": None, "freshness_p99_ms": None})

    # (d) queries while ingesting the probe's background traffic, every thread time-shared.
    try:
        q, pq = query_phase(opts, procs, probe_common, opts.rps, 0, "d", warnings, errors,
                            server_pid=daemon.proc.pid)
        result["query"] = q
        result.update({"query_p50_ms": round(q["p50_us"] / 1000, 3),
                       "query_p99_ms": round(q["p99_us"] / 1000, 3),
                       "query_p999_ms": round(q["p999_us"] / 1000, 3),
                       "query_rps_achieved": q["rps_achieved"],
                       "query_server_cpu_us": q.get("server_cpu_us_per_call"),
                       "query_non_live_windows": q.get("non_live_windows")})
        if pq is not None:
            result["freshness_during_queries"] = pq
            result["ingest_rate_during_queries"] = pq.get("rate_achieved")
    except Failed as e:
        errors.append(f"query: {e}")
        result.update({"query": None, "query_p50_ms": None, "query_p99_ms": None,
                       "query_server_cpu_us": None})

    # (d0) the floor: the same load, the same background traffic into hubmetricsd, sent to a
    # server that does nothing but answer (query_floor_server).
    try:
        q0 = floor_phase(opts, procs, probe_common, warnings, errors)
        result["query_floor"] = q0
        result["query_floor_p99_ms"] = round(q0["p99_us"] / 1000, 3)
    except Failed as e:
        errors.append(f"query floor: {e}")
        result.update({"query_floor": None, "query_floor_p99_ms": None})

    # (d2) the same load with only the client at real-time priority, hubmetricsd as in (d): what
    # a client on another machine would measure, without this client's own waits for a core.
    prio = opts.realtime_priority
    if prio > 0 and not realtime_refused(prio):
        try:
            q2, _ = query_phase(opts, procs, probe_common, opts.rps, prio, "d2", warnings, errors,
                                server_pid=daemon.proc.pid)
            result["query_client_realtime"] = q2
            result["query_p99_ms_client_realtime"] = round(q2["p99_us"] / 1000, 3)
        except Failed as e:
            errors.append(f"query with a real-time client: {e}")

    # (d') the batch RPC: GetConcentrations of --batch_size items at each --batch_rps.
    if opts.batch_rps:
        qb = batch_phase(opts, procs, probe_common, daemon.proc.pid, warnings, errors)
        result["query_batch"] = qb
        for key in ("batch_answers_per_sec", "batch_p99_ms", "batch_rps",
                    "batch_server_cpu_us_per_answer"):
            result[key] = qb.get(key)
        result["batch_size"] = opts.batch_size
    rss_live = vm_hwm_mb(daemon.proc.pid)

    # (e) the same with gRPC's threads and the client at real-time priority, at each rate of
    # --realtime_rps: the daemon restarts with --grpc_realtime_priority.
    prio = opts.realtime_priority
    why_not = realtime_refused(prio) if prio > 0 else "--realtime_priority=0"
    if why_not:
        warnings.append(f"real-time query phase skipped: {why_not}")
        result["query_realtime"] = None
    else:
        rc = daemon.stop()
        if rc != 0:
            errors.append(f"hubmetricsd exited with {rc} on SIGTERM before the real-time phase")
        t0 = daemon.start([f"--grpc_realtime_priority={prio}"])
        try:
            daemon.wait_caught_up(0, t0, 300)
        except Failed as e:
            errors.append(f"real-time query phase: {e}")
            return
        result["query_realtime"] = {"priority": prio, "by_rps": {}}
        for rps in opts.realtime_rps:
            try:
                q, pq = query_phase(opts, procs, probe_common, rps, prio, f"e{rps}", warnings,
                                    errors, server_pid=daemon.proc.pid)
                result["query_realtime"]["by_rps"][str(rps)] = {
                    "query": q, "freshness_during_queries": pq}
                if rps == opts.rps:
                    result.update({
                        "query_realtime_p50_ms": round(q["p50_us"] / 1000, 3),
                        "query_realtime_p99_ms": round(q["p99_us"] / 1000, 3),
                        "freshness_p99_ms_during_realtime_queries":
                            pq.get("p99_ms") if pq else None})
            except Failed as e:
                errors.append(f"real-time query at {rps}/s: {e}")

    final = daemon.stats() or {}
    result["peak_rss_mb_all_phases"] = round(
        max(rss_ingest, rss_live, vm_hwm_mb(daemon.proc.pid)), 1)
    result["unique_downloads_final"] = u64(final, "unique_downloads")
    result["events_read_final"] = u64(final, "events_read")
    rc = daemon.stop()
    if rc != 0:
        errors.append(f"hubmetricsd exited with {rc} on the final SIGTERM")

def broker_pid(opts) -> int | None:
    """The pid of scripts/kafka-local's broker (--broker_state_dir, else $KAFKA_STATE_DIR)."""
    d = opts.broker_state_dir or os.environ.get("KAFKA_STATE_DIR")
    if not d:
        return None
    try:
        with open(os.path.join(d, "kafka.pid")) as f:
            pid = int(f.read().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def io_write_bytes(pid: int) -> int:
    """/proc/PID/io write_bytes: bytes the process caused to be written to storage."""
    with open(f"/proc/{pid}/io") as f:
        for line in f:
            if line.startswith("write_bytes:"):
                return int(line.split()[1])
    return 0


class BrokerMeter:
    """The broker's CPU seconds and bytes written to storage between start() and stop()."""

    def __init__(self, opts):
        self.pid = broker_pid(opts)
        self.cpu0 = self.wb0 = 0.0

    def start(self) -> None:
        if self.pid:
            self.cpu0, self.wb0 = cpu_seconds(self.pid), io_write_bytes(self.pid)

    def stop(self) -> dict:
        if not self.pid:
            return {"broker_cpu_seconds": None, "broker_write_bytes": None}
        return {"broker_cpu_seconds": round(cpu_seconds(self.pid) - self.cpu0, 2),
                "broker_write_bytes": io_write_bytes(self.pid) - int(self.wb0)}


def catchup(opts, procs: Procs, tag: str, daemon_flags: list[str] | None = None,
            answers_path: str | None = None) -> dict:
    """hubmetricsd catch-up on --topic, which already holds N events: a fresh state dir and
    consumer group, timed from process start until events_read == N with lag 0 (phase (b)'s
    clock). Saves hubmetricsd's answers (compare_weekly.hub_answers) to answers_path when given,
    then stops it and deletes the state. The broker's CPU and bytes written to storage over the
    same interval are read from /proc."""
    n = opts.events
    state_dir = os.path.join(opts.workdir, f"state-{tag}")
    shutil.rmtree(state_dir, ignore_errors=True)
    os.makedirs(state_dir)
    daemon = Daemon(procs, opts, state_dir, free_port(),
                    os.path.join(opts.workdir, f"hubmetricsd-{tag}.log"),
                    group_id=f"{opts.group_id}-{tag}")
    meter = BrokerMeter(opts)
    meter.start()
    t0 = daemon.start(daemon_flags)
    try:
        seconds, st, cpu = daemon.wait_caught_up(n, t0, opts.ingest_timeout)
        broker = meter.stop()
        rss = vm_hwm_mb(daemon.proc.pid)
        out = {
            "tag": tag, "daemon_flags": daemon_flags or [], "events": n,
            "seconds": round(seconds, 3), "events_per_sec": round(n / seconds),
            "events_read": u64(st, "events_read"), "cpu_seconds": round(cpu, 2),
            "cpu_seconds_per_million_events": round(cpu / n * 1e6, 3),
            "peak_rss_mb": round(rss, 1), "unique_downloads": u64(st, "unique_downloads"),
            "duplicates": u64(st, "duplicates"), "rejected": u64(st, "rejected"),
            **broker,
        }
        log(f"catch-up {tag}: {n} events in {seconds:.2f}s = {n / seconds:.0f}/s, cpu {cpu:.1f}s"
            + (f", broker cpu {broker['broker_cpu_seconds']}s" if broker["broker_cpu_seconds"]
               is not None else ""))
        if answers_path:
            shape = workload_shape(n)
            answers = compare_weekly.hub_answers(
                daemon.hubctl, daemon.addr, shape["start"],
                shape["start"] + datetime.timedelta(days=shape["days"] - 1))
            with open(answers_path, "w") as f:
                json.dump(answers, f)
            out["answers"] = answers_path
    finally:
        out_rc = daemon.stop()
        shutil.rmtree(state_dir, ignore_errors=True)
    out["exit_code"] = out_rc
    if out_rc != 0:
        raise Failed(f"hubmetricsd ({tag}) exited with {out_rc} on SIGTERM")
    return out


LOADGEN_DONE = "events sent to"
# loadgen's overall rate counts its final flush too: 90% of the target counts as reaching it.
PRODUCER_SHARE = 0.9


def loadgen_rate(log_path: str) -> tuple[int, float] | None:
    """(events sent, events/s) from loadgen's last summary line."""
    try:
        with open(log_path) as f:
            lines = [ln for ln in f if ln.startswith("loadgen:") and LOADGEN_DONE in ln]
    except OSError:
        return None
    if not lines:
        return None
    # loadgen: N events sent to T (binary) in X s (R/s), ...
    words = lines[-1].split()
    sent = int(words[1])
    rate = float(lines[-1].split("(")[2].split("/s")[0])
    return sent, rate


def live_step(opts, procs: Procs, rate: int, idx: int, daemon_flags: list[str]) -> dict:
    """One step of the live search: a fresh topic and a fresh hubmetricsd caught up on it (empty),
    then loadgen at `rate` events/s for --live_step_seconds while hubmetricsd's lag is sampled
    every 0.5 s, then the time until it has read everything."""
    n = int(rate * opts.live_step_seconds)
    tag = f"live{opts.live_tag}-{idx}"
    topic = f"{opts.topic}.{tag}"
    create_topic(opts, topic)
    create_topic(opts, f"{topic}.models")  # hubmetricsd starts before loadgen writes the catalog
    state_dir = os.path.join(opts.workdir, f"state-{tag}")
    shutil.rmtree(state_dir, ignore_errors=True)
    os.makedirs(state_dir)
    daemon = Daemon(procs, opts, state_dir, free_port(),
                    os.path.join(opts.workdir, f"hubmetricsd-{tag}.log"),
                    group_id=f"{opts.group_id}-{tag}", topic=topic,
                    models_topic=f"{topic}.models")
    lg_log = os.path.join(opts.workdir, f"loadgen-{tag}.log")
    step = {"rate_target": rate, "events": n, "topic": topic}
    try:
        t0 = daemon.start(daemon_flags)
        daemon.wait_caught_up(0, t0, 120)
        with open(lg_log, "w") as lf:
            lg = procs.start(loadgen_args(opts, topic, f"{topic}.models", n, rate),
                             stdout=subprocess.DEVNULL, stderr=lf)
        samples = []  # (seconds since loadgen start, events_read, consumer_lag)
        start = time.monotonic()
        deadline = start + opts.live_step_seconds * 3 + 60
        while lg.poll() is None:
            if time.monotonic() > deadline:
                procs.stop(lg)
                raise Failed(f"loadgen at {rate}/s did not finish in time")
            st = daemon.stats()
            if st is not None:
                samples.append((time.monotonic() - start, u64(st, "events_read"),
                                u64(st, "consumer_lag")))
            time.sleep(0.5)
        produced_at = time.monotonic()
        if lg.returncode != 0:
            raise Failed(f"loadgen at {rate}/s exited with {lg.returncode} (log {lg_log})")
        got = loadgen_rate(lg_log)
        sent, achieved = got if got else (n, None)
        drain_deadline = produced_at + opts.live_lag_bound_s + 30
        drain = None
        while time.monotonic() < drain_deadline:
            st = daemon.stats()
            if st is not None and u64(st, "events_read") >= sent:
                drain = time.monotonic() - produced_at
                break
            time.sleep(0.1)
    finally:
        rc = daemon.stop()
        shutil.rmtree(state_dir, ignore_errors=True)
    # The lag while producing, after the catalog (events_read > 0): its second half.
    during = [x for x in samples if x[1] > 0]
    tail = during[len(during) // 2:]
    max_lag = max((x[2] for x in tail), default=None)
    bound = opts.live_lag_bound_s * rate
    producer_ok = achieved is not None and achieved >= PRODUCER_SHARE * rate
    keeps_up = (max_lag is not None and max_lag <= bound and drain is not None
                and drain <= opts.live_lag_bound_s)
    step.update({"rate_achieved": round(achieved) if achieved else None, "sent": sent,
                 "max_lag_second_half": max_lag, "lag_samples": len(tail),
                 "drain_seconds": round(drain, 2) if drain is not None else None,
                 "producer_reached_rate": producer_ok, "keeps_up": keeps_up,
                 "exit_code": rc})
    log(f"live {rate}/s: produced {achieved}/s, max lag {max_lag} (bound {bound:.0f}), "
        f"drained in {drain} s: {'keeps up' if keeps_up else 'falls behind'}"
        + ("" if producer_ok else " (the producer did not reach the rate)"))
    return step


def live_search(opts, procs: Procs, daemon_flags: list[str]) -> dict:
    """The highest steady produce rate hubmetricsd keeps up with (see live_step): rates from
    --live_start_rate up by --live_factor until a step falls behind, the producer cannot reach
    the rate, or --live_budget_s is spent; then --live_refine bisections between the last rate
    kept up with and the first that was not."""
    begin = time.monotonic()
    steps: list[dict] = []
    good, bad = None, None
    limited_by = "budget"
    rate = opts.live_start_rate

    def budget_left() -> bool:
        return time.monotonic() - begin + opts.live_step_seconds + 15 < opts.live_budget_s

    while budget_left():
        s = live_step(opts, procs, rate, len(steps), daemon_flags)
        steps.append(s)
        if not s["producer_reached_rate"]:
            limited_by = "producer"
            if s["keeps_up"]:
                good = max(good or 0, s["rate_achieved"] or 0) or good
            break
        if s["keeps_up"]:
            good = rate
            rate = int(rate * opts.live_factor)
        else:
            bad = rate
            limited_by = "hubmetricsd"
            break
    if good is not None and bad is not None:
        for _ in range(opts.live_refine):
            if not budget_left():
                break
            mid = int((good + bad) / 2)
            if bad - good < 0.05 * good:
                break
            s = live_step(opts, procs, mid, len(steps), daemon_flags)
            steps.append(s)
            if not s["producer_reached_rate"]:
                break
            if s["keeps_up"]:
                good = mid
            else:
                bad = mid
    return {
        "daemon_flags": daemon_flags, "max_events_per_sec": good, "first_rate_not_kept": bad,
        "limited_by": limited_by, "step_seconds": opts.live_step_seconds,
        "rule": (f"a rate is kept up with when hubmetricsd's consumer lag over the second half "
                 f"of the {opts.live_step_seconds:g} s step stays <= "
                 f"{opts.live_lag_bound_s:g} s of traffic and it has read every event <= "
                 f"{opts.live_lag_bound_s:g} s after loadgen stops; loadgen must reach >= "
                 f"{PRODUCER_SHARE:.0%} of the rate (its rate includes its final flush), else "
                 f"the search stops there and the figure is a lower bound set by the producer"),
        "seconds": round(time.monotonic() - begin, 1), "steps": steps,
    }



def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin_dir", required=True,
                    help="build dir's services/ (hubmetricsd, hubctl, loadgen)")
    ap.add_argument("--bench_bin_dir", required=True,
                    help="build dir's bench/ (freshness_probe, query_load)")
    ap.add_argument("--brokers", required=True)
    ap.add_argument("--events", type=int, required=True, help="N: events produced and timed")
    ap.add_argument("--quick", action="store_true",
                    help="short freshness/query phases (20 s / 15 s)")
    ap.add_argument("--mode", choices=["all", "produce", "run", "catchup", "live"],
                    default="all")
    ap.add_argument("--topic", help="events topic (default: a fresh bench.downloads.<time>)")
    ap.add_argument("--models_topic", help="catalog topic (default: <topic>.models)")
    ap.add_argument("--group_id", help="consumer group (default: hubmetrics-bench-<time>)")
    ap.add_argument("--workdir", help="state and logs (default: a fresh temporary directory)")
    ap.add_argument("--grpc_port", type=int, default=0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--rate", type=int, default=100000, help="background events/s of phases c, d")
    ap.add_argument("--rps", type=int, default=1000,
                    help="GetConcentration requests/s of phase d: the query target's load (issue 18)")
    ap.add_argument("--realtime_priority", type=int, default=10,
                    help="SCHED_FIFO priority of phase e (daemon's gRPC threads and the client); "
                         "0 skips phase e")
    ap.add_argument("--realtime_rps", default="1000,2500,5000",
                    help="comma-separated request rates of phase e (query_realtime_p99_ms is "
                         "the one at --rps, so it belongs in the list)")
    ap.add_argument("--freshness_seconds", type=float)
    ap.add_argument("--query_seconds", type=float)
    ap.add_argument("--server_baseline_seconds", type=float, default=2.0,
                    help="query phases: seconds of hubmetricsd's background CPU measured before "
                         "each load (subtracted from its CPU per call)")
    ap.add_argument("--batch_size", type=int, default=32,
                    help="phase d': items per GetConcentrations call")
    ap.add_argument("--batch_rps", default="100,200,400",
                    help="phase d': comma-separated GetConcentrations call rates; empty skips it")
    ap.add_argument("--batch_seconds", type=float,
                    help="phase d': seconds per rate (default quick 8, full 20)")
    ap.add_argument("--produce_timeout", type=float)
    ap.add_argument("--ingest_timeout", type=float)
    ap.add_argument("--daemon_flag", action="append", default=[],
                    help="catchup, live: an extra hubmetricsd flag (repeatable), e.g. "
                         "--daemon_flag=--sync_commits")
    ap.add_argument("--hub_answers", help="catchup: save hubmetricsd's answers here (JSON)")
    ap.add_argument("--tag", default="c", help="catchup: names its state dir, log and group")
    ap.add_argument("--broker_state_dir",
                    help="scripts/kafka-local's state dir, for the broker's pid (default "
                         "$KAFKA_STATE_DIR); without it the broker's CPU and bytes are null")
    ap.add_argument("--live_start_rate", type=int, default=100000)
    ap.add_argument("--live_factor", type=float, default=1.5)
    ap.add_argument("--live_step_seconds", type=float)
    ap.add_argument("--live_budget_s", type=float)
    ap.add_argument("--live_refine", type=int)
    ap.add_argument("--live_lag_bound_s", type=float, default=2.0)
    ap.add_argument("--live_tag", default="", help="live: names its topics, logs and groups")
    opts = ap.parse_args()
    opts.live_step_seconds = opts.live_step_seconds or (8 if opts.quick else 20)
    opts.live_budget_s = opts.live_budget_s or (75 if opts.quick else 600)
    opts.live_refine = opts.live_refine if opts.live_refine is not None else \
        (1 if opts.quick else 2)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    opts.topic = opts.topic or f"bench.downloads.{stamp}"
    opts.models_topic = opts.models_topic or f"{opts.topic}.models"
    opts.group_id = opts.group_id or f"hubmetrics-bench-{stamp}"
    opts.freshness_seconds = opts.freshness_seconds or (20 if opts.quick else 60)
    opts.query_seconds = opts.query_seconds or (15 if opts.quick else 60)
    opts.realtime_rps = [int(x) for x in opts.realtime_rps.split(",") if x.strip()]
    opts.batch_rps = [int(x) for x in opts.batch_rps.split(",") if x.strip()]
    opts.batch_seconds = opts.batch_seconds or (8 if opts.quick else 20)
    opts.produce_timeout = opts.produce_timeout or max(600, opts.events / 50000)
    opts.ingest_timeout = opts.ingest_timeout or max(600, opts.events / 20000)
    own_workdir = not opts.workdir
    opts.workdir = opts.workdir or tempfile.mkdtemp(prefix="hm-e2e-")
    os.makedirs(opts.workdir, exist_ok=True)
    opts.bin_dir = os.path.abspath(opts.bin_dir)
    opts.bench_bin_dir = os.path.abspath(opts.bench_bin_dir)

    signal.signal(signal.SIGTERM, _raise_exit)
    signal.signal(signal.SIGINT, _raise_exit)
    signal.signal(signal.SIGHUP, _raise_exit)
    procs = Procs()
    # errors: a phase did not run as it should (exit 1); warnings: figures that show the system
    # under test falling short (failed queries, markers that never showed), not harness failures.
    result: dict = {"events": opts.events, "topic": opts.topic, "mode": opts.mode, "errors": [],
                    "warnings": []}
    ok = True
    try:
        if opts.mode in ("all", "produce"):
            result.update(produce(opts))
            if result.get("partitions") != 3:
                result["errors"].append(f"topic has {result.get('partitions')} partitions, not 3")
        if opts.mode in ("all", "run"):
            run_phases(opts, procs, result)
        if opts.mode == "catchup":
            result.update(catchup(opts, procs, opts.tag, opts.daemon_flag, opts.hub_answers))
        if opts.mode == "live":
            result["live"] = live_search(opts, procs, opts.daemon_flag)
            result["live_max_events_per_sec"] = result["live"]["max_events_per_sec"]
    except Failed as e:
        result["errors"].append(str(e))
        ok = False
    finally:
        procs.stop_all()
        if own_workdir and opts.mode != "produce":
            shutil.rmtree(opts.workdir, ignore_errors=True)
    ok = ok and not result["errors"]
    print(json.dumps(result, sort_keys=True), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
