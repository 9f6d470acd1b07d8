#!/usr/bin/env python3
"""Helpers of bench/vm.sh (VM -> switch -> VM at 64 B: vhost-user, tap, OVS-DPDK).

  vm_report.py window SECS --tx SRC --rx SRC [--pid PID] [--vsctl BIN SOCK PORT_IN PORT_OUT]
      One measurement window: counters of the sending VM (tx) and the receiving VM (rx)
      and the switch process's CPU (utime+stime of all its threads) before and after
      SECS seconds. Prints one JSON object. SRC is dpdk:TELEMETRY_SOCKET (a testpmd's
      port 0, read over DPDK's telemetry socket) or netns:NS:IFACE (a kernel interface,
      read over netlink with `ip -s -j link`). With --vsctl, the switch's own counters of
      the two ports too (frames taken from the sender, put to the receiver, drops).
  vm_report.py busy SECS [PID...]
      Prints which other processes (not the PIDs given, nor their children) used more than
      10 % of a CPU together over SECS, or nothing.
  vm_report.py report RESULTS.tsv OUT.json RUNS SECS LAYOUT
      Medians per configuration, the table with ratios, and the JSON file.
      RESULTS.tsv lines: CONFIG <tab> METRIC <tab> VALUE (METRICs starting with "_" are notes).
"""
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time

from e2e_report import cpu_model  # same directory: the shared CPU label


