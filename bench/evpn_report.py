#!/usr/bin/env python3
"""bench/evpn.sh's helpers: a vsctl probe that runs during each phase, and the report.

usage: evpn_report.py probe VSCTL SOCKET BRIDGE OUT.jsonl (--secs S | --want MACS VTEPS)
                            [--timeout S]
       evpn_report.py report RESULTS.tsv WORKDIR OUT.json
       evpn_report.py sweep OUT.json [OUT.json...]

probe: calls `vsctl version`, `vsctl --json evpn show BRIDGE` and `true` in turn, 20 ms
apart, and writes one JSON line per call: Unix time at the start, which call, milliseconds, whether it
succeeded, and for evpn show the remote MACs (summed over the VNIs) and the VTEPs (summed over
the VNIs' lists). It stops after S seconds (--secs), or once evpn show reports MACS remote MACs
and VTEPS VTEPs (--want; exit 0), or at --timeout (exit 1). Each call is a process start plus
a round trip to vswitchd, as an operator sees it; the idle phase gives the baseline, and
`true` (no vswitchd) what the machine's load alone adds to starting a process.

report: RESULTS.tsv lines are KEY <tab> VALUE (KEY "_note" is a note); WORKDIR holds the
probe files probe-{idle,install,full,withdraw}.jsonl. Prints a table and writes JSON.

sweep: one Markdown row per run (the JSON of `report`), for comparing fleet sizes.
"""
import json
import math
import os
import platform
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_report import cpu_model  # same directory: the shared CPU label

PERIOD = 0.020


def evpn_counts(data):
    vnis = (data or {}).get("vnis") or []
    macs = sum(v.get("remote_macs", 0) for v in vnis)
    vteps = sum(len(v.get("vteps") or []) for v in vnis)
    return macs, vteps


def probe(args):
    vsctl, sock, bridge, out = args[:4]
    rest = args[4:]
    secs = want = None
    timeout = 600.0
    i = 0
    while i < len(rest):
        if rest[i] == "--secs":
            secs = float(rest[i + 1]); i += 2
        elif rest[i] == "--want":
            want = (int(rest[i + 1]), int(rest[i + 2])); i += 3
        elif rest[i] == "--timeout":
            timeout = float(rest[i + 1]); i += 2
        else:
            sys.exit(f"probe: unknown argument {rest[i]}")
    calls = [
        ("version", [vsctl, "--socket", sock, "version"]),
        ("evpn_show", [vsctl, "--socket", sock, "--json", "evpn", "show", bridge]),
        ("true", ["true"]),
    ]
    start = time.time()
    n = 0
    with open(out, "w") as f:
        while True:
            name, cmd = calls[n % len(calls)]
            n += 1
            t = time.time()
            t0 = time.perf_counter()
            try:
                p = subprocess.run(cmd, capture_output=True, timeout=30)
                ok = p.returncode == 0
            except subprocess.TimeoutExpired:
                p, ok = None, False
            ms = (time.perf_counter() - t0) * 1e3
            rec = {"t": round(t, 4), "call": name, "ms": round(ms, 3), "ok": ok}
            if name == "evpn_show" and ok:
                try:
                    rec["macs"], rec["vteps"] = evpn_counts(json.loads(p.stdout))
                except ValueError:
                    rec["ok"] = False
            f.write(json.dumps(rec) + "\n")
            f.flush()
            now = time.time()
            if want and rec.get("macs") == want[0] and rec.get("vteps") == want[1]:
                return 0
            if secs is not None and now - start >= secs:
                return 0
            if now - start >= timeout:
                return 1
            time.sleep(PERIOD)


def percentile(values, p):
    if not values:
        return None
    v = sorted(values)
    return v[max(0, math.ceil(p / 100 * len(v)) - 1)]  # nearest rank


def load_probe(path):
    recs = []
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                try:
                    recs.append(json.loads(line))
                except ValueError:
                    pass
    return recs


