#!/usr/bin/env python3
"""Summarizes bench/e2e.sh's raw results: medians per configuration, a table with ratios
against the Linux bridge and OVS (AF_PACKET), and a JSON file.

usage: e2e_report.py RESULTS.tsv OUT.json RUNS SECS OFFLOADS
RESULTS.tsv lines: CONFIG <tab> METRIC <tab> VALUE (METRICs starting with "_" are notes).
"""
import json
import os
import platform
import statistics
import sys

COLUMNS = [
    # metric, header, format, higher is better
    ("offered_mpps", "offered Mpps", "{:.3f}", True),
    ("delivered_mpps", "deliv. Mpps", "{:.3f}", True),
    ("loss_pct", "loss %", "{:.1f}", False),
    ("tcp1_gbps", "TCP1 Gb/s", "{:.2f}", True),
    ("tcp4_gbps", "TCP4 Gb/s", "{:.2f}", True),
    ("rr_p50_us", "rr p50 us", "{:.0f}", False),
    ("rr_p99_us", "rr p99 us", "{:.0f}", False),
    ("cpu_idle_pct", "CPU idle %", "{:.1f}", False),
    ("cpu_6k_rr_pct", "CPU 6k rr %", "{:.1f}", False),
]
BASELINES = ["linux-bridge", "ovs-afpacket"]
RATIO_METRICS = ["delivered_mpps", "tcp1_gbps", "tcp4_gbps", "rr_p50_us", "rr_p99_us"]


def main():
    path, out, runs, secs, offloads = sys.argv[1:6]
    rows = {}
    order = []
    with open(path) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t", 2)
            if len(parts) != 3:
                continue
            cfg, metric, value = parts
            if cfg not in rows:
                rows[cfg] = {"raw": {}, "notes": [], "skipped": None}
                order.append(cfg)
            r = rows[cfg]
            if metric == "_skip":
                r["skipped"] = value
            elif metric in ("_note", "_pps_skip"):
                r["notes"].append(value)
            elif metric.startswith("_"):
                continue
            else:
                try:
                    r["raw"].setdefault(metric, []).append(float(value))
                except ValueError:
                    r["notes"].append(f"{metric}: unparsable {value!r}")
    for r in rows.values():
        r["notes"] = list(dict.fromkeys(r["notes"]))
        r["median"] = {m: statistics.median(v) for m, v in r["raw"].items() if v}

    # The generator's ceiling: a row whose delivered rate is within 10 % of the ceiling, with
    # offered close to delivered, was limited by the generator, not by the switch.
    ceiling = rows.get("generator", {}).get("median", {}).get("offered_mpps")
    for cfg, r in rows.items():
        m = r["median"]
        if ceiling and cfg != "generator" and "offered_mpps" in m and "delivered_mpps" in m:
            off, dlv = m.get("offered_mpps", 0), m["delivered_mpps"]
            if dlv >= 0.9 * ceiling and dlv >= 0.95 * off:
                r["notes"].append("generator-limited")

    head = ["config"] + [h for _, h, _, _ in COLUMNS]
    table = []
    for cfg in order:
        r = rows[cfg]
        if r["skipped"]:
            table.append([cfg] + ["-"] * len(COLUMNS))
            continue
        line = [cfg]
        for metric, _, fmt, _ in COLUMNS:
            v = r["median"].get(metric)
            line.append(fmt.format(v) if v is not None else "")
        table.append(line)
    widths = [max(len(str(x[i])) for x in [head] + table) for i in range(len(head))]
    print()
    print(f"== medians of {runs} run(s) x {secs} s; hosts' offloads {offloads}")
    print("  ".join(h.ljust(w) for h, w in zip(head, widths)))
    for line in table:
        print("  ".join(str(x).rjust(w) if i else str(x).ljust(w) for i, (x, w) in enumerate(zip(line, widths))))
    for cfg in order:
        r = rows[cfg]
        if r["skipped"]:
            print(f"  {cfg}: skipped: {r['skipped']}")
        for n in r["notes"]:
            print(f"  {cfg}: {n}")
        m = r["median"]
        if "mpps_per_core" in m:
            workers = int(m.get("workers", 1))
            cores = "the datapath core" if workers == 1 else f"a core, {workers} workers"
            print(
                f"  {cfg}: {m['delivered_mpps']:.3f} Mpps at {m['worker_cpu_pct']:.0f} % of "
                f"{cores} = {m['mpps_per_core']:.3f} Mpps per core (null source -> sink)"
            )
    one = rows.get("vswitchd-null", {}).get("median")
    for cfg, what in (("vswitchd-null-2w", "2 bridges"), ("vswitchd-null-all", "1 bridge worker=all")):
        two = rows.get(cfg, {}).get("median")
        if one and two and one.get("delivered_mpps") and two.get("delivered_mpps"):
            print(
                f"  2 workers ({what}) / 1 worker: delivered {two['delivered_mpps'] / one['delivered_mpps']:.2f}x, "
                f"per core {two['mpps_per_core'] / one['mpps_per_core']:.2f}x"
            )

    ratios = {}
    for base in BASELINES:
        b = rows.get(base, {}).get("median")
        if not b:
            continue
        print(f"\n== ratios against {base} (x; throughput: higher is better; latency: lower is better)")
        print("  ".join(["config".ljust(widths[0])] + [m.rjust(14) for m in RATIO_METRICS]))
        for cfg in order:
            r = rows[cfg]
            if cfg in ("generator", base) or r["skipped"] or "tcp1_gbps" not in r["median"]:
                continue
            vals = []
            for metric in RATIO_METRICS:
                x, y = r["median"].get(metric), b.get(metric)
                ratio = x / y if x is not None and y else None
                ratios.setdefault(cfg, {}).setdefault(base, {})[metric] = ratio
                vals.append(f"{ratio:.2f}" if ratio is not None else "")
            print("  ".join([cfg.ljust(widths[0])] + [v.rjust(14) for v in vals]))

    doc = {
        "machine": {
            "cores": os.cpu_count(),
            "kernel": platform.release(),
            "cpu": cpu_model(),
        },
        "params": {"runs": int(runs), "secs": float(secs), "host_offloads": offloads},
        "generator_ceiling_mpps": ceiling,
        "rows": [
            {
                "config": cfg,
                "skipped": rows[cfg]["skipped"],
                "notes": rows[cfg]["notes"],
                "median": rows[cfg]["median"],
                "runs": rows[cfg]["raw"],
                "ratios": ratios.get(cfg, {}),
            }
            for cfg in order
        ],
    }
    with open(out, "w") as f:
        json.dump(doc, f, indent=2)
    print(f"\nJSON: {out}")


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    main()
