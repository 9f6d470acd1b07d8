#!/usr/bin/env bash
# VM -> switch -> VM at 64 B: vswitchd's vhost-user ports against its tap ports and against
# Open vSwitch with DPDK (dpdkvhostuserclient ports), in one run, per switch core.
#
#   VM1 (sender) --[port]--> [ switch under test ] --[port]--> VM2 (receiver)
#
# Rows:
#   vswitchd-vhostuser  two type=vhostuser ports (server mode); each VM is a DPDK testpmd with a
#                       virtio-user NIC (--no-huge): VM1 --forward-mode=txonly, VM2 rxonly.
#   vswitchd-tap        two type=tap ports moved into network namespaces as a VM's vNIC would be;
#                       VM1 is netsniff-ng's trafgen on its tap, VM2 the kernel's receive path.
#                       The ports read and write with plain syscalls (io=syscalls).
#   vswitchd-tap-uring  the same with io=uring: a burst per io_uring_enter (docs/tap-io.md).
#   ovs-dpdk            a private ovsdb-server + Debian's ovs-vswitchd-dpdk, run by its path (the
#                       system's ovs-vswitchd alternative is not touched), DPDK without hugepages,
#                       bridge datapath_type=netdev, two dpdkvhostuserclient ports, NORMAL
#                       (learning); the same testpmd VMs with virtio-user server=1. Its PMD thread
#                       polls all the time, as OVS ships.
#   ovs-dpdk-sleep      the same with other_config:pmd-maxsleep (--ovs-maxsleep, 50 us): the PMD
#                       sleeps when its queues run dry, as vswitchd's loop does.
# A row that cannot start prints "skipped: REASON" (the real error) and the others still run.
# Frames are 60 bytes (64 on the wire with the FCS), UDP, one flow, to VM2's MAC, which every
# switch has learned before the windows (VM2 sends one burst first, the tap host a ping): they
# are forwarded as known unicast, never flooded.
# Per run, a window of SECS: offered = VM1's transmitted frames/s (testpmd's port counter over
# DPDK's telemetry socket; the tap's tx counter), delivered = VM2's received frames/s, the
# switch's CPU = utime+stime of its whole process (/proc/PID/stat) over the window, delivered
# frames/s per switch core = delivered / that CPU share, and how often the switch's threads went
# to sleep. Medians over RUNS. Beside each window, the CPU other processes used is checked and
# noted (a shared machine); --wait-quiet S waits up to S s for a quiet moment before each row.
# CPU layout (--cpus SWITCH,VM1,VM2, default 0,0,1), every process pinned with taskset (a testpmd's
# two lcores both on its CPU): the switch shares its CPU with the sender, whose full ring only
# pushes back, and the receiver has the other CPU, so a switch that keeps up loses nothing at the
# receiver. Two busy-polling VMs on one CPU lose most frames at the receiver's ring whichever
# switch runs (try --cpus 1,0,0). "limited by" says what bounded each row: the sender (the
# switch took every frame it made: the generator's limit), the switch (the sender's ring or tap
# queue was full), or the receiver side (frames lost after the switch).
#
# --rounds N runs the chosen rows N times in turn (A B A B ...), RUNS windows each time, so that
# an A/B on a shared, noisy machine sees the same noise on both sides; medians are over all
# RUNS x N windows of a row.
#
# Usage: bench/vm.sh [--runs N] [--secs S] [--quick] [--only CONFIG,CONFIG...] [--json FILE]
#                    [--cpus SWITCH,VM1,VM2] [--queue-size N] [--ovs-maxsleep US]
#                    [--wait-quiet S] [--rounds N]
#   defaults: --runs 3 --secs 5 --json target/vm.json --cpus 0,0,1 --queue-size 1024 (the
#   testpmd VMs' virtio rings) --ovs-maxsleep 50 --wait-quiet 0 --rounds 1; --quick = 1 run,
#   2 s.
# Needs root, python3, iproute2, dpdk-testpmd (apt-get install dpdk), trafgen (netsniff-ng),
# openvswitch-switch-dpdk for the OVS rows. Builds the release binaries first.
# Everything it starts is killed by PID, and every namespace, tap, socket and DPDK runtime
# directory (/var/run/dpdk/PREFIX) it made is deleted, on exit, failure or Ctrl-C
# (KEEP_WORK=1 keeps the work directory with every process's log, for a look).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

