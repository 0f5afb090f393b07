#!/usr/bin/env python3
"""A stand-in for hubctl --json in figures_test.py: same flags and commands (stats, top, series,
shares, change), answers in protobuf's JSON mapping (uint64 as strings, proto field names), computed from a
small made-up catalog and weekly counts, so that every level and window agree with each other.

FAKE_HUBCTL_MODE: data (default; downloads in 2024-W40..2025-W10, watermark in 2025-W10), empty (no
event accepted: no watermark, every count 0), unreachable (exits 1 as hubctl does when nothing
listens), no_shares (a hubctl from before GetShareSeries: 'shares' is an unknown command),
bad_change (as data, but change's HHI after is 1e-6 off: its parts do not add up).
FAKE_HUBCTL_LOG: a file each call's arguments are appended to, one line each.
View flags (filter, attribution, sample) are accepted and ignored: one set of counts for all views.
"""

import datetime
import fractions
import json
import os
import sys

FIRST_WEEK, LAST_WEEK = "2024-W40", "2025-W10"
WATERMARK = "2025-03-05T12:00:00Z"

# model, developer, country, org_type, parameters, pipeline_tag, license, derivation, weight
MODELS = [
    ("google-bert/bert-base-uncased", "google", "US", "company", 110_000_000, "fill-mask", "apache-2.0", "original", 40),
    ("sentence-transformers/all-MiniLM-L6-v2", "sentence-transformers", "Online", "community", 22_700_000,
     "sentence-similarity", "apache-2.0", "finetune", 55),
    ("openai/clip-vit-large-patch14", "openai", "US", "company", 428_000_000, "zero-shot-image-classification",
     "mit", "original", 25),
    ("Qwen/Qwen2.5-7B-Instruct", "Qwen", "CN", "company", 7_600_000_000, "text-generation", "apache-2.0",
     "finetune", 30),
    ("deepseek-ai/DeepSeek-R1", "deepseek-ai", "CN", "company", 671_000_000_000, "text-generation", "mit",
     "original", 12),
    ("stabilityai/stable-diffusion-xl-base-1.0", "stabilityai", "GB", "company", 3_500_000_000, "text-to-image",
     "openrail++", "original", 18),
    ("openai/whisper-large-v3", "openai", "US", "company", 1_550_000_000, "automatic-speech-recognition",
     "apache-2.0", "original", 15),
    ("TheBloke/Llama-2-7B-GGUF", "TheBloke", "Unknown", "user", 6_740_000_000, "text-generation", "llama2",
     "quantized", 9),
    ("someone/lora-style", "someone", "Unknown", "user", 0, "", "", "adapter", 5),
    ("uni/graph-model", "uni", "DE", "university", 50_000_000, "graph-ml", "cc-by-4.0", "original", 3),
]
MODALITY = {
    "fill-mask": "nlp", "sentence-similarity": "nlp", "text-generation": "nlp",
    "zero-shot-image-classification": "computer_vision", "text-to-image": "computer_vision",
    "automatic-speech-recognition": "audio",
}
SIZES = ((100_000_000, "<100M"), (200_000_000, "100M-200M"), (500_000_000, "200M-500M"),
         (1_000_000_000, "500M-1B"), (10_000_000_000, "1B-10B"), (100_000_000_000, "10B-100B"))


def size_bucket(p):
    if p <= 0:
        return "unknown"
    for bound, name in SIZES:
        if p < bound:
            return name
    return ">=100B"


def value(level, m):
    model, dev, country, org, params, tag, lic, deriv, _ = m
    return {
        "model": model, "developer": dev, "country": country, "org_type": org or "unknown",
        "license": lic or "unknown", "task": tag or "unknown",
        "modality": MODALITY.get(tag, "other") if tag else "unknown", "size": size_bucket(params),
        "derivation": deriv,
    }[level]


def entity(level, m):
    if "+" in level:
        a, b = level.split("+")
        return value(a, m) + "|" + value(b, m)
    return value(level, m)


def monday(week):
    y, w = week.split("-W")
    return datetime.date.fromisocalendar(int(y), int(w), 1)


def week_name(d):
    y, w, _ = d.isocalendar()
    return f"{y:04d}-W{w:02d}"


def weeks(first, last):
    d, out = monday(first), []
    while d <= monday(last):
        out.append(week_name(d))
        d += datetime.timedelta(weeks=1)
    return out


