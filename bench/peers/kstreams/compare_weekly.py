#!/usr/bin/env python3
"""Compares the Kafka Streams peer's answers with hubmetricsd's: unique downloads, rejects (by
reason) and the weekly per-model unique counts.

The peer writes its weekly counts with `run --dump_weekly=FILE` (JSON lines {"model_id","week",
"count"}) and its totals in its result line (`run`'s last stdout line). hubmetricsd's come over
gRPC through hubctl, either live (--hubctl and --addr, hubmetricsd still serving the same topic)
or from a file saved earlier with hub_answers() (--hub_answers; bench/e2e/run_e2e.py
--mode catchup --hub_answers FILE writes one):
  - `hubctl --json stats`: unique_downloads, rejected and rejected_by_reason;
  - `hubctl --json series --level=model --from --to`: each week's total, model count and HHI;
  - `hubctl --json top --level=model --window=week:W --k=10000`: each model's count.
For every week, the total, the number of models and each model's count must be equal (for a
week with more than 10,000 models, the 10,000 largest, and the HHI, i.e. the sum of the squared
counts, to 1e-9); the weekly totals must add up to the unique downloads on both sides; the
rejects must be equal in total and for every reason.

    compare_weekly.py --dump=weekly.jsonl --hubctl=build/services/hubctl/hubctl \\
        --addr=127.0.0.1:50051 [--peer_result=ks.json] [--weeks=2025-W10,2025-W11]
    compare_weekly.py --dump=weekly.jsonl --peer_result=ks.json --hub_answers=hub.json

Prints one line per week and a verdict; exits 0 when everything matches, 1 otherwise.
"""
from __future__ import annotations

import argparse
import collections
import datetime
import json
import subprocess
import sys

MAX_K = 10000
HHI_RTOL = 1e-9


def hubctl(path: str, addr: str, *command: str) -> dict:
    out = subprocess.run([path, f"--addr={addr}", "--json", "--timeout=60s", *command],
                         check=True, capture_output=True, text=True, timeout=120).stdout
    return json.loads(out)


def iso_week(d: datetime.date) -> str:
    y, w, _ = d.isocalendar()
    return f"{y:04d}-W{w:02d}"


def week_range(first: datetime.date, last: datetime.date) -> list[str]:
    weeks, d = [], first
    while d <= last:
        w = iso_week(d)
        if not weeks or weeks[-1] != w:
            weeks.append(w)
        d += datetime.timedelta(days=1)
    return weeks


def hub_answers(hubctl_path: str, addr: str, first_day: datetime.date,
                last_day: datetime.date) -> dict:
    """hubmetricsd's answers: totals from stats, and for every ISO week from first_day to
    last_day (both widened by two weeks) its total, models, HHI and per-model counts."""
    st = hubctl(hubctl_path, addr, "stats")
    weeks = week_range(first_day - datetime.timedelta(days=14),
                       last_day + datetime.timedelta(days=14))
    series = hubctl(hubctl_path, addr, "series", "--level=model", f"--from={weeks[0]}",
                    f"--to={weeks[-1]}")
    out_weeks = {}
    for p in series.get("points", []):
        total, entities = int(p.get("total_downloads", 0)), int(p.get("entities", 0))
        if total == 0:
            continue
        week = p["first_week"]
        top = hubctl(hubctl_path, addr, "top", "--level=model", f"--window=week:{week}",
                     f"--k={MAX_K}")
        out_weeks[week] = {"total": total, "entities": entities, "hhi": p.get("hhi"),
                           "complete": entities <= MAX_K,
                           "models": {t["entity"]: int(t["downloads"])
                                      for t in top.get("top", [])}}
    return {
        "unique_downloads": int(st.get("unique_downloads", 0)),
        "rejected": int(st.get("rejected", 0)),
        "rejected_by_reason": {r["reason"]: int(r["count"])
                               for r in st.get("rejected_by_reason", []) if int(r["count"])},
        "weeks_queried": [weeks[0], weeks[-1]],
        "weeks": out_weeks,
    }


