#!/usr/bin/env bash
# End-to-end comparison of vswitchd with the Linux bridge and Open vSwitch, in one run.
#
#   host A (netns, eth0) ==veth== TAGa  [ switch under test ]  TAGb ==veth== (eth0, netns) host B
#
# For the tap rows, vswitchd creates two taps and the hosts use them instead (moved into the
# namespaces, as a VM's vNIC would be): vswitchd-tap with io=syscalls, vswitchd-tap-uring with
# io=uring (docs/tap-io.md). Each configuration is a section that prints
# "skipped: REASON" when it cannot start, and the others still run. Per configuration and run:
#   - 64 B frames (60 + FCS): netsniff-ng's trafgen in A sends UDP frames to B as fast as it can
#     for SECS; offered = A's eth0 tx packets/s, delivered = B's eth0 rx packets/s.
#   - TCP: iperf3, 1 stream and 4 streams, Gbit/s received.
#   - UDP request/response (bench/src/bin/udp-rr.rs): 64-byte payload, one outstanding, p50/p99.
#   - The switch's CPU (utime+stime of its process from /proc/PID/stat) idle, and while udp-rr
#     runs at 6000 requests/s. The Linux bridge works in softirq: no process, no figure.
# Rows: generator (trafgen into a veth with nothing behind it: the generator's ceiling),
# linux-bridge, vswitchd-afpacket, vswitchd-afxdp, vswitchd-tap(-uring), ovs-afpacket (netdev
# datapath, AF_PACKET "system" ports), ovs-afxdp, ovs-afpacket-tso (userspace-tso-enable), and
# vswitchd-null (a null source and sink: frames/s per datapath core, no kernel involved), and
# vswitchd-null-2w (the same on two bridges, vswitchd --workers 2: how it scales), and
# vswitchd-null-all (one bridge worker=all on two workers, a source and a sink shard on each:
# how one bridge scales, its replicas sharing what they learn); vswitchd-afpacket-all and
# vswitchd-tap-all are vswitchd-afpacket and vswitchd-tap-uring with the bridge on two workers
# (worker=all, vswitchd --workers 2: two-queue taps).
# Medians over RUNS are printed as a table with ratios against linux-bridge and ovs-afpacket,
# and written as JSON.
#
# Usage: bench/e2e.sh [--runs N] [--secs S] [--quick] [--host-offloads on|off]
#                     [--only CONFIG,CONFIG...] [--json FILE] [--null-macs N]
#   defaults: --runs 3 --secs 10 --host-offloads on --json target/e2e.json; --quick = 1 run, 2 s.
#   --null-macs N: the null row's flows, sources and destinations (default 1024; 524288 makes
#   a 1M-entry table).
# Needs root, iproute2, ethtool, iperf3, python3; trafgen (apt-get install netsniff-ng) for the
# 64 B rows; openvswitch-switch for the OVS rows. Builds the release binaries first.
# Everything it starts is killed by PID, and every namespace and link it made is deleted, on
# exit, failure or Ctrl-C.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

RUNS=3 SECS=10 OFFLOADS=on ONLY="" JSON_OUT="$ROOT/target/e2e.json" NULL_MACS=1024
ALL_CONFIGS="generator linux-bridge vswitchd-afpacket vswitchd-afpacket-all vswitchd-afxdp vswitchd-tap vswitchd-tap-uring vswitchd-tap-all ovs-afpacket ovs-afxdp ovs-afpacket-tso vswitchd-null vswitchd-null-2w vswitchd-null-all"
while [ $# -gt 0 ]; do
    case $1 in
        --runs) RUNS=$2; shift 2 ;;
        --secs) SECS=$2; shift 2 ;;
        --quick) RUNS=1 SECS=2; shift ;;
        --host-offloads) OFFLOADS=$2; shift 2 ;;
        --only) ONLY=${2//,/ }; shift 2 ;;
        --json) JSON_OUT=$2; shift 2 ;;
        --null-macs) NULL_MACS=$2; shift 2 ;;
        -h|--help) sed -n '2,31p' "$0"; exit 0 ;;
        *) echo "e2e: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
case $OFFLOADS in on|off) ;; *) echo "e2e: --host-offloads on|off" >&2; exit 2 ;; esac
[ "$(id -u)" = 0 ] || { echo "e2e: run as root (namespaces, veths, taps)" >&2; exit 2; }
for t in ip ethtool iperf3 python3 bc; do
    command -v $t >/dev/null || { echo "e2e: $t is missing" >&2; exit 2; }
