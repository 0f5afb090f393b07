#!/usr/bin/env python3
"""The batch peer of hubmetrics: weekly per-model unique downloads and their concentration, with DuckDB.

This is how the paper computed its measures: a batch job over the raw events. It reads the NDJSON
events file that loadgen writes (DownloadEvent: model_id, user_id, time; other fields ignored),
(or a Parquet file of the same three columns, --parquet) counts unique downloads (the first event per (model_id, user_id, UTC day); docs/DEFINITIONS.md),
sums them per model and ISO week, and computes for every ISO week and for all time, over the models
with downloads: total, entities, HHI, Gini and the top-1/10/100 shares. All of it is one SQL
statement run by DuckDB on all cores (its default thread count); Python only formats the answer.

  duckdb_peer.py --events FILE.ndjson [--out ANSWER.json] [--threads N]
  duckdb_peer.py --parquet FILE.parquet [--out ANSWER.json] [--threads N]
  duckdb_peer.py --events FILE.ndjson --to_parquet FILE.parquet   (writes the three columns; no answer)

Needs the duckdb package (bench/peers/duckdb/requirements.txt; scripts/bootstrap installs it into
${HUBMETRICS_VENV:-~/.cache/hubmetrics/venv}), so run it with that venv's python. Prints (or writes
to --out) one JSON object: {"events": rows read, "unique_downloads": ..., "seconds": connect to answer,
"all": {...}, "weeks": {"2025-W02": {...}, ...}} where each measure object is {"total", "entities",
"hhi", "gini", "top_shares": {"1": s, "10": s, "100": s}} plus the exact integers behind them
("sum_squares", "gini_numerator", "top_sums"); and "cpu_seconds", "peak_rss_mb" of the process.
"""

from __future__ import annotations

import argparse
import datetime
import json
import resource
import sys
import time

TOP_K = (1, 10, 100)
US_PER_DAY = 86_400_000_000
EPOCH = datetime.date(1970, 1, 1)

# Days are integers (days since 1970-01-01, UTC), so nothing depends on the session's TimeZone:
# the time string is parsed as TIMESTAMPTZ (Z, fractions and +hh:mm offsets all become UTC
# instants; fractions below a microsecond are truncated, which never changes the day). ISO weeks
# start on Monday; day 0 was a Thursday, so the Monday of day d is d - (d + 3) % 7.
#
# Gini uses the sorted form: with x ascending and i = 1..n,
#   sum_i sum_j |x_i - x_j| / (2 n X) = sum_i (2 i - n - 1) x_(i) / (n X),
# and the top-k sum is the sum over i > n - k. The numerators are exact integers (HUGEINT);
# only the final divisions are floating point.
QUERY = """
WITH events AS (
  SELECT model_id, user_id, epoch_us("time") // {us_per_day} AS day
  FROM {source}
),
daily AS (  -- unique downloads per model and UTC day
  SELECT model_id, day, count(DISTINCT user_id) AS uniques, count(*) AS events
  FROM events
  GROUP BY model_id, day
),
weekly AS (  -- per model and ISO week (its Monday)
  SELECT model_id, day - (day + 3) % 7 AS monday, sum(uniques)::BIGINT AS x,
         sum(events)::BIGINT AS events
  FROM daily
  GROUP BY ALL
),
counts AS (  -- window -1 is all time
  SELECT monday AS win, model_id, x, events FROM weekly
  UNION ALL
  SELECT -1 AS win, model_id, sum(x)::BIGINT AS x, sum(events)::BIGINT AS events
  FROM weekly GROUP BY model_id
),
ranked AS (
  SELECT win, x::HUGEINT AS x, events,
         row_number() OVER (PARTITION BY win ORDER BY x) AS i,
         count(*) OVER (PARTITION BY win) AS n
  FROM counts
  WHERE x > 0
)
SELECT win,
       sum(events)::BIGINT AS events,
       count(*) AS entities,
       sum(x) AS total,
       sum(x * x) AS sum_squares,
       sum((2 * i - n - 1) * x) AS gini_numerator,
       {top_sums}
FROM ranked
GROUP BY win
ORDER BY win
"""


# The NDJSON events with the columns the answer needs (the rest of each object is skipped).
NDJSON_SOURCE = """read_ndjson(?, columns = {model_id: 'VARCHAR', user_id: 'VARCHAR', "time": 'TIMESTAMPTZ'})"""
# The same columns from a Parquet file that --to_parquet wrote (time stored as TIMESTAMPTZ).
PARQUET_SOURCE = "read_parquet(?)"