def peer_answers(dump_path: str, result: dict | None) -> dict:
    """The peer's answers in hub_answers()'s shape, from its dump and its result line."""
    weeks: dict[str, dict[str, int]] = collections.defaultdict(dict)
    with open(dump_path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                r = json.loads(line)
                weeks[r["week"]][r["model_id"]] = int(r["count"])
    out = {"weeks": {}}
    for week, models in weeks.items():
        total = sum(models.values())
        out["weeks"][week] = {"total": total, "entities": len(models),
                              "hhi": sum(c * c for c in models.values()) / total / total
                              if total else 0.0,
                              "complete": True, "models": models}
    if result is not None:
        out["unique_downloads"] = result.get("unique_downloads")
        out["rejected"] = result.get("rejected")
        out["rejected_by_reason"] = {k: v for k, v in
                                     (result.get("rejected_by_reason") or {}).items() if v}
    return out


def compare(peer: dict, hub: dict) -> tuple[bool, list[str]]:
    """(equal, one line per check)."""
    lines, ok = [], True
    for week in sorted(set(peer["weeks"]) | set(hub["weeks"])):
        p = peer["weeks"].get(week, {"total": 0, "entities": 0, "hhi": 0.0, "models": {}})
        h = hub["weeks"].get(week, {"total": 0, "entities": 0, "hhi": 0.0, "models": {},
                                    "complete": True})
        mine, theirs = p["models"], h["models"]
        diffs = [m for m in theirs if mine.get(m) != theirs[m]]
        if h.get("complete", True):
            diffs += [m for m in mine if m not in theirs]
        hhi_ok = True
        if not h.get("complete", True):
            a, b = p.get("hhi") or 0.0, h.get("hhi") or 0.0
            hhi_ok = abs(a - b) <= HHI_RTOL * max(abs(a), abs(b), 1e-300)
        week_ok = (not diffs and p["total"] == h["total"] and p["entities"] == h["entities"]
                   and hhi_ok)
        ok &= week_ok
        lines.append(
            f"{week}: peer {p['total']} unique in {p['entities']} models, hubmetricsd "
            f"{h['total']} in {h['entities']}"
            + ("" if h.get("complete", True) else f" (top {MAX_K} compared, and the HHI)")
            + f": {'same' if week_ok else 'DIFFERENT'}"
            + (f" ({len(diffs)} models differ, e.g. {sorted(diffs)[:3]})" if diffs else ""))
    for side, a in (("peer", peer), ("hubmetricsd", hub)):
        s = sum(w["total"] for w in a["weeks"].values())
        if a.get("unique_downloads") is not None and s != a["unique_downloads"]:
            ok = False
            lines.append(f"{side}: weekly totals add up to {s}, not its unique downloads "
                         f"{a['unique_downloads']} (weeks outside "
                         f"{hub.get('weeks_queried')} or a missing dump)")
    for key in ("unique_downloads", "rejected", "rejected_by_reason"):
        if peer.get(key) is None:
            lines.append(f"{key.replace('_', ' ')}: not compared (no peer result line)")
            continue
        same = peer[key] == hub.get(key)
        ok &= same
        lines.append(f"{key.replace('_', ' ')}: peer {peer[key]}, hubmetricsd {hub.get(key)}: "
                     f"{'same' if same else 'DIFFERENT'}")
    return ok, lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dump", required=True, help="the peer's --dump_weekly file")
    parser.add_argument("--peer_result", help="the peer's result line (run's last stdout line)")
    parser.add_argument("--hub_answers", help="hubmetricsd's answers saved by hub_answers()")
    parser.add_argument("--hubctl", help="path of the hubctl binary (live comparison)")
    parser.add_argument("--addr", default="127.0.0.1:50051", help="hubmetricsd's gRPC address")
    parser.add_argument("--weeks", default="",
                        help="live: comma-separated weeks; default: those of the dump")
    args = parser.parse_args()

    result = None
    if args.peer_result:
        with open(args.peer_result, encoding="utf-8") as f:
            result = json.loads([ln for ln in f if ln.strip().startswith("{")][-1])
    peer = peer_answers(args.dump, result)
    if args.hub_answers:
        with open(args.hub_answers, encoding="utf-8") as f:
            hub = json.load(f)
    elif args.hubctl:
        weeks = [w for w in args.weeks.split(",") if w] or sorted(peer["weeks"])
        days = [datetime.date.fromisocalendar(int(w[:4]), int(w[6:]), 1) for w in weeks]
        hub = hub_answers(args.hubctl, args.addr, min(days), max(days) + datetime.timedelta(6))
        if args.weeks:
            hub["weeks"] = {w: v for w, v in hub["weeks"].items() if w in weeks}
            peer["weeks"] = {w: v for w, v in peer["weeks"].items() if w in weeks}
            hub.pop("unique_downloads", None)
            peer.pop("unique_downloads", None)
    else:
        parser.error("give --hub_answers or --hubctl")
    ok, lines = compare(peer, hub)
    for line in lines:
        print(line)
    print(f"answers: {'equal' if ok else 'DIFFERENT'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