RUNS=3 SECS=5 ONLY="" JSON_OUT="$ROOT/target/vm.json" CPUS="0,0,1" QSIZE=1024
OVS_MAXSLEEP=50 QUIET=0 ROUNDS=1
ALL_CONFIGS="vswitchd-vhostuser vswitchd-tap vswitchd-tap-uring ovs-dpdk ovs-dpdk-sleep"
while [ $# -gt 0 ]; do
    case $1 in
        --runs) RUNS=$2; shift 2 ;;
        --secs) SECS=$2; shift 2 ;;
        --quick) RUNS=1 SECS=2; shift ;;
        --only) ONLY=${2//,/ }; shift 2 ;;
        --json) JSON_OUT=$2; shift 2 ;;
        --cpus) CPUS=$2; shift 2 ;;
        --queue-size) QSIZE=$2; shift 2 ;;
        --ovs-maxsleep) OVS_MAXSLEEP=$2; shift 2 ;;
        --wait-quiet) QUIET=$2; shift 2 ;;
        --rounds) ROUNDS=$2; shift 2 ;;
        -h|--help) sed -n '2,53p' "$0"; exit 0 ;;
        *) echo "vm: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
IFS=, read -r SW_CPU VM1_CPU VM2_CPU <<<"$CPUS"
for c in "$SW_CPU" "$VM1_CPU" "$VM2_CPU"; do
    [[ $c =~ ^[0-9]+$ ]] && [ "$c" -lt "$(nproc)" ] ||
        { echo "vm: --cpus SWITCH,VM1,VM2: CPU numbers below $(nproc)" >&2; exit 2; }
done
[[ $RUNS =~ ^[1-9][0-9]*$ && $ROUNDS =~ ^[1-9][0-9]*$ && $SECS =~ ^[0-9]+(\.[0-9]+)?$ && $QSIZE =~ ^[0-9]+$ &&
    $OVS_MAXSLEEP =~ ^[0-9]+$ && $QUIET =~ ^[0-9]+$ ]] ||
    { echo "vm: --runs, --rounds, --secs, --queue-size, --ovs-maxsleep, --wait-quiet take numbers" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "vm: run as root (namespaces, taps, DPDK)" >&2; exit 2; }
for t in ip python3 taskset; do
    command -v $t >/dev/null || { echo "vm: $t is missing" >&2; exit 2; }
done

echo "== building release binaries"
cargo build --release --bins -q || exit 1
BIN=$ROOT/target/release
TAG="vsm$$"
WORK=$(mktemp -d /tmp/vswitch-vm.XXXXXX)
RES=$WORK/results.tsv
: >"$RES"
PIDS=()
HELPERS=()  # the measuring helpers of the current window
PREFIXES=() # DPDK --file-prefix values: /var/run/dpdk/PREFIX is removed on exit
MAC1=02:79:00:00:00:01 MAC2=02:79:00:00:00:02
IP1=10.79.0.1 IP2=10.79.0.2
FRAME=60
WARMUP=2
OVS_DPDK_BIN=/usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk
LAYOUT="switch on CPU $SW_CPU, VM1 (sender) on CPU $VM1_CPU, VM2 (receiver) on CPU $VM2_CPU"

