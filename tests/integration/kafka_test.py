#!/usr/bin/env python3
"""Integration tests of hubmetricsd's Kafka ingest against a real Apache Kafka broker.

Each scenario starts its own broker with scripts/kafka-local (a free port, its
own KAFKA_STATE_DIR) and stops it at the end, even on failure. Traffic comes
from loadgen (files) and is produced with produce_tool; every answer is
compared with the independent Python reference of tests/e2e (reference.py),
through the comparison helpers of tests/e2e/e2e_test.py.

Scenarios (one ctest case each):
  partitions  3 partitions (JSON values) consumed to the end: every view exact;
              partition lags reported; every rejected event in the DLQ
  binary      binary protobuf values on both topics: every view exact
  crash       SIGKILL at named kill points of the write path (and at two random
              moments), restarted each time: every view and ingest count exact
  outage      the broker stopped for 20 s mid-stream: queries answer and the
              condition is reported meanwhile; final results exact
  dlq         one partition in file order (lateness 3 days): each rejection
              reason in the DLQ with its headers and original bytes (a 200 KiB
              value too_large among them); counts match
  catalog     a model re-published with a new base_model and a tombstone:
              views re-credit as the reference says
  retention   records deleted from the topic (DeleteRecords) past the offset stored
              with the state: counted as lost, logged, the rest exact
  roles       scale-out on 6 input partitions: dedup instances SIGKILLed at the
              transaction's kill points (before produce, between produce and commit,
              after commit) and restarted; the open transaction invisible to
              read_committed readers; then 3 dedup instances, a 4th added between two
              halves of the stream (rebalance), 2 metrics replicas, one killed and
              wiped in between: both replicas exact and equal to each other, the DLQ
              exact read_committed

Ordering note: with several partitions the interleaving of partitions is not
fixed, and `too_late` depends on the order (the watermark). The multi-partition
scenarios therefore run with --lateness_days=365, which makes every answer
order-independent (loadgen's late events are at most 30 days late); `too_late`
is tested in the single-partition dlq scenario, where the order is the file's.

  kafka_test.py --bin_dir BUILD --scenario NAME [--keep]
Prints "N passed, N failed" last; exits non-zero on any failure.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))

import e2e_test as e2e  # noqa: E402
import reference as ref  # noqa: E402

KAFKA_LOCAL = os.path.join(ROOT, "scripts", "kafka-local")
LATENESS_MULTI = 365
# The crash scenario's runs: each SIGKILLs itself at (point, pass) of the write path.
KAFKA_KILL_POINTS = [
    ("ingest.decoded", 4),
    ("apply.deduped", 3),
    ("apply.aggregating", 10),
    ("apply.dlq_flushed", 3),
    ("commit.before", 4),
    ("commit.after", 3),
    ("commit.before", 1),
]


def log(msg: str) -> None:
    print(f"[kafka {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def free_port_pair() -> int:
    """A port p with p and p+1 free (client and controller listeners)."""
    for _ in range(100):
        p = e2e.free_port()  # below the ephemeral range, so p + 1 is a port too
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", p + 1))
            except OSError:
                continue
        return p
    raise RuntimeError("no free port pair")


class Broker:
    def __init__(self, tmp: str, partitions: int = 3):
        self.port = free_port_pair()
        self.env = dict(os.environ, KAFKA_PORT=str(self.port),
                        KAFKA_STATE_DIR=os.path.join(tmp, "kafka"),
                        KAFKA_PARTITIONS=str(partitions))
        self.address = f"127.0.0.1:{self.port}"
        self.started = False

    def run(self, *args: str) -> None:
        p = subprocess.run([KAFKA_LOCAL, *args], env=self.env, capture_output=True, timeout=300)
        out = (p.stdout + p.stderr).decode(errors="replace").strip()
        log(out.splitlines()[-1] if out else f"kafka-local {' '.join(args)}")
        if p.returncode != 0:
            raise RuntimeError(f"kafka-local {' '.join(args)} failed:\n{out}")

    def start(self) -> None:
        """Starts the broker. The first start moves to another port pair when its ports were
        taken between picking and binding them (a server of a test running alongside); a
        restart keeps the address the daemon was given."""
        attempts = 1 if self.started else 3
        for attempt in range(attempts):
            try:
                self.run("start")
                break
            except RuntimeError as e:
                if "Address already in use" not in str(e) or attempt == attempts - 1:
                    raise
                log(f"port {self.port} or {self.port + 1} was taken meanwhile; another pair")
                self.run("stop")
                self.port = free_port_pair()
                self.env["KAFKA_PORT"] = str(self.port)
                self.address = f"127.0.0.1:{self.port}"
        self.started = True

    def stop(self, keep_data: bool = False) -> None:
        self.run("stop", *(["--keep-data"] if keep_data else []))


class Daemon(e2e.Daemon):
    """hubmetricsd on Kafka."""

    def __init__(self, bin_dir: str, state_dir: str, log_path: str, flags: list[str],
                 nice: int = 0):
        super().__init__(os.path.join(bin_dir, "services"), state_dir, "", "", log_path)
        self.flags = flags
        self.nice = nice  # started this many nice steps below the test runner

    def start(self) -> None:
        addr = f"127.0.0.1:{e2e.free_port()}"
        self.ctl = e2e.Hubctl(self.ctl_bin, addr)
        with open(self.log_path, "ab") as logf:
            self.proc = subprocess.Popen(
                [self.bin, f"--state_dir={self.state_dir}", f"--grpc_listen={addr}", *self.flags],
                stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                preexec_fn=(lambda: os.nice(self.nice)) if self.nice else None)

    def wait_read(self, expected: int, timeout: float = 300) -> tuple[dict | None, str]:
        """Stats once events_read == expected (and then still so after a short pause)."""
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if not self.alive():
                return None, f"hubmetricsd exited with {self.proc.returncode} (log {self.log_path})"
            s, err = self.ctl.run("stats", timeout=10)
            if s is not None:
                n = e2e.u64(s, "events_read")
                if n > expected:
                    return s, f"events_read {n} > {expected}: counted twice"
                if n == expected:
                    time.sleep(1.0)
                    s2, _ = self.ctl.run("stats", timeout=10)
                    return (s2 or s), ""
                last = f"events_read {n}"
            else:
                last = err
            time.sleep(0.25)
        return None, f"events_read not {expected} after {timeout}s; last: {last}"


class Scenario:
    def __init__(self, args):
        self.args = args
        self.bin_dir = args.bin_dir
        self.tmp = tempfile.mkdtemp(prefix=f"hm-kafka-{args.scenario}-")
        self.c = e2e.Checker()
        # Auto-created topics: 6 partitions for the scale-out scenario.
        self.broker = Broker(self.tmp, partitions=6 if args.scenario == "roles" else 3)
        self.daemons: list[Daemon] = []
        self.loadgen = os.path.join(self.bin_dir, "services", "loadgen", "loadgen")
        self.produce_tool = os.path.join(self.bin_dir, "tests", "integration", "kafka_produce_tool")
        suffix = args.scenario
        self.events_topic = f"it.{suffix}.downloads"
        self.models_topic = f"it.{suffix}.models"
        self.dlq_topic = f"it.{suffix}.dlq"

    # -- helpers

    def generate(self, events: int, seed: int, models: int = 1500, users: int = 20000,
                 bad_fraction: float = 0.01) -> tuple[str, str]:
        ev = os.path.join(self.tmp, f"events-{seed}.ndjson")
        mo = os.path.join(self.tmp, f"models-{seed}.ndjson")
        g = subprocess.run([self.loadgen, f"--out={ev}", f"--models_out={mo}", f"--events={events}",
                            f"--seed={seed}", "--start=2025-01-06T00:00:00Z", "--days=70",
                            f"--models={models}", f"--users={users}",
                            f"--bad_fraction={bad_fraction}"], capture_output=True)
        if g.returncode != 0:
            raise RuntimeError(f"loadgen failed: {g.stderr.decode(errors='replace')[-2000:]}")
        return ev, mo

    def produce(self, path_or_lines, topic: str, kind: str, fmt: str = "json",
                partition: int | None = None) -> list[bytes]:
        """Produces the lines; returns exactly the lines produced."""
        if isinstance(path_or_lines, str):
            with open(path_or_lines, "rb") as f:
                data = f.read()
        else:
            data = b"".join(l + b"\n" for l in path_or_lines)
        emitted = os.path.join(self.tmp, f"emitted-{time.monotonic_ns()}.ndjson")
        argv = [self.produce_tool, f"--brokers={self.broker.address}", f"--topic={topic}",
                f"--kind={kind}", f"--format={fmt}", f"--emitted={emitted}"]
        if partition is not None:
            argv.append(f"--partition={partition}")
        p = subprocess.run(argv, input=data, capture_output=True, timeout=600)
        if p.returncode != 0:
            raise RuntimeError(f"produce_tool failed: {p.stderr.decode(errors='replace')[-2000:]}")
        log(p.stderr.decode(errors="replace").strip())
        with open(emitted, "rb") as f:
            return [l for l in f.read().split(b"\n") if l]

    def daemon(self, name: str, state: str, fmt: str = "json",
               lateness: int = LATENESS_MULTI, extra: list[str] | None = None,
               nice: int = 0) -> Daemon:
        d = Daemon(self.bin_dir, state, os.path.join(self.tmp, f"{name}.log"), [
            f"--kafka_brokers={self.broker.address}", f"--events_topic={self.events_topic}",
            f"--models_topic={self.models_topic}", f"--dlq_topic={self.dlq_topic}",
            f"--group_id=it-{self.args.scenario}", f"--events_format={fmt}",
            f"--lateness_days={lateness}", *(extra or [])], nice=nice)
        self.daemons.append(d)
        d.start()
        return d

    def reference(self, events: list[bytes], models: list[bytes], lateness: int = LATENESS_MULTI,
                  tombstones: list[str] = ()) -> ref.Reference:
        r = ref.Reference(lateness_days=lateness)
        catalog = ref.load_catalog(models)
        for m in tombstones:
            catalog.pop(m, None)
        r.set_catalog(catalog)
        r.ingest_events(events)
        log(f"reference: {r.events_read} events, {r.unique_downloads} unique, "
            f"{r.duplicates} duplicates, {r.rejected} rejected {r.rejected_by_reason}")
        return r

    def check_stats(self, r: ref.Reference, stats: dict, tag: str) -> None:
        diffs = []
        for name, exp in (("events_read", r.events_read), ("unique_downloads", r.unique_downloads),
                          ("duplicates", r.duplicates), ("rejected", r.rejected)):
            if e2e.u64(stats, name) != exp:
                diffs.append(f"{name}: expected {exp} got {e2e.u64(stats, name)}")
        by_reason = {x.get("reason", ""): e2e.u64(x, "count")
                     for x in stats.get("rejected_by_reason", [])}
        for reason in ref.REASONS:
            if by_reason.get(reason, 0) != r.rejected_by_reason[reason]:
                diffs.append(f"rejected_by_reason[{reason}]: expected "
                             f"{r.rejected_by_reason[reason]} got {by_reason.get(reason, 0)}")
        wm = stats.get("watermark")
        wm_ns = ref.parse_rfc3339(wm) if isinstance(wm, str) else None
        if r.watermark_ns is not None and (wm_ns is None or abs(wm_ns - r.watermark_ns) >= 1000):
            diffs.append(f"watermark: expected {r.watermark_ns} ns got {wm!r}")
        if stats.get("source_condition"):
            diffs.append(f"source_condition not empty: {stats.get('source_condition')!r}")
        self.c.check(not diffs, f"[{tag}] stats", diffs)

    def compare(self, r: ref.Reference, d: Daemon, stats: dict, tag: str) -> None:
        t0 = time.monotonic()
        self.check_stats(r, stats, tag)
        answers = e2e.Comparison(r, d.ctl, self.c, tag).run()
        log(f"[{tag}] {len(answers)} queries compared in {time.monotonic() - t0:.1f}s "
            f"({self.c.passed} passed, {self.c.failed} failed so far)")

    def check_lags(self, stats: dict, partitions: int, tag: str) -> None:
        lags = stats.get("partitions", [])
        diffs = []
        if sorted(int(l.get("partition", 0)) for l in lags) != list(range(partitions)):
            diffs.append(f"partitions reported: {lags}")
        for l in lags:
            if l.get("topic") != self.events_topic or e2e.u64(l, "lag") != 0 or \
                    e2e.u64(l, "next_offset") != e2e.u64(l, "high_watermark"):
                diffs.append(f"not caught up: {l}")
        self.c.check(not diffs, f"[{tag}] partition lags reported, all 0", diffs)

    def consume_dlq(self, expected: int, timeout: float = 60) -> list[dict]:
        """The DLQ messages: value bytes (hex) and headers."""
        fmt = "%h\t%p\t%o\t%k\t%s\n"
        deadline = time.monotonic() + timeout
        out: list[dict] = []
        while time.monotonic() < deadline:
            p = subprocess.run(["kcat", "-C", "-b", self.broker.address, "-t", self.dlq_topic,
                                "-e", "-q", "-f", fmt], capture_output=True, timeout=120)
            out = []
            for line in p.stdout.split(b"\n"):
                if not line:
                    continue
                h, _, _, key, value = line.split(b"\t", 4)
                headers = {}
                for kv in h.split(b","):
                    k, _, v = kv.partition(b"=")
                    headers[k.decode()] = v.decode(errors="replace")
                out.append({"headers": headers, "key": key, "value": value})
            if len(out) >= expected:
                break
            time.sleep(1)
        return out

    def role_daemon(self, name: str, role: str, extra: list[str]) -> Daemon:
        """hubmetricsd --role=dedup|metrics of this scenario (one key file for all)."""
        state = os.path.join(self.tmp, f"state-{name}")
        d = Daemon(self.bin_dir, state, os.path.join(self.tmp, f"{name}.log"), [
            f"--role={role}", f"--kafka_brokers={self.broker.address}",
            f"--events_topic={self.events_topic}", f"--models_topic={self.models_topic}",
            f"--dlq_topic={self.dlq_topic}", f"--unique_topic=it.{self.args.scenario}.unique",
            f"--group_id=it-{self.args.scenario}-dedup", "--events_format=json",
            f"--lateness_days={LATENESS_MULTI}", f"--user_hash_key_file={self.key_file}",
            *extra])
        self.daemons.append(d)
        d.start()
        return d

    def topic_records(self, topic: str, committed: bool) -> int:
        """Records of `topic` a read_committed (or read_uncommitted) reader sees."""
        p = subprocess.run(["kcat", "-C", "-b", self.broker.address, "-t", topic, "-e", "-q",
                            "-X", f"isolation.level=read_{'committed' if committed else 'uncommitted'}",
                            "-f", "%o\n"], capture_output=True, timeout=120)
        if p.returncode != 0:
            raise RuntimeError(f"kcat failed: {p.stderr.decode(errors='replace')[-500:]}")
        return len([l for l in p.stdout.split(b"\n") if l])

    def wait_replica(self, d: Daemon, expected: int, tag: str, timeout: float = 300) -> dict | None:
        """Stats once the replica has applied every transaction up to `expected` events: its
        summed events_read is `expected` and the downloads it counts (view model/all/direct,
        window all) equal the summed unique_downloads. A transaction's progress record and its
        counts sit in different partitions of the unique topic and may be applied in different
        batches; the two sums agree only once both are in."""
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if not d.alive():
                last = f"exited with {d.proc.returncode} (log {d.log_path})"
                break
            s, err = d.ctl.run("stats", timeout=10)
            c, _ = d.ctl.run("concentration", "--level=model", "--filter=all",
                             "--attribution=direct", "--window=all", timeout=10)
            if s is not None and c is not None:
                n, unique = e2e.u64(s, "events_read"), e2e.u64(s, "unique_downloads")
                total = e2e.u64(c, "total_downloads")
                if n > expected:
                    last = f"events_read {n} > {expected}: counted twice"
                    break
                if n == expected and total == unique:
                    return s
                last = f"events_read {n}, downloads {total} vs unique_downloads {unique}"
            else:
                last = err
            time.sleep(0.25)
        self.c.check(False, f"[{tag}] replica applied every transaction", [last])
        return None

    def roles(self) -> None:
        self.key_file = os.path.join(self.tmp, "user_hash.key")
        with open(os.open(self.key_file, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
            f.write("%032x\n" % random.Random(21).getrandbits(128))
        ev, mo = self.generate(60000, seed=21)
        with open(ev, "rb") as f:
            lines = [l for l in f.read().split(b"\n") if l]
        parts = [lines[:30000], lines[30000:45000], lines[45000:]]
        models = self.produce(mo, self.models_topic, "models")
        unique_topic = f"it.{self.args.scenario}.unique"
        events = self.produce(parts[0], self.events_topic, "events")
        # Kill points: one instance alone in the group (static membership, so
        # that its restart gets the partitions back at once), small batches so
        # that each run reaches its transaction's pass long before the end.
        member = ["--kafka_property=group.instance.id=it-roles-d0",
                  "--kafka_property=session.timeout.ms=6000", "--batch_max_events=500",
                  "--transactional_id=it-roles-d0"]
        for point, passes in (("dedup.before_produce", 2), ("dedup.before_commit", 3),
                              ("dedup.after_commit", 4)):
            d = self.role_daemon(f"dedup-kill-{point}", "dedup", member + [f"--kill_at={point}:{passes}"])
            self.wait_killed(d, point, passes)
            if point == "dedup.before_commit":
                committed = self.topic_records(unique_topic, committed=True)
                uncommitted = self.topic_records(unique_topic, committed=False)
                self.c.check(uncommitted > committed,
                             "[roles] the killed transaction's records are invisible read_committed",
                             [f"read_committed {committed}, read_uncommitted {uncommitted}"])
        d0 = self.role_daemon("dedup-0", "dedup", member[:2] + ["--transactional_id=it-roles-d0"])
        m1 = self.role_daemon("metrics-1", "metrics", [])
        m2 = self.role_daemon("metrics-2", "metrics", [])
        r1 = self.reference(events, models)
        self.wait_replica(m1, r1.events_read, "roles-phase1")
        self.wait_replica(m2, r1.events_read, "roles-phase1")
        d0.signal(signal.SIGTERM)
        # Three instances, then a fourth between the two halves of the rest.
        dedups = [self.role_daemon(f"dedup-{i}", "dedup", [f"--transactional_id=it-roles-d{i}"])
                  for i in (1, 2, 3)]
        events += self.produce(parts[1], self.events_topic, "events")
        r2 = self.reference(events, models)
        self.wait_replica(m1, r2.events_read, "roles-phase2")
        # A replica killed and wiped: it rebuilds from the unique topic alone.
        m2.signal(signal.SIGKILL)
        shutil.rmtree(m2.state_dir)
        m2 = self.role_daemon("metrics-2-rebuilt", "metrics", [])
        dedups.append(self.role_daemon("dedup-4", "dedup", ["--transactional_id=it-roles-d4"]))
        events += self.produce(parts[2], self.events_topic, "events")
        r = self.reference(events, models)
        s1 = self.wait_replica(m1, r.events_read, "roles")
        s2 = self.wait_replica(m2, r.events_read, "roles-rebuilt")
        if s1 is None or s2 is None:
            return
        self.check_stats(r, s1, "roles-metrics-1")
        a1 = e2e.Comparison(r, m1.ctl, self.c, "roles-metrics-1").run()
        self.check_stats(r, s2, "roles-metrics-2")
        a2 = e2e.Comparison(r, m2.ctl, self.c, "roles-metrics-2").run()
        diff = [k for k in a1 if a1.get(k) != a2.get(k)]
        self.c.check(len(a1) > 100 and a1.keys() == a2.keys() and not diff,
                     f"[roles] both replicas answer the same {len(a1)} queries identically",
                     [f"{k}: {a1.get(k)} vs {a2.get(k)}" for k in diff[:5]])
        dlq = self.topic_records(self.dlq_topic, committed=True)
        self.c.check(dlq == r.rejected, "[roles] DLQ read_committed holds each rejected event once",
                     [f"expected {r.rejected} got {dlq}"])
        for d in dedups + [m1, m2]:
            code = d.signal(signal.SIGTERM)
            self.c.check(code == 0, f"[roles] {os.path.basename(d.log_path)} stops cleanly",
                         [f"exit {code}"])

    def wait_killed(self, d: Daemon, point: str, passes: int, timeout: float = 120) -> None:
        """A dedup instance armed with --kill_at=point:passes died of SIGKILL there."""
        what = f"[roles] dedup killed at {point}:{passes}"
        try:
            d.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.c.check(False, what, [f"still running after {timeout}s (log {d.log_path})"])
            d.signal(signal.SIGKILL)
            return
        with open(d.log_path, "rb") as f:
            said = f"kill point {point} reached (pass {passes})".encode() in f.read()
        self.c.check(d.proc.returncode == -signal.SIGKILL and said, what,
                     [f"exit {d.proc.returncode}, reached: {said} ({d.log_path})"])

    def cleanup(self) -> None:
        for d in self.daemons:
            if d.alive():
                d.signal(signal.SIGKILL)
        try:
            self.broker.stop()
        except Exception as e:  # noqa: BLE001 - report, keep cleaning up
            log(f"broker stop failed: {e}")
        if self.args.keep or self.c.failed:
            log(f"kept {self.tmp}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    # -- scenarios

    def partitions(self) -> None:
        ev, mo = self.generate(60000, seed=11)
        models = self.produce(mo, self.models_topic, "models")
        events = self.produce(ev, self.events_topic, "events")
        r = self.reference(events, models)
        d = self.daemon("partitions", os.path.join(self.tmp, "state"))
        t0 = time.monotonic()
        stats, err = d.wait_read(r.events_read)
        if not self.c.check(stats is not None, "[partitions] consumed to the end", [err]):
            return
        log(f"[partitions] {r.events_read} events consumed in {time.monotonic() - t0:.1f}s")
        self.compare(r, d, stats, "partitions")
        time.sleep(1.5)  # one lag period after the last commit
        stats, _ = d.ctl.run("stats")
        self.check_lags(stats or {}, 3, "partitions")
        dlq = self.consume_dlq(r.rejected)
        by_reason: dict[str, int] = {}
        for m in dlq:
            by_reason[m["headers"].get("reason", "?")] = by_reason.get(m["headers"].get("reason", "?"), 0) + 1
        exp = {k: v for k, v in r.rejected_by_reason.items() if v}
        self.c.check(by_reason == exp, "[partitions] DLQ counts per reason",
                     [f"expected {exp} got {by_reason}"])
        code = d.signal(signal.SIGTERM)
        self.c.check(code == 0, "[partitions] SIGTERM exits cleanly", [f"exit {code}"])
        # Restart on the same state: nothing is read twice.
        d = self.daemon("partitions-restart", os.path.join(self.tmp, "state"))
        stats, err = d.wait_read(r.events_read, timeout=60)
        if self.c.check(stats is not None, "[partitions] restart reads nothing twice", [err]):
            time.sleep(2)
            stats, _ = d.ctl.run("stats")
            self.check_stats(r, stats or {}, "partitions-restart")
        d.signal(signal.SIGTERM)

    def binary(self) -> None:
        ev, mo = self.generate(20000, seed=12)
        models = self.produce(mo, self.models_topic, "models", fmt="binary")
        events = self.produce(ev, self.events_topic, "events", fmt="binary")
        r = self.reference(events, models)
        self.c.check(r.unique_downloads > 1000, "[binary] enough traffic", [str(r.unique_downloads)])
        # Started under `nice -n 3`, to see that --ingest_nice counts from the
        # process's own nice value, not from 0 (absolute, ingest would outrank queries).
        own = min(os.getpriority(os.PRIO_PROCESS, 0) + 3, 19)
        nice = min(own + 4, 19)
        d = self.daemon("binary", os.path.join(self.tmp, "state"), fmt="binary",
                        extra=["--ingest_nice=4"], nice=3)
        stats, err = d.wait_read(r.events_read)
        if self.c.check(stats is not None, "[binary] consumed to the end", [err]):
            self.compare(r, d, stats, "binary")
            self.check_ingest_nice(d.proc.pid, own, nice)
        d.signal(signal.SIGTERM)

    def check_ingest_nice(self, pid: int, own: int, nice: int) -> None:
        """--ingest_nice reaches the ingest threads and librdkafka's, not those that answer."""
        threads = e2e.thread_nice_values(pid)
        ingest = [(t, n, v) for t, n, v in threads
                  if n.startswith(("rdk:", "hm-ingest", "hm-catalog", "hm-apply", "hm-lane"))]
        answer = [(t, n, v) for t, n, v in threads if t == pid or n == "hm-query"]
        self.c.check(any(n.startswith("rdk:") for _, n, _ in ingest)
                     and any(n == "hm-ingest" for _, n, _ in ingest)
                     and any(n == "hm-query" for _, n, _ in answer),
                     "[binary] librdkafka, ingest and blocking-query threads exist",
                     [f"threads: {threads}"])
        self.c.check(all(v == nice for _, _, v in ingest),
                     f"[binary] ingest and librdkafka threads run 4 below the process, at {nice}",
                     [f"{n} ({t}): nice {v}" for t, n, v in ingest if v != nice])
        self.c.check(all(v == own for _, _, v in answer),
                     f"[binary] the main and blocking-query threads keep nice {own}",
                     [f"{n} ({t}): nice {v}" for t, n, v in answer if v != own])

    def crash(self) -> None:
        ev, mo = self.generate(150000, seed=13)
        models = self.produce(mo, self.models_topic, "models")
        events = self.produce(ev, self.events_topic, "events")
        r = self.reference(events, models)
        state = os.path.join(self.tmp, "state")
        # Static membership and a short session: a restarted member gets its
        # partitions back at once (also exercises repeated --kafka_property).
        # Small batches (the default is 200,000): 150,000 events make at least 75
        # batches, more than the kill points' passes add up to, so each run reaches
        # its point before the end of the topic, however fast the machine.
        fast = ["--kafka_property=group.instance.id=it-crash-member",
                "--kafka_property=session.timeout.ms=6000", "--batch_max_events=2000"]
        all_read = lambda s: e2e.u64(s, "events_read") >= r.events_read  # noqa: E731
        for i, (point, passes) in enumerate(KAFKA_KILL_POINTS):
            d = self.daemon(f"crash-{i}", state, extra=fast + [f"--kill_at={point}:{passes}"])
            e2e.check_killed_at(self.c, d, point, passes, ended=all_read)
        # Random moments too, never the only proof: not required to land mid-stream.
        rng = random.Random(13)
        for i in range(2):
            d = self.daemon(f"crash-random-{i}", state, extra=fast)
            time.sleep(rng.uniform(0.5, 2.0))
            s = d.stats() if d.alive() else None
            code = d.signal(signal.SIGKILL)
            log(f"[crash] random SIGKILL {i + 1} at events_read "
                f"{e2e.u64(s, 'events_read') if s else '?'} (exit {code})")
        d = self.daemon("crash-final", state, extra=fast)
        stats, err = d.wait_read(r.events_read)
        if self.c.check(stats is not None, "[crash] comes back after the SIGKILLs", [err]):
            self.compare(r, d, stats, "crash")
        d.signal(signal.SIGTERM)

    def outage(self) -> None:
        ev, mo = self.generate(40000, seed=14)
        with open(ev, "rb") as f:
            lines = [l for l in f.read().split(b"\n") if l]
        half = len(lines) // 2
        models = self.produce(mo, self.models_topic, "models")
        first = self.produce(lines[:half], self.events_topic, "events")
        d = self.daemon("outage", os.path.join(self.tmp, "state"))
        stats, err = d.wait_read(len(first))
        if not self.c.check(stats is not None, "[outage] first half consumed", [err]):
            return
        self.broker.stop(keep_data=True)
        t0 = time.monotonic()
        answered = failed = 0
        conditions = set()
        while time.monotonic() - t0 < 20:
            s, _ = d.ctl.run("stats", timeout=5)
            c, _ = d.ctl.run("concentration", "--level=model", "--filter=all",
                             "--attribution=direct", "--window=all", timeout=5)
            if s is not None and c is not None and e2e.u64(c, "total_downloads") > 0:
                answered += 1
                if s.get("source_condition"):
                    conditions.add(s["source_condition"])
            else:
                failed += 1
            time.sleep(1)
        self.c.check(answered >= 10 and failed == 0, "[outage] queries answer while the broker is down",
                     [f"{answered} answered, {failed} failed"])
        self.c.check(any("unreachable" in x for x in conditions),
                     "[outage] the condition is reported in GetIngestStats", [str(conditions)])
        self.broker.start()
        second = self.produce(lines[half:], self.events_topic, "events")
        r = self.reference(first + second, models)
        stats, err = d.wait_read(r.events_read)
        if self.c.check(stats is not None, "[outage] resumes by itself", [err]):
            # The condition clears once the brokers answer again.
            deadline = time.monotonic() + 30
            while stats and stats.get("source_condition") and time.monotonic() < deadline:
                time.sleep(0.5)
                stats, _ = d.ctl.run("stats")
            self.compare(r, d, stats or {}, "outage")
        d.signal(signal.SIGTERM)

    def dlq(self) -> None:
        ev, mo = self.generate(8000, seed=15, bad_fraction=0.05)
        models = self.produce(mo, self.models_topic, "models")
        # Besides loadgen's too_large records (just over the limit), one value of
        # 200 KiB: a well-formed event but for its length.
        with open(ev, "rb") as f:
            lines = [l for l in f.read().split(b"\n") if l]
        long_at = len(lines) // 3
        head = b'{"model_id":"gpt2","user_id":"dlq-long-user","time":"2025-02-01T00:00:00Z","p":"'
        long_value = head + b"p" * (200 * 1024 - len(head) - 2) + b'"}'
        lines.insert(long_at, long_value)
        events = self.produce(lines, self.events_topic, "events", partition=0)
        self.c.check(events[long_at] == long_value, "[dlq] the long value is produced in place")
        r = ref.Reference(lateness_days=3)
        r.set_catalog(ref.load_catalog(models))
        outcome = [r.ingest_event(l) for l in events]  # offset i = line i (one partition, fresh)
        self.c.check(all(r.rejected_by_reason[x] > 0 for x in ref.REASONS),
                     "[dlq] every rejection reason in the traffic", [str(r.rejected_by_reason)])
        d = self.daemon("dlq", os.path.join(self.tmp, "state"), lateness=3)
        stats, err = d.wait_read(r.events_read)
        if not self.c.check(stats is not None, "[dlq] consumed to the end", [err]):
            return
        self.check_stats(r, stats, "dlq")
        dlq = self.consume_dlq(r.rejected)
        self.c.check(len(dlq) == r.rejected, "[dlq] one DLQ message per rejected event",
                     [f"expected {r.rejected} got {len(dlq)}"])
        diffs = []
        counts: dict[str, int] = {}
        seen = set()
        for m in dlq:
            h = m["headers"]
            counts[h.get("reason", "?")] = counts.get(h.get("reason", "?"), 0) + 1
            try:
                off = int(h.get("source_offset", "-1"))
            except ValueError:
                off = -1
            if h.get("source_topic") != self.events_topic or h.get("source_partition") != "0":
                diffs.append(f"headers {h}")
            elif not 0 <= off < len(events):
                diffs.append(f"source_offset {off} out of range")
            else:
                if off in seen:
                    diffs.append(f"offset {off} dead-lettered twice")
                seen.add(off)
                if outcome[off] != h.get("reason"):
                    diffs.append(f"offset {off}: reason {h.get('reason')!r}, reference {outcome[off]!r}")
                if m["value"] != events[off]:
                    diffs.append(f"offset {off}: value is not the original bytes")
        self.c.check(not diffs, "[dlq] headers, reasons and original bytes", diffs[:20])
        long_dl = [m for m in dlq if m["headers"].get("source_offset") == str(long_at)]
        self.c.check(len(long_dl) == 1 and long_dl[0]["headers"].get("reason") == "too_large"
                     and long_dl[0]["value"] == long_value
                     and "value_truncated_from" not in long_dl[0]["headers"],
                     "[dlq] the 200 KiB value: reason too_large, its original bytes",
                     [str(m["headers"]) + f" value {len(m['value'])} bytes" for m in long_dl])
        exp = {k: v for k, v in r.rejected_by_reason.items() if v}
        self.c.check(counts == exp, "[dlq] counts per reason match", [f"expected {exp} got {counts}"])
        d.signal(signal.SIGTERM)

    def retention(self) -> None:
        """Events deleted from the topic before they were read are counted as lost, loudly,
        and everything else is exact: the reference of exactly the events still there."""
        ev, mo = self.generate(20000, seed=17)
        models = self.produce(mo, self.models_topic, "models")
        events = self.produce(ev, self.events_topic, "events", partition=0)
        state = os.path.join(self.tmp, "state")
        # Three commits of at most 2,000 events: the state stops at an offset below 6,000.
        small = ["--batch_max_events=2000", "--kafka_property=group.instance.id=it-retention",
                 "--kafka_property=session.timeout.ms=6000"]
        d = self.daemon("retention-first", state, extra=small + ["--kill_at=commit.after:3"])
        e2e.check_killed_at(self.c, d, "commit.after", 3,
                            ended=lambda s: e2e.u64(s, "events_read") >= len(events))
        deleted_before = 12000
        p = subprocess.run([self.produce_tool, f"--brokers={self.broker.address}",
                            f"--topic={self.events_topic}", "--partition=0",
                            f"--delete_before={deleted_before}"], capture_output=True, timeout=120)
        if not self.c.check(p.returncode == 0, "[retention] records deleted before 12,000",
                            [p.stderr.decode(errors="replace")]):
            return
        d = self.daemon("retention", state, extra=small)
        remaining = len(events) - deleted_before
        stats, err = None, ""
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and d.alive():
            s, err = d.ctl.run("stats")
            if s and e2e.u64(s, "events_lost_to_retention") and \
                    e2e.u64(s, "events_read") + e2e.u64(s, "events_lost_to_retention") >= len(events):
                stats = s
                break
            time.sleep(0.25)
        if not self.c.check(stats is not None, "[retention] reads on after the deleted records",
                            [err or "timed out"]):
            return
        lost = e2e.u64(stats, "events_lost_to_retention")
        stored = deleted_before - lost
        self.c.check(0 < stored <= 6000, "[retention] the loss is the deleted range after the "
                     "stored offset", [f"lost {lost}: stored offset {stored}"])
        with open(d.log_path, "rb") as f:
            said = b"were deleted (retention) before they were counted" in f.read()
        self.c.check(said, "[retention] an error line says so", [d.log_path])
        r = ref.Reference(lateness_days=LATENESS_MULTI)
        r.set_catalog(ref.load_catalog(models))
        r.ingest_events(events[:stored] + events[deleted_before:])
        log(f"[retention] stored offset {stored}, {lost} lost, {remaining} read after them")
        self.compare(r, d, stats, "retention")
        d.signal(signal.SIGTERM)

    def catalog(self) -> None:
        ev, mo = self.generate(30000, seed=16)
        models = self.produce(mo, self.models_topic, "models")
        events = self.produce(ev, self.events_topic, "events")
        r = self.reference(events, models)
        d = self.daemon("catalog", os.path.join(self.tmp, "state"))
        stats, err = d.wait_read(r.events_read)
        if not self.c.check(stats is not None, "[catalog] consumed to the end", [err]):
            return
        self.compare(r, d, stats, "catalog-before")
        # Most downloaded models with a catalog record.
        last = {}
        for l in models:
            try:
                rec = json.loads(l)
            except ValueError:
                continue
            if isinstance(rec, dict) and isinstance(rec.get("model_id"), str):
                last[rec["model_id"]] = rec
        totals: dict[str, int] = {}
        for (m, _), n in r.daily.items():
            totals[m] = totals.get(m, 0) + n
        popular = [m for m in sorted(totals, key=lambda m: (-totals[m], m)) if m in last]
        moved, tomb, new_root = popular[2], popular[3], popular[0]
        rec = dict(last[moved])
        rec["base_model"] = new_root if new_root != moved else popular[1]
        republished = [json.dumps(rec, separators=(",", ":")).encode()]
        self.produce(republished, self.models_topic, "models")
        self.produce([f"TOMBSTONE {tomb}".encode()], self.models_topic, "models")
        log(f"[catalog] {moved} now derives from {rec['base_model']}; {tomb} removed")
        r2 = self.reference(events, models + republished, tombstones=[tomb])
        # Wait for the change to show in a recursive view.
        view = ("model", "all", "recursive")
        exp = r2.concentration(view, "all", e2e.TOP_K)
        deadline = time.monotonic() + 60
        got = None
        while time.monotonic() < deadline:
            got, _ = d.ctl.run("concentration", *e2e.view_flags(view), "--window=all",
                               "--top_k=" + ",".join(str(k) for k in e2e.TOP_K))
            if got is not None and not e2e.compare_concentration(exp, got):
                break
            time.sleep(0.5)
        self.c.check(got is not None and not e2e.compare_concentration(exp, got),
                     "[catalog] re-publish and tombstone applied within 60 s",
                     e2e.compare_concentration(exp, got or {}))
        stats, _ = d.ctl.run("stats")
        self.compare(r2, d, stats or {}, "catalog-after")
        d.signal(signal.SIGTERM)
        # A restart re-reads the whole topic: same answers.
        d = self.daemon("catalog-restart", os.path.join(self.tmp, "state"))
        stats, err = d.wait_read(r2.events_read, timeout=60)
        if self.c.check(stats is not None, "[catalog] restart", [err]):
            self.compare(r2, d, stats, "catalog-restart")
        d.signal(signal.SIGTERM)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--bin_dir", required=True, help="the build folder")
    p.add_argument("--scenario", required=True,
                   choices=["partitions", "binary", "crash", "outage", "dlq", "catalog", "retention",
                            "roles"])
    p.add_argument("--keep", action="store_true")
    args = p.parse_args()
    s = Scenario(args)
    started = time.monotonic()
    log(f"scenario {args.scenario} in {s.tmp}")
    try:
        s.broker.start()
        getattr(s, args.scenario)()
    except Exception as e:  # noqa: BLE001 - a failure of the scenario, reported as such
        s.c.check(False, f"[{args.scenario}] ran without error", [repr(e)])
    finally:
        s.cleanup()
        log(f"total {time.monotonic() - started:.0f}s")
        print(f"{s.c.passed} passed, {s.c.failed} failed", flush=True)
    return 0 if s.c.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
