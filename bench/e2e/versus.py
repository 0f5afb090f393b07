#!/usr/bin/env python3
"""hubmetricsd against the Kafka Streams peer on the same topic, interleaved, with the machine's
consume ceiling, and a sweep of the peer's tuning knobs (issue 18).

The topic must already hold exactly --events events (run_e2e.py --mode produce); the broker is
scripts/kafka-local's (--broker_state_dir or $KAFKA_STATE_DIR gives its pid, for its CPU seconds
and bytes written to storage, /proc/PID/io write_bytes, during each run). Steps:

 0. Warm-up, not measured: hubmetricsd and the peer once each on a 20,000-event topic of its
    own, so that the broker has created its consumer-offsets and transaction-state topics before
    any timed run, and the main topic's DLQ (hubmetricsd's --dlq_topic) created.
 1. --sweep: every configuration of SWEEP (one knob changed from "base", the peer as first
    written), "base_again" (base once more, last: the machine's drift over the sweep), then
    "combined" (every knob that beat the mean of the two base runs by more than 3%, the best
    value of each kind),
    each once on --sweep_topic (default --topic; else produced here with --sweep_events) after
    one hubmetricsd catch-up on that topic gives the answers to compare with. Each run records
    events/s, CPU, peak RSS and whether its answers equal hubmetricsd's; the fastest with equal
    answers becomes the peer of step 2. Without --sweep the peer is --peer_config (default
    DEFAULT_PEER).
 2. --rounds rounds, each: (A) hubmetricsd catch-up (run_e2e.catchup: fresh state and group,
    process start to lag 0, its answers saved; --hub_runs of them in a row, default 1, the median
    by events/s counts: a catch-up of a few seconds is at the mercy of a few busy seconds of the
    machine, where the peer's run of a minute or more is not), (C) consume_ceiling (a do-nothing librdkafka
    consumer with hubmetricsd's settings, same topic, fresh group), (B) the peer (fresh
    application id) with its weekly counts, compared with (A)'s answers: unique downloads,
    rejects by reason, every week's per-model counts (bench/peers/kstreams/compare_weekly.py).
    The ratio of a round is A's events/s over B's; the fraction of the consume ceiling is A's
    over C's. The summary gives the median and range [min, max] of each over the rounds.
 3. One more hubmetricsd catch-up with --sync_commits (an fsync per commit).

The last stdout line is one JSON object (rounds, summary, sweep, peer_config, sync_commits,
answers_equal, errors). Exit 1 when any peer run's answers differ from hubmetricsd's, when a step
failed, or when hubmetricsd's answers differ between rounds.

  versus.py --bin_dir build/services --bench_bin_dir build/bench --brokers 127.0.0.1:PORT \\
      --topic T --events N --workdir DIR [--rounds 3] [--hub_runs 1] [--sweep [--sweep_events M]]
      [--peer_config NAME] [--kstreams_timeout_s 1800] [--fallback_events K]

--rounds_events M: the rounds run on M events of a topic of their own (produced here).
--fallback_events K: when the peer does not finish N events in round 1 (e.g. within
--kstreams_timeout_s), K events are produced on a topic of their own and every round runs there
(hubmetricsd too, so that the two still read the same topic); the JSON says so.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import run_e2e  # noqa: E402
from run_e2e import Failed, Procs, log  # noqa: E402

run_e2e.LOG_NAME = "versus"
compare_weekly = run_e2e.compare_weekly
KS_RUN = os.path.join(REPO, "bench", "peers", "kstreams", "run")
WARMUP_EVENTS = 20000

# The peer's configurations: app flags and JVM options. "base" is the peer as first written.
BASE = {"flags": ["--commit_interval_ms=100", "--threads=2", "--repartition_value=raw",
                  "--keys=string", "--decode=proto", "--rocksdb_memory_mb=0"],
        "jvm_opts": "-Xmx1g"}
# One knob each, changed from base. "group": knobs of one group are alternatives (combined takes
# the best of a group).
SWEEP = [
    ("base", "", {}),
    ("commit1000", "commit", {"--commit_interval_ms": "1000"}),
    ("commit2000", "commit", {"--commit_interval_ms": "2000"}),
    ("slim", "value", {"--repartition_value": "slim"}),
    ("binary_keys", "keys", {"--keys": "binary"}),
    ("model_index", "keys", {"--keys": "binary", "--model_index": "true"}),
    ("raw_decode", "decode", {"--decode": "raw"}),
    ("rocksdb256", "rocksdb", {"--rocksdb_memory_mb": "256"}),
    ("threads1", "threads", {"--threads": "1"}),
    ("heap2g", "jvm", {"jvm": "-Xmx2g"}),
    ("parallel_gc", "jvm", {"jvm": "-Xmx1g -XX:+UseParallelGC"}),
]
DEFAULT_PEER = "base"
COMBINE_GAIN = 1.03


def config(name: str, changes: dict) -> dict:
    """BASE with `changes` ({flag: value}, "jvm": JVM options) applied."""
    flags = {f.split("=", 1)[0]: f.split("=", 1)[1] for f in BASE["flags"]}
    jvm = BASE["jvm_opts"]
    for k, v in changes.items():
        if k == "jvm":
            jvm = v
        else:
            flags[k] = v
    return {"name": name, "flags": [f"{k}={v}" for k, v in flags.items()], "jvm_opts": jvm,
            "changes": changes}


def named_config(name: str) -> dict:
    for n, _g, ch in SWEEP:
        if n == name:
            return config(n, ch)
    raise SystemExit(f"versus.py: unknown --peer_config {name} (one of "
                     f"{', '.join(n for n, _, _ in SWEEP)})")


def load_average() -> list[float] | None:
    """/proc/loadavg's 1, 5 and 15 minute figures (other work on the machine shows here)."""
    try:
        with open("/proc/loadavg") as f:
            return [float(x) for x in f.read().split()[:3]]
    except (OSError, ValueError):
        return None


