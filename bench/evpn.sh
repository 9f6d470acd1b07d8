#!/usr/bin/env bash
# EVPN at scale: how fast vswitchd installs (and removes) a fleet's worth of EVPN routes from
# its host's gobgpd, what that costs in memory, and whether it answers vsctl meanwhile.
#
#   evpn-inject --gRPC--> injector gobgpd x K --iBGP--> host gobgpd <--gRPC-- vswitchd
#    (VTEPs x MACs)        127.0.2.1..K               127.0.1.1          bridge guests, vx0
#
# Everything runs in a network namespace of its own (loopback, and a veth pair as vx0's
# underlay), so nothing touches the host's network. The simulated fleet (VTEPS x MACS per VNI,
# and one type-3 route per VTEP per VNI; see bench/src/bin/evpn-inject.rs) is shared out over
# K injector gobgpd, which the host's gobgpd peers with (iBGP, AS 65000). Phases:
#   preload   each injector gets its VTEPs' routes over gRPC while its session to the host is
#             administratively down (gobgpd 3.10 costs O(table) per route added over the API,
#             O(n^2) in all: K injectors cut that K-fold; it is not part of the figures)
#   idle      3 s of vsctl calls: the latency baseline; RSS of vswitchd and the host gobgpd
#   install   the host enables the K sessions: the whole table arrives as when a host joins
#             the fleet. Time until the host gobgpd's RIB is complete (gRPC GetTable) and until
#             `vsctl --json evpn show guests` reports every remote MAC and VTEP, while
#             `vsctl version`, `vsctl evpn show` and `true` (the machine's own delay to start
#             a process) run in a loop (p50/p99/max against idle);
#             then RSS (VmRSS, VmHWM), CPU seconds, `vsctl fdb show` (entries of type evpn)
#   full      5 s at rest with the table full: vsctl latency and vswitchd's CPU with no route
#             arriving (what the table's size alone costs)
#   withdraw  every injector deletes its routes (one DeletePath each): time until the RIB and
#             vswitchd's counts are back to 0
# Prints a table and writes JSON (target/evpn.json by default).
#
# Usage: bench/evpn.sh [--vteps N] [--macs N] [--vnis VNI[,VNI...]] [--injectors K]
#                      [--timeout SECS] [--quick] [--no-vswitchd] [--json FILE]
#                      [--gobgpd PATH] [--gobgp PATH]
#   defaults: 100 VTEPs x 1000 MACs in VNI 100 (the issue's figure), 10 injectors, 900 s per
#   phase at most; --quick = 20 x 100, 2 injectors, 120 s. --no-vswitchd measures the gobgpd
#   pair alone; the run falls back to that when `vsctl evpn set` fails (noted in the report).
# Needs root, iproute2, python3, gobgpd and gobgp (Debian: gobgpd), and GoBGP's protos for the
# build (golang-github-osrg-gobgp-dev, protobuf-compiler, libprotobuf-dev). Builds vswitchd,
# vsctl and evpn-inject (release) first. Everything it starts is killed by PID and its
# namespace deleted on exit, failure or Ctrl-C.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
ROOT=$PWD
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

VTEPS=100 MACS=1000 VNIS=100 INJECTORS=10 TIMEOUT=900 NO_VS="" JSON_OUT="$ROOT/target/evpn.json"
GOBGPD=gobgpd GOBGP=gobgp
while [ $# -gt 0 ]; do
    case $1 in
        --vteps) VTEPS=$2; shift 2 ;;
        --macs) MACS=$2; shift 2 ;;
        --vnis) VNIS=$2; shift 2 ;;
        --injectors) INJECTORS=$2; shift 2 ;;
        --timeout) TIMEOUT=$2; shift 2 ;;
        --quick) VTEPS=20 MACS=100 INJECTORS=2 TIMEOUT=120; shift ;;
        --no-vswitchd) NO_VS=1; shift ;;
        --json) JSON_OUT=$2; shift 2 ;;
        --gobgpd) GOBGPD=$2; shift 2 ;;
        --gobgp) GOBGP=$2; shift 2 ;;
        -h|--help) sed -n '2,37p' "$0"; exit 0 ;;
        *) echo "evpn: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