def latency(recs):
    out = {}
    for call in ("version", "evpn_show", "true"):
        ms = [r["ms"] for r in recs if r["call"] == call]
        failed = sum(1 for r in recs if r["call"] == call and not r["ok"])
        if ms:
            out[call] = {"n": len(ms), "failed": failed, "p50_ms": percentile(ms, 50),
                         "p99_ms": percentile(ms, 99), "max_ms": max(ms)}
    return out


def converged_at(recs, macs, vteps):
    """Unix time of the first evpn show that reported the target, or None."""
    for r in recs:
        if r["call"] == "evpn_show" and r.get("macs") == macs and r.get("vteps") == vteps:
            return r["t"]
    return None


def num(v):
    try:
        f = float(v)
        return int(f) if f.is_integer() and "." not in v else f
    except ValueError:
        return v


def report(args):
    tsv, work, out = args[:3]
    raw, notes = {}, []
    with open(tsv) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t", 1)
            if len(parts) != 2:
                continue
            if parts[0] == "_note":
                notes.append(parts[1])
            else:
                raw[parts[0]] = num(parts[1])
    g = raw.get
    macs, vteps = g("want_macs", 0), g("want_vteps", 0)
    res = {"params": {k: g(k) for k in ("vteps", "macs_per_vtep", "vnis", "injectors",
                                        "type2_routes", "type3_routes", "gobgpd",
                                        "timeout_secs") if k in raw},
           "machine": {"cores": os.cpu_count(), "kernel": platform.release(),
                       "cpu": cpu_model()},
           "notes": notes}
    res["preload"] = {"secs": g("preload_secs")}
    have_vs = g("vswitchd") == "on"
    probes = {ph: load_probe(os.path.join(work, f"probe-{ph}.jsonl"))
              for ph in ("idle", "install", "full", "withdraw")}
    for ph, target in (("install", (macs, vteps)), ("withdraw", (0, 0))):
        t0 = g(f"{ph}_t0")
        d = {"host_rib_paths": g(f"{ph}_host_paths"),
             "host_rib_timed_out": g(f"{ph}_host_timed_out") == "true"}
        first = g(f"{ph}_host_first_change")
        if t0 is not None and g(f"{ph}_host_at") is not None:
            d["host_rib_secs"] = round(g(f"{ph}_host_at") - t0, 3)
            d["host_first_change_secs"] = first
            # From the first route on: without the session's set-up (gobgpd takes seconds to
            # connect after `neighbor enable`).
            if isinstance(first, (int, float)):
                d["host_rib_from_first_secs"] = round(d["host_rib_secs"] - first, 3)
        if have_vs:
            at = converged_at(probes[ph], *target)
            d["vswitchd_secs"] = round(at - t0, 3) if at and t0 is not None else None
            if d["vswitchd_secs"] is not None and isinstance(first, (int, float)):
                d["vswitchd_from_first_secs"] = round(d["vswitchd_secs"] - first, 3)
            last = [r for r in probes[ph] if r["call"] == "evpn_show" and "macs" in r]
            if last:
                d["vswitchd_remote_macs"] = last[-1]["macs"]
                d["vswitchd_vteps"] = last[-1]["vteps"]
            if d.get("vswitchd_from_first_secs") and d.get("host_rib_from_first_secs"):
                d["vswitchd_vs_host_rib"] = round(
                    d["vswitchd_from_first_secs"] / d["host_rib_from_first_secs"], 2)
            d["vswitchd_cpu_secs"] = g(f"{ph}_vswitchd_cpu")
            for t in ("main", "datapath"):
                d[f"vswitchd_{t}_thread_cpu_secs"] = g(f"{ph}_vswitchd_{t}_cpu")
        d["host_gobgpd_cpu_secs"] = g(f"{ph}_host_cpu")
        res[ph] = d
    # Per MAC and route actually installed (an install that timed out has fewer).
    mem = {k: g(k) for k in sorted(raw) if k.endswith("_kib")}
    installed = res["install"].get("vswitchd_remote_macs")
    if have_vs and g("vs_rss_installed_kib") and g("vs_rss_idle_kib") and installed:
        mem["vswitchd_bytes_per_mac"] = round(
            (g("vs_rss_installed_kib") - g("vs_rss_idle_kib")) * 1024 / installed)
    routes = (g("install_host_paths") or 0) - (g("host_own_paths") or 0)
    if g("host_rss_installed_kib") and g("host_rss_idle_kib") and routes > 0:
        mem["host_gobgpd_bytes_per_route"] = round(
            (g("host_rss_installed_kib") - g("host_rss_idle_kib")) * 1024 / routes)
    res["memory"] = mem
    res["tables"] = {k: g(k) for k in sorted(raw) if k.startswith("fdb_") or
                     k.startswith("counters_") or k.startswith("host_table_") or
                     k.startswith("evpn_show_") or k.startswith("host_api_") or
                     k.startswith("full_")}
    if have_vs:
        lat = {ph: latency(recs) for ph, recs in probes.items()}
        for ph in ("install", "full", "withdraw"):
            for call, s in lat[ph].items():
                base = lat["idle"].get(call)
                if base:
                    s["p99_vs_idle"] = round(s["p99_ms"] / base["p99_ms"], 2)
                    s["max_vs_idle"] = round(s["max_ms"] / base["max_ms"], 2)
        res["vsctl_latency"] = lat
    with open(out, "w") as f:
        json.dump(res, f, indent=2)
        f.write("\n")
    print_table(res, have_vs)
    print(f"\nJSON: {out}")