done

echo "== building release binaries"
cargo build --release --bins -q || exit 1
BIN=$ROOT/target/release
TAG="vse$$"
A="$TAG-a" B="$TAG-b"
VA="${TAG}a" VB="${TAG}b"
MAC_A=02:78:00:00:00:01 MAC_B=02:78:00:00:00:02
IP_A=10.78.0.1 IP_B=10.78.0.2
WORK=$(mktemp -d /tmp/vswitch-e2e.XXXXXX)
RES=$WORK/results.tsv
: >"$RES"
PIDS=()
HZ=$(getconf CLK_TCK)

# ---------------------------------------------------------------- cleanup
cleanup() {
    local p
    for p in "${PIDS[@]}"; do
        kill "$p" 2>/dev/null
    done
    sleep 0.2
    for p in "${PIDS[@]}"; do
        kill -9 "$p" 2>/dev/null
    done
    ip netns del "$A" 2>/dev/null
    ip netns del "$B" 2>/dev/null
    for l in "$VA" "$VB" "${TAG}br" "${TAG}ta" "${TAG}tb" "${TAG}ovs"; do
        ip link del "$l" 2>/dev/null
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'echo "e2e: interrupted" >&2; exit 130' INT TERM

record() { printf '%s\t%s\t%s\n' "$CONFIG" "$1" "$2" >>"$RES"; }
skip() {
    echo "   skipped: $1"
    record _skip "$1"
}
note() {
    echo "   note: $1"
    record _note "$1"
}

# ---------------------------------------------------------------- topology
for ns in "$A" "$B"; do
    ip netns add "$ns"
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.default.disable_ipv6=1
    ip -n "$ns" link set lo up
done
sysctl -qw "net.ipv6.conf.default.disable_ipv6=1" 2>/dev/null || true
ip link add "$VA" type veth peer name eth0 netns "$A" || exit 1
ip link add "$VB" type veth peer name eth0 netns "$B" || exit 1
for l in "$VA" "$VB"; do
    sysctl -qw "net.ipv6.conf.$l.disable_ipv6=1" 2>/dev/null
    ip link set "$l" up
done

# Puts the hosts' addresses on IF_A / IF_B (eth0, or the taps), with fixed MACs, permanent
# neighbor entries (no ARP in the measurements) and the chosen offloads.
hosts_on() {
    IF_A=$1 IF_B=$2
    local ns ifc mac ip peer peer_mac
    for ns in "$A" "$B"; do
        if [ "$ns" = "$A" ]; then ifc=$IF_A mac=$MAC_A ip=$IP_A peer=$IP_B peer_mac=$MAC_B
        else ifc=$IF_B mac=$MAC_B ip=$IP_B peer=$IP_A peer_mac=$MAC_A; fi
        ip -n "$ns" link set "$ifc" address "$mac"
        ip -n "$ns" addr flush dev "$ifc"
        ip -n "$ns" addr add "$ip/24" dev "$ifc"
        ip -n "$ns" link set "$ifc" up
        ip -n "$ns" neigh replace "$peer" lladdr "$peer_mac" dev "$ifc" nud permanent
        if [ "$OFFLOADS" = on ]; then
            ip netns exec "$ns" ethtool -K "$ifc" tx on tso on gso on gro on >/dev/null 2>&1
        else
            ip netns exec "$ns" ethtool -K "$ifc" tx off tso off gso off >/dev/null 2>&1
        fi
    done
}
hosts_off() {
    ip -n "$A" addr flush dev "$IF_A" 2>/dev/null
    ip -n "$B" addr flush dev "$IF_B" 2>/dev/null
}

# ---------------------------------------------------------------- measurements
median() { sort -g | awk '{v[NR]=$1} END {if (NR) print v[int((NR+1)/2)]}'; }
counter() { ip netns exec "$1" cat "/sys/class/net/$2/statistics/$3"; }
now() { date +%s.%N; }
ticks_of() { # utime+stime of a process, all threads
    [ -r "/proc/$1/stat" ] || { echo 0; return; }
    sed 's/.*) //' "/proc/$1/stat" | awk '{print $12+$13}'
}

TRAFGEN_CONF=$WORK/udp60.cfg
cat >"$TRAFGEN_CONF" <<EOF
{
  $(echo $MAC_B | sed 's/\([0-9a-f]\{2\}\)/0x\1/g; s/:/, /g'),
  $(echo $MAC_A | sed 's/\([0-9a-f]\{2\}\)/0x\1/g; s/:/, /g'),
  0x08, 0x00,
  0x45, 0x00, 0x00, 0x2e, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, csumip(14, 33),
  10, 78, 0, 1, 10, 78, 0, 2,
  0x04, 0x00, 0x00, 0x09, 0x00, 0x1a, 0x00, 0x00,
  fill(0x00, 18)
}
EOF

# 64 B frames A -> B for SECS; records offered and delivered Mpps and loss.
measure_pps() {
    if ! command -v trafgen >/dev/null; then
        record _pps_skip "trafgen missing (apt-get install netsniff-ng)"
        return
    fi
    local tx0 rx0 tx1 rx1 t0 t1
    tx0=$(counter "$A" "$IF_A" tx_packets); rx0=$(counter "$B" "$IF_B" rx_packets)
    t0=$(now)
    timeout -s INT "$SECS" ip netns exec "$A" trafgen --dev "$IF_A" --conf "$TRAFGEN_CONF" \
        --cpus 1 --num 0 >/dev/null 2>&1
    t1=$(now)
    sleep 0.3
    tx1=$(counter "$A" "$IF_A" tx_packets); rx1=$(counter "$B" "$IF_B" rx_packets)
    python3 - "$tx0" "$tx1" "$rx0" "$rx1" "$t0" "$t1" >>"$WORK/pps.$$" <<'EOF'
import sys
tx0, tx1, rx0, rx1 = (int(x) for x in sys.argv[1:5])
secs = float(sys.argv[6]) - float(sys.argv[5])
off, dlv = (tx1 - tx0) / secs / 1e6, (rx1 - rx0) / secs / 1e6
loss = 100.0 * (1 - (rx1 - rx0) / (tx1 - tx0)) if tx1 > tx0 else 100.0
print(f"{off:.4f} {dlv:.4f} {max(loss, 0.0):.2f}")
EOF
    read -r off dlv loss <"$WORK/pps.$$"
    rm -f "$WORK/pps.$$"
    record offered_mpps "$off"
    if [ "$CONFIG" != generator ]; then
        record delivered_mpps "$dlv"
        record loss_pct "$loss"
    fi
}

# iperf3 A -> B with $1 streams; records tcpN_gbps.
measure_tcp() {
    local streams=$1 port out
    port=$((5300 + streams))
    spawn ip netns exec "$B" iperf3 -s -1 -p "$port" >/dev/null 2>&1
    local srv=$LAST_PID
    sleep 0.3
    out=$(timeout $((SECS + 20)) ip netns exec "$A" iperf3 -c "$IP_B" -p "$port" -P "$streams" \
        -t "$SECS" --connect-timeout 3000 -J 2>/dev/null |
        python3 -c 'import json,sys
try: print(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9)
except Exception: print(0)')
    stop_pid "$srv"
    record "tcp${streams}_gbps" "${out:-0}"
}

# UDP request/response for SECS; records p50/p99 (microseconds).
measure_rr() {
    spawn ip netns exec "$B" "$BIN/udp-rr" server "$IP_B:5400" --idle-secs $((SECS + 10))
    local srv=$LAST_PID out
    sleep 0.3
    out=$(ip netns exec "$A" "$BIN/udp-rr" client "$IP_B:5400" --secs "$SECS")
    stop_pid "$srv"
    local p50 p99
    read -r p50 p99 < <(echo "$out" | python3 -c 'import json,sys
try: d = json.load(sys.stdin); print(d["p50_us"] or "-", d["p99_us"] or "-")
except Exception: print("- -")')
    if [ "$p50" = - ]; then
        note "UDP request/response: no replies"
    else
        record rr_p50_us "$p50"
        record rr_p99_us "$p99"
    fi
}

# CPU of process $1 (percent of one core) idle, then under 6000 requests/s.
measure_cpu() {
    local pid=$1 t0 t1 w0 w1 out window
    window=$(( SECS < 5 ? SECS : 5 ))
    sleep 1
    t0=$(ticks_of "$pid"); w0=$(now); sleep "$window"; t1=$(ticks_of "$pid"); w1=$(now)
    record cpu_idle_pct "$(echo "($t1 - $t0) * 100 / $HZ / ($w1 - $w0)" | bc -l)"
    spawn ip netns exec "$B" "$BIN/udp-rr" server "$IP_B:5401" --idle-secs $((SECS + 10))
    local srv=$LAST_PID
    sleep 0.3
    t0=$(ticks_of "$pid"); w0=$(now)
    out=$(ip netns exec "$A" "$BIN/udp-rr" client "$IP_B:5401" --secs "$SECS" --rate 6000)
    t1=$(ticks_of "$pid"); w1=$(now)
    stop_pid "$srv"
    record cpu_6k_rr_pct "$(echo "($t1 - $t0) * 100 / $HZ / ($w1 - $w0)" | bc -l)"
    record rr_6k_rate "$(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["rate"])')"
}

# Every figure of a configuration whose switch is up; $1: switch PID ("" for the kernel).
measure_all() {
    local pid=$1 r
    # A first exchange so every switch has learned both MACs.
    ip netns exec "$A" ping -c 2 -i 0.2 -W 1 "$IP_B" >/dev/null 2>&1 ||
        note "ping A -> B failed before measuring"
    for r in $(seq "$RUNS"); do
        echo "   run $r/$RUNS"
        measure_pps
        measure_tcp 1
        measure_tcp 4
        measure_rr
        if [ -n "$pid" ]; then measure_cpu "$pid"; fi
    done
}

# ---------------------------------------------------------------- vswitchd
VS_PID=""
vs_start() { # $@: extra options of `vsctl bridge add br0`
    rm -rf "$WORK/vs"
    mkdir -p "$WORK/vs"
    # shellcheck disable=SC2086 # VS_ARGS: extra daemon options, word-split on purpose
    spawn "$BIN/vswitchd" --socket "$WORK/vs/sock" --state-dir "$WORK/vs/state" ${VS_ARGS:-} \
        >>"$WORK/vswitchd.log" 2>&1
    VS_PID=$LAST_PID
    for _ in $(seq 50); do [ -S "$WORK/vs/sock" ] && break; sleep 0.1; done
    vsctl bridge add br0 "$@" >/dev/null
}
vs_stop() { [ -n "$VS_PID" ] && stop_pid "$VS_PID"; VS_PID=""; }
vsctl() { "$BIN/vsctl" --socket "$WORK/vs/sock" "$@" 2>&1 >/dev/null; }
vsctl_json() { "$BIN/vsctl" --socket "$WORK/vs/sock" --json "$@"; }

# vswitchd with the root-side veth ends as ports of type $1; $2 "all": vswitchd --workers 2
# and the bridge on both workers (worker=all), each port's flows spread over them.
run_vswitchd_veth() {
    local type=$1 err
    if [ "${2:-}" = all ]; then
        VS_ARGS="--workers 2" vs_start worker=all
    else
        vs_start
    fi
    if ! err=$(vsctl port add br0 a "type=$type" "iface=$VA") ||
        ! err=$(vsctl port add br0 b "type=$type" "iface=$VB"); then
        skip "vsctl port add type=$type failed: $(echo "$err" | tail -1)"
        vs_stop
        return
    fi
    hosts_on eth0 eth0
    sleep 0.5
    measure_all "$VS_PID"
    hosts_off
    vs_stop
}

run_vswitchd_tap() { # $1: the ports' io= (syscalls or uring); $2 "all": as run_vswitchd_veth
    local err io=$1
    if [ "${2:-}" = all ]; then
        VS_ARGS="--workers 2" vs_start worker=all
    else
        vs_start
    fi
    if ! err=$(vsctl port add br0 "${TAG}ta" type=tap "io=$io") ||
        ! err=$(vsctl port add br0 "${TAG}tb" type=tap "io=$io"); then
        skip "vsctl port add type=tap io=$io failed: $(echo "$err" | tail -1)"
        vs_stop
        return
    fi
    ip link set "${TAG}ta" netns "$A" && ip link set "${TAG}tb" netns "$B" || {
        skip "could not move the taps into the hosts' namespaces"
        vs_stop
        return
    }
    ip -n "$A" link set eth0 down; ip -n "$B" link set eth0 down
    hosts_on "${TAG}ta" "${TAG}tb"
    sleep 0.5
    measure_all "$VS_PID"
    hosts_off
    vs_stop
    ip -n "$A" link set eth0 up; ip -n "$B" link set eth0 up
}

# A null source and a null sink: frames/s through the daemon's own loop, per datapath core.
# $1 workers (vswitchd --workers): one bridge per worker, each with its own source and sink,
# so the row shows how the figure scales with datapath threads; the CPU is summed over them,
# and the per-core figure is the delivered rate over the cores they used.
# $2 "all": one bridge on every worker (worker=all) instead, whose source and sink have a
# shard on each worker.
run_vswitchd_null() {
    local workers=${1:-1} err r w table=$((2 * NULL_MACS)) bridges=${1:-1} spread=""
    [ $table -lt 65536 ] && table=65536
    if [ "${2:-}" = all ]; then bridges=1; spread=worker=all; fi
    # shellcheck disable=SC2086 # $spread: one option or none
    VS_ARGS="--workers $workers" vs_start "mac_table_size=$table" $spread
    for w in $(seq 1 $((bridges - 1))); do
        vsctl bridge add "br$w" "mac_table_size=$table" >/dev/null
    done
    for w in $(seq 0 $((bridges - 1))); do
        if ! err=$(vsctl port add "br$w" "sink$w" type=null role=sink "learn_macs=$NULL_MACS"); then
            skip "vsctl port add type=null failed: $(echo "$err" | tail -1)"
            vs_stop
            return
        fi
    done
    sleep 0.5
    for w in $(seq 0 $((bridges - 1))); do
        vsctl port add "br$w" "gen$w" type=null role=source "flows=$NULL_MACS" frame_len=60 >/dev/null
    done
    local stats="" t
    for t in /proc/"$VS_PID"/task/*; do
        grep -q '^vswitch-dp[0-9]*$' "$t/comm" 2>/dev/null && stats="$stats,$t/stat"
    done
    for r in $(seq "$RUNS"); do
        echo "   run $r/$RUNS"
        python3 - "$BIN/vsctl" "$WORK/vs/sock" "${stats#,}" "$SECS" "$HZ" >"$WORK/null.out" <<'EOF'
import json, subprocess, sys, time
vsctl, sock, secs, hz = sys.argv[1], sys.argv[2], float(sys.argv[4]), int(sys.argv[5])
stats = sys.argv[3].split(",")
def tx():
    out = subprocess.run([vsctl, "--socket", sock, "--json", "stats"], capture_output=True, check=True).stdout
    return sum(r["tx_packets"] for r in json.loads(out) if r["port"].startswith("sink"))
def ticks():
    total = 0
    for stat in stats:
        f = open(stat).read().rsplit(")", 1)[1].split()
        total += int(f[11]) + int(f[12])
    return total
n0, c0, t0 = tx(), ticks(), time.time()
time.sleep(secs)
n1, c1, t1 = tx(), ticks(), time.time()
rate = (n1 - n0) / (t1 - t0)
cores = min(max((c1 - c0) / hz / (t1 - t0), 1e-9), len(stats))
print(f"{rate/1e6:.4f} {cores*100:.1f} {rate/cores/1e6:.4f}")
EOF
        read -r mpps share per_core <"$WORK/null.out"
        record delivered_mpps "$mpps"
        record worker_cpu_pct "$share"
        record mpps_per_core "$per_core"
        record workers "$workers"
    done
    vs_stop
}

# ---------------------------------------------------------------- Linux bridge, generator
run_generator() {
    # trafgen into A's eth0 with nothing behind the root-side end: the generator's ceiling.
    hosts_on eth0 eth0
    local r
    for r in $(seq "$RUNS"); do measure_pps; done
    hosts_off
}

run_linux_bridge() {
    ip link add "${TAG}br" type bridge || { skip "cannot create a bridge"; return; }
    ip link set "$VA" master "${TAG}br" && ip link set "$VB" master "${TAG}br"
    ip link set "${TAG}br" up
    hosts_on eth0 eth0
    sleep 1
    measure_all ""
    hosts_off
    ip link del "${TAG}br"
}

# ---------------------------------------------------------------- Open vSwitch
OVS_PIDS=()
ovs() { ovs-vsctl --db="unix:$WORK/ovs/db.sock" --timeout=10 "$@"; }
ovs_start() { # $1: extra other_config (e.g. userspace-tso-enable=true) or ""
    local t
    for t in ovsdb-tool ovsdb-server ovs-vswitchd ovs-vsctl; do
        command -v $t >/dev/null || { skip "$t missing (apt-get install openvswitch-switch)"; return 1; }
    done
    rm -rf "$WORK/ovs"; mkdir -p "$WORK/ovs"
    export OVS_RUNDIR=$WORK/ovs OVS_DBDIR=$WORK/ovs OVS_LOGDIR=$WORK/ovs OVS_SYSCONFDIR=$WORK/ovs
    ovsdb-tool create "$WORK/ovs/conf.db" /usr/share/openvswitch/vswitch.ovsschema >/dev/null ||
        { skip "ovsdb-tool create failed"; return 1; }
    spawn ovsdb-server "$WORK/ovs/conf.db" --remote="punix:$WORK/ovs/db.sock" \
        --unixctl="$WORK/ovs/ovsdb.ctl" --log-file="$WORK/ovs/ovsdb.log" --no-chdir \
        >/dev/null 2>&1
    OVS_PIDS=("$LAST_PID")
    for _ in $(seq 50); do [ -S "$WORK/ovs/db.sock" ] && break; sleep 0.1; done
    ovs --no-wait init
    [ -n "$1" ] && ovs --no-wait set Open_vSwitch . "other_config:$1"
    spawn ovs-vswitchd "unix:$WORK/ovs/db.sock" --unixctl="$WORK/ovs/vswitchd.ctl" \
        --log-file="$WORK/ovs/vswitchd.log" --no-chdir >/dev/null 2>&1
    OVS_PIDS+=("$LAST_PID")
    OVS_PID=$LAST_PID
    for _ in $(seq 50); do [ -S "$WORK/ovs/vswitchd.ctl" ] && break; sleep 0.1; done
    ovs add-br "${TAG}ovs" -- set bridge "${TAG}ovs" datapath_type=netdev || {
        skip "ovs-vsctl add-br failed: $(tail -3 "$WORK/ovs/vswitchd.log")"; ovs_stop; return 1; }
}
ovs_stop() {
    local p
    for p in "${OVS_PIDS[@]}"; do stop_pid "$p"; done
    OVS_PIDS=()
    ip link del "${TAG}ovs" 2>/dev/null
}

run_ovs() { # $1: port type (system|afxdp), $2: other_config or ""
    local type=$1 extra=$2
    ovs_start "$extra" || return
    if [ "$type" = afxdp ]; then
        local types
        types=$(ovs get Open_vSwitch . iface_types)
        if ! echo "$types" | grep -qw afxdp; then
            skip "this Open vSwitch build has no afxdp port type (iface_types: $types)"
            ovs_stop
            return
        fi
    fi
    local l
    for l in "$VA" "$VB"; do
        if [ "$type" = afxdp ]; then
            ovs add-port "${TAG}ovs" "$l" -- set interface "$l" type=afxdp \
                options:xdp-mode=generic
        else
            ovs add-port "${TAG}ovs" "$l"
        fi || { skip "ovs-vsctl add-port $l failed"; ovs_stop; return; }
    done
    if [ -n "$extra" ]; then note "other_config:$extra"; fi
    hosts_on eth0 eth0
    sleep 1
    measure_all "$OVS_PID"
    hosts_off
    ovs_stop
}

# ---------------------------------------------------------------- main
echo "== $(nproc) cores, kernel $(uname -r); runs=$RUNS secs=$SECS; hosts' offloads $OFFLOADS"
for CONFIG in $ALL_CONFIGS; do
    if [ -n "$ONLY" ] && ! echo " $ONLY " | grep -q " $CONFIG "; then continue; fi
    echo "== $CONFIG"
    record _ran 1
    case $CONFIG in
        generator) run_generator ;;
        linux-bridge) run_linux_bridge ;;
        vswitchd-afpacket) run_vswitchd_veth afpacket ;;
        vswitchd-afpacket-all) run_vswitchd_veth afpacket all ;;
        vswitchd-afxdp) run_vswitchd_veth afxdp ;;
        vswitchd-tap) run_vswitchd_tap syscalls ;;
        vswitchd-tap-uring) run_vswitchd_tap uring ;;
        vswitchd-tap-all) run_vswitchd_tap uring all ;;
        vswitchd-null) run_vswitchd_null 1 ;;
        vswitchd-null-2w) run_vswitchd_null 2 ;;
        vswitchd-null-all) run_vswitchd_null 2 all ;;
        ovs-afpacket) run_ovs system "" ;;
        ovs-afxdp) run_ovs afxdp "" ;;
        ovs-afpacket-tso) run_ovs system "userspace-tso-enable=true" ;;
    esac
done

mkdir -p "$(dirname "$JSON_OUT")"
python3 "$ROOT/bench/e2e_report.py" "$RES" "$JSON_OUT" "$RUNS" "$SECS" "$OFFLOADS"