def spread(values: list) -> dict | None:
    v = [x for x in values if x is not None]
    if not v:
        return None
    med = statistics.median(v)
    return {"median": round(med, 3) if isinstance(med, float) else med,
            "min": min(v), "max": max(v), "n": len(v)}


def ratio(a, b, digits: int = 3):
    return None if a is None or not b else round(a / b, digits)


class Versus:
    def __init__(self, opts):
        self.opts = opts
        self.procs = Procs()
        self.errors: list[str] = []
        self.notes: list[str] = []

    # --- the peer
    def peer(self, cfg: dict, topic: str, events: int, tag: str, timeout_s: int) -> dict:
        """One run of the peer; its result line plus the path of its weekly dump."""
        o = self.opts
        dump = os.path.join(o.workdir, f"ks-{tag}.jsonl")
        args = [KS_RUN, f"--brokers={o.brokers}", f"--topic={topic}", f"--events={events}",
                f"--workdir={os.path.join(o.workdir, 'kstreams')}", f"--timeout_s={timeout_s}",
                f"--dump_weekly={dump}", f"--jvm_opts={cfg['jvm_opts']}"]
        threads = next((f.split("=", 1)[1] for f in cfg["flags"] if f.startswith("--threads=")),
                       None)
        if threads:
            args.append(f"--threads={threads}")
        args += [f"--extra={f}" for f in cfg["flags"] if not f.startswith("--threads=")]
        log(f"peer {cfg['name']} ({tag}): {' '.join(args)}")
        meter = run_e2e.BrokerMeter(o)
        meter.start()
        t0 = time.monotonic()
        logf = os.path.join(o.workdir, f"ks-{tag}.log")
        with open(logf, "w") as lf:
            p = self.procs.start(args, stdout=subprocess.PIPE, stderr=lf, text=True)
            out, _ = p.communicate()
        broker = meter.stop()
        if p.returncode != 0:
            raise Failed(f"kstreams {cfg['name']} ({tag}) exited with {p.returncode} after "
                         f"{time.monotonic() - t0:.0f} s (log {logf})")
        r = run_e2e.last_json_line(out)
        r.update(broker)
        r["dump"] = dump
        r["config_name"] = cfg["name"]
        r["cpu_seconds_per_million_events"] = round(r["cpu_seconds"] / events * 1e6, 3)
        log(f"peer {cfg['name']} ({tag}): {r['events_per_sec']} events/s, "
            f"{r['cpu_seconds_per_million_events']} CPU s per million")
        return r

    def compare(self, r: dict, answers_path: str) -> tuple[bool, list[str]]:
        with open(answers_path) as f:
            hub = json.load(f)
        ok, lines = compare_weekly.compare(compare_weekly.peer_answers(r["dump"], r), hub)
        for line in lines:
            if "DIFFERENT" in line or "not compared" in line:
                log(f"  {line}")
        log(f"answers of the peer ({r.get('config_name')}) and hubmetricsd: "
            f"{'equal' if ok else 'DIFFERENT'}")
        return ok, [ln for ln in lines if "DIFFERENT" in ln][:10]

    # --- hubmetricsd and the ceiling
    def hub(self, topic: str, events: int, tag: str, flags: list[str] | None = None,
            answers: bool = True) -> dict:
        o = self.opts
        o.topic, o.models_topic, o.events = topic, f"{topic}.models", events
        path = os.path.join(o.workdir, f"hub-{tag}.json") if answers else None
        return run_e2e.catchup(o, self.procs, tag, flags, path)

    def ceiling(self, topic: str, events: int, tag: str) -> dict:
        o = self.opts
        args = [os.path.join(o.bench_bin_dir, "consume_ceiling"), f"--brokers={o.brokers}",
                f"--topic={topic}", f"--events={events}",
                f"--group_id={o.group_id}-ceiling-{tag}"]
        meter = run_e2e.BrokerMeter(o)
        meter.start()
        out = run_e2e.run(args, timeout=max(600, events / 20000), what=f"consume ceiling {tag}")
        r = run_e2e.last_json_line(out)
        r.update(meter.stop())
        r["cpu_seconds_per_million_events"] = round(r["cpu_seconds"] / events * 1e6, 3)
        log(f"consume ceiling ({tag}): {r['events_per_sec']} events/s")
        return r

    def produce(self, topic: str, events: int) -> dict:
        o = self.opts
        saved = (o.topic, o.models_topic, o.events)
        o.topic, o.models_topic, o.events = topic, f"{topic}.models", events
        try:
            return run_e2e.produce(o)
        finally:
            o.topic, o.models_topic, o.events = saved

    # --- steps
    def warmup(self) -> None:
        """Unmeasured: hubmetricsd and the peer once each on a small topic of their own (the
        broker creates its consumer-offsets and transaction-state topics on first use), and the
        main topic's DLQ created, so that no timed run pays for what only a first run does."""
        o = self.opts
        main = (o.topic, o.models_topic, o.events)
        topic = f"{o.topic}.warmup"
        self.produce(topic, WARMUP_EVENTS)
        try:
            self.hub(topic, WARMUP_EVENTS, "warmup", answers=False)
            self.peer(named_config("base"), topic, WARMUP_EVENTS, "warmup", 600)
            o.topic, o.models_topic, o.events = main
            run_e2e.create_topic(o, f"{main[0]}.dlq")
        except Failed as e:
            self.errors.append(f"warm-up: {e}")
        o.topic, o.models_topic, o.events = main

    def sweep(self, topic: str, events: int) -> dict:
        o = self.opts
        hub = self.hub(topic, events, "sweep")
        runs = []

        def one(cfg):
            try:
                r = self.peer(cfg, topic, events, f"sweep-{cfg['name']}", o.kstreams_timeout_s)
                ok, diffs = self.compare(r, hub["answers"])
                entry = {"name": cfg["name"], "changes": cfg["changes"], "flags": cfg["flags"],
                         "jvm_opts": cfg["jvm_opts"], "events_per_sec": r["events_per_sec"],
                         "seconds": r["seconds"],
                         "cpu_seconds_per_million_events": r["cpu_seconds_per_million_events"],
                         "peak_rss_mb": r["peak_rss_mb"], "answers_equal": ok,
                         "broker_cpu_seconds": r.get("broker_cpu_seconds"),
                         "broker_write_bytes": r.get("broker_write_bytes"),
                         "config": r.get("config"), "differences": diffs}
                if not ok:
                    self.errors.append(f"sweep {cfg['name']}: answers differ from hubmetricsd's")
            except Failed as e:
                self.errors.append(f"sweep {cfg['name']}: {e}")
                entry = {"name": cfg["name"], "changes": cfg["changes"], "flags": cfg["flags"],
                         "jvm_opts": cfg["jvm_opts"], "events_per_sec": None,
                         "answers_equal": None, "error": str(e)}
            runs.append(entry)
            return entry

        for name, _group, changes in SWEEP:
            if o.sweep_only and name not in o.sweep_only and name != "base":
                continue
            one(config(name, changes))
        # base again, last of the single knobs: the drift of the machine over the sweep.
        one(config("base_again", {}))
        base_eps = [r["events_per_sec"] for r in runs
                    if r["name"] in ("base", "base_again") and r.get("events_per_sec")]
        base = {"events_per_sec": sum(base_eps) / len(base_eps)} if base_eps else None
        combined_changes: dict = {}
        if base and base.get("events_per_sec"):
            best_of_group: dict = {}
            for name, group, changes in SWEEP:
                r = next((x for x in runs if x["name"] == name), None)
                if not group or not r or not r.get("answers_equal") or not r["events_per_sec"]:
                    continue
                if r["events_per_sec"] > COMBINE_GAIN * base["events_per_sec"] and (
                        group not in best_of_group
                        or r["events_per_sec"] > best_of_group[group][0]):
                    best_of_group[group] = (r["events_per_sec"], changes)
            for _eps, changes in best_of_group.values():
                combined_changes.update(changes)
            if len(best_of_group) > 1:
                one(config("combined", combined_changes))
        ok_runs = [r for r in runs if r.get("answers_equal") and r.get("events_per_sec")]
        best = max(ok_runs, key=lambda r: r["events_per_sec"], default=None)
        return {"topic": topic, "events": events, "hub": hub, "runs": runs,
                "base_events_per_sec": round(base["events_per_sec"]) if base else None,
                "combined_changes": combined_changes,
                "best": best["name"] if best else None,
                "best_config": ({"name": best["name"], "flags": best["flags"],
                                 "jvm_opts": best["jvm_opts"], "changes": best["changes"]}
                                if best else None)}

    def hub_median(self, topic: str, events: int, tag: str) -> dict:
        """--hub_runs catch-ups in a row; the median run by events/s, with every run's events/s
        (`runs_events_per_sec`). Every run's answers must be the same."""
        n = self.opts.hub_runs
        runs = [self.hub(topic, events, tag if n == 1 else f"{tag}{chr(ord('a') + i)}")
                for i in range(n)]
        answers = []
        for r in runs:
            with open(r["answers"]) as f:
                answers.append(json.load(f))
        if any(a != answers[0] for a in answers[1:]):
            self.errors.append(f"hubmetricsd's answers differ between the runs of {tag}")
        ordered = sorted(runs, key=lambda r: r["events_per_sec"])
        out = dict(ordered[(len(ordered) - 1) // 2])
        out["runs_events_per_sec"] = [r["events_per_sec"] for r in runs]
        return out

    def rounds(self, cfg: dict, topic: str, events: int) -> list[dict]:
        out = []
        for rnd in range(1, self.opts.rounds + 1):
            row: dict = {"round": rnd, "load_average_before": load_average()}
            out.append(row)
            try:
                row["hub"] = self.hub_median(topic, events, f"r{rnd}")
                row["ceiling"] = self.ceiling(topic, events, f"r{rnd}")
                row["peer"] = self.peer(cfg, topic, events, f"r{rnd}", self.opts.kstreams_timeout_s)
            except Failed as e:
                row["error"] = str(e)
                if rnd == 1 and "peer" not in row and "ceiling" in row:
                    raise PeerFailed(str(e)) from e
                self.errors.append(f"round {rnd}: {e}")
                continue
            ok, diffs = self.compare(row["peer"], row["hub"]["answers"])
            row["answers_equal"] = ok
            row["differences"] = diffs
            if not ok:
                self.errors.append(f"round {rnd}: the peer's answers differ from hubmetricsd's "
                                   f"({'; '.join(diffs[:3])})")
            row["ratio"] = ratio(row["hub"]["events_per_sec"], row["peer"]["events_per_sec"])
            row["fraction_of_consume_ceiling"] = ratio(row["hub"]["events_per_sec"],
                                                       row["ceiling"]["events_per_sec"])
        # hubmetricsd must give the same answers every round.
        answers = []
        for row in out:
            path = (row.get("hub") or {}).get("answers")
            if path:
                with open(path) as f:
                    answers.append(json.load(f))
        if any(a != answers[0] for a in answers[1:]):
            self.errors.append("hubmetricsd's answers differ between rounds")
        return out


class PeerFailed(Exception):
    """The peer could not finish round 1 on the topic."""


def summarize(rounds: list[dict], events: int) -> dict:
    def col(*path):
        vals = []
        for r in rounds:
            v = r
            for p in path:
                v = (v or {}).get(p) if isinstance(v, dict) else None
            vals.append(v)
        return vals

    def per_million(key_path):
        return [None if v is None else round(v / events * 1e6, 3) for v in col(*key_path)]

    def per_event(key_path):
        return [None if v is None else round(v / events, 2) for v in col(*key_path)]

    def busy(who):
        out = []
        for r in rounds:
            x = r.get(who) or {}
            if x.get("cpu_seconds") is None or x.get("broker_cpu_seconds") is None or \
                    not x.get("seconds"):
                out.append(None)
            else:
                out.append(round((x["cpu_seconds"] + x["broker_cpu_seconds"]) / x["seconds"], 2))
        return out

    return {
        "hub_events_per_sec": spread(col("hub", "events_per_sec")),
        "peer_events_per_sec": spread(col("peer", "events_per_sec")),
        "ratio": spread(col("ratio")),
        "consume_ceiling_events_per_sec": spread(col("ceiling", "events_per_sec")),
        "fraction_of_consume_ceiling": spread(col("fraction_of_consume_ceiling")),
        "hub_cpu_seconds_per_million_events": spread(col("hub", "cpu_seconds_per_million_events")),
        "peer_cpu_seconds_per_million_events":
            spread(col("peer", "cpu_seconds_per_million_events")),
        "ceiling_cpu_seconds_per_million_events":
            spread(col("ceiling", "cpu_seconds_per_million_events")),
        "hub_peak_rss_mb": spread(col("hub", "peak_rss_mb")),
        "peer_peak_rss_mb": spread(col("peer", "peak_rss_mb")),
        "broker_cpu_seconds_per_million_events_hub": spread(per_million(("hub",
                                                                          "broker_cpu_seconds"))),
        "broker_cpu_seconds_per_million_events_peer":
            spread(per_million(("peer", "broker_cpu_seconds"))),
        "broker_cpu_seconds_per_million_events_ceiling":
            spread(per_million(("ceiling", "broker_cpu_seconds"))),
        "broker_write_bytes_per_event_hub": spread(per_event(("hub", "broker_write_bytes"))),
        "broker_write_bytes_per_event_peer": spread(per_event(("peer", "broker_write_bytes"))),
        "cores_busy_hub_and_broker": spread(busy("hub")),
        "cores_busy_peer_and_broker": spread(busy("peer")),
        "cores_busy_ceiling_and_broker": spread(busy("ceiling")),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin_dir", required=True)
    ap.add_argument("--bench_bin_dir", required=True)
    ap.add_argument("--brokers", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--events", type=int, required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--hub_runs", type=int, default=1,
                    help="hubmetricsd catch-ups per round, the median run counts")
    ap.add_argument("--sweep", action="store_true")
    ap.add_argument("--sweep_only", default="",
                    help="comma-separated configurations of the sweep (base always runs)")
    ap.add_argument("--sweep_topic", help="default: --topic, or a topic of its own when "
                                          "--sweep_events differs from --events")
    ap.add_argument("--sweep_events", type=int)
    ap.add_argument("--peer_config", default=DEFAULT_PEER)
    ap.add_argument("--peer_flag", action="append", default=[],
                    help="an extra flag of the peer's app for the rounds (repeatable), after "
                         "its configuration's, e.g. --peer_flag=--cache_mb=128")
    ap.add_argument("--kstreams_timeout_s", type=int, default=1800)
    ap.add_argument("--fallback_events", type=int, default=0)
    ap.add_argument("--rounds_events", type=int,
                    help="run the rounds on this many events of a topic of their own "
                         "(default: --events, on --topic)")
    ap.add_argument("--no_warmup", action="store_true")
    ap.add_argument("--no_sync_commits", action="store_true")
    ap.add_argument("--broker_state_dir")
    ap.add_argument("--seed", type=int, default=1)
    opts = ap.parse_args()
    opts.bin_dir = os.path.abspath(opts.bin_dir)
    opts.bench_bin_dir = os.path.abspath(opts.bench_bin_dir)
    os.makedirs(opts.workdir, exist_ok=True)
    opts.workdir = os.path.abspath(opts.workdir)
    opts.group_id = f"hubmetrics-versus-{time.strftime('%Y%m%d-%H%M%S')}"
    opts.ingest_timeout = max(600, opts.events / 20000)
    opts.produce_timeout = max(600, opts.events / 50000)
    opts.sweep_only = [x for x in opts.sweep_only.split(",") if x]
    opts.models_topic = f"{opts.topic}.models"
    main_topic, main_events = opts.topic, opts.events
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, run_e2e._raise_exit)

    v = Versus(opts)
    result: dict = {"topic": main_topic, "events": main_events, "rounds_wanted": opts.rounds}
    try:
        if not opts.no_warmup:
            v.warmup()
            opts.topic, opts.events = main_topic, main_events
        cfg = named_config(opts.peer_config)
        if opts.sweep:
            s_events = opts.sweep_events or main_events
            s_topic = opts.sweep_topic or (main_topic if s_events == main_events
                                           else f"{main_topic}.sweep{s_events}")
            if s_topic != main_topic and not opts.sweep_topic:
                result["sweep_produce"] = v.produce(s_topic, s_events)
            result["sweep"] = v.sweep(s_topic, s_events)
            if result["sweep"]["best_config"]:
                cfg = result["sweep"]["best_config"]
        if opts.peer_flag:
            cfg = {**cfg, "name": f"{cfg['name']}+flags", "flags": cfg["flags"] + opts.peer_flag}
        result["peer_config"] = cfg
        topic, events = main_topic, main_events
        if opts.rounds_events and opts.rounds_events != main_events:
            topic, events = f"{main_topic}.rounds{opts.rounds_events}", opts.rounds_events
            v.notes.append(f"the rounds ran on {events:,} events of a topic of their own "
                           f"(--rounds_events), not on the {main_events:,} of the e2e run")
            result["rounds_produce"] = v.produce(topic, events)
        try:
            rounds = v.rounds(cfg, topic, events)
        except PeerFailed as e:
            if opts.fallback_events <= 0 or opts.fallback_events >= main_events:
                raise Failed(f"round 1: {e}") from e
            v.notes.append(f"the peer did not finish {main_events:,} events ({e}); every round "
                           f"ran on {opts.fallback_events:,} events of a topic of their own")
            topic, events = f"{main_topic}.fallback{opts.fallback_events}", opts.fallback_events
            result["fallback_produce"] = v.produce(topic, events)
            rounds = v.rounds(cfg, topic, events)
        result.update({"rounds_topic": topic, "rounds_events": events,
                       "same_topic_as_e2e": topic == main_topic, "rounds": rounds,
                       "summary": summarize(rounds, events)})
        if not opts.no_sync_commits:
            try:
                result["sync_commits"] = v.hub(topic, events, "sync", ["--sync_commits"],
                                               answers=False)
            except Failed as e:
                v.errors.append(f"--sync_commits catch-up: {e}")
    except Failed as e:
        v.errors.append(str(e))
    finally:
        v.procs.stop_all()
        ks_dir = os.path.join(opts.workdir, "kstreams")  # its logs stay; failed runs' states go
        for name in os.listdir(ks_dir) if os.path.isdir(ks_dir) else []:
            if name.startswith("state-"):
                shutil.rmtree(os.path.join(ks_dir, name), ignore_errors=True)
    rounds = result.get("rounds") or []
    result["answers_equal"] = bool(rounds) and all(r.get("answers_equal") for r in rounds)
    result["errors"] = v.errors
    result["notes"] = v.notes
    print(json.dumps(result, sort_keys=True), flush=True)
    return 0 if result["answers_equal"] and not v.errors else 1


if __name__ == "__main__":
    sys.exit(main())