def fmt(v, spec="{}"):
    if v is None:
        return "-"
    return spec.format(v) if isinstance(v, (int, float)) else str(v)


def print_table(res, have_vs):
    p = res["params"]
    print(f"\n== EVPN at scale: {p.get('vteps')} VTEPs x {p.get('macs_per_vtep')} MACs, "
          f"VNIs {p.get('vnis')}: {p.get('type2_routes')} type-2 + {p.get('type3_routes')} "
          f"type-3 routes, {p.get('injectors')} injector gobgpd, gobgpd {p.get('gobgpd')}")
    print(f"   machine: {res['machine']['cores']} cores, {res['machine']['cpu']}, "
          f"Linux {res['machine']['kernel']}")
    rows = [("injectors preloaded (API, not timed as install)", res["preload"]["secs"], "s")]
    for ph in ("install", "withdraw"):
        d = res.get(ph, {})
        rows.append((f"{ph}: host gobgpd: first route in/out", d.get("host_first_change_secs"),
                     "s"))
        rows.append((f"{ph}: host gobgpd RIB complete, from the first route",
                     d.get("host_rib_from_first_secs"), "s"))
        rows.append((f"{ph}: host RIB paths at the end", d.get("host_rib_paths"), ""))
        if have_vs:
            rows.append((f"{ph}: vswitchd tables complete, from the first route",
                         d.get("vswitchd_from_first_secs"), "s"))
            rows.append((f"{ph}: vswitchd / host RIB time", d.get("vswitchd_vs_host_rib"),
                         "x"))
            rows.append((f"{ph}: vswitchd remote MACs / VTEPs at the end",
                         f"{fmt(d.get('vswitchd_remote_macs'))} / "
                         f"{fmt(d.get('vswitchd_vteps'))}", ""))
            rows.append((f"{ph}: vswitchd CPU (main thread + datapath)",
                         f"{fmt(d.get('vswitchd_cpu_secs'))} "
                         f"({fmt(d.get('vswitchd_main_thread_cpu_secs'))} + "
                         f"{fmt(d.get('vswitchd_datapath_thread_cpu_secs'))})", "s"))
        rows.append((f"{ph}: host gobgpd CPU", d.get("host_gobgpd_cpu_secs"), "s"))
    for k, v in res["memory"].items():
        rows.append((f"memory {k}", v, ""))
    for k, v in res["tables"].items():
        rows.append((f"table {k}", v, ""))
    w = max(len(r[0]) for r in rows)
    print()
    for name, v, unit in rows:
        print(f"   {name:<{w}}  {fmt(v)} {unit}".rstrip())
    if have_vs:
        print(f"\n   vsctl latency (ms)       {'n':>5} {'p50':>8} {'p99':>8} {'max':>8}"
              f" {'p99/idle':>9} {'max/idle':>9}")
        for ph, calls in res["vsctl_latency"].items():
            for call, s in calls.items():
                print(f"   {ph + ' ' + call:<24} {s['n']:>5} {s['p50_ms']:>8.1f} "
                      f"{s['p99_ms']:>8.1f} {s['max_ms']:>8.1f} "
                      f"{fmt(s.get('p99_vs_idle'), '{:.2f}'):>9} "
                      f"{fmt(s.get('max_vs_idle'), '{:.2f}'):>9}"
                      + (f"  ({s['failed']} failed)" if s["failed"] else ""))
    for n in res["notes"]:
        print(f"   note: {n}")