def downloads(i, week):
    """Model i's downloads in `week`: 0 outside the data's weeks, and in 2024-W52 (an empty week)."""
    if os.environ.get("FAKE_HUBCTL_MODE") == "empty":
        return 0
    if not (monday(FIRST_WEEK) <= monday(week) <= monday(LAST_WEEK)) or week == "2024-W52":
        return 0
    n = (monday(week) - monday(FIRST_WEEK)).days // 7
    return MODELS[i][8] * (3 + (n * (i + 1)) % 5)


def counts(level, week_list):
    out = {}
    for w in week_list:
        for i, m in enumerate(MODELS):
            d = downloads(i, w)
            if d:
                e = entity(level, m)
                out[e] = out.get(e, 0) + d
    return out


def ranked(c):
    return sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))


def measures(c, ks):
    xs = sorted(c.values())
    total, n = sum(xs), len(xs)
    hhi = sum(x * x for x in xs) / total ** 2 if total else 0.0
    gini = sum((2 * (i + 1) - n - 1) * x for i, x in enumerate(xs)) / (n * total) if n > 1 else 0.0
    desc = xs[::-1]
    top = [{"k": k, "share": (sum(desc[:k]) / total if total else 0.0)} for k in ks]
    return total, n, hhi, gini, top


def window_weeks(window):
    wm = None if os.environ.get("FAKE_HUBCTL_MODE") == "empty" else week_name(datetime.date(2025, 3, 5))
    if window == "all":
        return weeks("2020-W23", LAST_WEEK), "", ""
    if window.startswith("trailing:"):
        if wm is None:
            return [], "", ""
        n = int(window.split(":")[1])
        first = week_name(monday(wm) - datetime.timedelta(weeks=n - 1))
        return weeks(first, wm), first, wm
    if window.startswith("range:"):
        a, b = window[len("range:"):].split("..")
        return weeks(a, b), a, b
    if window.startswith("week:"):
        w = window[len("week:"):]
        return [w], w, w
    fail(2, f"INVALID_ARGUMENT: unknown window '{window}'")


def change(flags, mode):
    """ExplainChange from the counts of the two windows, exact as the server (fractions, rounded once)."""
    k = int(flags.get("k", 10))
    sides, counts_of, shares = [], [], []
    for window in (flags["from"], flags["to"]):
        wl, first, last = window_weeks(window)
        c = counts(flags["level"], wl)
        total, n, hhi, gini, top = measures(c, [1, 10, 100])
        side = {"view": view(flags), "window": window, "total_downloads": str(total), "entities": str(n),
                "hhi": hhi, "gini": gini, "top_shares": top, **watermark_field()}
        if first:
            side["first_week"], side["last_week"] = first, last
        sides.append(side)
        counts_of.append(c)
        shares.append({e: fractions.Fraction(d, total) for e, d in c.items()})
    ranks = [{e: 1 + sum(1 for o in cnt.values() if o > d) for e, d in cnt.items()} for cnt in counts_of]
    contrib = {e: shares[1].get(e, 0) ** 2 - shares[0].get(e, 0) ** 2
               for e in set(shares[0]) | set(shares[1])}
    order = sorted(contrib, key=lambda e: (-abs(contrib[e]), e))
    movers = order[:k]

    def group(entities):
        return {"entities": str(len(entities)),
                "from_downloads": str(sum(counts_of[0].get(e, 0) for e in entities)),
                "from_share": float(sum(shares[0].get(e, 0) for e in entities)),
                "to_downloads": str(sum(counts_of[1].get(e, 0) for e in entities)),
                "to_share": float(sum(shares[1].get(e, 0) for e in entities)),
                "contribution": float(sum(contrib[e] for e in entities))}

    others = order[k:]
    entrants = [e for e in order if e not in shares[0]]
    exits = [e for e in order if e not in shares[1]]
    delta = sum(contrib.values())
    if mode == "bad_change":
        sides[1]["hhi"] += 1e-6
    return {
        "view": view(flags), "before": sides[0], "after": sides[1], "delta_hhi": float(delta),
        "delta_gini": sides[1]["gini"] - sides[0]["gini"],
        "delta_total_downloads": str(int(sides[1]["total_downloads"]) - int(sides[0]["total_downloads"])),
        "delta_entities": str(int(sides[1]["entities"]) - int(sides[0]["entities"])),
        "top_movers": [{"entity": e, "from_downloads": str(counts_of[0].get(e, 0)),
                        "from_share": float(shares[0].get(e, 0)), "from_rank": str(ranks[0].get(e, 0)),
                        "to_downloads": str(counts_of[1].get(e, 0)), "to_share": float(shares[1].get(e, 0)),
                        "to_rank": str(ranks[1].get(e, 0)), "contribution": float(contrib[e]),
                        "kind": "entrant" if e in entrants else ("exit" if e in exits else "both")}
                       for e in movers],
        "entrants": group(entrants), "exits": group(exits),
        "other_entrants": group([e for e in others if e in entrants]),
        "other_exits": group([e for e in others if e in exits]),
        "rest": group([e for e in others if e not in entrants and e not in exits]),
        **watermark_field(),
    }


