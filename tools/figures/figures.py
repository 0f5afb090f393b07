#!/usr/bin/env python3
"""The figures and Table 1 of "Economies of Open Intelligence", drawn live from a running hubmetricsd.

Every number comes from the daemon's API through `hubctl --json` (one hubctl process per call; give
TLS flags with --hubctl_flag). Run it as scripts/figures, which brings the pinned matplotlib venv.

Files written into --out (PNG and SVG of each; names do not depend on the data):
  figure1_leaderboards            top --top entities by share, levels model, developer, country, for
                                  each --window (default: all and trailing:52)
  figure2_shares_LEVEL            shares over time (GetShareSeries): the --shares_k largest over the
                                  range and the rest, stacked per week, for each --level
  figure3_concentration           per week: top-1 / 2-10 / 11-100 / rest segments, HHI and Gini, for
                                  model, developer, country
  table1_attributes (.md too)     share of each value of org_type, size, modality, license,
                                  derivation, country in each era (--eras), and the last era's
                                  multiplier over the earlier ones
  figure4_country-org_type        org types within each country (--pair_level, --pair_window)
  figure5_size, figure6_modality_task, figure8_license, figure9_derivation
                                  100% bars of those levels' values: window all, then each era
  waterfall                       why HHI moved (ExplainChange, hubctl change) at --change_level from
                                  --change_from to --change_to (default: the week before the
                                  watermark's, and the watermark's): HHI before, each of the
                                  --change_k top movers' contributions, other entrants, other exits
                                  and the rest, HHI after

Figures 1-3 and the waterfall use the view of --filter/--attribution/--sample (default rolling_1y /
recursive / all, the paper's Rolling Window Filter and Recursive Model Attribution); Table 1 and
Figures 4-9 that of --attr_filter/--attr_attribution/--attr_sample (default all / direct / head:
attributes of the model downloaded, the paper's Head Sample).

The weeks of Figures 2 and 3 are --from..--to; by default from the first week with downloads to the
watermark's week. The first week is found with one `hubctl series` over the 1040 weeks (the most one
call may cover) ending with the watermark's week, at level country, filter all, direct, sample all.

Exit status: 0 every file written; 1 hubmetricsd unreachable, or a call failed (hubctl's error is
printed; the figures that did not need that call are still written); 2 usage error.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import traceback
from typing import Callable, Optional

import shaping
from hubctl import Hubctl, HubctlError, View

FIGURES = ("fig1", "fig2", "fig3", "table1", "fig4", "fig5", "fig6", "fig8", "fig9", "waterfall")
CONCENTRATION_LEVELS = ("model", "developer", "country")
TOP_K_SEGMENTS = (1, 10, 100)
ALL_ENTITIES = 10000  # the most `hubctl top` lists: every value of an attribute level
MAX_MOVERS = 1000  # the most top movers `hubctl change` lists


class UsageError(Exception):
    pass


def safe_name(level: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", level)


def comma_list(s: str) -> list:
    return [p.strip() for p in s.split(",") if p.strip()]


def build_parser(repo_root: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="scripts/figures",
        description=__doc__.split("\n\n", 1)[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--repo_root", default=repo_root, help=argparse.SUPPRESS)
    g = p.add_argument_group("daemon")
    g.add_argument("--addr", default="127.0.0.1:50051", help="hubmetricsd's gRPC address (default %(default)s)")
    g.add_argument("--hubctl", default=None,
                   help="the hubctl binary (default: REPO/build/services/hubctl/hubctl, where the CMake build puts it)")
    g.add_argument("--hubctl_flag", action="append", default=[], metavar="FLAG",
                   help="a flag passed to every hubctl call, e.g. --hubctl_flag=--tls_ca_file=ca.pem (repeatable)")
    g.add_argument("--timeout", type=float, default=60.0, help="seconds hubctl may take per call (default %(default)g)")
    g = p.add_argument_group("output")
    g.add_argument("--out", default="figures", help="directory for the files (default %(default)s/; created)")
    g.add_argument("--only", default=",".join(FIGURES),
                   help="which to draw, comma-separated among " + ",".join(FIGURES) + " (default: all)")
    g = p.add_argument_group("figures 1-3 and the waterfall")
    g.add_argument("--filter", default="rolling_1y", help="view filter (default %(default)s)")
    g.add_argument("--attribution", default="recursive", help="view attribution (default %(default)s)")
    g.add_argument("--sample", default="all", help="view sample: all | population | head (default %(default)s)")
    g.add_argument("--top", type=int, default=10, help="figure 1: entities per leaderboard (default %(default)s)")
    g.add_argument("--window", default="all,trailing:52",
                   help="figure 1: windows, comma-separated (default %(default)s)")
    g.add_argument("--level", default="developer,country",
                   help="figure 2: levels, comma-separated, one file each (default %(default)s)")
    g.add_argument("--shares_k", type=int, default=20, help="figure 2: entities followed (default %(default)s)")
    g.add_argument("--from", dest="from_week", default=None,
                   help="figures 2, 3: first week YYYY-Www (default: the first week with downloads)")
    g.add_argument("--to", dest="to_week", default=None,
                   help="figures 2, 3: last week YYYY-Www (default: the watermark's week)")
    g = p.add_argument_group("the waterfall of a change (hubctl change)")
    g.add_argument("--change_level", default="developer", help="level of the change (default %(default)s)")
    g.add_argument("--change_from", default=None, metavar="WINDOW",
                   help="the earlier window, any window word (default: week:YYYY-Www, the week before the "
                        "watermark's)")
    g.add_argument("--change_to", default=None, metavar="WINDOW",
                   help="the later window (default: week:YYYY-Www, the watermark's week)")
    g.add_argument("--change_k", type=int, default=10,
                   help=f"top movers drawn one by one, 1..{MAX_MOVERS} (default %(default)s)")
    g = p.add_argument_group("table 1 and figures 4-9")
    g.add_argument("--eras", default=shaping.DEFAULT_ERAS,
                   help="NAME=YYYY-Www..YYYY-Www, comma-separated; an empty end is the watermark's week "
                        "(default: the paper's, %(default)s)")
    g.add_argument("--table_levels", default="org_type,size,modality,license,derivation,country",
                   help="table 1's levels (default %(default)s)")
    g.add_argument("--max_values", type=int, default=10,
                   help="values shown per level; the others are '(other)' (default %(default)s)")
    g.add_argument("--attr_filter", default="all", help="view filter (default %(default)s)")
    g.add_argument("--attr_attribution", default="direct", help="view attribution (default %(default)s)")
    g.add_argument("--attr_sample", default="head", help="view sample (default %(default)s)")
    g.add_argument("--pair_level", default="country+org_type", help="figure 4's pair level (default %(default)s)")
    g.add_argument("--pair_window", default="all", help="figure 4's window (default %(default)s)")
    return p


class Run:
    """One run: the hubctl client, the parsed flags, what was written and what failed."""

    def __init__(self, args: argparse.Namespace, client: Hubctl):
        self.args = args
        self.client = client
        self.written: list = []
        self.failed: list = []
        self.view = lambda level: View(level, args.filter, args.attribution, args.sample)
        self.attr_view = lambda level: View(level, args.attr_filter, args.attr_attribution, args.attr_sample)
        self.watermark: Optional[str] = None
        self.watermark_text = ""
        self.week_range: Optional[tuple] = None
        self.range_note = ""
        self.eras = shaping.parse_eras(args.eras)

    def log(self, msg: str) -> None:
        print(f"figures: {msg}", file=sys.stderr, flush=True)

    def step(self, name: str, fn: Callable[[], list]) -> None:
        """Draws one figure; a failed call is reported and the run goes on with the next."""
        try:
            paths = fn()
        except HubctlError as e:
            self.failed.append(name)
            self.log(f"{name}: {e.describe()}")
            return
        except ValueError as e:
            self.failed.append(name)
            self.log(f"{name}: {e}")
            return
        for path in paths:
            print(path, flush=True)
        self.written.extend(paths)

    # ---- the data's weeks ----

    def find_week_range(self) -> None:
        a = self.args
        if a.from_week and a.to_week:
            shaping.check_range(a.from_week, a.to_week)
            self.week_range = (a.from_week, a.to_week)
            return
        if self.watermark is None:
            self.range_note = "no data (no event accepted yet)"
            return
        probe_from, probe_to = shaping.probe_window(self.watermark)
        points = shaping.parse_series(self.client.series(View("country"), probe_from, probe_to, top_k=(1,)))
        found = shaping.data_range(points)
        if found is None:
            self.range_note = f"no data in {probe_from}..{probe_to}"
            return
        first = a.from_week or found[0]
        last = a.to_week or self.watermark
        if found[0] == probe_from and not a.from_week:
            self.log(f"downloads go back at least to {probe_from}, the start of the 1040 weeks one call covers; "
                     f"the figures start there (give --from for another start)")
        shaping.check_range(first, last)
        self.week_range = (first, last)

    # ---- figures ----

    def fig1(self) -> list:
        a = self.args
        windows = comma_list(a.window)
        grid = []
        for level in CONCENTRATION_LEVELS:
            boards = [shaping.leaderboard(shaping.parse_top(self.client.top(self.view(level), w, a.top)), a.top)
                      for w in windows]
            grid.append((level, boards))
        title = f"Figure 1: top {a.top} by share of downloads\n{self.view('').describe(with_level=False)}{self.watermark_text}"
        return render.leaderboards(grid, title, a.out, "figure1_leaderboards")

    def fig2(self) -> list:
        a = self.args
        paths = []
        for level in comma_list(a.level):
            view = self.view(level)
            title = f"Figure 2: {level} share of weekly downloads, top {a.shares_k} and the rest\n{view.describe()}{self.watermark_text}"
            stem = f"figure2_shares_{safe_name(level)}"
            if self.week_range is None:
                paths += render.share_series(level, None, title, a.out, stem, self.range_note or "no data")
                continue
            series = shaping.parse_share_series(self.client.shares(view, *self.week_range, a.shares_k))
            paths += render.share_series(level, shaping.stacked_shares(series), title, a.out, stem)
        return paths

    def fig3(self) -> list:
        a = self.args
        panels = []
        for level in CONCENTRATION_LEVELS:
            if self.week_range is None:
                panels.append((level, None))
                continue
            points = shaping.parse_series(self.client.series(self.view(level), *self.week_range, TOP_K_SEGMENTS))
            panels.append((level, shaping.concentration_bands(points, TOP_K_SEGMENTS)))
        title = (f"Figure 3: concentration over time (ranked segments, Gini, HHI)\n{self.view('').describe(with_level=False)}{self.watermark_text}")
        return render.concentration(panels, title, a.out, "figure3_concentration", self.range_note or "no data")

    def change_windows(self) -> Optional[tuple]:
        """(from, to) of the waterfall: the flags, else the week before the watermark's and the watermark's
        week; None when a default is needed and there is no watermark (no event yet)."""
        a = self.args
        if (a.change_from and a.change_to) or self.watermark is not None:
            return (a.change_from or f"week:{shaping.add_weeks(self.watermark, -1)}",
                    a.change_to or f"week:{self.watermark}")
        return None

    def waterfall(self) -> list:
        a = self.args
        view = self.view(a.change_level)
        windows = self.change_windows()
        change = None
        if windows is not None:
            change = shaping.parse_change(self.client.change(view, *windows, a.change_k))
        if change is not None and change.before.window and change.after.window:
            b, f = change.before, change.after
            span = (f"{shaping.window_label(b.window, b.first_week, b.last_week)} \u2192 "
                    f"{shaping.window_label(f.window, f.first_week, f.last_week)}")
        else:
            span = f"{windows[0]} \u2192 {windows[1]}" if windows else "no windows"
        movers = len(change.top_movers) if change else a.change_k
        title = (f"Why HHI moved: {view.describe()}, {span}\n"
                 f"HHI before, the top {movers} movers' contributions, other entrants, other exits, the "
                 f"rest, HHI after{self.watermark_text}")
        if change is None:
            return render.waterfall(None, title, a.out, "waterfall", "no data (no event accepted yet)")
        return render.waterfall(shaping.waterfall(change), title, a.out, "waterfall")

    def attr_top(self, level: str, window: Optional[str]) -> Optional[shaping.TopEntities]:
        if window is None:
            return None
        return shaping.parse_top(self.client.top(self.attr_view(level), window, ALL_ENTITIES))

    def era_windows(self) -> list:
        """(label, window or None) per era: None when the era cannot hold data."""
        out = []
        for era in self.eras:
            r = shaping.resolve_era(era, self.watermark)
            label = f"{shaping.era_label(era.name)} ({r[0]}..{r[1]})" if r else f"{shaping.era_label(era.name)}"
            out.append((label, f"range:{r[0]}..{r[1]}" if r else None))
        return out

    def level_composition(self, level: str, with_all: bool) -> shaping.Composition:
        columns = [("all", self.attr_top(level, "all"))] if with_all else []
        columns += [(label, self.attr_top(level, w)) for label, w in self.era_windows()]
        order = shaping.SIZE_ORDER if level == "size" else None
        return shaping.composition(columns, self.args.max_values, order)

    def table1(self) -> list:
        a = self.args
        tables = [(level, self.level_composition(level, with_all=False)) for level in comma_list(a.table_levels)]
        eras = self.era_windows()
        header = ["level", "value"] + [label for label, _ in eras]
        header.append(f"\u0394 ({shaping.era_label(self.eras[-1].name)} / earlier)")
        rows = shaping.era_table_rows(tables)
        view = self.attr_view("").describe(with_level=False)
        title = f"Table 1: share of downloads of each value, by era \u2014 {view}{self.watermark_text}"
        caption = (f"{title}. 'no data': the era has no downloads. \u0394: the last era's share over the earlier "
                   f"eras' together (downloads-weighted); 'new': none before.")
        md_path = os.path.join(a.out, "table1_attributes.md")
        with open(md_path, "w", encoding="utf-8") as f:
            f.write(caption + "\n\n" + shaping.markdown_table(header, rows))
        return [md_path] + render.table(header, rows, title, a.out, "table1_attributes")

    def attr_figure(self, number: str, levels: tuple, stem: str) -> list:
        panels = [(level, self.level_composition(level, with_all=True)) for level in levels]
        title = (f"Figure {number}: shares of downloads by {' and '.join(levels)}, all time and by era\n"
                 f"{self.attr_view('').describe(with_level=False)}{self.watermark_text}")
        return render.compositions(panels, title, self.args.out, stem)

    def fig4(self) -> list:
        a = self.args
        top = shaping.parse_top(self.client.top(self.attr_view(a.pair_level), a.pair_window, ALL_ENTITIES))
        first, _, second = a.pair_level.partition("+")
        comp = shaping.pair_composition(top, a.max_values, shaping.SIZE_ORDER if second == "size" else None)
        comp.columns = [f"{c} ({shaping.pct(shaping.ratio(t, top.total_downloads))})"
                        for c, t in zip(comp.columns, comp.totals)]
        title = (f"Figure 4: {second or 'value'} within each {first} ({a.pair_level}, window "
                 f"{shaping.window_label(top.window, top.first_week, top.last_week)}; in brackets: the {first}'s "
                 f"share of all downloads)\n{self.attr_view('').describe(with_level=False)}{self.watermark_text}")
        return render.compositions([(a.pair_level, comp)], title, a.out, "figure4_" + safe_name(a.pair_level))


render = None  # tools/figures/render.py, imported in main() (matplotlib loads in a second or two)


def main(argv: Optional[list] = None, repo_root: Optional[str] = None) -> int:
    global render
    repo_root = repo_root or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    parser = build_parser(repo_root)
    args = parser.parse_args(argv)
    only = comma_list(args.only)
    unknown = [f for f in only if f not in FIGURES]
    if unknown:
        parser.error(f"--only: unknown {', '.join(unknown)}; choose among {', '.join(FIGURES)}")
    for name in ("top", "shares_k", "max_values"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if not 1 <= args.change_k <= MAX_MOVERS:
        parser.error(f"--change_k must be 1..{MAX_MOVERS}")
    for name in ("from_week", "to_week"):
        if getattr(args, name):
            try:
                shaping.parse_week(getattr(args, name))
            except ValueError as e:
                parser.error(f"--{name.replace('_week', '')}: {e}")
    if args.from_week and args.to_week:
        try:
            shaping.check_range(args.from_week, args.to_week)
        except ValueError as e:
            parser.error(str(e))
    try:
        shaping.parse_eras(args.eras)
    except ValueError as e:
        parser.error(f"--eras: {e}")
    hubctl_path = args.hubctl or os.path.join(args.repo_root, "build", "services", "hubctl", "hubctl")
    if not (os.path.isfile(hubctl_path) and os.access(hubctl_path, os.X_OK)):
        print(f"figures: no hubctl binary at {hubctl_path}: build it (cmake -S . -B build -G Ninja && "
              f"cmake --build build --target hubctl) or give --hubctl=PATH", file=sys.stderr)
        return 2
    os.makedirs(args.out, exist_ok=True)

    import render as render_module  # noqa: PLC0415

    render = render_module
    client = Hubctl(hubctl_path, args.addr, args.timeout, args.hubctl_flag)
    run = Run(args, client)
    try:
        stats = client.stats()
    except HubctlError as e:
        run.log(f"nothing drawn: the first call, stats, failed (is hubmetricsd running at --addr={args.addr}?)\n"
                f"{e.describe()}")
        return 1
    try:
        run.watermark = shaping.watermark_week(stats)
    except ValueError as e:
        run.log(str(e))
        return 1
    run.watermark_text = f" (watermark {stats['watermark']})" if run.watermark else " (no data yet)"
    if run.watermark is None:
        run.log("the daemon has accepted no event yet: the figures will say 'no data'")

    if "fig2" in only or "fig3" in only:
        try:
            run.find_week_range()
        except HubctlError as e:
            run.log(f"cannot find the weeks with data, so no figure 2 or 3: {e.describe()}")
            run.failed += [f for f in only if f in ("fig2", "fig3")]
            only = [f for f in only if f not in ("fig2", "fig3")]
        except ValueError as e:
            parser.error(str(e))
        if run.week_range:
            run.log(f"figures 2 and 3 cover {run.week_range[0]}..{run.week_range[1]}")

    steps = {
        "fig1": run.fig1,
        "fig2": run.fig2,
        "fig3": run.fig3,
        "table1": run.table1,
        "fig4": run.fig4,
        "fig5": lambda: run.attr_figure("5", ("size",), "figure5_size"),
        "fig6": lambda: run.attr_figure("6", ("modality", "task"), "figure6_modality_task"),
        "fig8": lambda: run.attr_figure("8", ("license",), "figure8_license"),
        "fig9": lambda: run.attr_figure("9", ("derivation",), "figure9_derivation"),
        "waterfall": run.waterfall,
    }
    for name in FIGURES:
        if name in only:
            run.step(name, steps[name])
    run.log(f"{len(run.written)} files in {args.out}/ from {client.calls} hubctl calls")
    if run.failed:
        run.log(f"not drawn: {', '.join(run.failed)} (see the errors above)")
        return 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception:  # a bug: say where
        traceback.print_exc()
        sys.exit(3)
