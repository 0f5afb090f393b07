#!/usr/bin/env python3
"""hubmetrics against its batch peer (DuckDB) on the same events file: same answers, and how long.

1. loadgen (file mode, --bad_fraction=0 so every record is valid, --days=364 so there are ~53 ISO
   weeks) writes the events and the catalog into --workdir; kept and reused while the loadgen
   arguments are the same (events-args.json).
2. duckdb_peer.py --to_parquet writes the same events' three columns (model_id, user_id, time) to
   events.parquet once (zstd; not timed: it is how a batch user would keep the history), reused
   like the NDJSON file.
3. --rounds rounds, interleaved (DuckDB on the NDJSON file, hubmetricsd, DuckDB on the Parquet
   file), so that drift of the machine falls on all three alike:
   - duckdb_peer.py with the venv's python, timed from process start to its answer;
   - hubmetricsd ingests the SAME NDJSON file (--events_file, fresh --state_dir, a free 127.0.0.1
     port, a user-hash key file, the catalog, default flags otherwise); timed from process start
     until it logs that the file is read to its end (its log watched every 10 ms: a hubctl process
     polling would take CPU from it), then `hubctl stats` must say source_exhausted;
   - hubctl reads its answers: `concentration --level=model --filter=all --attribution=direct`
     for every ISO week from the first to the last event day (and every week the peer reports),
     and for --window=all; `stats` for the event and unique counts. Every figure of every round
     is compared with both DuckDB answers: integers equal, doubles to 1e-9 relative.
4. The medians and ranges of the three times and of the paired ratios (DuckDB seconds /
   hubmetricsd seconds of the same round).

  compare.py --bin_dir build/services --events 1000000 --workdir /tmp/hm-duckdb \\
      [--rounds 3] [--venv_python ~/.cache/hubmetrics/venv/bin/python] [--days 364] [--seed 1]

The last stdout line is one JSON object: {"events", "rounds", "duckdb_seconds",
"hubmetrics_seconds_same_file", "ratio_duckdb_over_hubmetrics" (medians; each with a *_range
[min, max] and a *_runs list), "duckdb_parquet_seconds", "ratio_duckdb_parquet_over_hubmetrics",
"weeks_compared", "answers_equal", ...}. Exits 1 when any answer differs (the first differences
are printed before it), 2 when something could not run. hubmetricsd is stopped on every exit path.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
sys.path.insert(0, os.path.join(REPO, "tests", "e2e"))

from e2e_test import Hubctl, dbl, free_port, u64  # noqa: E402

TOP_K = (1, 10, 100)
REL_TOL = 1e-9
ABS_TOL = 1e-15
MAX_PRINTED = 20
START = "2025-01-06T00:00:00Z"


def log(msg: str) -> None:
    print(f"[duckdb-compare {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class Failed(Exception):
    """Something could not run (exit 2)."""


def _raise_exit(signum, _frame):
    raise SystemExit(128 + signum)


def close(expected: float, got: float) -> bool:
    if abs(expected) < ABS_TOL:
        return abs(got) <= ABS_TOL
    return abs(got - expected) <= REL_TOL * abs(expected)


def iso_weeks(start_day: datetime.date, days: int) -> list[str]:
    """Every ISO week label touched by days [start_day - 1, start_day + days] (loadgen jitters
    event times by up to 10 minutes, so the day before the first and after the last can have
    events)."""
    labels = []
    d = start_day - datetime.timedelta(days=1)
    end = start_day + datetime.timedelta(days=days)
    while d <= end:
        y, w, _ = d.isocalendar()
        label = f"{y}-W{w:02d}"
        if label not in labels:
            labels.append(label)
        d += datetime.timedelta(days=1)
    return labels


# ---------------------------------------------------------------- steps

def generate(args, loadgen: str, events: str, models: str) -> float:
    argv = [loadgen, f"--out={events}", f"--models_out={models}", f"--events={args.events}",
            f"--seed={args.seed}", f"--start={START}", f"--days={args.days}",
            f"--models={args.models}", f"--users={args.users}", "--bad_fraction=0"]
    marker = os.path.join(args.workdir, "events-args.json")
    want = json.dumps(argv[3:])
    if os.path.exists(events) and os.path.exists(models) and os.path.exists(marker):
        with open(marker, encoding="utf-8") as f:
            if f.read() == want:
                log(f"reusing {events} (same loadgen arguments)")
                return 0.0
    if os.path.exists(marker):
        os.remove(marker)
    t0 = time.monotonic()
    p = subprocess.run(argv, capture_output=True, timeout=args.timeout)
    if p.returncode != 0:
        raise Failed(f"loadgen exit {p.returncode}: {p.stderr.decode(errors='replace')[-1000:]}")
    sys.stderr.write(p.stderr.decode(errors="replace"))
    with open(marker, "w", encoding="utf-8") as f:
        f.write(want)
    return time.monotonic() - t0


class Daemon:
    """hubmetricsd on the events file; stop() is safe to call more than once."""

    def __init__(self, args, events: str, models: str):
        self.bin = os.path.join(args.bin_dir, "hubmetricsd", "hubmetricsd")
        self.state_dir = os.path.join(args.workdir, "state")
        self.key_file = os.path.join(args.workdir, "user_hash.key")
        self.log_path = os.path.join(args.workdir, "hubmetricsd.log")
        self.events, self.models = events, models
        self.proc: subprocess.Popen | None = None
        self.addr = f"127.0.0.1:{free_port()}"
        self.ctl = Hubctl(os.path.join(args.bin_dir, "hubctl", "hubctl"), self.addr)

    def start(self) -> float:
        shutil.rmtree(self.state_dir, ignore_errors=True)
        if not os.path.exists(self.key_file):
            fd = os.open(self.key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(os.urandom(16).hex() + "\n")
        with open(self.log_path, "wb") as logf:
            t0 = time.monotonic()
            self.proc = subprocess.Popen(
                [self.bin, f"--state_dir={self.state_dir}", f"--grpc_listen={self.addr}",
                 f"--events_file={self.events}", f"--models_file={self.models}",
                 f"--user_hash_key_file={self.key_file}"],
                stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        return t0

    # hubmetricsd logs this line right after its stats turn source_exhausted true
    # (services/hubmetricsd/main.cc). Watching the log costs the daemon nothing, where a hubctl
    # process every 50 ms took CPU from it during the timed replay.
    EXHAUSTED_LINE = b" read to its end; serving"

    def wait_exhausted(self, t0: float, timeout: float) -> tuple[float, dict]:
        """Seconds from process start until the daemon logs that the file is read to its end
        (its log is watched every 10 ms), and its stats then, which must say source_exhausted."""
        seen, offset = None, 0
        while seen is None and time.monotonic() - t0 < timeout:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                chunk = f.read()
            # Only whole lines count; a line being written is read again next time.
            whole = chunk[:chunk.rfind(b"\n") + 1]
            offset += len(whole)
            if self.EXHAUSTED_LINE in whole:
                seen = time.monotonic() - t0
                break
            if self.proc.poll() is not None:
                raise Failed(f"hubmetricsd exited with {self.proc.returncode}; log {self.log_path}")
            time.sleep(0.01)
        if seen is None:
            raise Failed(f"the events file was not read to its end after {timeout}s; log "
                         f"{self.log_path}")
        s, err = self.ctl.run("stats", timeout=5)
        if s is None or not s.get("source_exhausted"):
            raise Failed(f"hubmetricsd logged the end of the file but its stats say otherwise: "
                         f"{err or json.dumps(s)[:300]}")
        return seen, s

    def usage(self) -> tuple[float | None, float | None]:
        """(CPU seconds, peak RSS in MB) of the running daemon, from /proc; None if unknown."""
        cpu = rss = None
        try:
            with open(f"/proc/{self.proc.pid}/stat", encoding="ascii") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            with open(f"/proc/{self.proc.pid}/status", encoding="ascii") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        rss = int(line.split()[1]) / 1024
        except (OSError, ValueError, IndexError):
            pass
        return cpu, rss

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def hubmetrics_answer(ctl: Hubctl, window: str) -> dict:
    got, err = ctl.run("concentration", "--level=model", "--filter=all", "--attribution=direct",
                       f"--window={window}", "--top_k=" + ",".join(str(k) for k in TOP_K))
    if got is None:
        raise Failed(err)
    shares = {int(t.get("k", 0)): t.get("share", 0.0) for t in got.get("top_shares", [])}
    return {"total": u64(got, "total_downloads"), "entities": u64(got, "entities"),
            "hhi": dbl(got, "hhi"), "gini": dbl(got, "gini"),
            "top_shares": {str(k): shares.get(k) for k in TOP_K}}


EMPTY = {"total": 0, "entities": 0, "hhi": 0.0, "gini": 0.0,
         "top_shares": {str(k): 0.0 for k in TOP_K}}


def differences(window: str, hm: dict, peer: dict) -> list[str]:
    diffs = []
    for name in ("total", "entities"):
        if hm[name] != peer[name]:
            diffs.append(f"{window} {name}: hubmetrics {hm[name]} duckdb {peer[name]}")
    for name in ("hhi", "gini"):
        if not close(peer[name], hm[name]):
            diffs.append(f"{window} {name}: hubmetrics {hm[name]!r} duckdb {peer[name]!r}")
    for k in TOP_K:
        h, d = hm["top_shares"].get(str(k)), peer["top_shares"][str(k)]
        if h is None or not close(d, h):
            diffs.append(f"{window} top-{k} share: hubmetrics {h!r} duckdb {d!r}")
    return diffs


def run_peer(args, source_flag: str, path: str) -> tuple[float, dict]:
    """duckdb_peer.py on path (source_flag: --events or --parquet): (wall seconds, its answer)."""
    out = os.path.join(args.workdir, "duckdb-answer.json")
    argv = [args.venv_python, os.path.join(HERE, "duckdb_peer.py"), f"{source_flag}={path}",
            f"--out={out}"]
    t0 = time.monotonic()
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=args.timeout)
    seconds = time.monotonic() - t0
    sys.stderr.write(p.stderr.decode(errors="replace"))
    if p.returncode != 0:
        raise Failed(f"duckdb_peer.py exit {p.returncode}")
    with open(out, encoding="utf-8") as f:
        return seconds, json.load(f)


def write_parquet(args, events: str, parquet: str) -> float:
    """events.parquet from the NDJSON file, unless one newer than it is there; its seconds."""
    if os.path.exists(parquet) and os.path.getmtime(parquet) >= os.path.getmtime(events):
        log(f"reusing {parquet}")
        return 0.0
    tmp = parquet + ".tmp"
    t0 = time.monotonic()
    p = subprocess.run([args.venv_python, os.path.join(HERE, "duckdb_peer.py"),
                        f"--events={events}", f"--to_parquet={tmp}"],
                       capture_output=True, timeout=args.timeout)
    if p.returncode != 0:
        raise Failed(f"duckdb_peer.py --to_parquet exit {p.returncode}: "
                     f"{p.stderr.decode(errors='replace')[-500:]}")
    os.replace(tmp, parquet)
    return time.monotonic() - t0


def spread(values: list[float]) -> dict:
    """Median, [min, max] and the values, rounded to milliseconds (or 1e-3 of a ratio)."""
    return {"median": round(statistics.median(values), 3),
            "range": [round(min(values), 3), round(max(values), 3)],
            "runs": [round(v, 3) for v in values]}


# ---------------------------------------------------------------- main

def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--bin_dir", required=True, help="the build folder's services/ directory")
    p.add_argument("--events", type=int, required=True, help="event records loadgen writes")
    p.add_argument("--workdir", required=True, help="files, state and logs go here (kept)")
    p.add_argument("--venv_python", default=os.path.join(
        os.environ.get("HUBMETRICS_VENV", os.path.expanduser("~/.cache/hubmetrics/venv")),
        "bin", "python"), help="python with duckdb (default: the venv scripts/bootstrap makes)")
    p.add_argument("--days", type=int, default=364, help="simulated days (364: 52 full weeks)")
    p.add_argument("--models", type=int, default=3000)
    p.add_argument("--users", type=int, default=60000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--rounds", type=int, default=3,
                   help="interleaved rounds of DuckDB (NDJSON), hubmetricsd, DuckDB (Parquet)")
    p.add_argument("--timeout", type=float, default=1800, help="seconds allowed for each step")
    args = p.parse_args()

    loadgen = os.path.join(args.bin_dir, "loadgen", "loadgen")
    for b in (loadgen, os.path.join(args.bin_dir, "hubmetricsd", "hubmetricsd"),
              os.path.join(args.bin_dir, "hubctl", "hubctl"), args.venv_python):
        if not os.access(b, os.X_OK):
            print(f"missing {b}: build loadgen, hubmetricsd and hubctl, and run scripts/bootstrap")
            return 2
    os.makedirs(args.workdir, exist_ok=True)
    signal.signal(signal.SIGTERM, _raise_exit)
    signal.signal(signal.SIGHUP, _raise_exit)
    events = os.path.join(args.workdir, "events.ndjson")
    models = os.path.join(args.workdir, "models.ndjson")
    daemon = None
    try:
        gen_seconds = generate(args, loadgen, events, models)
        size = os.path.getsize(events)
        log(f"events file {events}: {size / 1e6:.1f} MB")
        parquet = os.path.join(args.workdir, "events.parquet")
        parquet_seconds = write_parquet(args, events, parquet)
        log(f"parquet file {parquet}: {os.path.getsize(parquet) / 1e6:.1f} MB")

        start_day = datetime.date.fromisoformat(START[:10])
        diffs: list[str] = []
        times: dict[str, list[float]] = {"duckdb": [], "hubmetrics": [], "parquet": []}
        cpu: dict[str, list[float]] = {"duckdb": [], "hubmetrics": [], "parquet": []}
        rss: dict[str, list[float]] = {"duckdb": [], "hubmetrics": [], "parquet": []}
        weeks: list[str] = []
        peer: dict = {}
        for r in range(args.rounds):
            duck_seconds, peer = run_peer(args, "--events", events)
            times["duckdb"].append(duck_seconds)
            cpu["duckdb"].append(peer.get("cpu_seconds", 0))
            rss["duckdb"].append(peer.get("peak_rss_mb", 0))
            log(f"round {r + 1}/{args.rounds} duckdb: {duck_seconds:.2f}s wall "
                f"({peer['seconds']:.2f}s in the query)")

            daemon = Daemon(args, events, models)
            t0 = daemon.start()
            hm_seconds, stats = daemon.wait_exhausted(t0, args.timeout)
            hm_cpu, hm_rss = daemon.usage()
            times["hubmetrics"].append(hm_seconds)
            if hm_cpu is not None:
                cpu["hubmetrics"].append(hm_cpu)
            if hm_rss is not None:
                rss["hubmetrics"].append(hm_rss)
            log(f"round {r + 1}/{args.rounds} hubmetricsd: source exhausted after "
                f"{hm_seconds:.2f}s")

            pq_seconds, pq_peer = run_peer(args, "--parquet", parquet)
            times["parquet"].append(pq_seconds)
            cpu["parquet"].append(pq_peer.get("cpu_seconds", 0))
            rss["parquet"].append(pq_peer.get("peak_rss_mb", 0))
            log(f"round {r + 1}/{args.rounds} duckdb on parquet: {pq_seconds:.2f}s wall")

            weeks = iso_weeks(start_day, args.days)
            weeks += [w for w in sorted(peer["weeks"]) if w not in weeks]
            answers = {"all": hubmetrics_answer(daemon.ctl, "all")}
            for w in weeks:
                answers[w] = hubmetrics_answer(daemon.ctl, f"week:{w}")
            daemon.stop()
            daemon = None
            for label, pa in (("duckdb", peer), ("duckdb on parquet", pq_peer)):
                pre = f"round {r + 1} vs {label}: "
                for name, want in (("events_read", args.events), ("rejected", 0),
                                   ("unique_downloads", pa["unique_downloads"])):
                    if u64(stats, name) != want:
                        diffs.append(f"{pre}stats {name}: hubmetrics {u64(stats, name)} "
                                     f"expected {want}")
                if pa.get("events") != args.events:
                    diffs.append(f"{pre}{label} read {pa.get('events')} rows, expected "
                                 f"{args.events}")
                diffs += [pre + d for d in differences("all", answers["all"], pa["all"])]
                for w in weeks:
                    diffs += [pre + d for d in differences(f"week:{w}", answers[w],
                                                           pa["weeks"].get(w, EMPTY))]
        ratios = [d / h for d, h in zip(times["duckdb"], times["hubmetrics"])]
        pq_ratios = [d / h for d, h in zip(times["parquet"], times["hubmetrics"])]
        nonempty = sum(1 for w in weeks if w in peer["weeks"])
        duck, hub, pq = spread(times["duckdb"]), spread(times["hubmetrics"]), spread(times["parquet"])
        ratio, pq_ratio = spread(ratios), spread(pq_ratios)

        def median_or_none(v: list[float]) -> float | None:
            return round(statistics.median(v), 3) if v else None

        result = {
            "events": args.events,
            "events_file_bytes": size,
            "parquet_file_bytes": os.path.getsize(parquet),
            "parquet_write_seconds": round(parquet_seconds, 3),
            "rounds": args.rounds,
            "unique_downloads": peer["unique_downloads"],
            "duckdb_seconds": duck["median"],
            "duckdb_seconds_range": duck["range"],
            "duckdb_seconds_runs": duck["runs"],
            "hubmetrics_seconds_same_file": hub["median"],
            "hubmetrics_seconds_range": hub["range"],
            "hubmetrics_seconds_runs": hub["runs"],
            "ratio_duckdb_over_hubmetrics": ratio["median"],
            "ratio_range": ratio["range"],
            "ratio_runs": ratio["runs"],
            "duckdb_parquet_seconds": pq["median"],
            "duckdb_parquet_seconds_range": pq["range"],
            "ratio_duckdb_parquet_over_hubmetrics": pq_ratio["median"],
            "ratio_parquet_range": pq_ratio["range"],
            "weeks_compared": len(weeks),
            "weeks_with_downloads": nonempty,
            "figures_compared": 2 * args.rounds * (4 + (len(weeks) + 1) * (4 + len(TOP_K))),
            "answers_equal": not diffs,
            "duckdb_cpu_seconds": median_or_none(cpu["duckdb"]),
            "duckdb_parquet_cpu_seconds": median_or_none(cpu["parquet"]),
            "hubmetrics_cpu_seconds": median_or_none(cpu["hubmetrics"]),
            "duckdb_peak_rss_mb": median_or_none(rss["duckdb"]),
            "duckdb_parquet_peak_rss_mb": median_or_none(rss["parquet"]),
            "hubmetrics_peak_rss_mb": median_or_none(rss["hubmetrics"]),
            "duckdb_version": peer.get("duckdb_version"),
            "duckdb_threads": peer.get("threads"),
            "loadgen_seconds": round(gen_seconds, 3),
        }
        for d in diffs[:MAX_PRINTED]:
            print(f"DIFF {d}")
        if len(diffs) > MAX_PRINTED:
            print(f"... {len(diffs) - MAX_PRINTED} more differences")
        print(json.dumps(result), flush=True)
        return 0 if not diffs else 1
    except (Failed, subprocess.TimeoutExpired) as e:
        print(f"duckdb compare failed: {e}", flush=True)
        return 2
    finally:
        if daemon is not None:
            daemon.stop()


if __name__ == "__main__":
    sys.exit(main())