def view(flags):
    v = {"level": flags["level"], "filter": flags.get("filter", "all"), "attribution": flags.get("attribution", "direct")}
    if "sample" in flags:
        v["sample"] = flags["sample"]
    return v


def watermark_field():
    return {} if os.environ.get("FAKE_HUBCTL_MODE") == "empty" else {"watermark": WATERMARK}


def fail(code, message):
    sys.stderr.write(f"hubctl: {message}\n")
    sys.exit(code)


def main():
    args = sys.argv[1:]
    if os.environ.get("FAKE_HUBCTL_LOG"):
        with open(os.environ["FAKE_HUBCTL_LOG"], "a") as f:
            f.write(" ".join(args) + "\n")
    flags, positional = {}, []
    for a in args:
        if a.startswith("--"):
            k, _, v = a[2:].partition("=")
            flags[k] = v
        else:
            positional.append(a)
    if "json" not in flags:
        fail(2, "the fake answers --json only")
    mode = os.environ.get("FAKE_HUBCTL_MODE", "data")
    if mode == "unreachable":
        fail(1, f"cannot reach hubmetricsd at {flags.get('addr')}: failed to connect to all addresses; last error: "
                "UNKNOWN: ipv4:127.0.0.1:50051: Failed to connect to remote host: Connection refused (is it running "
                "there? set --addr=HOST:PORT; if it serves TLS, give --tls_ca_file)")
    command = positional[0]
    if command == "stats":
        out = {"events_read": "0" if mode == "empty" else "123456", "unique_downloads": "0", **watermark_field()}
    elif command == "top":
        k = int(flags.get("k", 10))
        wl, first, last = window_weeks(flags.get("window", "all"))
        c = counts(flags["level"], wl)
        total = sum(c.values())
        rows, rank, prev = [], 0, None
        for i, (e, d) in enumerate(ranked(c)):
            if d != prev:
                rank, prev = i + 1, d
            rows.append({"entity": e, "downloads": str(d), "share": d / total, "rank": str(rank)})
        out = {"view": view(flags), "window": flags.get("window", "all"), "total_downloads": str(total),
               "entities": str(len(c)), "top": rows[:k], **watermark_field()}
        if first:
            out["first_week"], out["last_week"] = first, last
    elif command == "series":
        ks = [int(k) for k in flags.get("top_k", "1,10,100").split(",")]
        points = []
        for w in weeks(flags["from"], flags["to"]):
            total, n, hhi, gini, top = measures(counts(flags["level"], [w]), ks)
            points.append({"view": view(flags), "window": f"week:{w}", "first_week": w, "last_week": w,
                           "total_downloads": str(total), "entities": str(n), "hhi": hhi, "gini": gini,
                           "top_shares": top, **watermark_field()})
        out = {"points": points}
    elif command == "shares":
        if mode == "no_shares":
            fail(2, "unknown command 'shares'; one of concentration, top, series, entity, watch, stats\n"
                    "(run hubctl without arguments for usage)")
        k = int(flags.get("k", 20))
        wl = weeks(flags["from"], flags["to"])
        c = counts(flags["level"], wl)
        total = sum(c.values())
        chosen = ranked(c)[:k]
        ents = [{"entity": e, "downloads": str(d), "share": d / total, "rank": str(i + 1)}
                for i, (e, d) in enumerate(chosen)]
        week_rows = []
        for w in wl:
            cw = counts(flags["level"], [w])
            tw = sum(cw.values())
            ds = [cw.get(e, 0) for e, _ in chosen]
            week_rows.append({"week": w, "total_downloads": str(tw), "downloads": [str(d) for d in ds],
                              "shares": [d / tw if tw else 0 for d in ds], "rest_downloads": str(tw - sum(ds)),
                              "rest_share": (tw - sum(ds)) / tw if tw else 0})
        out = {"view": view(flags), "from_week": flags["from"], "to_week": flags["to"], "total_downloads": str(total),
               "entity_count": str(len(c)), "entities": ents, "weeks": week_rows, **watermark_field()}
    elif command == "change":
        out = change(flags, mode)
    else:
        fail(2, f"unknown command '{command}'")
    print(json.dumps(out, separators=(",", ":")))


if __name__ == "__main__":
    main()
