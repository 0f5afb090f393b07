#!/usr/bin/env python3
"""Compares the Kafka Streams peer's weekly per-model unique counts with hubmetricsd's.

The peer writes them with `run --dump_weekly=FILE` (JSON lines {"model_id","week","count"});
hubmetricsd serves them over gRPC, read here with `hubctl --json top --level=model
--window=week:W --k=10000`. For every week in the dump (or --weeks), the week's total, its
number of models and each model's count must be equal (for weeks with more than 10,000 models,
the 10,000 largest). The total unique downloads (`hubctl stats`) must equal the dump's sum.

    compare_weekly.py --dump=weekly.jsonl --hubctl=build/services/hubctl/hubctl \
        --addr=127.0.0.1:50051 [--weeks=2025-W10,2025-W11]

Prints one line per week and exits 0 when everything matches, 1 otherwise.
"""
import argparse
import collections
import json
import subprocess
import sys

MAX_K = 10000


def hubctl(args, *command):
    out = subprocess.run([args.hubctl, f"--addr={args.addr}", "--json", *command],
                         check=True, capture_output=True, text=True, timeout=120).stdout
    return json.loads(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dump", required=True, help="the peer's --dump_weekly file")
    parser.add_argument("--hubctl", required=True, help="path of the hubctl binary")
    parser.add_argument("--addr", default="127.0.0.1:50051", help="hubmetricsd's gRPC address")
    parser.add_argument("--weeks", default="", help="comma-separated weeks; default: all in the dump")
    args = parser.parse_args()

    peer = collections.defaultdict(dict)
    with open(args.dump, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                r = json.loads(line)
                peer[r["week"]][r["model_id"]] = int(r["count"])
    weeks = [w for w in args.weeks.split(",") if w] or sorted(peer)
    ok = True
    for week in weeks:
        mine = peer.get(week, {})
        theirs = hubctl(args, "top", "--level=model", f"--window=week:{week}", f"--k={MAX_K}")
        top = {t["entity"]: int(t["downloads"]) for t in theirs.get("top", [])}
        total, entities = int(theirs.get("total_downloads", 0)), int(theirs.get("entities", 0))
        diffs = [m for m in top if mine.get(m) != top[m]]
        if entities <= MAX_K:
            diffs += [m for m in mine if m not in top]
        week_ok = not diffs and total == sum(mine.values()) and entities == len(mine)
        ok &= week_ok
        print(f"{week}: peer {sum(mine.values())} unique in {len(mine)} models, hubmetricsd "
              f"{total} in {entities}: {'same' if week_ok else 'DIFFERENT'}"
              + (f" ({len(diffs)} models differ, e.g. {sorted(diffs)[:3]})" if diffs else ""))
    stats = hubctl(args, "stats")
    peer_total = sum(sum(w.values()) for w in peer.values())
    hub_total = int(stats.get("unique_downloads", 0))
    ok &= peer_total == hub_total
    print(f"total unique downloads: peer {peer_total}, hubmetricsd {hub_total}: "
          f"{'same' if peer_total == hub_total else 'DIFFERENT'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