[ "$(id -u)" = 0 ] || { echo "evpn: run as root (a network namespace)" >&2; exit 2; }
for t in ip python3 bc "$GOBGPD" "$GOBGP"; do
    command -v "$t" >/dev/null || { echo "evpn: $t is missing (apt-get install gobgpd)" >&2; exit 2; }
done
if [ "$INJECTORS" -lt 1 ] || [ "$INJECTORS" -gt 200 ] || [ "$VTEPS" -lt "$INJECTORS" ]; then
    echo "evpn: --injectors 1..200, at most --vteps" >&2
    exit 2
fi
IFS=, read -r -a VNI_LIST <<<"$VNIS"
NVNI=${#VNI_LIST[@]}

echo "== building release binaries (vswitchd, vsctl, evpn-inject)"
cargo build --release -q -p vswitch -p vsctl -p vswitch-bench --features vswitch-bench/gobgp \
    --bins || exit 1
BIN=$ROOT/target/release
[ -x "$BIN/evpn-inject" ] || { echo "evpn: no evpn-inject (GoBGP's protos missing?)" >&2; exit 1; }

NS="vsevpn$$"
WORK=$(mktemp -d /tmp/vswitch-evpn.XXXXXX)
RES=$WORK/results.tsv
: >"$RES"
PIDS=()
KEEP_WORK=""
HZ=$(getconf CLK_TCK)
HOST=127.0.1.1
API=50051

cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    sleep 0.3
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
    ip netns del "$NS" 2>/dev/null
    if [ -n "$KEEP_WORK" ]; then echo "evpn: logs kept in $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'echo "evpn: interrupted" >&2; exit 130' INT TERM

record() { printf '%s\t%s\n' "$1" "$2" >>"$RES"; }
note() {
    echo "   note: $1"
    record _note "$1"
}
now() { date +%s.%N; }
# (spawn takes the command itself, not one of these functions: ip netns exec execs it, so
# the PID spawn records is the process's own, for /proc and for cleanup.)
in_ns() { ip netns exec "$NS" "$@"; }
inj() { in_ns "$BIN/evpn-inject" "$@"; }
host_cli() { in_ns "$GOBGP" -u "$HOST" -p "$API" "$@"; }
vsctl() { "$BIN/vsctl" --socket "$WORK/vs/sock" "$@"; }
json_get() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)" 2>/dev/null; }
rss_kib() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status" 2>/dev/null; }
cpu_secs() { # utime+stime of a process and its threads, in seconds
    [ -r "/proc/$1/stat" ] || { echo 0; return; }
    sed 's/.*) //' "/proc/$1/stat" | awk -v hz="$HZ" '{printf "%.2f\n", ($12 + $13) / hz}'
}
# CPU seconds of vswitchd's threads: "main" (control server and EVPN sessions, one tokio
# thread) and "datapath".
vs_thread_cpu() {
    local t name
    for t in /proc/"$1"/task/*; do
        name=$(cat "$t/comm" 2>/dev/null)
        [ "$name" = vswitchd ] && name=main
        [ "$name" = vswitch-dp0 ] && name=datapath
        sed 's/.*) //' "$t/stat" 2>/dev/null |
            awk -v n="$name" -v hz="$HZ" '{printf "%s %.2f\n", n, ($12 + $13) / hz}'
    done
}
injector_ip() { echo "127.0.2.$1"; }

# ---------------------------------------------------------------- gobgpd
neighbor_conf() { # $1 local, $2 peer, $3 "admin-down"/"passive"
    cat <<EOF
[[neighbors]]
  [neighbors.config]
    neighbor-address = "$2"
    peer-as = 65000
$([ "$3" = admin-down ] && echo "    admin-down = true")
  [neighbors.transport.config]
    local-address = "$1"
$([ "$3" = passive ] && echo "    passive-mode = true")
  [neighbors.timers.config]
    connect-retry = 1
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "l2vpn-evpn"
EOF
}
gobgpd_conf() { # $1 address (router id and BGP listener)
    cat <<EOF
[global.config]
  as = 65000
  router-id = "$1"
  port = 179
  local-address-list = ["$1"]
EOF
}
start_gobgpd() { # $1 name, $2 address; sets LAST_PID
    spawn ip netns exec "$NS" "$GOBGPD" -f "$WORK/$1.toml" -t toml --api-hosts "$2:$API" \
        --pprof-disable -p >"$WORK/$1.log" 2>&1
    local i
    for i in $(seq 100); do
        inj count --api "$2:$API" >/dev/null 2>&1 && return 0
        kill -0 "$LAST_PID" 2>/dev/null || break
        sleep 0.1
    done
    echo "evpn: gobgpd $1 did not start: $(tail -3 "$WORK/$1.log")" >&2
    KEEP_WORK=1
    exit 1
}

TYPE2=$((VTEPS * MACS * NVNI))
TYPE3=$((VTEPS * NVNI))
record vteps "$VTEPS"; record macs_per_vtep "$MACS"; record vnis "$VNIS"
record injectors "$INJECTORS"; record timeout_secs "$TIMEOUT"
record type2_routes "$TYPE2"; record type3_routes "$TYPE3"
record want_macs "$TYPE2"; record want_vteps "$TYPE3"
record gobgpd "$("$GOBGPD" --version 2>&1 | awk '{print $NF}')"

echo "== namespace $NS: host gobgpd $HOST, $INJECTORS injector gobgpd, vswitchd"
ip netns add "$NS" || exit 1
ip -n "$NS" link set lo up
ip -n "$NS" link add u0 type veth peer name u1
ip -n "$NS" link set u0 up
ip -n "$NS" link set u1 up

gobgpd_conf "$HOST" >"$WORK/host.toml"
for i in $(seq "$INJECTORS"); do
    neighbor_conf "$HOST" "$(injector_ip "$i")" admin-down >>"$WORK/host.toml"
    { gobgpd_conf "$(injector_ip "$i")"
      neighbor_conf "$(injector_ip "$i")" "$HOST" passive; } >"$WORK/inj$i.toml"
done
start_gobgpd host "$HOST"
HOST_PID=$LAST_PID
INJ_PIDS=()
for i in $(seq "$INJECTORS"); do
    start_gobgpd "inj$i" "$(injector_ip "$i")"
    INJ_PIDS+=("$LAST_PID")
done

# ---------------------------------------------------------------- vswitchd
VS_PID=""
next_pow2() { local n=1; while [ "$n" -lt "$1" ]; do n=$((n * 2)); done; echo "$n"; }
vs_setup() {
    local vni_opt="" n=0 v err table
    for v in "${VNI_LIST[@]}"; do
        n=$((n + 1))
        vni_opt+="${vni_opt:+,}$v:$((n * 10))"
    done
    table=$(next_pow2 $((TYPE2 * 2 > 65536 ? TYPE2 * 2 : 65536)))
    mkdir -p "$WORK/vs"
    spawn ip netns exec "$NS" "$BIN/vswitchd" --socket "$WORK/vs/sock" --state-dir "$WORK/vs/state" \
        >>"$WORK/vswitchd.log" 2>&1
    VS_PID=$LAST_PID
    for _ in $(seq 50); do [ -S "$WORK/vs/sock" ] && break; sleep 0.1; done
    for cmd in "bridge add underlay" \
        "port add underlay up0 type=afpacket iface=u0" \
        "bridge add guests mac_table_size=$table" \
        "port add guests vx0 type=vxlan local=10.98.0.1 gateway=10.98.0.254 vni=$vni_opt underlay=up0" \
        "evpn set guests gobgp=$HOST:$API asn=65000 router_id=10.98.0.1 max_macs=$((VTEPS * MACS)) max_vteps=$((VTEPS > 1024 ? VTEPS : 1024))"; do
        # shellcheck disable=SC2086
        if ! err=$(vsctl $cmd 2>&1 >/dev/null); then
            note "vswitchd left out: \`vsctl $cmd\` failed: $(echo "$err" | tail -1)"
            return 1
        fi
    done
    record fdb_table_size "$table"
    local state=""
    for _ in $(seq 300); do
        state=$(vsctl --json evpn show guests 2>/dev/null | json_get 'd.get("session")')
        [ "$state" = established ] && return 0
        sleep 0.1
    done
    note "vswitchd left out: its EVPN session is '$state' after 30 s, not established"
    return 1
}
if [ -z "$NO_VS" ]; then
    if ! vs_setup; then
        stop_pid "$VS_PID"
        VS_PID="" NO_VS=1
        KEEP_WORK=1
    fi
fi
record vswitchd "$([ -z "$NO_VS" ] && echo on || echo off)"

# The host's own routes (vswitchd's type-3 per VNI) stay in the RIB throughout.
BASE=0
if [ -z "$NO_VS" ]; then
    for _ in $(seq 100); do
        BASE=$(inj count --api "$HOST:$API" | json_get 'd["paths"]')
        [ "${BASE:-0}" -ge "$NVNI" ] && break
        sleep 0.1
    done
fi
BASE=${BASE:-0}
record host_own_paths "$BASE"

# ---------------------------------------------------------------- preload
echo "== preload: $TYPE2 type-2 + $TYPE3 type-3 routes into $INJECTORS injectors (sessions down)"
t0=$(now)
PRE_PIDS=()
first=0
for i in $(seq "$INJECTORS"); do
    count=$(( VTEPS / INJECTORS + (i <= VTEPS % INJECTORS ? 1 : 0) ))
    spawn timeout "$TIMEOUT" ip netns exec "$NS" "$BIN/evpn-inject" add \
        --api "$(injector_ip "$i"):$API" --vteps "$count" --vtep-first "$first" --macs "$MACS" \
        --vnis "$VNIS" >"$WORK/preload$i.json" 2>&1
    PRE_PIDS+=("$LAST_PID")
    first=$((first + count))
done
ok=1
for p in "${PRE_PIDS[@]}"; do wait "$p" || ok=""; done
record preload_secs "$(echo "$(now) - $t0" | bc -l | xargs printf '%.2f')"
if [ -z "$ok" ]; then
    note "preload failed or passed ${TIMEOUT}s: $(cat "$WORK"/preload*.json | grep -v '^{' | head -3)"
    KEEP_WORK=1
    exit 1
fi
for i in $(seq "$INJECTORS"); do
    record "inj_rss_kib_$i" "$(rss_kib "${INJ_PIDS[$((i - 1))]}" VmRSS)"
done

# ---------------------------------------------------------------- phases
probe() { # $1 phase, then probe options
    local ph=$1
    shift
    spawn python3 "$ROOT/bench/evpn_report.py" probe "$BIN/vsctl" "$WORK/vs/sock" guests \
        "$WORK/probe-$ph.jsonl" "$@"
    PROBE_PID=$LAST_PID
}
snapshot() { # $1 suffix: RSS of vswitchd and the host gobgpd
    record "host_rss_$1_kib" "$(rss_kib "$HOST_PID" VmRSS)"
    record "host_hwm_$1_kib" "$(rss_kib "$HOST_PID" VmHWM)"
    if [ -z "$NO_VS" ]; then
        record "vs_rss_$1_kib" "$(rss_kib "$VS_PID" VmRSS)"
        record "vs_hwm_$1_kib" "$(rss_kib "$VS_PID" VmHWM)"
    fi
}
# vswitchd's CPU and the wall time per `vsctl --json evpn show guests`, over 50 calls; $1 label.
evpn_show_cost() {
    [ -n "$NO_VS" ] && return
    local c0 t0
    c0=$(cpu_secs "$VS_PID")
    t0=$(now)
    for _ in $(seq 50); do vsctl --json evpn show guests >/dev/null 2>&1; done
    record "evpn_show_wall_ms_$1" "$(echo "($(now) - $t0) * 20" | bc -l | xargs printf '%.2f')"
    record "evpn_show_vswitchd_cpu_ms_$1" \
        "$(echo "($(cpu_secs "$VS_PID") - $c0) * 20" | bc -l | xargs printf '%.2f')"
}
# What one type-2 route added over gRPC costs the host gobgpd (as vswitchd's advertisement of
# a local MAC does): 100 MAC routes of one VTEP in a VNI vx0 does not carry (999: vswitchd
# ignores; MACs 02:00:fd:e8:00:xx, apart from the fleet's) added in one stream, then withdrawn one by one; $1 label.
api_cost() {
    local out
    out=$(inj add --api "$HOST:$API" --vteps 1 --macs 100 --vnis 999 --vtep-base 10.97.0.1 \
        --vtep-first 65000 2>&1)
    record "host_api_add_ms_per_route_$1" \
        "$(echo "$out" | json_get 'round(d["secs"] * 1000 / d["paths"], 2)')"
    out=$(inj withdraw --api "$HOST:$API" --vteps 1 --macs 100 --vnis 999 \
        --vtep-base 10.97.0.1 --vtep-first 65000 2>&1)
    record "host_api_withdraw_ms_per_route_$1" \
        "$(echo "$out" | json_get 'round(d["secs"] * 1000 / d["paths"], 2)')"
}
# Runs the phase $1: $2 = the command that starts it, the RIB's target as wait options ($3),
# the probe's target ($4).
phase() {
    local ph=$1 start=$2 want_rib=$3 want_vs=$4 wait_pid c0 v0 t0 out
    # shellcheck disable=SC2086
    spawn timeout $((TIMEOUT + 30)) ip netns exec "$NS" "$BIN/evpn-inject" wait \
        --api "$HOST:$API" $want_rib --timeout "$TIMEOUT" >"$WORK/wait-$ph.json"
    wait_pid=$LAST_PID
    # shellcheck disable=SC2086
    [ -z "$NO_VS" ] && probe "$ph" --want $want_vs --timeout "$TIMEOUT"
    c0=$(cpu_secs "$HOST_PID")
    [ -z "$NO_VS" ] && v0=$(cpu_secs "$VS_PID") && vs_thread_cpu "$VS_PID" >"$WORK/threads-$ph"
    t0=$(now)
    record "${ph}_t0" "$t0"
    $start
    wait "$wait_pid"
    out=$(cat "$WORK/wait-$ph.json")
    record "${ph}_host_paths" "$(echo "$out" | json_get 'd["paths"]')"
    record "${ph}_host_at" "$(echo "$out" | json_get 'd["at"]')"
    record "${ph}_host_first_change" "$(echo "$out" | json_get 'd["first_change_secs"]')"
    record "${ph}_host_timed_out" "$(echo "$out" | json_get 'str(d["timed_out"]).lower()')"
    echo "   host gobgpd RIB: $out"
    if [ -z "$NO_VS" ]; then
        wait "$PROBE_PID" || note "$ph: vswitchd did not reach its target in ${TIMEOUT}s"
        record "${ph}_vswitchd_cpu" "$(echo "$(cpu_secs "$VS_PID") - $v0" | bc -l)"
        vs_thread_cpu "$VS_PID" | while read -r name secs; do
            before=$(awk -v n="$name" '$1 == n {print $2}' "$WORK/threads-$ph")
            record "${ph}_vswitchd_${name}_cpu" "$(echo "$secs - ${before:-0}" | bc -l)"
        done
        echo "   vswitchd: $(grep evpn_show "$WORK/probe-$ph.jsonl" | tail -1)"
    fi
    record "${ph}_host_cpu" "$(echo "$(cpu_secs "$HOST_PID") - $c0" | bc -l)"
    if ! kill -0 "$HOST_PID" 2>/dev/null; then
        note "$ph: the host gobgpd died: $(grep -m1 -A3 panic "$WORK/host.log")"
        KEEP_WORK=1
    fi
    if [ -n "$VS_PID" ] && ! kill -0 "$VS_PID" 2>/dev/null; then
        note "$ph: vswitchd died: $(tail -3 "$WORK/vswitchd.log")"
        KEEP_WORK=1
        NO_VS=1
    fi
}
enable_peers() {
    local i
    for i in $(seq "$INJECTORS"); do host_cli neighbor "$(injector_ip "$i")" enable >/dev/null; done
}
withdraw_all() {
    local i pids=()
    for i in $(seq "$INJECTORS"); do
        spawn ip netns exec "$NS" "$BIN/evpn-inject" withdraw-all \
            --api "$(injector_ip "$i"):$API" >>"$WORK/withdraw.json" 2>&1
        pids+=("$LAST_PID")
    done
    wait "${pids[@]}"
}

echo "== idle: 3 s of vsctl calls"
snapshot idle
evpn_show_cost idle
api_cost idle
if [ -z "$NO_VS" ]; then
    probe idle --secs 3
    wait "$PROBE_PID"
fi

echo "== install: the host enables its $INJECTORS sessions (at most ${TIMEOUT}s)"
phase install enable_peers "--min $((BASE + TYPE2 + TYPE3))" "$TYPE2 $TYPE3"
snapshot installed
record host_table_paths "$(inj count --api "$HOST:$API" | json_get 'd["paths"]')"
if [ -z "$NO_VS" ] && grep -q '"timed_out": false' "$WORK/wait-install.json"; then
    echo "== full: 5 s at rest with the table full"
    vs_thread_cpu "$VS_PID" >"$WORK/threads-full"
    probe full --secs 5
    wait "$PROBE_PID"
    vs_thread_cpu "$VS_PID" | while read -r name secs; do
        before=$(awk -v n="$name" '$1 == n {print $2}' "$WORK/threads-full")
        record "full_vswitchd_${name}_cpu_pct" "$(echo "($secs - ${before:-0}) * 20" | bc -l)"
    done
fi
grep -q '"timed_out": false' "$WORK/wait-install.json" && api_cost installed
if [ -z "$NO_VS" ]; then
    evpn_show_cost installed
    t0=$(now)
    vsctl --json fdb show guests >"$WORK/fdb.json" 2>>"$WORK/vsctl.err"
    record fdb_show_ms "$(echo "($(now) - $t0) * 1000" | bc -l | xargs printf '%.0f')"
    python3 - "$WORK/fdb.json" >>"$RES" <<'EOF'
import json, sys
try:
    d = json.load(open(sys.argv[1]))
except ValueError:
    sys.exit()
rows = d if isinstance(d, list) else d.get("entries", [])
evpn = [r for r in rows if r.get("type") == "evpn"]
print(f"fdb_entries\t{len(rows)}")
print(f"fdb_evpn_entries\t{len(evpn)}")
print(f"fdb_evpn_remotes\t{len({r.get('remote') for r in evpn})}")
EOF
    vsctl --json evpn show guests 2>/dev/null | python3 -c '
import json, sys
for k, v in (json.load(sys.stdin).get("counters") or {}).items():
    print(f"counters_{k}\t{v}")' >>"$RES"
fi

if grep -q '"timed_out": true' "$WORK/wait-install.json"; then
    # The host gobgpd still has the rest queued: a withdrawal would wait behind it.
    note "install did not complete in ${TIMEOUT}s: the withdraw phase is skipped"
    KEEP_WORK=1
else
    echo "== withdraw: every injector deletes its routes (at most ${TIMEOUT}s)"
    phase withdraw withdraw_all "--max $BASE" "0 0"
    snapshot withdrawn
fi

python3 "$ROOT/bench/evpn_report.py" report "$RES" "$WORK" "$JSON_OUT"
