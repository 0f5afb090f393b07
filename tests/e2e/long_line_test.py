#!/usr/bin/env python3
"""A 1 GB line in the events file: rejected too_large once, memory stays flat.

loadgen writes realistic traffic (its own too_large records included); the test
writes it to an events file with one line of 1 GiB (a JSON event padded with an
unknown field) between the first and second half, streamed to disk in 1 MiB
pieces, never held in this process. hubmetricsd ingests the file to its end;
then its peak RSS (VmHWM of /proc/PID/status) must stay far below the line
(under --max_rss_mb, 400 MB by default), the ingest counts (too_large included,
the long line counted once) and every query answer must equal the reference's
(reference.py, which streams the file the same way and applies the byte limit
itself), the log must not hold the line's user id, and a restart must resume
after the line (nothing read again). The temporary directory is deleted at the
end, whatever the outcome (it holds 1 GB); --keep keeps it.

  long_line_test.py --bin_dir BUILD/services [--line_mb 1024] [--keep]

Prints "N passed, N failed" last; exits non-zero on any failure.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import e2e_test as e2e  # noqa: E402
import reference as ref  # noqa: E402

SECRET_USER = "long-line-user-7f3a9c"


def log(msg: str) -> None:
    print(f"[long-line {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def write_long_line(f, size: int) -> None:
    """One line of exactly `size` bytes (and its newline): a valid event padded
    with an unknown field, so only its length makes it bad."""
    head = ('{"model_id":"google-bert/bert-base-uncased","user_id":"%s",'
            '"time":"2025-02-01T12:00:00Z","padding":"' % SECRET_USER).encode()
    tail = b'"}\n'
    pad = size - len(head) - (len(tail) - 1)
    f.write(head)
    piece = b"p" * (1 << 20)
    while pad > 0:
        n = min(pad, len(piece))
        f.write(piece[:n])
        pad -= n
    f.write(tail)


def vm_hwm_kb(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--bin_dir", required=True, help="build folder's services/ directory")
    p.add_argument("--line_mb", type=int, default=1024, help="length of the long line in MiB")
    p.add_argument("--events", type=int, default=30000)
    p.add_argument("--max_rss_mb", type=int, default=400,
                   help="the daemon's peak RSS must stay below this")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = p.parse_args()

    loadgen = os.path.join(args.bin_dir, "loadgen", "loadgen")
    c = e2e.Checker()
    tmp = tempfile.mkdtemp(prefix="hm-long-line-")
    log(f"working in {tmp}")
    daemons: list[e2e.Daemon] = []
    started = time.monotonic()
    try:
        part = os.path.join(tmp, "part.ndjson")
        models = os.path.join(tmp, "models.ndjson")
        g = subprocess.run([loadgen, f"--out={part}", f"--models_out={models}",
                            f"--events={args.events}", "--seed=5", "--start=2025-01-06T00:00:00Z",
                            "--days=56", "--models=1000", "--users=20000", "--bad_fraction=0.02"],
                           capture_output=True)
        if not c.check(g.returncode == 0, "loadgen runs", [g.stderr.decode(errors="replace")]):
            return 1
        with open(part, "rb") as f:
            lines = f.read().split(b"\n")
        if lines and lines[-1] == b"":
            lines.pop()
        os.remove(part)
        half = len(lines) // 2
        line_bytes = args.line_mb << 20
        events = os.path.join(tmp, "events.ndjson")
        t0 = time.monotonic()
        with open(events, "wb") as f:
            f.write(b"".join(l + b"\n" for l in lines[:half]))
            write_long_line(f, line_bytes)
            f.write(b"".join(l + b"\n" for l in lines[half:]))
        del lines
        log(f"wrote {os.path.getsize(events) >> 20} MiB ({time.monotonic() - t0:.1f}s)")

        r = ref.Reference()
        with open(models, "rb") as f:
            r.set_catalog(ref.load_catalog(f.read().split(b"\n")))
        long_lines = 0
        for line in ref.stream_lines(events):
            if isinstance(line, ref.Oversized):
                long_lines += 1
                c.check(line.size == line_bytes, "reference: the long line's length",
                        [f"{line.size} != {line_bytes}"])
            r.ingest_event(line)
        c.check(long_lines == 1, "reference: one line held back as oversized", [str(long_lines)])
        log(f"reference: {r.events_read} events, {r.unique_downloads} unique, "
            f"rejected {r.rejected_by_reason}")
        c.check(r.rejected_by_reason["too_large"] >= 2,
                "the traffic holds loadgen's too_large records besides the long line",
                [str(r.rejected_by_reason)])

        state = os.path.join(tmp, "state")
        d = e2e.Daemon(args.bin_dir, state, events, models, os.path.join(tmp, "daemon.log"))
        daemons.append(d)
        d.start()
        t0 = time.monotonic()
        stats, err = d.wait_exhausted(timeout=900)
        if not c.check(stats is not None, "ingest completes", [err]):
            return 1
        hwm = vm_hwm_kb(d.proc.pid)
        log(f"ingested in {time.monotonic() - t0:.1f}s; peak RSS (VmHWM) "
            f"{(hwm or 0) / 1024:.1f} MiB for a {args.line_mb} MiB line")
        c.check(hwm is not None and hwm < args.max_rss_mb * 1024,
                f"peak RSS below {args.max_rss_mb} MiB", [f"VmHWM {hwm} kB"])
        e2e.check_stats(c, r, stats, "long-line")
        answers = e2e.Comparison(r, d.ctl, c, "long-line").run()
        log(f"{len(answers)} queries compared ({c.passed} passed, {c.failed} failed so far)")

        code = d.signal(signal.SIGTERM)
        c.check(code == 0, "SIGTERM exits cleanly", [f"exit code {code}"])
        with open(d.log_path, "rb") as f:
            text = f.read()
        c.check(SECRET_USER.encode() not in text, "privacy: the long line's content is not logged")
        c.check(b"too_large" in text, "the long line's rejection is logged (reason only)")

        # A restart resumes after the line: nothing is read again.
        d = e2e.Daemon(args.bin_dir, state, events, models, os.path.join(tmp, "restart.log"))
        daemons.append(d)
        d.start()
        stats, err = d.wait_exhausted(timeout=300)
        if c.check(stats is not None, "[restart] comes back", [err]):
            e2e.check_stats(c, r, stats, "long-line restart")
        d.signal(signal.SIGTERM)
    finally:
        for d in daemons:
            if d.alive():
                d.signal(signal.SIGKILL)
        if args.keep:
            log(f"kept {tmp}")
        else:
            if c.failed:
                # Logs are small; the events file is not.
                keep = tempfile.mkdtemp(prefix="hm-long-line-logs-")
                for name in os.listdir(tmp):
                    if name.endswith(".log"):
                        shutil.copy(os.path.join(tmp, name), keep)
                log(f"logs kept in {keep}")
            shutil.rmtree(tmp, ignore_errors=True)
        log(f"total {time.monotonic() - started:.0f}s")
        print(f"{c.passed} passed, {c.failed} failed", flush=True)
    return 0 if c.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
