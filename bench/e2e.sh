#!/usr/bin/env bash
# End-to-end rates: two hosts (namespaces on veth pairs) joined by
#   1. the Linux bridge (the baseline, measured in the same run), then
#   2. vswitchd with the two root-side veth ends as afpacket ports.
# iperf3 TCP (1 stream) and UDP 64-byte request/response latency are run
# RUNS times each for SECS seconds; medians are printed with vswitchd's
# figure as a ratio of the bridge's. Also reports vswitchd's CPU while idle.
#
# Usage: bench/e2e.sh [RUNS] [SECS]   (root; builds the release binaries)
# The hosts' tx checksum offload is turned off: vswitchd does not handle
# partial checksums or GSO yet (see docs/operations.md).
set -euo pipefail
RUNS=${1:-3}
SECS=${2:-5}
cd "$(dirname "$0")/.."
cargo build --release --workspace -q
BIN=target/release
TAG="vse$$"
A="$TAG-a" B="$TAG-b"
WORK=$(mktemp -d)
PID=""
cleanup() {
    [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
    ip netns pids "$B" 2>/dev/null | xargs -r kill 2>/dev/null || true
    ip netns del "$A" 2>/dev/null || true
    ip netns del "$B" 2>/dev/null || true
    ip link del "${TAG}br" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

for ns in "$A" "$B"; do
    ip netns add "$ns"
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
    ip -n "$ns" link set lo up
done
ip link add "${TAG}a" type veth peer name eth0 netns "$A"
ip link add "${TAG}b" type veth peer name eth0 netns "$B"
ip -n "$A" addr add 10.78.0.1/24 dev eth0
ip -n "$B" addr add 10.78.0.2/24 dev eth0
for ns in "$A" "$B"; do
    ip -n "$ns" link set eth0 up
    ip netns exec "$ns" ethtool -K eth0 tx off >/dev/null
done
ip link set "${TAG}a" up
ip link set "${TAG}b" up

median() { sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }

tcp_gbps() {
    ip netns exec "$B" iperf3 -s -1 -D -p 5301
    sleep 0.3
    ip netns exec "$A" iperf3 -c 10.78.0.2 -p 5301 -t "$SECS" -J |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9)'
}

# UDP request/response: 64-byte datagrams, one outstanding, for SECS seconds.
rr_us() {
    ip netns exec "$B" python3 -c '
import socket
s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.bind(("10.78.0.2",5302)); s.settimeout(30)
while True:
    d,a=s.recvfrom(64)
    if d==b"stop": break
    s.sendto(d,a)' &
    local server=$!
    sleep 0.3
    ip netns exec "$A" python3 -c '
import socket,time,sys
s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.settimeout(1)
lat=[]; end=time.time()+float(sys.argv[1]); p=b"x"*64
while time.time()<end:
    t=time.perf_counter(); s.sendto(p,("10.78.0.2",5302))
    try: s.recvfrom(64)
    except socket.timeout: continue
    lat.append((time.perf_counter()-t)*1e6)
s.sendto(b"stop",("10.78.0.2",5302))
lat.sort(); print("%.0f %.0f %d" % (lat[len(lat)//2], lat[int(len(lat)*0.99)], len(lat)))' "$SECS"
    wait "$server" 2>/dev/null || true
}

measure() {
    local name=$1
    local tcp=() rr=()
    for _ in $(seq "$RUNS"); do
        tcp+=("$(tcp_gbps)")
        rr+=("$(rr_us)")
    done
    TCP_MED=$(printf '%s\n' "${tcp[@]}" | median)
    P50_MED=$(printf '%s\n' "${rr[@]}" | awk '{print $1}' | median)
    P99_MED=$(printf '%s\n' "${rr[@]}" | awk '{print $2}' | median)
    printf '%-14s TCP %6.2f Gbit/s   UDP rr p50 %5s us  p99 %5s us\n' "$name" "$TCP_MED" "$P50_MED" "$P99_MED"
}

echo "== Linux bridge (baseline)"
ip link add "${TAG}br" type bridge
ip link set "${TAG}a" master "${TAG}br"
ip link set "${TAG}b" master "${TAG}br"
ip link set "${TAG}br" up
sleep 1
measure "linux-bridge"
BR_TCP=$TCP_MED BR_P50=$P50_MED
ip link del "${TAG}br"

echo "== vswitchd (afpacket ports)"
"$BIN/vswitchd" --socket "$WORK/sock" --state-dir "$WORK/state" 2>"$WORK/log" &
PID=$!
for _ in $(seq 50); do [ -S "$WORK/sock" ] && break; sleep 0.1; done
C="$BIN/vsctl --socket $WORK/sock"
$C bridge add br0
$C port add br0 a type=afpacket iface="${TAG}a"
$C port add br0 b type=afpacket iface="${TAG}b"
sleep 0.5
measure "vswitchd"
VS_TCP=$TCP_MED VS_P50=$P50_MED

ticks() { awk '{print $14+$15}' "/proc/$PID/stat"; }
t0=$(ticks); sleep 5; t1=$(ticks)
echo
printf 'vswitchd / linux-bridge: TCP %.2fx, UDP rr p50 %.2fx\n' \
    "$(echo "$VS_TCP / $BR_TCP" | bc -l)" "$(echo "$VS_P50 / $BR_P50" | bc -l)"
printf 'vswitchd idle CPU over 5 s: %d ticks of %d per second\n' "$((t1 - t0))" "$(getconf CLK_TCK)"