# ---------------------------------------------------------------- window
def dpdk_stats(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.settimeout(2)
    s.connect(path)
    s.recv(1024)  # greeting
    s.send(b"/ethdev/stats,0")
    reply = json.loads(s.recv(1 << 16))["/ethdev/stats"]
    s.close()
    return {"rx": reply["ipackets"], "tx": reply["opackets"], "tx_err": reply["oerrors"]}


def netns_stats(ns, iface):
    out = subprocess.run(
        ["ip", "-n", ns, "-s", "-j", "link", "show", "dev", iface],
        capture_output=True, check=True, timeout=5,
    ).stdout
    st = json.loads(out)[0]["stats64"]
    return {"rx": st["rx"]["packets"], "tx": st["tx"]["packets"], "tx_err": st["tx"]["dropped"]}


def read_src(spec):
    kind, _, rest = spec.partition(":")
    if kind == "dpdk":
        return dpdk_stats(rest)
    if kind == "netns":
        ns, _, iface = rest.partition(":")
        return netns_stats(ns, iface)
    raise SystemExit(f"unknown source {spec!r}")


def ticks(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except OSError:
        return None


def wakeups(pid):
    """Voluntary context switches of all the process's threads: each is a sleep (and so a
    wake-up) of a thread."""
    n = 0
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches"):
                        n += int(line.split()[1])
    except OSError:
        return None
    return n


def vsctl_ports(binary, sock, ports):
    out = subprocess.run(
        [binary, "--socket", sock, "--json", "stats"], capture_output=True, check=True, timeout=5
    ).stdout
    return {r["port"]: r for r in json.loads(out) if r["port"] in ports}


def window(argv):
    secs = float(argv[0])
    args = {"--tx": None, "--rx": None, "--pid": None}
    vs = None
    i = 1
    while i < len(argv):
        if argv[i] == "--vsctl":
            vs = argv[i + 1 : i + 5]
            i += 5
        else:
            args[argv[i]] = argv[i + 1]
            i += 2
    hz = os.sysconf("SC_CLK_TCK")
    pid = args["--pid"]

    def snap():
        s = {"t": time.monotonic(), "tx": read_src(args["--tx"]), "rx": read_src(args["--rx"])}
        if pid:
            s["ticks"] = ticks(pid)
            s["wakeups"] = wakeups(pid)
        if vs:
            s["vs"] = vsctl_ports(vs[0], vs[1], vs[2:4])
        return s

    a = snap()
    time.sleep(secs)
    b = snap()
    dt = b["t"] - a["t"]
    offered = (b["tx"]["tx"] - a["tx"]["tx"]) / dt
    delivered = (b["rx"]["rx"] - a["rx"]["rx"]) / dt
    out = {
        "offered_mpps": offered / 1e6,
        "delivered_mpps": delivered / 1e6,
        "loss_pct": max(0.0, 100.0 * (1 - delivered / offered)) if offered > 0 else 100.0,
        # Frames the sender's interface refused (tap: the tun queue to the switch was full).
        "sender_refused_mpps": (b["tx"]["tx_err"] - a["tx"]["tx_err"]) / dt / 1e6,
    }
    if pid and a.get("ticks") is not None and b.get("ticks") is not None:
        share = (b["ticks"] - a["ticks"]) / hz / dt
        out["switch_cpu_pct"] = 100.0 * share
        if share > 0:
            out["mpps_per_core"] = delivered / min(share, 1.0) / 1e6
        if a.get("wakeups") is not None and b.get("wakeups") is not None:
            out["switch_sleeps_per_s"] = (b["wakeups"] - a["wakeups"]) / dt
    if vs:
        pin, pout = vs[2], vs[3]
        out["switch_rx_mpps"] = (b["vs"][pin]["rx_packets"] - a["vs"][pin]["rx_packets"]) / dt / 1e6
        out["switch_tx_mpps"] = (b["vs"][pout]["tx_packets"] - a["vs"][pout]["tx_packets"]) / dt / 1e6
        drops = {}
        for p in (pin, pout):
            for reason, n in b["vs"][p].get("drops", {}).items():
                d = n - a["vs"][p].get("drops", {}).get(reason, 0)
                if d:
                    drops[f"{p}:{reason}"] = d / dt / 1e6
        out["switch_drops_mpps"] = drops
    print(json.dumps(out))


# ---------------------------------------------------------------- judge
def judge(argv):
    """What bounded a row: WINDOWS (the row's window JSON lines), REFUSED_PCT (share of
    the sender's tries that found its way into the switch full), WHO (the switch)."""
    path, refused, who = argv[0], float(argv[1]), argv[2]
    try:
        with open(path) as f:
            w = [json.loads(line) for line in f if line.strip()]
    except OSError:
        w = []
    loss = statistics.median(x["loss_pct"] for x in w) if w else 0.0
    if loss > 5:
        print(
            f"the receiver side: {loss:.0f} % of the frames the sender got into the switch "
            f"did not reach VM2 (the switch's drops name where)"
        )
    elif refused <= 1:
        print(
            f"the sender: {who} took every frame VM1 made (VM1's way into the switch was "
            f"full for {refused:.1f} % of its tries); the switch had CPU to spare"
        )
    else:
        print(
            f"the switch: VM1's way into it was full for {refused:.1f} % of VM1's tries, "
            f"and {100 - loss:.1f} % of what it took reached VM2"
        )


# ---------------------------------------------------------------- busy
def busy(argv):
    """Other processes' CPU over SECS: the machine's busy time (/proc/stat) less that of our
    processes (the PIDs given and their children). The noise a shared machine adds."""
    secs = float(argv[0])
    ours = set(argv[1:]) | {str(os.getpid()), str(os.getppid())}

    def machine():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v) - v[3] - v[4]  # all but idle and iowait

    def sample():
        out = {}
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open(f"/proc/{pid}/stat") as f:
                    head, rest = f.read().rsplit(")", 1)
                fields = rest.split()
                out[pid] = (head.split("(", 1)[1], fields[1], int(fields[11]) + int(fields[12]))
            except (OSError, IndexError, ValueError):
                pass
        return out

    m0, a = machine(), sample()
    time.sleep(secs)
    m1, b = machine(), sample()
    hz = os.sysconf("SC_CLK_TCK")
    mine, others = 0, []
    for pid, (name, ppid, t1) in b.items():
        used = t1 - a[pid][2] if pid in a else t1
        if pid in ours or ppid in ours:
            mine += used
        elif used > 0:
            others.append((used, f"{name}({pid})"))
    total = 100.0 * max(0, (m1 - m0) - mine) / hz / secs
    if total >= 10:
        top = ", ".join(f"{n} {100.0 * u / hz / secs:.0f}%" for u, n in sorted(others, reverse=True)[:4])
        print(f"other processes used {total:.0f} % of a CPU meanwhile (among them {top})")


# ---------------------------------------------------------------- report
COLUMNS = [
    # metric, header, format
    ("offered_mpps", "offered Mpps", "{:.3f}"),
    ("delivered_mpps", "deliv. Mpps", "{:.3f}"),
    ("loss_pct", "loss %", "{:.1f}"),
    ("switch_cpu_pct", "switch CPU %", "{:.0f}"),
    ("mpps_per_core", "deliv. Mpps/core", "{:.3f}"),
    ("switch_sleeps_per_s", "switch sleeps/s", "{:.0f}"),
]
RATIOS = [
    ("vswitchd-tap-uring", "vswitchd-tap"),
    ("vswitchd-vhostuser", "vswitchd-tap"),
    ("vswitchd-vhostuser", "ovs-dpdk"),
    ("vswitchd-vhostuser", "ovs-dpdk-sleep"),
]
# The goals, per switch core: vhost-user at least 3x tap, and at least OVS-DPDK.
GOALS = {
    ("vswitchd-vhostuser", "vswitchd-tap"): 3.0,
    ("vswitchd-vhostuser", "ovs-dpdk"): 1.0,
    ("vswitchd-vhostuser", "ovs-dpdk-sleep"): 1.0,
}


def report(argv):
    path, out, runs, secs, layout = argv[:5]
    rows, order = {}, []
    with open(path) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t", 2)
            if len(parts) != 3:
                continue
            cfg, metric, value = parts
            if cfg not in rows:
                rows[cfg] = {"raw": {}, "notes": [], "skipped": None, "limit": None}
                order.append(cfg)
            r = rows[cfg]
            if metric == "_skip":
                r["skipped"] = value
            elif metric == "_note":
                r["notes"].append(value)
            elif metric == "_limit":
                r["limit"] = value
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

    head = ["config"] + [h for _, h, _ in COLUMNS]
    table = []
    for cfg in order:
        r = rows[cfg]
        if r["skipped"]:
            table.append([cfg] + ["-"] * len(COLUMNS))
            continue
        table.append(
            [cfg]
            + [
                fmt.format(r["median"][m]) if m in r["median"] else ""
                for m, _, fmt in COLUMNS
            ]
        )
    widths = [max(len(str(x[i])) for x in [head] + table) for i in range(len(head))]
    print()
    print(f"== medians of {runs} run(s) x {secs} s, 60-byte frames (64 B on the wire); {layout}")
    print("  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(head, widths))))
    for line in table:
        print("  ".join(str(x).rjust(w) if i else str(x).ljust(w) for i, (x, w) in enumerate(zip(line, widths))))
    for cfg in order:
        r = rows[cfg]
        if r["skipped"]:
            print(f"  {cfg}: skipped: {r['skipped']}")
        if r["limit"]:
            print(f"  {cfg}: limited by: {r['limit']}")
        for n in r["notes"]:
            print(f"  {cfg}: {n}")

    ratios = {}
    lines = []
    for num, den in RATIOS:
        a, b = rows.get(num), rows.get(den)
        if not a or not b or a["skipped"] or b["skipped"]:
            continue
        for metric in ("mpps_per_core", "delivered_mpps"):
            x, y = a["median"].get(metric), b["median"].get(metric)
            if x is None or not y:
                continue
            ratio = x / y
            ratios[f"{num}/{den}:{metric}"] = ratio
            goal = GOALS.get((num, den)) if metric == "mpps_per_core" else None
            verdict = ""
            if goal is not None:
                verdict = f"   (goal >= {goal:g}: {'met' if ratio >= goal else 'NOT met'})"
            if goal is not None:
                # A row that lost frames after the switch measured its receiver, not the switch.
                for c in (num, den):
                    if (rows[c]["limit"] or "").startswith("the receiver"):
                        lost = rows[c]["median"].get("loss_pct", 0)
                        verdict += f"; {c} lost {lost:.0f} % after the switch (receiver-bound)"
            lines.append(f"  {num} / {den}  {metric:<15} {ratio:6.2f}{verdict}")
    if lines:
        print("\n== ratios (x, higher is better)")
        print("\n".join(lines))

    doc = {
        "machine": {"cores": os.cpu_count(), "kernel": platform.release(), "cpu": cpu_model()},
        "params": {"runs": int(runs), "secs": float(secs), "layout": layout, "frame_len": 60},
        "rows": [
            {
                "config": cfg,
                "skipped": rows[cfg]["skipped"],
                "limit": rows[cfg]["limit"],
                "notes": rows[cfg]["notes"],
                "median": rows[cfg]["median"],
                "runs": rows[cfg]["raw"],
            }
            for cfg in order
        ],
        "ratios": ratios,
    }
    with open(out, "w") as f:
        json.dump(doc, f, indent=2)
    print(f"\nJSON: {out}")


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in ("window", "report", "busy", "judge"):
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    {"window": window, "report": report, "busy": busy, "judge": judge}[sys.argv[1]](sys.argv[2:])
