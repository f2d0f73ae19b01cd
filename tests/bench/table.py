#!/usr/bin/env python3
"""Turns the per-run JSON files of tests/bench/run.sh into one table.

Rows are figures, columns are the four paths (direct, mcptun, supergateway,
supergateway through ssh -R) plus the ratios of mcptun to each of the other
three, measured in the same run.  The table is printed as an aligned
Markdown table, written with every raw figure to results.json, and, with
--readme, put between the bench markers of README.md.  Figures only: no
verdicts; the target column quotes issue 7 so a reader can compare.
"""
import argparse
import datetime
import json
import os
import re
import sys

COLS = [("direct", "direct"), ("mcptun", "mcptun"), ("sg", "supergateway"),
        ("sgssh", "sg + ssh -R")]
RATIOS = [("direct", "mcptun/direct"), ("sg", "mcptun/sg"),
          ("sgssh", "mcptun/sg+ssh")]


def load(res):
    r = {}
    for f in sorted(os.listdir(res)):
        if f.endswith(".json"):
            try:
                with open(os.path.join(res, f)) as fh:
                    r[f[:-5]] = json.load(fh)
            except (OSError, ValueError) as e:
                r[f[:-5]] = {"na": "unreadable result: %s" % e}
    return r


class NA(Exception):
    pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--res", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--nproc", default="?")
    ap.add_argument("--model", default="?")
    ap.add_argument("--sessions", type=int, default=0)
    ap.add_argument("--calls", type=int, default=0)
    ap.add_argument("--seconds", type=int, default=0)
    ap.add_argument("--lat-seconds", default="20")
    ap.add_argument("--sg-version", default="?")
    ap.add_argument("--readme")
    ap.add_argument("--load", default="",
                    help="the load average while it ran (other jobs skew figures)")
    ap.add_argument("--pg-rows", type=int, default=0)
    ap.add_argument("--pg-runs", type=int, default=0)
    ap.add_argument("--pg-ref", default="server-postgres")
    ap.add_argument("--na-pg")
    for c, _ in COLS:
        ap.add_argument("--na-" + c)
    a = ap.parse_args()
    R = load(a.res)
    notes = []

    def get(name, *path):
        if name not in R:
            raise NA("not measured")
        v = R[name]
        if "na" in v:
            raise NA(v["na"])
        for p in path:
            if v is None or p not in v:
                raise NA("no %s in %s" % (p, name))
            v = v[p]
        if v is None:
            raise NA("no figure")
        return v

    def mem(col, when):
        v = get("%s_mem_%s" % (col, when))
        if when == "sessions":
            s = get("%s_sessions" % col)
            notes.append("%s: %s of %s sessions opened (in %.0f s), %s upstream "
                         "processes running while the RSS was taken" %
                         (col, s.get("opened"), s.get("sessions"),
                          s.get("open_s") or 0, s.get("upstreams", "?")))
        return v

    def mem_total(when):
        def f(col):
            if col == "direct":
                raise NA("-")
            return sum(mem(col, when).values()) / 1024.0
        return f

    def mem_split(when):
        def f(col):
            if col in ("direct", "sg"):
                raise NA("-")
            v = mem(col, when)
            return "+".join("%.1f" % (x / 1024.0) for x in v.values())
        return f

    def lat(gen, q):
        return lambda col: get("%s_%s_lat" % (col, gen), "lat", q)

    def cpu(gen):
        return lambda col: get("%s_%s_lat" % (col, gen), "cpu_ms_per_call")

    def rate(gen):
        return lambda col: get("%s_%s_rate" % (col, gen), "calls_per_s")

    def bulk(gen):
        return lambda col: get("%s_%s_bulk" % (col, gen), "mb_per_s")

    def hol(gen, phase):
        return lambda col: get("%s_%s_hol" % (col, gen), phase, "p99")

    def holratio(gen):
        def f(col):
            h = get("%s_%s_hol" % (col, gen))
            return h["busy"]["p99"] / h["idle"]["p99"]
        return f

    def restart(col):
        if col == "direct":
            raise NA("-")
        return get("%s_restart" % col, "ms")

    def link(col):
        if col == "direct":
            return get("raw_direct", "mb_per_s")
        if col == "mcptun":
            return get("mcptun_c_bulk", "mb_per_s")
        if col == "sgssh":
            return get("raw_ssh", "mb_per_s")
        raise NA("-")

    def pg_rate(gen):
        return lambda col: get("%s_%s_pg" % (col, gen), "rows_per_s")

    def pg_mb(col):
        return get("%s_c_pg" % col, "answer_bytes") / 1e6

    def pg_off(gen):
        def f(col):
            if col != "mcptun":
                raise NA("-")
            return get("mcptun_%s_pgoff" % gen, "ms", "p50")
        return f

    ns = a.sessions
    pr = "{:,}".format(a.pg_rows)
    rows = [
        ("small call p50 ms [SDK]", lat("sdk", "p50"), "<= sg/3; aim <= 1.5x direct"),
        ("small call p90 ms [SDK]", lat("sdk", "p90"), ""),
        ("small call p99 ms [SDK]", lat("sdk", "p99"), ""),
        ("  the client's own CPU ms per call [SDK]", cpu("sdk"), ""),
        ("small call p50 ms [C]", lat("c", "p50"), "<= sg/3; aim <= 1.5x direct"),
        ("small call p90 ms [C]", lat("c", "p90"), ""),
        ("small call p99 ms [C]", lat("c", "p99"), ""),
        ("  the client's own CPU ms per call [C]", cpu("c"), ""),
        ("calls/s, 50 sessions [SDK]", rate("sdk"), ">= 2x best bridge"),
        ("calls/s, 50 sessions [C]", rate("c"), ">= 2x best bridge"),
        ("MB/s, 4 MiB results [SDK]", bulk("sdk"), ">= 5x sg; aim >= 0.8x direct"),
        ("MB/s, 4 MiB results [C]", bulk("c"), ">= 5x sg; aim >= 0.8x direct"),
        ("p99 ms idle [SDK]", hol("sdk", "idle"), ""),
        ("p99 ms while 4 MiB pulls [SDK]", hol("sdk", "busy"), ""),
        ("  busy p99 / idle p99 [SDK]", holratio("sdk"), "<= 3"),
        ("p99 ms idle [C]", hol("c", "idle"), ""),
        ("p99 ms while 4 MiB pulls [C]", hol("c", "busy"), ""),
        ("  busy p99 / idle p99 [C]", holratio("c"), "<= 3"),
        ("RSS MiB idle", mem_total("idle"), "mcptun <= sg/20"),
        ("  split", mem_split("idle"), ""),
        ("RSS MiB, %d sessions open" % ns, mem_total("sessions"), "mcptun <= sg/20"),
        ("  split", mem_split("sessions"), ""),
        ("RSS MiB after the run", mem_total("after"), "mcptun <= sg/20"),
        ("  split", mem_split("after"), ""),
        ("restart (SIGKILL) -> first call ms", restart, ""),
        ("link MB/s, 4 MiB messages [C]", link, ">= ssh -R"),
        ("Postgres rows/s, %s-row SELECT [SDK]" % pr, pg_rate("sdk"), "pg"),
        ("Postgres rows/s, %s-row SELECT [C]" % pr, pg_rate("c"), "pg"),
        ("  answer MB (one JSON-RPC message)", pg_mb, "pg"),
        ("  mcptun, offload on: ms to resource_link [SDK]", pg_off("sdk"), "pg"),
        ("  mcptun, offload on: ms to resource_link [C]", pg_off("c"), "pg"),
    ]
    PG_ROW = "pg"

    def fmt(v):
        if isinstance(v, str):
            return v
        if v >= 100:
            return "%.0f" % v
        if v >= 10:
            return "%.1f" % v
        if v >= 1:
            return "%.2f" % v
        return "%.3f" % v

    def fmt_ratio(x, y):
        if not isinstance(x, (int, float)) or not isinstance(y, (int, float)) or y == 0:
            return "-"
        r = x / y
        return ("%.2fx" % r) if r >= 0.1 else ("%.3fx" % r)

    na_reasons = {}
    out_rows = []
    header = ["figure"] + [t for _, t in COLS] + [t for _, t in RATIOS] + ["target (issue 7)"]
    cells = []
    for label, fn, target in rows:
        pg_row = target == PG_ROW
        if pg_row:
            target = ""
        vals = {}
        row = [label]
        for c, _ in COLS:
            forced = a.na_pg if pg_row else getattr(a, "na_" + c)
            try:
                if forced and (pg_row or c != "direct"):
                    raise NA(forced)
                v = fn(c)
                vals[c] = v
                row.append(fmt(v))
            except NA as e:
                vals[c] = None
                why = str(e)
                if why == "-":
                    row.append("-")
                else:
                    k = na_reasons.setdefault(why, len(na_reasons) + 1)
                    row.append("n/a[%d]" % k)
            except (KeyError, TypeError, ZeroDivisionError) as e:
                vals[c] = None
                k = na_reasons.setdefault("bad result: %r" % e, len(na_reasons) + 1)
                row.append("n/a[%d]" % k)
        for c, _ in RATIOS:
            row.append(fmt_ratio(vals.get("mcptun"), vals.get(c)))
        row.append(target)
        cells.append(row)
        out_rows.append({"figure": label, "target": target,
                         **{c: vals[c] for c, _ in COLS}})

    widths = [max(len(r[i]) for r in cells + [header]) for i in range(len(header))]

    def line(r):
        return "| " + " | ".join(
            (x.ljust(widths[i]) if i in (0, len(r) - 1) else x.rjust(widths[i]))
            for i, x in enumerate(r)) + " |"

    sep = "|" + "|".join(("-" * (w + 1) + ":") if 0 < i < len(widths) - 1
                         else ("-" * (w + 2)) for i, w in enumerate(widths)) + "|"
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = ["mcptun benchmark, %s; %s CPUs (%s); %d s; load average %s" %
             (date, a.nproc, a.model, a.seconds, a.load or "?"), "",
             line(header), sep] + [line(r) for r in cells]
    lines += ["",
              "[SDK] = official TypeScript SDK client (tests/bench/sdkload.mjs); "
              "[C] = tests/bench/mcpload.c (HTTP/1.1 keep-alive over mbedTLS, or stdio).",
              "Latency: up to %d sequential echo calls (at most %s s) after 200 warm-up; calls/s: 50 sessions "
              "each calling in a loop; MB/s: sequential 4 MiB blob results; busy p99: echo "
              "calls on one session while a second pulls 4 MiB blobs." % (a.calls, a.lat_seconds),
              "supergateway %s --stateful (one stdio child per session, like mcptun); "
              "RSS = the proxy processes only (mcptun: relay+client; sg+ssh: "
              "supergateway+sshd+ssh), never the upstream servers; %d sessions held "
              "open, each with its own upstream process (tests/tools/echo_upstream, "
              "the upstream of every column)."
              % (a.sg_version, ns),
              "Both load generators accept JSON and SSE; the relay answers "
              "application/json unless an event (progress, a server request, a keep-alive) "
              "goes before the answer.",
              "link row: direct = raw TCP on loopback, sg+ssh = the same raw bytes "
              "through ssh -R, mcptun = full MCP path (relay, WSS link, client, stdio) "
              "with 4 MiB results.",
              "Postgres rows: SELECT of %s rows x 5 columns (int, text, int, numeric, "
              "timestamptz) from a real PostgreSQL; rows/s = rows / median of %d timed "
              "queries after one warm-up, every answer checked to hold every row. "
              "direct, supergateway and sg+ssh reach the reference %s (stdio; its answer "
              "is the rows as indented JSON text); mcptun reaches its built-in adapter "
              "(client/up_postgres.c; a text table plus structuredContent rows), with "
              "offload off, max_rows/max_bytes/limits.max_message raised to carry the "
              "whole answer (defaults 1,000 rows, 1 MiB, 16 MiB). The SDK's stdio client "
              "refuses messages over 10 MiB by default: the direct [SDK] figure raises "
              "its maxBufferSize. Offload-on rows: the default threshold (100,000 "
              "tokens); the rows stay in the client's spool and the agent gets a "
              "resource_link." % (pr, a.pg_runs, a.pg_ref)]
    try:
        fl = [get("floor_%s_lat" % g, "lat", "p50") for g in ("sdk", "c")]
        fc = [get("floor_%s_lat" % g, "cpu_ms_per_call") for g in ("sdk", "c")]
        lines.append(
            "Floor: the same generators against an HTTPS endpoint answering "
            "in-process (tests/bench/floor.cjs, no proxy, no upstream): p50 "
            "%s ms [SDK], %s ms [C]; the clients' own CPU per call there %s ms "
            "[SDK], %s ms [C]. No HTTPS path can answer the SDK client faster."
            % (fmt(fl[0]), fmt(fl[1]), fmt(fc[0]), fmt(fc[1])))
    except NA as e:
        lines.append("Floor: n/a (%s)" % e)
    for why, k in sorted(na_reasons.items(), key=lambda x: x[1]):
        lines.append("n/a[%d]: %s" % (k, why))
    for n in sorted(set(notes)):
        lines.append("note: " + n)
    text = "\n".join(lines)
    print(text)

    meminfo = ""
    try:
        with open("/proc/meminfo") as fh:
            meminfo = fh.readline().split(":")[1].strip()
    except OSError:
        pass
    doc = {"date": date,
           "machine": {"nproc": a.nproc, "model": a.model, "memory": meminfo,
                       "load": a.load},
           "settings": {"calls": a.calls, "sessions": ns, "blob_bytes": 4194304,
                        "pg_rows": a.pg_rows, "pg_runs": a.pg_runs,
                        "pg_reference": a.pg_ref,
                        "supergateway": a.sg_version, "seconds": a.seconds},
           "columns": {c: t for c, t in COLS},
           "rows": out_rows,
           "na": {str(k): why for why, k in na_reasons.items()},
           "raw": R}
    with open(a.out, "w") as fh:
        json.dump(doc, fh, indent=1)
        fh.write("\n")
    print("\nresults: %s" % a.out)

    if a.readme:
        with open(a.readme) as fh:
            readme = fh.read()
        block = ("<!-- bench:begin -->\n"
                 "Measured by `make bench` on %s: %s CPUs (%s), load average "
                 "%s, everything on loopback on the same machine; ratios are "
                 "within this one run.\n\n"
                 "```\n%s\n```\n<!-- bench:end -->" % (date, a.nproc, a.model,
                                                     a.load or "?",
                                                     "\n".join(lines[2:])))
        new, n = re.subn(r"<!-- bench:begin -->.*?<!-- bench:end -->",
                         lambda m: block, readme, flags=re.S)
        if n != 1:
            print("bench: README.md has no bench:begin/bench:end markers",
                  file=sys.stderr)
            return 1
        with open(a.readme, "w") as fh:
            fh.write(new)
        print("README.md: Performance section updated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