# ---------------------------------------------------------------- cleanup
cleanup() {
    local p
    for p in "${HELPERS[@]}" "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    for _ in $(seq 20); do
        local alive=0
        for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
        [ $alive = 0 ] && break
        sleep 0.1
    done
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
    ip netns del "$TAG-1" 2>/dev/null
    ip netns del "$TAG-2" 2>/dev/null
    ip link del "${TAG}t1" 2>/dev/null
    ip link del "${TAG}t2" 2>/dev/null
    ip link del "${TAG}br" 2>/dev/null || true
    for p in "${PREFIXES[@]}"; do
        [ -n "$p" ] && rm -rf "/var/run/dpdk/$p"
    done
    [ -n "${KEEP_WORK:-}" ] && { echo "vm: kept $WORK"; return; }
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'echo "vm: interrupted" >&2; exit 130' INT TERM

record() { printf '%s\t%s\t%s\n' "$CONFIG" "$1" "$2" >>"$RES"; }
skip() { echo "   skipped: $1"; record _skip "$1"; }
note() { echo "   note: $1"; record _note "$1"; }
limit() { echo "   limited by: $1"; record _limit "$1"; }

# One window of SECS: $1 tx source, $2 rx source, $3 switch PID, then optional
# "--vsctl ..." arguments; records every figure.
measure() {
    local tx=$1 rx=$2 pid=$3 r out
    shift 3
    for r in $(seq "$RUNS"); do
        # Beside the window: what else ran on the machine meanwhile. Both in the background,
        # waited for with `wait`, which a signal interrupts at once (the trap runs then).
        python3 "$ROOT/bench/vm_report.py" busy "$SECS" $$ "${PIDS[@]}" >"$WORK/busy" 2>/dev/null &
        HELPERS=("$!")
        python3 "$ROOT/bench/vm_report.py" window "$SECS" --tx "$tx" --rx "$rx" \
            --pid "$pid" "$@" >"$WORK/window" &
        HELPERS+=("$!")
        wait "${HELPERS[1]}"
        local rc=$?
        wait "${HELPERS[0]}"
        HELPERS=()
        out=$(cat "$WORK/window")
        [ -s "$WORK/busy" ] && note "run $r: $(cat "$WORK/busy")"
        [ $rc = 0 ] || { note "run $r: measuring failed"; continue; }
        echo "$out" >>"$WORK/$CONFIG.windows"
        python3 - "$out" "$CONFIG" >>"$RES" <<'EOF'
import json, sys
d, cfg = json.loads(sys.argv[1]), sys.argv[2]
for k, v in d.items():
    if isinstance(v, (int, float)) and v is not None:
        print(f"{cfg}\t{k}\t{v}")
for k, v in (d.get("switch_drops_mpps") or {}).items():
    print(f"{cfg}\tdrop:{k}\t{v}")
EOF
        python3 - "$out" "$r" <<'EOF'
import json, sys
d = json.loads(sys.argv[1])
pc = d.get("mpps_per_core")
print(f"   run {sys.argv[2]}: offered {d['offered_mpps']:.3f} Mpps, delivered {d['delivered_mpps']:.3f}, "
      f"switch CPU {d.get('switch_cpu_pct', 0):.0f} % ({d.get('switch_sleeps_per_s', 0):.0f} sleeps/s), "
      + (f"{pc:.3f} Mpps per switch core" if pc else "no switch CPU"))
drops = d.get("switch_drops_mpps") or {}
if drops:
    print("      switch drops (Mpps): " + ", ".join(f"{k} {v:.3f}" for k, v in drops.items()))
EOF
    done
}

# With --wait-quiet S: waits up to S seconds for a moment when other processes use less than
# 10 % of a CPU (checked over 2 s at a time), so a row does not start under someone's build.
quiet_wait() {
    [ "$QUIET" -gt 0 ] || return 0
    local start=$SECONDS b
    while [ $((SECONDS - start)) -lt "$QUIET" ]; do
        b=$(python3 "$ROOT/bench/vm_report.py" busy 2 $$ 2>/dev/null)
        [ -z "$b" ] && return 0
        echo "   waiting for a quiet machine: $b"
    done
    note "started anyway after waiting ${QUIET} s for a quiet machine"
}

# ---------------------------------------------------------------- testpmd VMs
# vm_start NAME CPU tx|rx SOCKET client|server OWN_MAC PEER_MAC; sets VM_PID and VM_TEL.
# tx: --forward-mode=txonly to PEER_MAC. rx: rxonly, after one burst to PEER_MAC (--tx-first)
# so that the switch learns OWN_MAC. "server" makes virtio-user serve the socket (server=1).
vm_start() {
    local name=$1 cpu=$2 role=$3 sock=$4 side=$5 mac=$6 peer=$7
    local prefix="${TAG}$name"
    PREFIXES+=("$prefix")
    local vdev="net_virtio_user0,path=$sock,mac=$mac,queue_size=$QSIZE"
    [ "$side" = server ] && vdev+=",server=1"
    local mode=(--forward-mode=txonly)
    [ "$role" = rx ] && mode=(--forward-mode=rxonly --tx-first)
    # --stats-period keeps testpmd running with stdin closed (until SIGTERM); 3600: quiet.
    spawn taskset -c "$cpu" dpdk-testpmd --no-huge --no-pci -m 512 --file-prefix "$prefix" \
        --lcores "0@$cpu,1@$cpu" --vdev "$vdev" -- --total-num-mbufs=16384 "${mode[@]}" \
        --txpkts=$FRAME --eth-peer=0,"$peer" --stats-period 3600 -a \
        </dev/null >"$WORK/$name.log" 2>&1
    VM_PID=$LAST_PID
    VM_TEL=/var/run/dpdk/$prefix/dpdk_telemetry.v2
}

# Waits (bounded) for a testpmd's telemetry socket; $1 socket, $2 PID.
vm_wait() {
    for _ in $(seq 100); do
        [ -S "$1" ] && return 0
        kill -0 "$2" 2>/dev/null || break
        sleep 0.1
    done
    return 1
}

# Records what bounded the row: $1 the share (%) of the sender's tries that found its way into
# the switch full, $2 the switch's name.
judge() {
    limit "$(python3 "$ROOT/bench/vm_report.py" judge "$WORK/$CONFIG.windows" "$1" "$2")"
}

# Stops a sending testpmd and judges the row: testpmd's final forward statistics count the
# frames its ring had no room for as TX-dropped.
vm_stop_sender() { # $1 PID, $2 log, $3 switch name
    local pid=$1 log=$2 who=$3 sent refused
    stop_pid "$pid"
    read -r sent refused < <(awk '/Accumulated forward statistics/ {acc=1}
        acc && /TX-packets/ {print $2, $4; exit}' "$log")
    if [ -z "${sent:-}" ]; then
        note "no final statistics from VM1's testpmd"
        return
    fi
    record gen_sent_total "$sent"
    record gen_refused_total "$refused"
    judge "$(python3 -c "s,r=$sent,$refused; print(100*r/(s+r) if s+r else 0)")" "$who"
}

# ---------------------------------------------------------------- vswitchd
VS_PID=""
vs_start() {
    rm -rf "$WORK/vs"
    mkdir -p "$WORK/vs"
    spawn taskset -c "$SW_CPU" "$BIN/vswitchd" --socket "$WORK/vs/sock" \
        --state-dir "$WORK/vs/state" >>"$WORK/vswitchd.log" 2>&1
    VS_PID=$LAST_PID
    for _ in $(seq 50); do [ -S "$WORK/vs/sock" ] && break; sleep 0.1; done
    vsctl bridge add br0 aging=86400 >/dev/null
}
vs_stop() { [ -n "$VS_PID" ] && stop_pid "$VS_PID"; VS_PID=""; }
# shellcheck disable=SC2069 # stderr (the error) to the caller, stdout away
vsctl() { "$BIN/vsctl" --socket "$WORK/vs/sock" "$@" 2>&1 >/dev/null; }
vsctl_json() { "$BIN/vsctl" --socket "$WORK/vs/sock" --json "$@"; }
port_state() {
    vsctl_json port show "$1" 2>/dev/null |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["details"]["vhostuser"]["state"])' 2>/dev/null
}
fdb_port_of() { # $1 MAC: the port the bridge has it on, or nothing
    vsctl_json fdb show br0 2>/dev/null | python3 -c 'import json,sys
mac = sys.argv[1]
for e in json.load(sys.stdin):
    if e.get("mac", "").lower() == mac: print(e.get("port", "")); break' "$1" 2>/dev/null
}

run_vswitchd_vhostuser() {
    if ! command -v dpdk-testpmd >/dev/null; then
        skip "dpdk-testpmd missing (apt-get install dpdk)"
        return
    fi
    local err
    vs_start
    if ! err=$(vsctl port add br0 vm1 type=vhostuser "socket=$WORK/vm1.sock") ||
        ! err=$(vsctl port add br0 vm2 type=vhostuser "socket=$WORK/vm2.sock"); then
        skip "vsctl port add type=vhostuser failed: $(echo "$err" | tail -1)"
        vs_stop
        return
    fi
    vm_start vm2 "$VM2_CPU" rx "$WORK/vm2.sock" client "$MAC2" "$MAC1"
    local pid2=$VM_PID tel2=$VM_TEL
    vm_start vm1 "$VM1_CPU" tx "$WORK/vm1.sock" client "$MAC1" "$MAC2"
    local pid1=$VM_PID tel1=$VM_TEL
    if ! vm_wait "$tel2" "$pid2" || ! vm_wait "$tel1" "$pid1"; then
        skip "testpmd did not start: $(grep -h -m1 -i -E 'error|fail|cannot' "$WORK"/vm[12].log)"
        stop_pid "$pid1"; stop_pid "$pid2"; vs_stop
        return
    fi
    local s1="" s2=""
    for _ in $(seq 100); do
        s1=$(port_state vm1); s2=$(port_state vm2)
        [ "$s1" = ready ] && [ "$s2" = ready ] && break
        sleep 0.1
    done
    if [ "$s1" != ready ] || [ "$s2" != ready ]; then
        skip "vhost-user ports not ready after 10 s (vm1: $s1, vm2: $s2)"
        stop_pid "$pid1"; stop_pid "$pid2"; vs_stop
        return
    fi
    sleep "$WARMUP"
    local at
    at=$(fdb_port_of "$MAC2")
    if [ "$at" != vm2 ]; then
        note "VM2's MAC not learned (fdb: '${at}'): added as a static entry"
        vsctl fdb add br0 "$MAC2" vm2 >/dev/null
    fi
    measure "dpdk:$tel1" "dpdk:$tel2" "$VS_PID" --vsctl "$BIN/vsctl" "$WORK/vs/sock" vm1 vm2
    vsctl_json port show vm2 >"$WORK/vm2.port.json" 2>/dev/null
    vm_stop_sender "$pid1" "$WORK/vm1.log" "vswitchd"
    stop_pid "$pid2"
    vs_stop
}

# ---------------------------------------------------------------- tap
TRAFGEN_CONF=$WORK/udp60.cfg
hexmac() { echo "$1" | sed 's/\([0-9a-f]\{2\}\)/0x\1/g; s/:/, /g'; }
cat >"$TRAFGEN_CONF" <<EOF
cpu($VM1_CPU): {
  $(hexmac $MAC2),
  $(hexmac $MAC1),
  0x08, 0x00,
  0x45, 0x00, 0x00, 0x2e, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, csumip(14, 33),
  10, 79, 0, 1, 10, 79, 0, 2,
  0x04, 0x00, 0x00, 0x09, 0x00, 0x1a, 0x00, 0x00,
  fill(0x00, 18)
}
EOF

run_vswitchd_tap() { # $1: the ports' io= (syscalls or uring)
    local io=$1
    if ! command -v trafgen >/dev/null; then
        skip "trafgen missing (apt-get install netsniff-ng)"
        return
    fi
    local err ns1="$TAG-1" ns2="$TAG-2" t1="${TAG}t1" t2="${TAG}t2"
    vs_start
    if ! err=$(vsctl port add br0 "$t1" type=tap "io=$io") ||
        ! err=$(vsctl port add br0 "$t2" type=tap "io=$io"); then
        skip "vsctl port add type=tap io=$io failed: $(echo "$err" | tail -1)"
        vs_stop
        return
    fi
    local used
    used=$(vsctl_json port show "$t1" 2>/dev/null |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["details"].get("io", "?"))' 2>/dev/null)
    [ "$used" = "$io" ] || note "asked for io=$io, the port uses io=${used:-?}"
    local ns ifc mac ip peer peer_mac
    for ns in "$ns1" "$ns2"; do
        ip netns add "$ns" || { skip "cannot create namespace $ns"; vs_stop; return; }
        ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
        ip netns exec "$ns" sysctl -qw net.ipv6.conf.default.disable_ipv6=1
    done
    ip link set "$t1" netns "$ns1" && ip link set "$t2" netns "$ns2" ||
        { skip "could not move the taps into the namespaces"; vs_stop; return; }
    for ns in "$ns1" "$ns2"; do
        if [ "$ns" = "$ns1" ]; then ifc=$t1 mac=$MAC1 ip=$IP1 peer=$IP2 peer_mac=$MAC2
        else ifc=$t2 mac=$MAC2 ip=$IP2 peer=$IP1 peer_mac=$MAC1; fi
        ip -n "$ns" link set "$ifc" address "$mac"
        ip -n "$ns" addr add "$ip/24" dev "$ifc"
        ip -n "$ns" link set "$ifc" up
        ip -n "$ns" neigh replace "$peer" lladdr "$peer_mac" dev "$ifc" nud permanent
    done
    sleep 0.5
    # VM2 answers once: the switch learns its MAC.
    ip netns exec "$ns1" ping -c 2 -i 0.2 -W 1 "$IP2" >/dev/null 2>&1 ||
        note "ping VM1 -> VM2 failed before measuring"
    local at
    at=$(fdb_port_of "$MAC2")
    if [ "$at" != "$t2" ]; then
        note "VM2's MAC not learned (fdb: '${at}'): added as a static entry"
        vsctl fdb add br0 "$MAC2" "$t2" >/dev/null
    fi
    spawn taskset -c "$VM1_CPU" ip netns exec "$ns1" trafgen --dev "$t1" --conf "$TRAFGEN_CONF" \
        --cpus $((VM1_CPU + 1)) --num 0 >"$WORK/trafgen.log" 2>&1
    local gen=$LAST_PID
    sleep "$WARMUP"
    if ! kill -0 "$gen" 2>/dev/null; then
        skip "trafgen exited: $(tail -2 "$WORK/trafgen.log")"
        vs_stop
        return
    fi
    measure "netns:$ns1:$t1" "netns:$ns2:$t2" "$VS_PID" --vsctl "$BIN/vsctl" "$WORK/vs/sock" "$t1" "$t2"
    stop_pid "$gen"
    # The tun queue toward the switch refuses what the switch did not take in time.
    judge "$(python3 -c 'import json,sys
w=[json.loads(l) for l in open(sys.argv[1])]
r=sorted(x["sender_refused_mpps"]/max(x["offered_mpps"]+x["sender_refused_mpps"],1e-12) for x in w)
print(100*r[len(r)//2] if r else 0)' "$WORK/$CONFIG.windows" 2>/dev/null || echo 0)" vswitchd
    vs_stop
    ip netns del "$ns1"; ip netns del "$ns2"
}

# ---------------------------------------------------------------- OVS-DPDK
OVS_PIDS=()
ovs() { ovs-vsctl --db="unix:$WORK/ovs/db.sock" --timeout=10 "$@"; }
ovs_stop() {
    local p
    for p in "${OVS_PIDS[@]}"; do stop_pid "$p"; done
    OVS_PIDS=()
    # The netdev bridge's own port is a persistent tap that outlives ovs-vswitchd.
    ip link del "${TAG}br" 2>/dev/null || true
}

run_ovs_dpdk() { # $1: extra other_config or ""
    local extra=$1 t
    for t in ovsdb-tool ovsdb-server ovs-vsctl dpdk-testpmd; do
        command -v $t >/dev/null || { skip "$t missing"; return; }
    done
    [ -x "$OVS_DPDK_BIN" ] ||
        { skip "$OVS_DPDK_BIN missing (apt-get install openvswitch-switch-dpdk)"; return; }
    rm -rf "$WORK/ovs"; mkdir -p "$WORK/ovs"
    export OVS_RUNDIR=$WORK/ovs OVS_DBDIR=$WORK/ovs OVS_LOGDIR=$WORK/ovs OVS_SYSCONFDIR=$WORK/ovs
    ovsdb-tool create "$WORK/ovs/conf.db" /usr/share/openvswitch/vswitch.ovsschema >/dev/null ||
        { skip "ovsdb-tool create failed"; return; }
    spawn ovsdb-server "$WORK/ovs/conf.db" --remote="punix:$WORK/ovs/db.sock" \
        --unixctl="$WORK/ovs/ovsdb.ctl" --log-file="$WORK/ovs/ovsdb.log" --no-chdir \
        >/dev/null 2>&1
    OVS_PIDS=("$LAST_PID")
    for _ in $(seq 50); do [ -S "$WORK/ovs/db.sock" ] && break; sleep 0.1; done
    local prefix="${TAG}ovs"
    PREFIXES+=("$prefix")
    ovs --no-wait init
    ovs --no-wait set Open_vSwitch . other_config:dpdk-init=true \
        "other_config:dpdk-extra=--no-huge -m 2048 --legacy-mem --no-pci --file-prefix $prefix" \
        "other_config:pmd-cpu-mask=$(printf '0x%x' $((1 << SW_CPU)))" \
        other_config:vhost-iommu-support=false
    [ -n "$extra" ] && { ovs --no-wait set Open_vSwitch . "other_config:$extra"; note "other_config:$extra"; }
    spawn taskset -c "$SW_CPU" "$OVS_DPDK_BIN" "unix:$WORK/ovs/db.sock" \
        --unixctl="$WORK/ovs/vswitchd.ctl" --log-file="$WORK/ovs/vswitchd.log" --no-chdir \
        >"$WORK/ovs/vswitchd.out" 2>&1
    local ovs_pid=$LAST_PID
    OVS_PIDS+=("$ovs_pid")
    for _ in $(seq 150); do
        [ -S "$WORK/ovs/vswitchd.ctl" ] && break
        kill -0 "$ovs_pid" 2>/dev/null || break
        sleep 0.1
    done
    if ! kill -0 "$ovs_pid" 2>/dev/null || [ ! -S "$WORK/ovs/vswitchd.ctl" ]; then
        skip "ovs-vswitchd-dpdk did not start: $(grep -h -i -E 'emer|err|fail|panic' \
            "$WORK/ovs/vswitchd.log" "$WORK/ovs/vswitchd.out" 2>/dev/null | tail -2 | tr '\n' ' ')"
        ovs_stop
        return
    fi
    local initialized
    for _ in $(seq 100); do
        initialized=$(ovs get Open_vSwitch . dpdk_initialized 2>/dev/null)
        [ "$initialized" = true ] && break
        kill -0 "$ovs_pid" 2>/dev/null || break
        sleep 0.1
    done
    if [ "$initialized" != true ]; then
        skip "DPDK did not initialize in ovs-vswitchd: $(grep -h -i -E 'emer|err|fail' \
            "$WORK/ovs/vswitchd.log" 2>/dev/null | tail -2 | tr '\n' ' ')"
        ovs_stop
        return
    fi
    local br="${TAG}br"
    if ! ovs add-br "$br" -- set bridge "$br" datapath_type=netdev \
        other_config:mac-aging-time=86400; then
        skip "ovs-vsctl add-br failed: $(tail -2 "$WORK/ovs/vswitchd.log" | tr '\n' ' ')"
        ovs_stop
        return
    fi
    # The VMs serve the sockets (virtio-user server=1); OVS connects (dpdkvhostuserclient).
    vm_start vm2 "$VM2_CPU" rx "$WORK/ovs-vm2.sock" server "$MAC2" "$MAC1"
    local pid2=$VM_PID tel2=$VM_TEL
    vm_start vm1 "$VM1_CPU" tx "$WORK/ovs-vm1.sock" server "$MAC1" "$MAC2"
    local pid1=$VM_PID tel1=$VM_TEL
    for _ in $(seq 100); do
        [ -S "$WORK/ovs-vm1.sock" ] && [ -S "$WORK/ovs-vm2.sock" ] && break
        sleep 0.1
    done
    local p
    for p in vm1 vm2; do
        ovs add-port "$br" "$p" -- set Interface "$p" type=dpdkvhostuserclient \
            "options:vhost-server-path=$WORK/ovs-$p.sock" >/dev/null ||
            { skip "ovs-vsctl add-port $p (dpdkvhostuserclient) failed: $(tail -2 "$WORK/ovs/vswitchd.log" | tr '\n' ' ')"
              stop_pid "$pid1"; stop_pid "$pid2"; ovs_stop; return; }
    done
    if ! vm_wait "$tel2" "$pid2" || ! vm_wait "$tel1" "$pid1"; then
        skip "testpmd (virtio-user server=1) did not start: $(grep -h -m1 -i -E 'error|fail|cannot' "$WORK"/vm[12].log)"
        stop_pid "$pid1"; stop_pid "$pid2"; ovs_stop
        return
    fi
    local st=""
    for _ in $(seq 100); do
        st=$(ovs get Interface vm1 link_state -- get Interface vm2 link_state 2>/dev/null | tr '\n' ' ')
        [ "$st" = "up up " ] && break
        sleep 0.1
    done
    if [ "$st" != "up up " ]; then
        skip "dpdkvhostuserclient ports not up after 10 s (link_state: $st): $(grep -h -i -E 'err|fail' \
            "$WORK/ovs/vswitchd.log" | tail -2 | tr '\n' ' ')"
        stop_pid "$pid1"; stop_pid "$pid2"; ovs_stop
        return
    fi
    sleep "$WARMUP"
    local fdb
    fdb=$(ovs-appctl --target="$WORK/ovs/vswitchd.ctl" fdb/show "$br" 2>&1)
    if ! echo "$fdb" | grep -qi "$MAC2"; then
        note "OVS had not learned VM2's MAC: added as a static entry (fdb/add)"
        ovs-appctl --target="$WORK/ovs/vswitchd.ctl" fdb/add "$br" vm2 0 "$MAC2" >/dev/null 2>&1
    fi
    measure "dpdk:$tel1" "dpdk:$tel2" "$ovs_pid"
    # OVS's own count of what it could not put into VM2's ring.
    local drops
    drops=$(ovs get Interface vm2 statistics:tx_dropped 2>/dev/null)
    [ -n "$drops" ] && [ "$drops" != 0 ] &&
        note "OVS tx_dropped on vm2 (VM2's ring full): $drops over the row"
    ovs-appctl --target="$WORK/ovs/vswitchd.ctl" dpif-netdev/pmd-stats-show >"$WORK/ovs/pmd-stats" 2>&1
    vm_stop_sender "$pid1" "$WORK/vm1.log" "OVS"
    stop_pid "$pid2"
    ovs_stop
}

# ---------------------------------------------------------------- main
echo "== $(nproc) cores, kernel $(uname -r); runs=$RUNS secs=$SECS rounds=$ROUNDS; $LAYOUT"
for ROUND in $(seq "$ROUNDS"); do
    for CONFIG in $ALL_CONFIGS; do
        if [ -n "$ONLY" ] && ! echo " $ONLY " | grep -q " $CONFIG "; then continue; fi
        echo "== $CONFIG (round $ROUND/$ROUNDS)"
        record _ran 1
        quiet_wait
        case $CONFIG in
            vswitchd-vhostuser) run_vswitchd_vhostuser ;;
            vswitchd-tap) run_vswitchd_tap syscalls ;;
            vswitchd-tap-uring) run_vswitchd_tap uring ;;
            ovs-dpdk) run_ovs_dpdk "" ;;
            ovs-dpdk-sleep) run_ovs_dpdk "pmd-maxsleep=$OVS_MAXSLEEP" ;;
        esac
    done
done

mkdir -p "$(dirname "$JSON_OUT")"
python3 "$ROOT/bench/vm_report.py" report "$RES" "$JSON_OUT" "$((RUNS * ROUNDS))" "$SECS" "$LAYOUT"
