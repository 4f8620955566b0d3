#!/usr/bin/env python3
"""bench/report.py - turns bench/run's results.jsonl into the BENCHMARKS.md tables.

Prints the Markdown and, with --write FILE, replaces what is between
<!-- bench:results:begin --> and <!-- bench:results:end --> in FILE (the rest of the file,
the hand-written analysis, is left alone). Called by bench/run; standard library only.
"""
import argparse
import datetime
import json
import os
import re
import subprocess
import sys

BEGIN = "<!-- bench:results:begin -->"
END = "<!-- bench:results:end -->"


def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True,
                              timeout=10).stdout.strip()
    except Exception:
        return ""


def machine(root, outdir):
    cpu = sh("lscpu | sed -n 's/^Model name: *//p' | head -1") or "?"
    mem = sh("awk '/MemTotal/ {printf \"%.1f GiB\", $2/1048576}' /proc/meminfo")
    pkgs = []
    for p in ["libnng1", "libcurl4", "libjansson4", "libprotobuf-c1", "libmicrohttpd12",
              "libgrpc++1.51", "libprotobuf32", "valgrind"]:
        v = sh("dpkg-query -W -f='${Version}' %s 2>/dev/null" % p)
        if v:
            pkgs.append("%s %s" % (p, v))
    info = {}
    try:
        with open(os.path.join(outdir, "run-info.json")) as f:
            info = json.load(f)  # written by bench/run when it started
    except (OSError, ValueError):
        pass
    rev = sh("git -C %s rev-parse --short HEAD" % root)
    dirty = sh("git -C %s status --porcelain --untracked-files=no" % root)
    return [
        ("date (UTC)", info.get("date") or
         datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M")),
        ("commit", info.get("commit") or rev + (" (+ uncommitted changes)" if dirty else "")),
        ("CPU", "%s, %s logical CPUs (shared, noisy VM)" % (cpu, os.cpu_count())),
        ("memory", mem),
        ("kernel", sh("uname -sr")),
        ("OS", "Debian " + (sh("cat /etc/debian_version") or "?")),
        ("compiler", sh("cc --version | head -1")),
        ("libraries", ", ".join(pkgs)),
        ("build", "CMAKE_BUILD_TYPE=Release (-O3 -DNDEBUG), no CPU pinning"),
    ]


def load(path):
    """{(scenario, row): {round: data}}"""
    rows = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                r = json.loads(line)
            except json.JSONDecodeError as e:
                print("report.py: bad line in results: %s" % e, file=sys.stderr)
                continue
            rows.setdefault((r["scenario"], r["row"]), {})[r.get("round", 1)] = r["data"]
    return rows


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    if n == 0:
        return None
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2.0


SUMMED = ("ok", "errors", "cache_hits", "unsent")
MAXED = ("rss_max_kib", "hwm_kib", "threads_max")


def merge(runs):
    """One row out of its rounds: medians of the measurements, sums of the counts, maxima of
    the peaks; "_p50s" and "_tputs" keep every round's value."""
    runs = [d for d in runs if d and not d.get("failed")]
    if not runs:
        return {"failed": True}
    out = json.loads(json.dumps(runs[0]))
    for k, v in runs[0].items():
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            vals = [d.get(k, 0) for d in runs]
            out[k] = sum(vals) if k in SUMMED else median(vals)
        elif isinstance(v, dict) and k in ("lat", "proc"):
            for kk in v:
                vals = [d.get(k, {}).get(kk, 0) for d in runs]
                out[k][kk] = max(vals) if kk in MAXED else (
                    min(vals) if kk == "threads_min" else median(vals))
        elif isinstance(v, dict) and k in ("status", "transport"):
            acc = {}
            for d in runs:
                for kk, vv in d.get(k, {}).items():
                    acc[kk] = acc.get(kk, 0) + vv
            out[k] = acc
        elif isinstance(v, dict) and k == "reasons":
            for d in runs:
                out[k].update(d.get(k, {}))
    cpc = [d["proc"]["cpu_s"] * 1e6 / d["ok"] for d in runs
           if d.get("ok") and d.get("proc", {}).get("pid")]
    out["_cpu_us_call"] = median(cpc) if cpc else None
    out["_p50s"] = [d.get("lat", {}).get("p50_us") for d in runs]
    out["_tputs"] = [d.get("throughput_rps") for d in runs]
    out["_rounds"] = len(runs)
    return out


def paired(R, a, b, fa, fb, op):
    """op(fa(a_r), fb(b_r)) for every round r that has both rows; (median, [values])."""
    ra, rb = R.get(a, {}), R.get(b, {})
    vals = []
    for r in sorted(ra):
        if r in rb and not ra[r].get("failed") and not rb[r].get("failed"):
            x, y = fa(ra[r]), fb(rb[r])
            if x is not None and y is not None and (op != "ratio" or y):
                vals.append(x / y if op == "ratio" else x - y)
    return median(vals), vals


def rounds_note(vals, fmt):
    return " (rounds: %s)" % ", ".join(fmt % v for v in vals) if len(vals) > 1 else ""


def f1(v, nd=1):
    if v is None:
        return "–"
    if isinstance(v, float) and v >= 1000:
        return "{:,.0f}".format(v)
    return ("{:,.%df}" % nd).format(v)


def lat(d, k):
    return d.get("lat", {}).get(k) if d else None


def mib(kib):
    return "%.1f" % (kib / 1024.0) if kib else "–"


def errs(d):
    if not d or d.get("failed"):
        return "run failed"
    n = d.get("errors", 0)
    if not n:
        return "0"
    parts = []
    for k, v in sorted(d.get("status", {}).items()):
        if k not in ("OK", "0") and v:
            reason = d.get("reasons", {}).get(k, "")
            parts.append("%s %d%s" % (k, v, " (%s)" % reason if reason else ""))
    for k, v in d.get("transport", {}).items():
        parts.append("nng %s %d" % (k, v))
    return "%d: %s" % (n, "; ".join(parts)) if parts else str(n)


def proc_cols(d):
    p = d.get("proc") if d else None
    if not p or not p.get("pid"):
        return ["–", "–", "–"]
    cpc = d.get("_cpu_us_call")
    return [mib(p.get("rss_max_kib")),
            "%d / %d" % (p.get("threads_before", 0), p.get("threads_max", 0)),
            "%.1f" % cpc if cpc is not None else "–"]


def rng(d):
    """" (a–b)": the range of p50 over the rounds, when there were several."""
    v = [x for x in (d or {}).get("_p50s", []) if x is not None]
    return " (%s–%s)" % (f1(min(v), 0), f1(max(v), 0)) if len(v) > 1 else ""


def table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for r in rows:
        out.append("| " + " | ".join(str(c) for c in r) + " |")
    return "\n".join(out)


def verdict(ok):
    return "**met**" if ok else ("**not met**" if ok is not None else "n/a")


def top_lines(path, n):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [l.rstrip() for l in f if l.strip()][:n]


def callgrind_top(path, n):
    """The function lines of callgrind_annotate's output (after the header)."""
    if not os.path.exists(path):
        return []
    lines, started = [], False
    with open(path) as f:
        for l in f:
            if re.match(r"^-+$", l.strip()) and started is False and lines == []:
                continue
            if "file:function" in l:
                started = True
                continue
            if started and l.strip() and not l.startswith("-"):
                lines.append(l.rstrip())
    return lines[:n]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", required=True)
    ap.add_argument("--outdir", required=True)
    ap.add_argument("--command", default="bench/run")
    ap.add_argument("--duration", default="5")
    ap.add_argument("--warmup", default="1")
    ap.add_argument("--rounds", default="1")
    ap.add_argument("--write")
    a = ap.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    R = load(a.results)
    MERGED = {k: merge([v[r] for r in sorted(v)]) for k, v in R.items()}

    def g(sc, row):
        d = MERGED.get((sc, row))
        return None if d is None or d.get("failed") else d

    p50 = lambda d: d.get("lat", {}).get("p50_us")
    tput = lambda d: d.get("throughput_rps")
    md = []
    P = md.append

    P("Generated by `%s`: rows of %s s after %s s of warm-up unless said otherwise, every row "
      "with its servers started fresh, client, servers and sandbox sharing the same CPUs. "
      "Scenarios 1, 2 and 4 ran %s rounds (baselines and gateway back to back in each): tables "
      "show the median of the rounds (counts are summed, peaks are maxima), targets the median "
      "of the per-round ratios." % (a.command, a.duration, a.warmup, a.rounds))
    P("")
    P("### Machine")
    P("")
    P(table(["", ""], machine(root, a.outdir)))
    P("")

    # ------------------------------------------------------------ targets first
    targets = []
    gw1, e1, gr1 = g("cached", "gw-tcp-c1"), g("cached", "echo-tcp-c1"), g("cached", "grpc-c1")
    gw256, e256, gr256 = (g("cached", "gw-tcp-c256"), g("cached", "echo-tcp-c256"),
                          g("cached", "grpc-c256"))
    def tgt(name, a_row, b_row, f, limit, better, unit):
        da, db = g(*a_row), g(*b_row)
        if not da or not db:
            return
        r, vals = paired(R, a_row, b_row, f, f, "ratio")
        if r is None:
            return
        ok = r <= limit if better == "low" else r >= limit
        targets.append((name, "%s%s vs %s%s (medians)" % (f1(f(da), 1 if unit == " µs" else 0), unit,
                                                         f1(f(db), 1 if unit == " µs" else 0), unit),
                        "**%.2f×**%s" % (r, rounds_note(vals, "%.2f")), verdict(ok)))

    tgt("cached Track p50 ≤ 1.15 × raw nng echo p50 (tcp, 1 in flight)",
        ("cached", "gw-tcp-c1"), ("cached", "echo-tcp-c1"), p50, 1.15, "low", " µs")
    tgt("cached Track p50 ≤ gRPC p50 (1 in flight)",
        ("cached", "gw-tcp-c1"), ("cached", "grpc-c1"), p50, 1.0, "low", " µs")
    tgt("cached throughput at 256 in flight ≥ 0.8 × raw nng echo (tcp)",
        ("cached", "gw-tcp-c256"), ("cached", "echo-tcp-c256"), tput, 0.8, "high", "/s")
    tgt("cached throughput at 256 in flight ≥ 3 × gRPC",
        ("cached", "gw-tcp-c256"), ("cached", "grpc-c256"), tput, 3.0, "high", "/s")
    u1, c1 = g("uncached", "gw-c1"), g("uncached", "curl-c1")
    if u1 and c1 and p50(u1) is not None:
        d, vals = paired(R, ("uncached", "gw-c1"), ("uncached", "curl-c1"), p50, p50, "diff")
        targets.append(("uncached fast Track adds ≤ 50 µs at p50 over direct libcurl (1 in flight)",
                        "%s µs vs %s µs (medians)" % (f1(p50(u1)), f1(p50(c1))),
                        "**+%s µs**%s" % (f1(d), rounds_note(vals, "+%.0f")), verdict(d <= 50)))
    b = g("inflight", "burst-cold")
    if b and not b.get("failed"):
        p = b.get("proc", {})
        n = b.get("requests", 0)
        targets.append(("%s in flight vs 250 ms: all succeed" % "{:,}".format(n),
                        "%s ok, %s errors" % ("{:,}".format(b.get("ok", 0)), b.get("errors", 0)),
                        "", verdict(b.get("ok") == n and b.get("errors") == 0)))
        targets.append(("… wall time for all ≤ 0.75 s (first burst: connections opened)",
                        "%.3f s" % b.get("wall_s", 0), "%.2f×" % (b.get("wall_s", 0) / 0.75),
                        verdict(b.get("wall_s", 99) <= 0.75)))
        bw = g("inflight", "burst-warm")
        if bw and not bw.get("failed"):
            targets.append(("… wall time, second burst (connections reused)",
                            "%.3f s" % bw.get("wall_s", 0),
                            "%.2f×" % (bw.get("wall_s", 0) / 0.75),
                            verdict(bw.get("wall_s", 99) <= 0.75 and bw.get("errors") == 0)))
        rss = max(p.get("rss_max_kib", 0), (bw or {}).get("proc", {}).get("rss_max_kib", 0))
        targets.append(("… gateway peak RSS ≤ 200 MiB", "%s MiB" % mib(rss),
                        "%.2f×" % (rss / 1024.0 / 200), verdict(rss / 1024.0 <= 200)))
        tb, tm, ta = p.get("threads_before"), p.get("threads_max"), p.get("threads_after")
        targets.append(("… thread count independent of load (before / max during / after)",
                        "%s / %s / %s" % (tb, tm, ta), "",
                        verdict(tb == tm == ta)))
    tn, jn = g("translate", "native-translate"), g("translate", "native-jansson")
    tc, jc = g("translate", "callgrind-translate"), g("translate", "callgrind-jansson")
    if tn:
        us = tn.get("ns_per_call", 0) / 1000.0
        extra = ""
        if tc and jc and jc.get("ir"):
            extra = "; %s vs %s instructions per call under callgrind" % (
                "{:,.0f}".format(tc["ir"] / tc["n"]), "{:,.0f}".format(jc["ir"] / jc["n"]))
        targets.append(("bosOnline Track translation ≤ 20 µs/call (15 events, native, fastest of 5)",
                        "%.1f µs (jansson parse alone %.1f µs)%s"
                        % (us, (jn or {}).get("ns_per_call", 0) / 1000.0, extra),
                        "%.2f×" % (us / 20), verdict(us <= 20)))
    P("### Targets")
    P("")
    P(table(["target", "measured", "ratio", "verdict"], targets))
    P("")

    # ------------------------------------------------------------ scenario 1
    hdr = ["system", "transport", "in flight", "p50 µs", "p99 µs", "p99.9 µs", "max µs",
           "throughput /s", "errors", "cache hits", "server RSS max MiB",
           "server threads before / max", "server CPU µs/call"]
    rows = []
    names = [("echo-tcp", "raw nng echo (limit)", "tcp"), ("echo-ipc", "raw nng echo (limit)", "ipc"),
             ("grpc", "gRPC C++ async (peer)", "HTTP/2 tcp"), ("gw-tcp", "**shipgated**", "tcp"),
             ("gw-ipc", "**shipgated**", "ipc")]
    for c in (1, 256):
        for key, name, tr in names:
            d = g("cached", "%s-c%d" % (key, c))
            if not d:
                continue
            hits = "–"
            if key.startswith("gw"):
                hits = "%d of %d" % (d.get("cache_hits", 0), d.get("ok", 0))
            rows.append([name, tr, c, f1(lat(d, "p50_us")) + rng(d), f1(lat(d, "p99_us")),
                         f1(lat(d, "p999_us")), f1(lat(d, "max_us")),
                         f1(d.get("throughput_rps"), 0), errs(d), hits] + proc_cols(d))
    for key, name in (("echo-tcp-open", "raw nng echo (limit)"), ("gw-tcp-open", "**shipgated**")):
        d = g("cached", key)
        if not d:
            continue
        hits = "%d of %d" % (d.get("cache_hits", 0), d.get("ok", 0)) if "gw" in key else "–"
        note = ", %d unsent" % d["unsent"] if d.get("unsent") else ""
        rows.append([name, "tcp, open loop %s/s%s" % (f1(d.get("rate"), 0), note),
                     "≤ %d" % d.get("contexts", 0), f1(lat(d, "p50_us")), f1(lat(d, "p99_us")),
                     f1(lat(d, "p999_us")), f1(lat(d, "max_us")), f1(d.get("throughput_rps"), 0),
                     errs(d), hits] + proc_cols(d))
    if rows:
        P("### 1. Cached Track")
        P("")
        P("`Track {provider: BOSONLINE, tracking_number: IDE987651421}` without `bypass_cache`, "
          "the cache filled by one call before the row; the echo server answers the gateway's "
          "own reply bytes (%s bytes) and the gRPC server the same `TrackResponse`. Closed loop "
          "(each context sends, waits, sends) unless marked open loop (latency from the intended "
          "send time). \"In flight\" = loadgen contexts (one nng socket, one connection) or "
          "gRPC calls (one channel)." % ((gw1 or {}).get("reply_bytes", "?")))
        P("")
        P(table(hdr, rows))
        P("")
        ratios = []
        for c in (1, 256):
            for tr in ("tcp", "ipc"):
                gw, ec = g("cached", "gw-%s-c%d" % (tr, c)), g("cached", "echo-%s-c%d" % (tr, c))
                gr = g("cached", "grpc-c%d" % c)
                if gw and ec:
                    G, E, Q = ("cached", "gw-%s-c%d" % (tr, c)), ("cached", "echo-%s-c%d" % (tr, c)), \
                        ("cached", "grpc-c%d" % c)
                    pr = lambda x, y, f: "%.2f×" % (paired(R, x, y, f, f, "ratio")[0] or 0)
                    ratios.append(["%s, %d in flight" % (tr, c), pr(G, E, p50), pr(G, E, tput),
                                   pr(G, Q, p50) if gr else "–", pr(G, Q, tput) if gr else "–"])
        if ratios:
            P(table(["shipgated vs", "p50 / echo p50", "throughput / echo",
                     "p50 / gRPC p50", "throughput / gRPC"], ratios))
            P("")

    # ------------------------------------------------------------ scenario 2
    rows = []
    for c in (1, 64):
        for key, name in (("curl", "libcurl direct (upstream alone)"),
                          ("gw", "**shipgated**, bypass_cache")):
            d = g("uncached", "%s-c%d" % (key, c))
            if not d:
                continue
            how = ("easy handle, sequential" if c == 1 else "multi, %d handles" % c) \
                if key == "curl" else "tcp, %d context%s" % (c, "s" if c > 1 else "")
            rows.append([name, how, c, f1(lat(d, "p50_us")) + rng(d), f1(lat(d, "p99_us")),
                         f1(lat(d, "p999_us")), f1(lat(d, "max_us")),
                         f1(d.get("throughput_rps"), 0), errs(d)] + proc_cols(d))
    if rows:
        P("### 2. Uncached Track, fast loopback upstream")
        P("")
        P("`bypass_cache = true`: every call is a `GET /bosonline/store/order/tracking?awb=...` "
          "to the sandbox (5,108-byte body, 15 events) and a translation. The baseline is the "
          "same GET with libcurl and keep-alive, no gateway.")
        P("")
        P(table(["system", "how", "in flight", "p50 µs", "p99 µs", "p99.9 µs", "max µs",
                 "throughput /s", "errors", "gateway RSS max MiB",
                 "gateway threads before / max", "gateway CPU µs/call"], rows))
        P("")
        d1, c1_ = g("uncached", "gw-c1"), g("uncached", "curl-c1")
        d64, c64 = g("uncached", "gw-c64"), g("uncached", "curl-c64")
        bits = []
        if d1 and c1_:
            bits.append("1 in flight: shipgated adds **%s µs** at p50 (%.2f×)" % (
                f1(paired(R, ("uncached", "gw-c1"), ("uncached", "curl-c1"), p50, p50, "diff")[0]),
                paired(R, ("uncached", "gw-c1"), ("uncached", "curl-c1"), p50, p50, "ratio")[0]))
        if d64 and c64:
            bits.append("64 in flight: %.2f× libcurl's throughput" % (
                paired(R, ("uncached", "gw-c64"), ("uncached", "curl-c64"), tput, tput, "ratio")[0]
                or 0))
        if bits:
            P("; ".join(bits) + ".")
            P("")

    # ------------------------------------------------------------ scenario 3
    rows = []
    for rnd in ("cold", "warm"):
        d = g("inflight", "burst-" + rnd)
        if not d or d.get("failed"):
            continue
        p = d.get("proc", {})
        rows.append([rnd + (" (connections opened)" if rnd == "cold" else " (right after)"),
                     "{:,}".format(d.get("requests", 0)), "%.3f" % d.get("wall_s", 0),
                     "{:,}".format(d.get("ok", 0)), errs(d), f1(lat(d, "p50_us") / 1000, 1),
                     f1(lat(d, "p99_us") / 1000, 1), f1(lat(d, "max_us") / 1000, 1),
                     mib(p.get("rss_before_kib")), mib(p.get("rss_max_kib")),
                     mib(p.get("hwm_kib")),
                     "%s / %s / %s" % (p.get("threads_before"), p.get("threads_max"),
                                       p.get("threads_after")),
                     "%.2f" % p.get("cpu_s", 0)])
    if rows:
        P("### 3. 10,000 uncached calls in flight, 250 ms upstream")
        P("")
        P("Sandbox id `SLOW-250` (answers after 250 ms), `bypass_cache`; gateway `--workers "
          "10240 --set upstream.max_host_conns=10000`; loadgen fires all calls at once from "
          "10,000 contexts on 10 sockets (1,000 each) and waits for the last. Wall = first send "
          "to last reply; the floor is 250 ms.")
        P("")
        P(table(["burst", "calls", "wall s", "ok", "errors", "p50 ms", "p99 ms", "max ms",
                 "gateway RSS before MiB", "RSS max MiB", "VmHWM MiB",
                 "threads before / max / after", "gateway CPU s"], rows))
        P("")

    # ------------------------------------------------------------ scenario 4
    rows = []
    for c in (1, 64):
        d = g("create", "gw-c%d" % c)
        if not d:
            continue
        rows.append(["**shipgated**, CreateOrder", c, f1(lat(d, "p50_us")) + rng(d), f1(lat(d, "p99_us")),
                     f1(lat(d, "p999_us")), f1(lat(d, "max_us")), f1(d.get("throughput_rps"), 0),
                     errs(d)] + proc_cols(d))
    if rows:
        P("### 4. CreateOrder")
        P("")
        P("The bosOnline example (`docs/examples/bosonline-create-order.json`, built into a "
          "`CreateOrderRequest` with `shipgate_pbjson`), a new idempotency key per call, so every "
          "call is an upstream `POST /bosonline/order/{id}`.")
        P("")
        P(table(["system", "in flight", "p50 µs", "p99 µs", "p99.9 µs", "max µs", "throughput /s",
                 "errors", "gateway RSS max MiB", "gateway threads before / max",
                 "gateway CPU µs/call"], rows))
        P("")

    # ------------------------------------------------------------ translation
    if tn or tc:
        P("### Translation (bosOnline Track, 15 events) vs jansson alone")
        P("")
        rows = []
        for m, what in (("translate", "`sg_bosonline_track_parse` (jansson parse + mapping + "
                                      "normalization, arena reset per call)"),
                        ("jansson", "`json_loadb` + `json_decref` alone"),
                        ("pack", "translation + `protobuf_c_message_pack` of the reply")):
            n = g("translate", "native-" + m)
            cg = g("translate", "callgrind-" + m)
            rows.append([what, ("%.1f (%.1f)" % (n["ns_per_call"] / 1000.0,
                                                n.get("ns_per_call_median", n["ns_per_call"]) / 1000.0))
                         if n else "–",
                         "{:,.0f}".format(cg["ir"] / cg["n"]) if cg and cg.get("n") else "–"])
        P(table(["what", "native µs/call, fastest of 5 repetitions (median)",
                 "instructions/call (callgrind)"], rows))
        P("")
        if tc and jc and jc.get("ir"):
            P("Translation / jansson alone: **%.2f×** in instructions%s." % (
                tc["ir"] / jc["ir"],
                ", %.2f× in native time" % (tn["ns_per_call"] / jn["ns_per_call"])
                if tn and jn else ""))
            P("")

    # ------------------------------------------------------------ profiles
    prof = []
    for p, what in (("cached-c256", "cached Track, 256 in flight"),
                    ("uncached-c64", "uncached Track, 64 in flight"),
                    ("inflight", "the in-flight burst (scenario 3)")):
        d = top_lines(os.path.join(a.outdir, "perf.%s.dso.txt" % p), 8)
        s = top_lines(os.path.join(a.outdir, "perf.%s.txt" % p), 18)
        if d or s:
            prof.append("**%s** — shipgated's CPU by library, then by symbol (perf, cpu-clock):"
                        % what)
            prof.append("")
            prof.append("```")
            prof.extend(d)
            prof.append("")
            prof.extend(s)
            prof.append("```")
            prof.append("")
    cg = callgrind_top(os.path.join(a.outdir, "callgrind.translate.txt"), 15)
    if cg:
        prof.append("**translation** — instructions by function (callgrind, self cost):")
        prof.append("")
        prof.append("```")
        prof.extend(cg)
        prof.append("```")
        prof.append("")
    if prof:
        P("### Profiles")
        P("")
        md.extend(prof)

    text = "\n".join(md).rstrip() + "\n"
    print(text)
    if a.write:
        with open(a.write) as f:
            doc = f.read()
        i, j = doc.find(BEGIN), doc.find(END)
        if i < 0 or j < i:
            print("report.py: %s has no %s ... %s markers" % (a.write, BEGIN, END),
                  file=sys.stderr)
            return 1
        doc = doc[:i + len(BEGIN)] + "\n" + text + doc[j:]
        with open(a.write, "w") as f:
            f.write(doc)
        print("report.py: rewrote the tables in %s" % a.write, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