def sweep(paths):
    cols = ["routes", "host RIB s", "vswitchd s", "vswitchd/RIB", "host gobgpd CPU s",
            "vswitchd CPU s (main+dp)", "vswitchd KiB/1k MACs", "gobgpd KiB/1k routes",
            "vsctl p99 ms idle->install", "vsctl max ms idle->install",
            "table full, at rest: vsctl p99/max ms, vswitchd main thread CPU %",
            "withdraw s (RIB/vswitchd)"]
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for path in paths:
        with open(path) as f:
            r = json.load(f)
        p, i, w, m = r["params"], r.get("install", {}), r.get("withdraw", {}), r["memory"]
        lat = r.get("vsctl_latency", {})
        ver = (lat.get("idle", {}).get("version"), lat.get("install", {}).get("version"))
        rest = lat.get("full", {}).get("version")
        done = "" if not i.get("host_rib_timed_out") else " (timed out)"
        row = [
            f"{p['type2_routes'] + p['type3_routes']}",
            fmt(i.get("host_rib_from_first_secs"), "{:.1f}") + done,
            fmt(i.get("vswitchd_from_first_secs"), "{:.1f}"),
            fmt(i.get("vswitchd_vs_host_rib"), "{:.2f}"),
            fmt(i.get("host_gobgpd_cpu_secs"), "{:.1f}"),
            f"{fmt(i.get('vswitchd_cpu_secs'), '{:.1f}')} "
            f"({fmt(i.get('vswitchd_main_thread_cpu_secs'), '{:.1f}')}+"
            f"{fmt(i.get('vswitchd_datapath_thread_cpu_secs'), '{:.1f}')})",
            fmt(m.get("vswitchd_bytes_per_mac") and m["vswitchd_bytes_per_mac"] * 1000 / 1024,
                "{:.0f}"),
            fmt(m.get("host_gobgpd_bytes_per_route") and
                m["host_gobgpd_bytes_per_route"] * 1000 / 1024, "{:.0f}"),
            f"{fmt(ver[0] and ver[0]['p99_ms'], '{:.1f}')} -> "
            f"{fmt(ver[1] and ver[1]['p99_ms'], '{:.1f}')}",
            f"{fmt(ver[0] and ver[0]['max_ms'], '{:.1f}')} -> "
            f"{fmt(ver[1] and ver[1]['max_ms'], '{:.1f}')}",
            f"{fmt(rest and rest['p99_ms'], '{:.1f}')}/{fmt(rest and rest['max_ms'], '{:.1f}')}"
            f", {fmt(r['tables'].get('full_vswitchd_main_cpu_pct'), '{:.0f}')}",
            f"{fmt(w.get('host_rib_from_first_secs'), '{:.2f}')} / "
            f"{fmt(w.get('vswitchd_from_first_secs'), '{:.2f}')}",
        ]
        print("| " + " | ".join(row) + " |")


def main():
    if len(sys.argv) < 2 or sys.argv[1] not in ("probe", "report", "sweep"):
        sys.exit(__doc__)
    if sys.argv[1] == "probe":
        sys.exit(probe(sys.argv[2:]))
    if sys.argv[1] == "sweep":
        sweep(sys.argv[2:])
        return
    report(sys.argv[2:])


if __name__ == "__main__":
    main()