def build_query(source: str = NDJSON_SOURCE) -> str:
    top_sums = ",\n       ".join(
        f"coalesce(sum(x) FILTER (WHERE i > n - {k}), 0) AS top_{k}" for k in TOP_K)
    return QUERY.format(us_per_day=US_PER_DAY, top_sums=top_sums, source=source)


def to_parquet(events_path: str, parquet_path: str) -> dict:
    """Writes model_id, user_id and time of every event to parquet_path (zstd); not timed as part
    of an answer: it is the shape a batch user would keep the history in."""
    import duckdb

    t0 = time.monotonic()
    con = duckdb.connect(":memory:")
    con.execute("SET preserve_insertion_order = false")
    con.execute(f"COPY (SELECT * FROM {NDJSON_SOURCE}) TO '{parquet_path}' "
                "(FORMAT parquet, COMPRESSION zstd)", [events_path])
    rows = con.execute("SELECT count(*) FROM read_parquet(?)", [parquet_path]).fetchone()[0]
    con.close()
    return {"rows": int(rows), "seconds": time.monotonic() - t0}


def week_label(monday_day: int) -> str:
    year, week, _ = (EPOCH + datetime.timedelta(days=monday_day)).isocalendar()
    return f"{year}-W{week:02d}"


def measures(entities: int, total: int, sum_squares: int, gini_numerator: int,
             top_sums: dict[int, int]) -> dict:
    """The answer for one window from the exact integers DuckDB computed."""
    n, x_total = int(entities), int(total)
    return {
        "total": x_total,
        "entities": n,
        "hhi": float(sum_squares) / (float(x_total) * float(x_total)) if x_total else 0.0,
        "gini": float(gini_numerator) / (float(n) * float(x_total)) if n > 1 else 0.0,
        "top_shares": {str(k): (float(v) / float(x_total) if x_total else 0.0)
                       for k, v in top_sums.items()},
        "sum_squares": int(sum_squares),
        "gini_numerator": int(gini_numerator),
        "top_sums": {str(k): int(v) for k, v in top_sums.items()},
    }


def run(events_path: str, threads: int | None, source: str = NDJSON_SOURCE) -> dict:
    import duckdb  # imported here so that --help works without the venv

    t0 = time.monotonic()
    con = duckdb.connect(":memory:")
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    con.execute("SET preserve_insertion_order = false")
    query = build_query(source)
    rows = con.execute(query, [events_path]).fetchall()
    seconds = time.monotonic() - t0
    answer: dict = {"seconds": seconds, "duckdb_version": duckdb.__version__,
                    "threads": int(con.execute("SELECT current_setting('threads')").fetchone()[0]),
                    "weeks": {}}
    for row in rows:
        win, events, entities, total, sum_squares, gini_numerator, *tops = row
        m = measures(entities, total, sum_squares, gini_numerator, dict(zip(TOP_K, tops)))
        if win == -1:
            answer["all"] = m
            answer["events"] = int(events)  # rows read (every one is a valid event)
        else:
            answer["weeks"][week_label(int(win))] = m
    answer.setdefault("all", measures(0, 0, 0, 0, {k: 0 for k in TOP_K}))
    answer["unique_downloads"] = answer["all"]["total"]
    answer.setdefault("events", 0)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    answer["cpu_seconds"] = usage.ru_utime + usage.ru_stime  # the whole process, import included
    answer["peak_rss_mb"] = usage.ru_maxrss / 1024
    con.close()
    return answer


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--events", help="NDJSON DownloadEvent file (loadgen --out)")
    src.add_argument("--parquet", help="Parquet file of model_id, user_id, time (--to_parquet)")
    p.add_argument("--to_parquet", help="with --events: write them to this Parquet file and exit")
    p.add_argument("--out", help="write the answer JSON here instead of stdout")
    p.add_argument("--threads", type=int, default=0,
                   help="DuckDB threads (default: DuckDB's default, all cores)")
    args = p.parse_args()
    if args.to_parquet:
        if not args.events:
            p.error("--to_parquet needs --events")
        print(json.dumps(to_parquet(args.events, args.to_parquet)))
        return 0
    if args.parquet:
        answer = run(args.parquet, args.threads or None, PARQUET_SOURCE)
    else:
        answer = run(args.events, args.threads or None)
    text = json.dumps(answer, sort_keys=True)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text + "\n")
        print(f"duckdb peer: {answer['events']} events, {answer['unique_downloads']} unique "
              f"downloads, {len(answer['weeks'])} weeks in {answer['seconds']:.3f}s "
              f"(duckdb {answer['duckdb_version']}, {answer['threads']} threads, "
              f"{answer['cpu_seconds']:.2f} CPU s, peak RSS {answer['peak_rss_mb']:.0f} MB)",
              file=sys.stderr)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
