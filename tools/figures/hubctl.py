"""Runs hubctl --json and returns its answer as a dict; a failure raises HubctlError with hubctl's
own words (its stderr: "hubctl: cannot reach hubmetricsd at ...", "hubctl: INVALID_ARGUMENT: ...")."""

from __future__ import annotations

import dataclasses
import json
import shlex
import subprocess
from typing import Optional, Sequence


class HubctlError(Exception):
    def __init__(self, argv: Sequence[str], what: str, stderr: str = "", returncode: Optional[int] = None):
        self.argv = list(argv)
        self.what = what
        self.stderr = stderr.strip()
        self.returncode = returncode
        super().__init__(self.describe())

    def describe(self) -> str:
        lines = [f"{self.what}: {shlex.join(self.argv)}"]
        if self.stderr:
            lines += ["  " + line for line in self.stderr.splitlines()]
        return "\n".join(lines)


@dataclasses.dataclass(frozen=True)
class View:
    level: str
    filter: str = "all"
    attribution: str = "direct"
    sample: str = "all"

    def flags(self) -> list:
        out = [f"--level={self.level}", f"--filter={self.filter}", f"--attribution={self.attribution}"]
        # The server's default; left out so that a hubctl without --sample answers too.
        if self.sample and self.sample != "all":
            out.append(f"--sample={self.sample}")
        return out

    def describe(self, with_level: bool = True) -> str:
        """"developer / rolling_1y / recursive [/ sample head]", the level left out on request."""
        words = ([self.level] if with_level else []) + [self.filter, self.attribution]
        if self.sample and self.sample != "all":
            words.append(f"sample {self.sample}")
        return " / ".join(words)


class Hubctl:
    """One hubctl binary and the flags every call gets. Answers are kept, so that figures sharing a
    call (Table 1 and Figures 5-9) ask the daemon once."""

    def __init__(self, path: str, addr: str, timeout_s: float = 60.0, extra_flags: Sequence[str] = ()):
        self.path = path
        self.addr = addr
        self.timeout_s = timeout_s
        self.extra_flags = list(extra_flags)
        self.calls = 0
        self._memo: dict = {}

    def argv(self, command: str, flags: Sequence[str]) -> list:
        return [
            self.path,
            f"--addr={self.addr}",
            "--json",
            f"--timeout={self.timeout_s:g}s",
            *self.extra_flags,
            command,
            *flags,
        ]

    def call(self, command: str, flags: Sequence[str] = ()) -> dict:
        argv = self.argv(command, flags)
        key = tuple(argv)
        if key in self._memo:
            return self._memo[key]
        self.calls += 1
        try:
            proc = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=self.timeout_s + 30,
            )
        except FileNotFoundError:
            raise HubctlError(argv, "hubctl not found (build it: cmake --build build --target hubctl, or give --hubctl)") from None
        except PermissionError:
            raise HubctlError(argv, "hubctl is not executable") from None
        except subprocess.TimeoutExpired as e:
            raise HubctlError(argv, f"hubctl did not finish within {self.timeout_s + 30:g} s", str(e.stderr or "")) from None
        if proc.returncode != 0:
            raise HubctlError(argv, f"hubctl failed (exit status {proc.returncode})", proc.stderr, proc.returncode)
        line = next((ln for ln in proc.stdout.splitlines() if ln.strip()), "")
        try:
            answer = json.loads(line)
        except json.JSONDecodeError as e:
            raise HubctlError(argv, f"hubctl's answer is not JSON ({e}): {line[:200]!r}", proc.stderr) from None
        if not isinstance(answer, dict):
            raise HubctlError(argv, f"hubctl's answer is not a JSON object: {line[:200]!r}", proc.stderr)
        self._memo[key] = answer
        return answer

    # The commands the figures use.

    def stats(self) -> dict:
        return self.call("stats")

    def top(self, view: View, window: str, k: int) -> dict:
        return self.call("top", view.flags() + [f"--window={window}", f"--k={k}"])

    def series(self, view: View, from_week: str, to_week: str, top_k: Sequence[int] = (1, 10, 100)) -> dict:
        return self.call(
            "series",
            view.flags() + [f"--from={from_week}", f"--to={to_week}", "--top_k=" + ",".join(str(k) for k in top_k)],
        )

    def shares(self, view: View, from_week: str, to_week: str, k: int) -> dict:
        return self.call("shares", view.flags() + [f"--from={from_week}", f"--to={to_week}", f"--k={k}"])

    def change(self, view: View, from_window: str, to_window: str, k: int) -> dict:
        """ExplainChange: why HHI moved from one window to the other."""
        return self.call("change", view.flags() + [f"--from={from_window}", f"--to={to_window}", f"--k={k}"])
