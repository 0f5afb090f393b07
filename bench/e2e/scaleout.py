#!/usr/bin/env python3
"""Scale-out benchmark: N dedup instances (--role=dedup) and a metrics replica (--role=metrics).

Steps (each bounded by --timeout; the broker and every process started here are stopped on every
exit path, Ctrl-C and SIGTERM included):
 1. Its own Kafka broker: scripts/kafka-local on a free loopback port, KAFKA_STATE_DIR and the
    broker's data under the work dir, auto-created topics with 6 partitions.
 2. The workload, produced once before anything is timed: run_e2e.py's produce() (loadgen, binary
    values keyed by user id, --events events, its traffic shape) into a 6-partition events topic,
    and the catalog into the models topic. One user-hash key file for every dedup instance.
    Then a warm-up, not measured: max(--instances) dedup instances and a replica over a topic of
    20,000 events (the broker creates and loads its transaction state and the groups' offsets
    topic for the first transactional producer and group: a one-time cost that would otherwise
    fall on the first configuration).
 3. For each round (--rounds, 2) and in it each N of --instances (1,2,3), interleaved (1,2,3,1,2,3)
    because the machine drifts: a fresh consumer group and a fresh unique topic; the clock starts,
    N dedup instances start (each its own --transactional_id); once the first has created the
    unique topic (compacted, 6 partitions), one metrics replica starts on an empty state dir. The
    clock stops when the replica has applied everything: `hubctl stats` shows events_read == the
    events produced AND total_downloads of `concentration --level=model --filter=all
    --attribution=direct --window=all` == unique_downloads (a transaction's progress and counts
    sit in different partitions of the unique topic; the two sums agree only once both are in,
    as tests/integration/kafka_test.py's wait_replica says). Then CPU seconds (utime+stime from
    /proc/PID/stat) are read: of the dedup instances together, of the replica, and of the broker
    since the clock started (cores_busy: the three / seconds). Every dedup instance gets SIGTERM
    at once (one at a time would move partitions to the others), then the replica; an exit
    status other than 0 is an error. The unique topic's log is measured on the broker's disk:
    its partitions' *.log segment files as they are (uncompacted when each partition still has
    one segment: Kafka never compacts the active segment), divided by unique_downloads.
 4. Rebuild: a fresh metrics replica (empty state dir) reads the unique topic of the last run
    until it has applied everything (the same condition): seconds, and the topic's records
    (counted read_committed with kcat) per second.
 5. Exactness, cheaply: every run's (and the rebuilt replica's) events_read, unique_downloads,
    duplicates and rejected must be equal; otherwise the run fails (exit 1) saying which differ.

On a machine with few cores (the 2-core bench machine) the broker, every dedup instance and the
replica share them: more instances cannot add CPU there. What the figures show is what the split
costs per event (more, smaller transactions; each rebalance makes an instance re-read its new
partitions' open days), how much of the cores one catch-up keeps busy, and that it stays exact;
not how far it scales when each instance has cores of its own.

  bench/e2e/scaleout.py [--events 10000000] [--rounds 2] [--instances 1,2,3]
                        [--build_dir build] [--timeout SECONDS] [--json_out FILE]
                        [--write_doc [docs/BENCHMARKS.md]] [--keep] [--workdir DIR]
  bench/e2e/scaleout.py --from_json FILE --write_doc   (the doc section from a saved JSON line)

The last stdout line is one JSON object: benchmark, date, git_commit, machine, command, events,
partitions, rounds, instances, produce (loadgen's figures and arguments), warmup, runs (one per
(round, N): n, round, seconds, events_per_sec, dedup_cpu_seconds,
dedup_cpu_seconds_per_million_events, replica_cpu_seconds, replica_cpu_seconds_per_million_events,
total_cpu_seconds_per_million_events (dedup + replica), broker_cpu_seconds,
broker_cpu_seconds_per_million_events, cores_busy, events_read, unique_downloads, duplicates,
rejected, unique_topic_log_bytes, unique_topic_segments, unique_topic_offsets,
unique_topic_bytes_per_unique, assigned_after_seconds (from the clock's start until the last
instance got its first partitions, from the dedup logs), assignments, partitions_rebuilt (moved
partitions re-read from an earlier offset), dedup_exit_codes, replica_exit_code), by_n ({N: {figure: {median,
min, max}}} over the rounds), events_read, unique_downloads, duplicates, rejected, answers_equal,
unique_topic_log_bytes, unique_topic_segments, unique_topic_bytes_per_unique,
unique_topic_uncompacted, unique_topic_of_run (the last run), rebuild (of_run, seconds, records,
records_per_sec, offsets (records + transaction markers), cpu_seconds, exit_code), errors,
warnings. --write_doc puts a "Scale-out" section made from it into docs/BENCHMARKS.md (report.py's
write_scaleout_section; the other sections are kept). Exit 0 when every run finished, every
process stopped cleanly and the answers were equal; 1 otherwise.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import report  # noqa: E402
import run_e2e  # noqa: E402
import soak  # noqa: E402
from run_e2e import Failed, Procs, cpu_seconds, free_port, last_json_line, log, u64  # noqa: E402

PARTITIONS = 6
EXACT_FIELDS = ("events_read", "unique_downloads", "duplicates", "rejected")
BY_N_FIELDS = ("seconds", "events_per_sec", "dedup_cpu_seconds_per_million_events",
               "replica_cpu_seconds_per_million_events", "total_cpu_seconds_per_million_events",
               "broker_cpu_seconds_per_million_events", "cores_busy", "assigned_after_seconds",
               "unique_topic_bytes_per_unique")
WARMUP_EVENTS = 20000


class Broker(soak.Broker):
    """soak.py's broker with auto-created topics of `partitions` partitions; stop(keep_data)."""

    def __init__(self, state_dir: str, partitions: int):
        super().__init__(state_dir)
        self.state_dir = state_dir
        self.env["KAFKA_PARTITIONS"] = str(partitions)

    def pid(self) -> int:
        with open(os.path.join(self.state_dir, "kafka.pid")) as f:
            return int(f.read().strip())

    def data_dir(self) -> str:
        """The broker's log.dirs (kafka-local writes its path into <state>/data-dir)."""
        with open(os.path.join(self.state_dir, "data-dir")) as f:
            return f.read().strip()

    def stop(self, keep_data: bool = False) -> None:
        if not self.started:
            return
        self.started = False
        try:
            subprocess.run([self.script, "stop"] + (["--keep-data"] if keep_data else []),
                           env=self.env, stdout=sys.stderr, timeout=120)
        except (OSError, subprocess.SubprocessError) as e:
            log(f"could not stop the broker: {e}")


