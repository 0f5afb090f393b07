#!/usr/bin/env python3
"""Fault tests of hubmetricsd against real processes, a real RocksDB and a real file system.

Scenarios (one ctest case each):
  disk_full  the state on a small tmpfs: ingest pauses before the disk is full (the
             reserve), the daemon answers queries and reports disk_full meanwhile, stops
             cleanly and restarts while still full, and resumes by itself once the tmpfs
             grows; then the same with no reserve, so that RocksDB's writes really fail with
             ENOSPC: no abort, ever, and every count exact at the end
  key        the user-hash key is bound to the state: a missing, different or
             group/world-readable key on existing state is refused with a clear message,
             never silently replaced; the state directory is 0700 and the key 0600
  wal        a corrupt write-ahead log (bytes flipped in the middle after a SIGKILL at a
             kill point): the state rolls back loudly (an error in the log, state_condition
             wal_corrupted) and the source re-reads from there, exactly

The disk_full scenario mounts tmpfs file systems, which needs root (CAP_SYS_ADMIN); without
it the scenario is skipped (exit code 77), never passed.

  fault_test.py --bin_dir BUILD/services --scenario NAME [--keep]
Prints "N passed, N failed" last; exits non-zero on any failure.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "e2e"))

import e2e_test as e2e  # noqa: E402
import reference as ref  # noqa: E402

SKIP = 77


def log(msg: str) -> None:
    print(f"[fault {time.strftime('%H:%M:%S')}] {msg}", flush=True)


class Scenario:
    def __init__(self, args):
        self.args = args
        self.tmp = tempfile.mkdtemp(prefix=f"hm-fault-{args.scenario}-")
        self.c = e2e.Checker()
        self.daemons: list[e2e.Daemon] = []
        self.mounts: list[str] = []
        self.loadgen = os.path.join(args.bin_dir, "loadgen", "loadgen")

    def generate(self, events: int, seed: int) -> tuple[str, str, ref.Reference]:
        ev = os.path.join(self.tmp, "events.ndjson")
        mo = os.path.join(self.tmp, "models.ndjson")
        g = subprocess.run([self.loadgen, f"--out={ev}", f"--models_out={mo}", f"--events={events}",
                            f"--seed={seed}", "--start=2025-01-06T00:00:00Z", "--days=70",
                            "--models=3000", "--users=60000", "--bad_fraction=0.01"],
                           capture_output=True)
        if g.returncode != 0:
            raise RuntimeError(f"loadgen failed: {g.stderr.decode(errors='replace')[-2000:]}")
        r = ref.Reference.from_files(ev, mo)
        log(f"reference: {r.events_read} events, {r.unique_downloads} unique")
        return ev, mo, r

    def daemon(self, name: str, state: str, events: str, models: str,
               extra: list[str] | None = None) -> e2e.Daemon:
        d = e2e.Daemon(self.args.bin_dir, state, events, models,
                       os.path.join(self.tmp, f"{name}.log"))
        self.daemons.append(d)
        d.start(extra)
        return d

    def wait_for(self, d: e2e.Daemon, what: str, pred, timeout: float = 300) -> dict | None:
        """Stats once pred(stats) holds; None (and a failed check) if the daemon exits first."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if not d.alive():
                self.c.check(False, what, [f"hubmetricsd exited with {d.proc.returncode} "
                                           f"(log {d.log_path})"])
                return None
            s, _ = d.ctl.run("stats", timeout=10)
            if s is not None and pred(s):
                return s
            last = s
            time.sleep(0.1)
        self.c.check(False, what, [f"not within {timeout}s; last stats {str(last)[:400]}"])
        return None

    def log_text(self, d: e2e.Daemon) -> str:
        with open(d.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def mount_tmpfs(self, name: str, size: str) -> str | None:
        path = os.path.join(self.tmp, name)
        os.makedirs(path)
        p = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", path],
                           capture_output=True)
        if p.returncode != 0:
            log(f"cannot mount a tmpfs ({p.stderr.decode(errors='replace').strip()})")
            return None
        self.mounts.append(path)
        return path

    def grow(self, path: str, size: str) -> None:
        subprocess.run(["mount", "-o", f"remount,size={size}", path], check=True)

    def cleanup(self) -> None:
        for d in self.daemons:
            if d.alive():
                d.signal(signal.SIGKILL)
        for m in self.mounts:
            subprocess.run(["umount", m], capture_output=True)
        if self.args.keep or self.c.failed:
            log(f"kept {self.tmp}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    # ------------------------------------------------------------ disk_full

    def disk_full(self) -> int:
        events, models, r = self.generate(200000, seed=21)
        # The disks are sized for batches of e2e.CRASH_BATCH_LINES: some commits fit, then
        # one does not.
        # (a) With a reserve: ingest stops while the disk still has room.
        disk = self.mount_tmpfs("disk-a", "14m")
        if disk is None:
            return SKIP
        state = os.path.join(disk, "state")
        flags = ["--min_free_disk_mb=9"] + e2e.CRASH_FLAGS
        d = self.daemon("reserve", state, events, models, flags)
        self.paused_then_resumed(d, "reserve", r, disk, state, events, models, flags)

        # (b) No reserve: RocksDB's own writes fail with ENOSPC.
        disk = self.mount_tmpfs("disk-b", "5m")
        state = os.path.join(disk, "state")
        flags = ["--min_free_disk_mb=0"] + e2e.CRASH_FLAGS
        d = self.daemon("enospc", state, events, models, flags)
        self.paused_then_resumed(d, "enospc", r, disk, state, events, models, flags)
        return 0

    def paused_then_resumed(self, d, tag, r, disk, state, events, models, flags) -> None:
        full = self.wait_for(d, f"[{tag}] reports disk_full while the disk is short",
                             lambda s: s.get("state_condition") == "disk_full")
        if full is None:
            return
        self.c.check(not full.get("source_exhausted") and e2e.u64(full, "events_read") < r.events_read,
                     f"[{tag}] ingest paused before the end",
                     [f"events_read {e2e.u64(full, 'events_read')} of {r.events_read}"])
        self.c.check("disk" in full.get("state_condition_detail", ""),
                     f"[{tag}] the condition says what to do", [str(full)[:400]])
        q, err = d.ctl.run("concentration", "--level=developer", "--window=all")
        self.c.check(q is not None, f"[{tag}] queries are answered while the disk is full", [err])
        # A clean stop while full, and a restart while still full: no abort, no crash loop.
        code = d.signal(signal.SIGTERM)
        self.c.check(code == 0, f"[{tag}] SIGTERM while full exits cleanly",
                     [f"exit {code} (log {d.log_path})"])
        d = self.daemon(f"{tag}-restart-full", state, events, models, flags)
        again = self.wait_for(d, f"[{tag}] restarted while full: up, reporting disk_full",
                              lambda s: s.get("state_condition") == "disk_full")
        if again is None:
            return
        self.grow(disk, "400m")
        log(f"[{tag}] tmpfs grown to 400m")
        stats = self.wait_for(d, f"[{tag}] resumes by itself once space is back",
                              lambda s: s.get("source_exhausted"))
        if stats is None:
            return
        self.c.check(stats.get("state_condition", "") == "", f"[{tag}] healthy again",
                     [str(stats.get("state_condition_detail"))])
        e2e.compare_all(self.c, r, d, tag, stats)
        aborted = [x.log_path for x in self.daemons if x.proc.returncode == -signal.SIGABRT]
        self.c.check(not aborted, f"[{tag}] no process aborted", aborted)
        d.signal(signal.SIGTERM)

    # ------------------------------------------------------------ key

    def key(self) -> int:
        events, models, r = self.generate(20000, seed=22)
        state = os.path.join(self.tmp, "state")
        key = os.path.join(state, "user_hash.key")
        # The first half of the file, up to a kill point.
        d = self.daemon("first-half", state, events, models,
                        ["--kill_at=commit.after:2"] + e2e.CRASH_FLAGS)
        e2e.check_killed_at(self.c, d, "commit.after", 2)
        self.c.check(stat.S_IMODE(os.stat(state).st_mode) == 0o700, "state directory is 0700",
                     [oct(os.stat(state).st_mode)])
        self.c.check(stat.S_IMODE(os.stat(key).st_mode) == 0o600, "key file is 0600",
                     [oct(os.stat(key).st_mode)])
        saved = os.path.join(self.tmp, "saved.key")
        shutil.copy2(key, saved)

        def refused(name: str, needle: str, extra: list[str] | None = None) -> None:
            d = self.daemon(name, state, events, models, extra)
            try:
                code = d.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                code = None
                d.signal(signal.SIGKILL)
            text = self.log_text(d)
            self.c.check(code not in (None, 0) and needle in text,
                         f"[key] {name}: refused at start, saying '{needle}'",
                         [f"exit {code}; log: {text[-600:]}"])

        os.remove(key)
        refused("missing-key", "is missing")
        self.c.check(not os.path.exists(key), "[key] a missing key is not created afresh on "
                     "existing state")
        other = os.path.join(self.tmp, "other.key")
        with open(other, "w") as f:
            f.write("00112233445566778899aabbccddeeff\n")
        os.chmod(other, 0o600)
        refused("different-key", "not the key this state was built with",
                [f"--user_hash_key_file={other}"])
        shutil.copy2(saved, key)
        os.chmod(key, 0o644)
        refused("readable-key", "chmod 600")
        os.chmod(key, 0o600)
        d = self.daemon("second-half", state, events, models)
        stats, err = d.wait_exhausted()
        if self.c.check(stats is not None, "[key] the original key opens the state", [err]):
            e2e.check_stats(self.c, r, stats, "key")
        d.signal(signal.SIGTERM)
        return 0

    # ------------------------------------------------------------ wal

    def wal(self) -> int:
        events, models, r = self.generate(200000, seed=23)
        state = os.path.join(self.tmp, "state")
        d = self.daemon("killed", state, events, models,
                        ["--kill_at=commit.after:12"] + e2e.CRASH_FLAGS)
        e2e.check_killed_at(self.c, d, "commit.after", 12)
        wal_dir = os.path.join(state, "rocksdb")
        logs = sorted((os.path.getsize(os.path.join(wal_dir, f)), f)
                      for f in os.listdir(wal_dir) if f.endswith(".log"))
        if not self.c.check(bool(logs) and logs[-1][0] > 1 << 20, "a write-ahead log with data",
                            [str(logs)]):
            return 0
        size, name = logs[-1]
        with open(os.path.join(wal_dir, name), "r+b") as f:
            f.seek(size // 3)
            f.write(b"\xde\xad\xbe\xef" * 16)
        log(f"[wal] flipped 64 bytes at {size // 3} of {name} ({size} bytes)")
        d = self.daemon("recovered", state, events, models)
        stats, err = d.wait_exhausted()
        if not self.c.check(stats is not None, "[wal] starts on the damaged state", [err]):
            return 0
        self.c.check(stats.get("state_condition") == "wal_corrupted"
                     and "rolled back" in stats.get("state_condition_detail", ""),
                     "[wal] stats say the state rolled back", [str(stats)[:400]])
        text = self.log_text(d)
        self.c.check(any(l.startswith("E ") and "write-ahead log" in l for l in text.splitlines()),
                     "[wal] an error line in the daemon's log", [text[-800:]])
        e2e.compare_all(self.c, r, d, "wal", stats)
        d.signal(signal.SIGTERM)
        return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--bin_dir", required=True, help="build folder's services/ directory")
    p.add_argument("--scenario", required=True, choices=["disk_full", "key", "wal"])
    p.add_argument("--keep", action="store_true")
    args = p.parse_args()
    s = Scenario(args)
    code = 0
    started = time.monotonic()
    try:
        code = getattr(s, args.scenario)()
    finally:
        s.cleanup()
        log(f"total {time.monotonic() - started:.0f}s")
    if code == SKIP:
        print(f"{args.scenario}: skipped (needs root to mount a tmpfs)", flush=True)
        return SKIP
    print(f"{s.c.passed} passed, {s.c.failed} failed", flush=True)
    return 0 if s.c.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
