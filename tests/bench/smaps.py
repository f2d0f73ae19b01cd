#!/usr/bin/env python3
"""Where a process's resident memory is: /proc/PID/smaps summed by mapping.

    python3 tests/bench/smaps.py PID [--json]

Prints the smaps_rollup totals (Rss, Pss, private dirty, ...) and a table
of the mappings grouped by name (shared objects by file name, [heap],
[stack], anonymous mappings), largest Pss first, in KiB.  Figures only.
"""
import json
import os
import sys

FIELDS = ("Rss", "Pss", "Shared_Clean", "Shared_Dirty", "Private_Clean",
          "Private_Dirty", "Anonymous", "Swap")


def rollup(pid):
    out = {}
    with open("/proc/%s/smaps_rollup" % pid) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3 and parts[-1] == "kB":
                out[parts[0].rstrip(":")] = int(parts[1])
    return out


def mappings(pid):
    """Yields (name, perms, {field: KiB}) for each mapping."""
    name = perms = None
    vals = {}
    with open("/proc/%s/smaps" % pid) as f:
        for line in f:
            parts = line.split()
            if not parts:
                continue
            if "-" in parts[0] and not parts[0].endswith(":"):
                if name is not None:
                    yield name, perms, vals
                perms = parts[1]
                name = parts[5] if len(parts) > 5 else "[anon]"
                vals = {}
            elif parts[0].rstrip(":") in FIELDS and len(parts) >= 2:
                vals[parts[0].rstrip(":")] = int(parts[1])
    if name is not None:
        yield name, perms, vals


def group(pid):
    groups = {}
    for name, perms, vals in mappings(pid):
        key = os.path.basename(name) if name.startswith("/") else name
        g = groups.setdefault(key, dict.fromkeys(FIELDS, 0))
        g["maps"] = g.get("maps", 0) + 1
        for k in FIELDS:
            g[k] += vals.get(k, 0)
    return groups


def main():
    pid = sys.argv[1]
    r = rollup(pid)
    g = group(pid)
    if "--json" in sys.argv:
        print(json.dumps({"rollup": r, "groups": g}))
        return
    print("total: Rss %d  Pss %d  Private_Dirty %d  Private_Clean %d  "
          "Shared_Clean %d  Anonymous %d (KiB)" % (
              r.get("Rss", 0), r.get("Pss", 0), r.get("Private_Dirty", 0),
              r.get("Private_Clean", 0), r.get("Shared_Clean", 0),
              r.get("Anonymous", 0)))
    print("%-34s %4s %7s %7s %7s %7s %7s" % ("mapping", "n", "Rss", "Pss",
          "PrivDty", "PrivCln", "ShrCln"))
    for k, v in sorted(g.items(), key=lambda kv: -kv[1]["Pss"]):
        if v["Rss"] == 0:
            continue
        print("%-34s %4d %7d %7d %7d %7d %7d" % (k[:34], v["maps"], v["Rss"],
              v["Pss"], v["Private_Dirty"], v["Private_Clean"],
              v["Shared_Clean"]))


if __name__ == "__main__":
    main()