class Role:
    """One hubmetricsd --role=dedup|metrics process; a replica answers `hubctl --json`."""

    def __init__(self, procs: Procs, opts, name: str, flags: list[str], serves: bool):
        self.procs = procs
        self.name = name
        self.addr = f"127.0.0.1:{free_port()}" if serves else None
        self.log_path = os.path.join(opts.workdir, f"{name}.log")
        self.hubctl = os.path.join(opts.bin_dir, "hubctl", "hubctl")
        self.args = [os.path.join(opts.bin_dir, "hubmetricsd", "hubmetricsd"),
                     f"--kafka_brokers={opts.brokers}", "--events_format=binary"] + flags
        if serves:
            self.args.append(f"--grpc_listen={self.addr}")
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        log(f"{self.name}: {' '.join(self.args)}")
        with open(self.log_path, "a") as logf:
            self.proc = self.procs.start(self.args, stdout=logf, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise Failed(f"{self.name} exited with {self.proc.returncode} (log {self.log_path})")

    def ctl(self, *args: str) -> dict | None:
        try:
            r = subprocess.run([self.hubctl, f"--addr={self.addr}", "--json", "--timeout=5s",
                                *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               text=True, timeout=15)
        except subprocess.TimeoutExpired:
            return None
        if r.returncode != 0 or not r.stdout.strip():
            return None
        try:
            return json.loads(r.stdout)
        except ValueError:
            return None


def stop_together(roles: list[Role], timeout: float = 120) -> list[int | None]:
    """One SIGTERM to every role at once, then waits for each (KILL after `timeout`). Never a
    second SIGTERM (run_e2e's Procs.stop sends one more when the process is still up): gRPC's
    threads, started before hubmetricsd blocks the stop signals, take it with the default
    action and the process dies of it in the middle of its clean stop."""
    for r in roles:
        if r.proc.poll() is None:
            r.proc.send_signal(signal.SIGTERM)
    codes = []
    deadline = time.monotonic() + timeout
    for r in roles:
        try:
            r.proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log(f"{r.name} did not stop in {timeout:.0f}s; killing it")
            r.proc.kill()
            r.proc.wait(timeout=10)
        codes.append(r.proc.returncode)
    return codes


def wait_applied(replica: Role, expected: int, t0: float, timeout: float,
                 others: list[Role]) -> tuple[float, dict]:
    """Polls until the replica has applied everything (see step 3); (seconds since t0, stats).
    Fails when the replica or one of `others` exits, or events_read passes `expected`."""
    deadline = t0 + timeout
    last_log = time.monotonic()
    last = "no answer yet"
    while True:
        for r in [replica] + others:
            r.check_alive()
        st = replica.ctl("stats")
        now = time.monotonic()
        if st is not None:
            n, unique = u64(st, "events_read"), u64(st, "unique_downloads")
            if n > expected:
                raise Failed(f"{replica.name}: events_read {n} > {expected}: counted twice")
            last = f"events_read {n} of {expected}, unique_downloads {unique}"
            if n == expected:
                c = replica.ctl("concentration", "--level=model", "--filter=all",
                                "--attribution=direct", "--window=all")
                if c is not None and u64(c, "total_downloads") == unique:
                    return now - t0, st
                if c is not None:
                    last += f", downloads counted {u64(c, 'total_downloads')}"
        if now > deadline:
            raise Failed(f"{replica.name} has not applied everything after {timeout:.0f}s: {last}")
        if now - last_log > 10:
            log(f"  {replica.name}: {last} ({now - t0:.0f}s)")
            last_log = now
        time.sleep(0.1)


def topic_exists(opts, topic: str) -> int:
    """Partitions of `topic` in the broker's metadata (0: none). Lists every topic: a metadata
    request for the topic itself would auto-create it, not compacted."""
    r = subprocess.run(["kcat", "-L", "-b", opts.brokers, "-m", "10"], stdout=subprocess.PIPE,
                       stderr=subprocess.DEVNULL, text=True, timeout=30)
    n, inside = 0, False
    for line in r.stdout.splitlines():
        s = line.strip()
        if s.startswith("topic "):
            inside = s.startswith(f'topic "{topic}" ')
        elif inside and s.startswith("partition ") and "leader" in s:
            n += 1
    return n


def wait_topic(opts, topic: str, deadline: float, dedups: list[Role]) -> None:
    while topic_exists(opts, topic) < PARTITIONS:
        for d in dedups:
            d.check_alive()
        if time.monotonic() > deadline:
            raise Failed(f"the unique topic {topic} was not created with {PARTITIONS} partitions")
        time.sleep(0.1)


def topic_log(data_dir: str, topic: str) -> tuple[int, int, int]:
    """(bytes of the *.log segment files, segments, partitions) of `topic` in the broker's
    data dir (one directory <topic>-<partition> per partition)."""
    total = segments = parts = 0
    for name in os.listdir(data_dir):
        head, _, tail = name.rpartition("-")
        if head != topic or not tail.isdigit():
            continue
        parts += 1
        d = os.path.join(data_dir, name)
        for f in os.listdir(d):
            if f.endswith(".log"):
                segments += 1
                try:
                    total += os.path.getsize(os.path.join(d, f))
                except FileNotFoundError:  # deleted meanwhile (the log cleaner)
                    pass
    return total, segments, parts


def assignments(dedups: list[Role], topic: str, t0_wall: float) -> tuple[float | None, int, int]:
    """From the dedup instances' logs: (seconds from the clock's start until the last instance
    got its first partitions, assignments in all, partitions rebuilt from an earlier offset)."""
    firsts, count, rebuilt = [], 0, 0
    for d in dedups:
        first = None
        try:
            with open(d.log_path, errors="replace") as f:
                for line in f:
                    parts = line.split(" ", 4)
                    if len(parts) < 5 or parts[2] != "assigned" or parts[3] != topic:
                        continue
                    count += 1
                    rebuilt += line.count("(rebuild from")
                    if first is None:
                        first = datetime.datetime.strptime(
                            parts[1], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
                            tzinfo=datetime.timezone.utc).timestamp()
        except (OSError, ValueError):
            pass
        firsts.append(first)
    if not firsts or None in firsts:
        return None, count, rebuilt
    return round(max(firsts) - t0_wall, 3), count, rebuilt


def count_records(opts, topic: str, timeout: float) -> int:
    """Records of `topic` a read_committed reader sees (kcat prints one byte per record)."""
    try:
        r = subprocess.run(["kcat", "-C", "-b", opts.brokers, "-t", topic, "-e", "-q",
                            "-X", "isolation.level=read_committed", "-f", "."],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise Failed(f"counting the records of {topic} took more than {timeout:.0f}s") from e
    if r.returncode != 0:
        raise Failed(f"kcat could not read {topic} (exit {r.returncode})")
    return len(r.stdout)


def replica(procs: Procs, opts, name: str, unique_topic: str, models_topic: str) -> Role:
    state = os.path.join(opts.workdir, f"state-{name}")
    shutil.rmtree(state, ignore_errors=True)
    os.makedirs(state, mode=0o700)
    r = Role(procs, opts, name, ["--role=metrics", f"--unique_topic={unique_topic}",
                                 f"--models_topic={models_topic}", f"--state_dir={state}"],
             serves=True)
    r.state_dir = state
    return r


def one_run(opts, procs: Procs, broker: Broker, n: int, rnd: int, errors: list[str],
            topic: str | None = None, models_topic: str | None = None,
            events: int | None = None, tag: str | None = None) -> dict:
    """One configuration: n dedup instances and a replica over `topic` (default the workload's)
    until the replica has applied `events` events; the run's figures."""
    topic = topic or opts.topic
    ev = events or opts.events
    tag = tag or f"n{n}-r{rnd}"
    unique_topic = f"{topic}.unique.{tag}"
    dedups = [Role(procs, opts, f"dedup-{tag}-{i}", [
        "--role=dedup", f"--group_id=hubmetrics-scaleout-{opts.stamp}-{tag}",
        f"--events_topic={topic}", f"--dlq_topic={unique_topic}.dlq",
        f"--unique_topic={unique_topic}", f"--unique_topic_partitions={PARTITIONS}",
        f"--user_hash_key_file={opts.key_file}",
        f"--transactional_id=hubmetrics-scaleout-{opts.stamp}-{tag}-{i}"], serves=False)
        for i in range(n)]
    rep = replica(procs, opts, f"metrics-{tag}", unique_topic, models_topic or opts.models_topic)
    log(f"run {tag}: {n} dedup instance(s), unique topic {unique_topic}")
    broker_cpu0 = cpu_seconds(broker.pid())
    t0, t0_wall = time.monotonic(), time.time()
    for d in dedups:
        d.start()
    wait_topic(opts, unique_topic, t0 + opts.timeout, dedups)
    rep.start()
    seconds, st = wait_applied(rep, ev, t0, opts.timeout, dedups)
    cpu_dedup = sum(cpu_seconds(d.proc.pid) for d in dedups)
    cpu_rep = cpu_seconds(rep.proc.pid)
    cpu_broker = cpu_seconds(broker.pid()) - broker_cpu0
    codes = stop_together(dedups)
    rep_code = stop_together([rep])[0]
    for d, c in zip(dedups, codes):
        if c != 0:
            errors.append(f"{d.name} exited with {c} on SIGTERM (log {d.log_path})")
    if rep_code != 0:
        errors.append(f"{rep.name} exited with {rep_code} on SIGTERM (log {rep.log_path})")
    assigned_after, assigned, rebuilt = assignments(dedups, topic, t0_wall)
    log_bytes, segments, parts = topic_log(broker.data_dir(), unique_topic)
    if parts != PARTITIONS:
        errors.append(f"{unique_topic}: {parts} partition directories on disk, not {PARTITIONS}")
    uniq = u64(st, "unique_downloads")
    run = {
        "n": n, "round": rnd, "unique_topic": unique_topic,
        "seconds": round(seconds, 3), "events_per_sec": round(ev / seconds),
        "dedup_cpu_seconds": round(cpu_dedup, 2),
        "dedup_cpu_seconds_per_million_events": round(cpu_dedup * 1e6 / ev, 3),
        "replica_cpu_seconds": round(cpu_rep, 2),
        "replica_cpu_seconds_per_million_events": round(cpu_rep * 1e6 / ev, 3),
        "total_cpu_seconds_per_million_events": round((cpu_dedup + cpu_rep) * 1e6 / ev, 3),
        "broker_cpu_seconds": round(cpu_broker, 2),
        "broker_cpu_seconds_per_million_events": round(cpu_broker * 1e6 / ev, 3),
        "cores_busy": round((cpu_dedup + cpu_rep + cpu_broker) / seconds, 2),
        **{k: u64(st, k) for k in EXACT_FIELDS},
        "unique_topic_log_bytes": log_bytes, "unique_topic_segments": segments,
        "unique_topic_offsets": sum(max(0, int(p.get("high_watermark", 0) or 0))
                                    for p in st.get("partitions", [])),
        "unique_topic_bytes_per_unique": round(log_bytes / max(1, uniq), 2),
        "assigned_after_seconds": assigned_after, "assignments": assigned,
        "partitions_rebuilt": rebuilt,
        "dedup_exit_codes": codes, "replica_exit_code": rep_code,
    }
    log(f"run {tag}: {ev} events in {seconds:.2f}s = {run['events_per_sec']}/s; CPU s per "
        f"million events: dedup {run['dedup_cpu_seconds_per_million_events']}, replica "
        f"{run['replica_cpu_seconds_per_million_events']}; unique {uniq}; unique topic "
        f"{log_bytes} bytes in {segments} segments")
    if not opts.keep:
        shutil.rmtree(rep.state_dir, ignore_errors=True)
    return run


def rebuild(opts, procs: Procs, last: dict) -> tuple[dict, dict]:
    """A fresh replica on the last run's unique topic, timed until it has applied everything."""
    topic = last["unique_topic"]
    rep = replica(procs, opts, "metrics-rebuild", topic, opts.models_topic)
    t0 = time.monotonic()
    rep.start()
    seconds, st = wait_applied(rep, opts.events, t0, opts.timeout, [])
    cpu = cpu_seconds(rep.proc.pid)
    code = stop_together([rep])[0]
    records = count_records(opts, topic, opts.timeout)
    out = {"of_run": f"n{last['n']}-r{last['round']}", "seconds": round(seconds, 3),
           "records": records, "records_per_sec": round(records / seconds),
           "offsets": sum(max(0, int(p.get("high_watermark", 0) or 0))
                          for p in st.get("partitions", [])),
           "cpu_seconds": round(cpu, 2), "exit_code": code}
    log(f"rebuild: {records} records of {topic} applied in {seconds:.2f}s = "
        f"{out['records_per_sec']}/s")
    if not opts.keep:
        shutil.rmtree(rep.state_dir, ignore_errors=True)
    return out, {k: u64(st, k) for k in EXACT_FIELDS}


def spread(values: list[float]) -> dict:
    return {"median": round(statistics.median(values), 3), "min": min(values),
            "max": max(values)}


def bench(opts, procs: Procs, broker: Broker, r: dict) -> None:
    broker.start()
    opts.brokers = broker.brokers
    r["produce"] = run_e2e.produce(opts)
    r["partitions"] = r["produce"].get("partitions")
    if r["partitions"] not in (None, PARTITIONS):
        raise Failed(f"events topic has {r['partitions']} partitions, not {PARTITIONS}")
    # Warm-up, not measured: the first transactional producer makes the broker create and load
    # its transaction state (and the first group its offsets topic), a one-time cost that would
    # otherwise fall on the first configuration of the first round.
    warm = argparse.Namespace(**{**vars(opts), "topic": f"{opts.topic}.warmup",
                                 "models_topic": f"{opts.topic}.warmup.models",
                                 "events": WARMUP_EVENTS})
    run_e2e.produce(warm)
    w = one_run(opts, procs, broker, max(opts.instances), 0, r["errors"], topic=warm.topic,
                models_topic=warm.models_topic, events=WARMUP_EVENTS, tag="warmup")
    r["warmup"] = {"events": WARMUP_EVENTS, "n": w["n"], "seconds": w["seconds"]}
    runs = r["runs"]
    for rnd in range(1, opts.rounds + 1):
        for n in opts.instances:
            runs.append(one_run(opts, procs, broker, n, rnd, r["errors"]))
    by_n = {}
    for n in opts.instances:
        mine = [x for x in runs if x["n"] == n]
        by_n[str(n)] = {k: spread([x[k] for x in mine]) if None not in [x[k] for x in mine]
                        else None for k in BY_N_FIELDS}
    r["by_n"] = by_n
    last = runs[-1]
    r.update({k: last[k] for k in EXACT_FIELDS})
    r.update({"unique_topic_log_bytes": last["unique_topic_log_bytes"],
              "unique_topic_segments": last["unique_topic_segments"],
              "unique_topic_bytes_per_unique": last["unique_topic_bytes_per_unique"],
              "unique_topic_uncompacted": last["unique_topic_segments"] == PARTITIONS,
              "unique_topic_of_run": f"n{last['n']}-r{last['round']}"})
    r["rebuild"], rebuilt = rebuild(opts, procs, last)
    if r["rebuild"]["exit_code"] != 0:
        r["errors"].append(f"the rebuilt replica exited with {r['rebuild']['exit_code']}")
    answers = {f"n{x['n']}-r{x['round']}": tuple(x[k] for k in EXACT_FIELDS) for x in runs}
    answers["rebuild"] = tuple(rebuilt[k] for k in EXACT_FIELDS)
    r["answers_equal"] = len(set(answers.values())) == 1
    if not r["answers_equal"]:
        r["errors"].append("answers differ across configurations ("
                           + ", ".join(EXACT_FIELDS) + "): "
                           + "; ".join(f"{k} {v}" for k, v in answers.items()))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=10_000_000,
                    help="events produced once and read by every configuration (10,000,000)")
    ap.add_argument("--rounds", type=int, default=2,
                    help="rounds of the interleaved configurations (2)")
    ap.add_argument("--instances", default="1,2,3",
                    help="comma-separated dedup instance counts, run in this order each round")
    ap.add_argument("--build_dir", default=os.path.join(REPO, "build"),
                    help="build dir with services/ (hubmetricsd, hubctl, loadgen) (default build)")
    ap.add_argument("--timeout", type=float,
                    help="seconds each phase may take (default max(600, events / 5000))")
    ap.add_argument("--workdir", help="states and logs (default: a temporary dir, removed)")
    ap.add_argument("--keep", action="store_true",
                    help="keep the work dir, the replicas' states and the broker's data")
    ap.add_argument("--json_out", help="write the JSON object here too")
    ap.add_argument("--write_doc", nargs="?", const=os.path.join(REPO, "docs", "BENCHMARKS.md"),
                    help="write the Scale-out section of this file (default docs/BENCHMARKS.md)")
    ap.add_argument("--from_json", help="no run: the JSON line of an earlier run (--write_doc)")
    opts = ap.parse_args()
    run_e2e.LOG_NAME = "scaleout"

    if opts.from_json:
        with open(opts.from_json) as f:
            r = last_json_line(f.read())
        if opts.write_doc:
            report.write_scaleout_section(opts.write_doc, r)
            log(f"wrote the Scale-out section of {opts.write_doc}")
        return 0
    try:
        opts.instances = [int(x) for x in opts.instances.split(",") if x.strip()]
    except ValueError:
        ap.error("--instances: comma-separated integers")
    if opts.events <= 0 or opts.rounds <= 0 or not opts.instances or min(opts.instances) <= 0:
        ap.error("--events, --rounds and every --instances value must be > 0")
    for tool in ("kcat",):
        if not shutil.which(tool):
            ap.error(f"{tool} not found (scripts/bootstrap installs it)")

    build = os.path.abspath(opts.build_dir)
    opts.bin_dir = os.path.join(build, "services")
    opts.timeout = opts.timeout or max(600.0, opts.events / 5000)
    opts.produce_timeout = opts.timeout
    opts.stamp = time.strftime("%Y%m%d-%H%M%S")
    opts.topic = f"scaleout.downloads.{opts.stamp}"
    opts.models_topic = f"{opts.topic}.models"
    opts.seed = 1
    own_workdir = not opts.workdir
    opts.workdir = os.path.abspath(opts.workdir or tempfile.mkdtemp(prefix="hm-scaleout-"))
    os.makedirs(opts.workdir, exist_ok=True)
    opts.key_file = os.path.join(opts.workdir, "user_hash.key")
    with open(os.open(opts.key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        f.write("%032x\n" % random.SystemRandom().getrandbits(128))

    signal.signal(signal.SIGTERM, run_e2e._raise_exit)
    signal.signal(signal.SIGINT, run_e2e._raise_exit)
    signal.signal(signal.SIGHUP, run_e2e._raise_exit)
    r: dict = {
        "benchmark": "scaleout",
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "git_commit": report.git_commit(REPO),
        "machine": report.machine(),
        "command": soak.relative_command(sys.argv[1:], "bench/e2e/scaleout.py"),
        "events": opts.events, "rounds": opts.rounds, "instances": opts.instances,
        "runs": [], "answers_equal": None, "errors": [], "warnings": [],
    }
    procs = Procs()
    broker = Broker(os.path.join(opts.workdir, "kafka"), PARTITIONS)
    interrupted = True
    try:
        bench(opts, procs, broker, r)
        interrupted = False
    except (Failed, subprocess.SubprocessError, OSError) as e:
        interrupted = False
        r["errors"].append(str(e))
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):  # a second Ctrl-C waits
            signal.signal(sig, signal.SIG_IGN)
        procs.stop_all()
        broker.stop(keep_data=opts.keep)
        if interrupted and own_workdir and not opts.keep:
            shutil.rmtree(opts.workdir, ignore_errors=True)
    ok = not r["errors"] and r["answers_equal"] is True
    for e in r["errors"]:
        log(f"ERROR: {e}")
    if own_workdir and not opts.keep:
        if ok:
            shutil.rmtree(opts.workdir, ignore_errors=True)
        else:  # the logs (the broker's too) are kept for a look, not the states
            for name in os.listdir(opts.workdir):
                if name.startswith("state-"):
                    shutil.rmtree(os.path.join(opts.workdir, name), ignore_errors=True)
            log(f"logs kept in {opts.workdir}")
    elif opts.keep:
        log(f"kept {opts.workdir}")
    line = json.dumps(r, separators=(",", ":"))
    if opts.json_out:
        with open(opts.json_out, "w") as f:
            f.write(line + "\n")
    if opts.write_doc:
        report.write_scaleout_section(opts.write_doc, r)
        log(f"wrote the Scale-out section of {opts.write_doc}")
    print(line, flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
