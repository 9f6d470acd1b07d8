#!/usr/bin/env python3
"""Writes the hand-made seed inputs of every fuzz target into corpus/TARGET/.

Each seed is named for what it exercises. Run from anywhere; it rewrites only
the files it names (inputs the fuzzer added, if any were kept, stay). The
formats are documented in vswitch/src/fuzzing.rs.
"""

import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# --- pipeline: records [op][len][frame]; op bits 0-2 port, 0x40 tick, 0x80 oversize.
# Ports: 0 a0, 1 a1, 2 a2 (br0: 8 entries, aging 3 s); 3 b0, 4 b1 (br1).

BCAST = b"\xff" * 6


def mac(n):
    return bytes([0x02, 0, 0, 0, n >> 8, n & 0xFF])


def eth(dst, src, ethertype, payload=b"\x00" * 46):
    return dst + src + struct.pack("!H", ethertype) + payload


def tagged(dst, src, vid, ethertype=0x0800, payload=b"\x00" * 42, tpid=0x8100, pcp=0):
    tci = (pcp << 13) | vid
    return dst + src + struct.pack("!HHH", tpid, tci, ethertype) + payload


def rec(port, frame, tick=False, oversize=False):
    assert len(frame) <= 255
    op = port | (0x40 if tick else 0) | (0x80 if oversize else 0)
    return bytes([op, len(frame)]) + frame


def pipeline():
    s = {}
    # Three hosts on br0 announce themselves, then talk unicast; br1 too.
    s["three_hosts_unicast"] = b"".join(
        [rec(p, eth(BCAST, mac(p + 1), 0x0806, b"\x00" * 28)) for p in range(3)]
        + [rec(0, eth(mac(2), mac(1), 0x0800)), rec(1, eth(mac(3), mac(2), 0x0800)),
           rec(2, eth(mac(1), mac(3), 0x0800))]
        + [rec(3, eth(BCAST, mac(10), 0x0806)), rec(4, eth(mac(10), mac(11), 0x0800))])
    # Two hosts behind a0: a frame between them goes nowhere (same_port).
    s["same_port"] = (rec(0, eth(BCAST, mac(1), 0x0806)) + rec(0, eth(mac(1), mac(2), 0x0800))
                      + rec(0, eth(mac(1), mac(1), 0x0800)))
    # Ten sources into br0, whose table holds 8: the last two are refused,
    # and frames to them keep flooding.
    s["table_full"] = b"".join([rec(0, eth(BCAST, mac(n), 0x0806)) for n in range(1, 11)]
                               + [rec(1, eth(mac(10), mac(20), 0x0800)),
                                  rec(1, eth(mac(3), mac(20), 0x0800))])
    # Learned, then four seconds pass (aging 3 s): a frame to it floods again.
    s["aging"] = (rec(0, eth(BCAST, mac(1), 0x0806)) + rec(1, eth(mac(1), mac(2), 0x0800))
                  + rec(3, eth(BCAST, mac(9), 0x0806), tick=True)
                  + rec(3, eth(BCAST, mac(9), 0x0806), tick=True)
                  + rec(1, eth(mac(1), mac(2), 0x0800), tick=True)
                  + rec(1, eth(mac(1), mac(2), 0x0800), tick=True)
                  + rec(2, eth(mac(1), mac(3), 0x0800)))
    # An oversized frame (padded past the buffer size) among normal ones.
    s["oversize"] = (rec(0, eth(BCAST, mac(1), 0x0806)) + rec(0, eth(mac(5), mac(1), 0x0800),
                                                                  oversize=True)
                     + rec(0, b"", oversize=True) + rec(0, eth(mac(5), mac(1), 0x0800)))
    # 40 frames from one port: one full batch of 32 and a second one.
    s["two_batches"] = b"".join(rec(1, eth(BCAST if n % 3 else mac(7), mac(40 + n % 5), 0x0800,
                                           bytes([n]) * 10)) for n in range(40))
    # One MAC in two VLANs on two ports: unicast per VLAN.
    s["vlan_per_vid"] = (rec(0, tagged(BCAST, mac(1), 10)) + rec(1, tagged(BCAST, mac(1), 20))
                         + rec(2, tagged(mac(1), mac(3), 10)) + rec(2, tagged(mac(1), mac(3), 20))
                         + rec(2, tagged(mac(1), mac(3), 30)) + rec(2, eth(mac(1), mac(3), 0x0800)))
    # Priority tag (VID 0) is VLAN 0; PCP and DEI bits do not change the VLAN.
    s["priority_tag"] = (rec(0, tagged(BCAST, mac(1), 0, pcp=5)) + rec(1, eth(mac(1), mac(2), 0x0800))
                         + rec(1, tagged(mac(1), mac(2), 0x1005 & 0xFFF, pcp=7)))
    # QinQ outer TPID (not 802.1Q to this switch) and a double 802.1Q tag.
    s["qinq_and_double_tag"] = (rec(3, tagged(BCAST, mac(1), 100, tpid=0x88A8))
                                + rec(4, tagged(BCAST, mac(2), 100, ethertype=0x8100,
                                                payload=b"\x00\x0a\x08\x00" + b"\x00" * 40)))
    # Group destinations always flood; group and zero sources are dropped.
    s["group_addresses"] = b"".join([
        rec(0, eth(bytes.fromhex("01005e000001"), mac(1), 0x0800)),
        rec(0, eth(bytes.fromhex("333300000001"), mac(1), 0x86DD)),
        rec(0, eth(bytes.fromhex("0180c2000002"), mac(1), 0x8809, b"\x01\x01" + b"\x00" * 108)),
        rec(0, eth(mac(1), bytes.fromhex("0180c2000000"), 0x0800)),
        rec(0, eth(mac(1), b"\x00" * 6, 0x0800)),
        rec(0, eth(mac(1), BCAST, 0x0800)),
    ])
    # A MAC known in br1 means nothing in br0.
    s["cross_bridge"] = (rec(3, eth(BCAST, mac(1), 0x0806)) + rec(0, eth(mac(1), mac(2), 0x0800))
                         + rec(4, eth(mac(1), mac(3), 0x0800)))
    # Every length around the header sizes: 0, 13, 14 untagged; 14..18 tagged.
    s["header_lengths"] = b"".join(
        [rec(0, b""), rec(0, eth(mac(1), mac(2), 0x0800, b"")[:13]),
         rec(0, eth(mac(1), mac(2), 0x0800, b""))]
        + [rec(1, tagged(mac(1), mac(3), 7, payload=b"")[:n]) for n in range(14, 19)])
    # The last record claims more bytes than the input has.
    s["cut_record"] = rec(0, eth(BCAST, mac(1), 0x0806)) + bytes([2, 200]) + mac(1)[:4]
    # Port numbers past the five ports wrap around.
    s["port_wrap"] = rec(5, eth(BCAST, mac(1), 0x0806)) + rec(7, eth(mac(1), mac(2), 0x0800))
    for name, data in s.items():
        write("pipeline", name, data)


# --- control_request: one request line as the server reads it.

def control_request():
    reqs = {
        "version": {"verb": "version"},
        "bridge_add_options": {"verb": "bridge_add",
                               "args": {"bridge": "br0", "options": {"aging": "60", "mac_table_size": "1024"}}},
        "bridge_set": {"verb": "bridge_set", "args": {"bridge": "br0", "options": {"aging": "10"}}},
        "bridge_del": {"verb": "bridge_del", "args": {"bridge": "br0"}},
        "bridge_list": {"verb": "bridge_list"},
        "port_add_afpacket": {"verb": "port_add",
                              "args": {"bridge": "br0", "port": "up0", "options": {"type": "afpacket", "iface": "eth1"}}},
        "port_del": {"verb": "port_del", "args": {"bridge": "br0", "port": "vm1"}},
        "port_list_all": {"verb": "port_list", "args": {}},
        "port_list_bridge": {"verb": "port_list", "args": {"bridge": "br0"}},
        "port_show": {"verb": "port_show", "args": {"port": "vm1"}},
        "fdb_show": {"verb": "fdb_show", "args": {"bridge": "br0"}},
        "fdb_add_vlan": {"verb": "fdb_add",
                         "args": {"bridge": "br0", "mac": "52-54-00-AB-CD-EF", "port": "vm1", "vlan": 4095}},
        "fdb_del": {"verb": "fdb_del", "args": {"bridge": "br0", "mac": "52:54:00:ab:cd:ef"}},
        "fdb_flush": {"verb": "fdb_flush", "args": {"bridge": "br0"}},
        "stats_all": {"verb": "stats", "args": {}},
        "unicode_names": {"verb": "bridge_add", "args": {"bridge": "br\u00e9\u2603\U0001F600", "options": {}}},
    }
    for name, r in reqs.items():
        write("control_request", name, json.dumps(r, separators=(",", ":"), ensure_ascii=False).encode() + b"\n")
    edge = {
        "empty": b"",
        "blank": b"  \t\r\n",
        "not_utf8": b'{"verb":"bridge_add","args":{"bridge":"\xff\xfe"}}\n',
        "nul_in_name": b'{"verb":"bridge_add","args":{"bridge":"br\\u0000"}}\n',
        "deep_nesting": b'{"verb":"bridge_add","args":' + b"[" * 2000 + b"]" * 2000 + b"}\n",
        "args_null": b'{"verb":"bridge_list","args":null}\n',
        "duplicate_verb": b'{"verb":"version","verb":"bridge_list"}\n',
        "vlan_overflow": b'{"verb":"fdb_add","args":{"bridge":"b","mac":"02:00:00:00:00:01","port":"p","vlan":65536}}\n',
        "vlan_float": b'{"verb":"fdb_add","args":{"bridge":"b","mac":"02:00:00:00:00:01","port":"p","vlan":1.5}}\n',
        "huge_number": b'{"verb":"fdb_del","args":{"bridge":"b","mac":"02:00:00:00:00:01","vlan":1' + b"0" * 400 + b"}}\n",
        "trailing_garbage": b'{"verb":"version"} {"verb":"version"}\n',
        "bom": b'\xef\xbb\xbf{"verb":"version"}\n',
        "crlf": b'{"verb":"version"}\r\n',
        "escaped_quote": b'{"verb":"bridge_del","args":{"bridge":"a\\"b\\\\c\\ud83d\\ude00"}}\n',
        "lone_surrogate": b'{"verb":"bridge_del","args":{"bridge":"\\ud800"}}\n',
        "options_not_strings": b'{"verb":"bridge_add","args":{"bridge":"b","options":{"aging":[1]}}}\n',
    }
    for name, data in edge.items():
        write("control_request", name, data)


# --- ethernet: a frame; also read as MAC text, and as MAC + VLAN + room for RARP.

def ethernet():
    s = {
        "arp_untagged": eth(BCAST, mac(1), 0x0806, b"\x00\x01\x08\x00\x06\x04\x00\x01" + b"\x00" * 20),
        "ipv4_tagged": tagged(mac(2), mac(1), 100, pcp=5),
        "priority_tagged": tagged(mac(2), mac(1), 0, pcp=3),
        "double_tagged": tagged(mac(2), mac(1), 10, ethertype=0x8100, payload=b"\x00\x14\x08\x00"),
        "qinq": tagged(mac(2), mac(1), 10, tpid=0x88A8),
        "lacpdu": eth(bytes.fromhex("0180c2000002"), mac(1), 0x8809, b"\x01\x01\x01\x14" + b"\x00" * 106),
        "len13": eth(mac(2), mac(1), 0x0800, b"")[:13],
        "len14": eth(mac(2), mac(1), 0x0800, b""),
        "tagged_len17": tagged(mac(2), mac(1), 5, payload=b"")[:17],
        "tagged_len18": tagged(mac(2), mac(1), 5, payload=b""),
        "mac_text_colon": b"52:54:00:ab:cd:ef",
        "mac_text_dash_upper": b"52-54-00-AB-CD-EF",
        "mac_text_bad": b"52:54:00:ab:cd:e",
        "mac_text_mixed_sep": b"52:54-00:ab:cd:ef",
        "rarp_vlan_max": mac(9) + struct.pack("!H", 0xFFFF) + bytes([64]),
        "rarp_short_room": mac(9) + struct.pack("!H", 7) + bytes([63]),
        "empty": b"",
    }
    for name, data in s.items():
        write("ethernet", name, data)


# --- vxlan: records [len][frame] offered to a VTEP 10.79.0.2 (MAC 02:56:0a:4f:00:02),
# remote 10.79.0.1, VNIs 42 (untagged) and 100 (VLAN 10), UDP 4789.

VTEP_MAC = bytes.fromhex("02560a4f0002")
LOCAL = bytes([10, 79, 0, 2])
REMOTE = bytes([10, 79, 0, 1])


def csum(data):
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return (~total) & 0xFFFF


def vxlan_frame(vni, inner, flags=0x08, dport=4789, src=REMOTE, proto=17, frag=0x4000):
    vx = struct.pack("!B3xI", flags, vni << 8)
    udp = struct.pack("!HHHH", 49200, dport, 8 + len(vx) + len(inner), 0) + vx + inner
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, frag, 64, proto, 0, src, LOCAL)
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    return VTEP_MAC + mac(1) + b"\x08\x00" + ip + udp


def arp(op, sender_mac, sender_ip, target_ip, dst=BCAST):
    body = struct.pack("!HHBBH", 1, 0x0800, 6, 4, op) + sender_mac + sender_ip + b"\x00" * 6 + target_ip
    return dst + sender_mac + b"\x08\x06" + body


def records(*frames):
    return b"".join(bytes([len(f)]) + f for f in frames if len(f) < 256)


def vxlan():
    inner = eth(mac(0x20), mac(0x21), 0x0800, b"\x45" + b"\x00" * 45)
    bcast_inner = eth(BCAST, mac(0x22), 0x0806, b"\x00" * 28)
    s = {
        "vni42": records(vxlan_frame(42, inner)),
        "vni100_broadcast": records(vxlan_frame(100, bcast_inner)),
        "arp_request_for_vtep": records(arp(1, mac(0x30), REMOTE, LOCAL)),
        "arp_request_for_other": records(arp(1, mac(0x30), REMOTE, bytes([10, 79, 0, 9]))),
        "i_flag_clear": records(vxlan_frame(42, inner, flags=0)),
        "unknown_vni": records(vxlan_frame(7, inner)),
        "wrong_port": records(vxlan_frame(42, inner, dport=8472)),
        "unknown_remote": records(vxlan_frame(42, inner, src=bytes([10, 79, 0, 9]))),
        "not_udp": records(vxlan_frame(42, inner, proto=6)),
        "fragment": records(vxlan_frame(42, inner, frag=0x2000)),
        "truncated_header": records(vxlan_frame(42, inner)[:40]),
        "inner_runt": records(vxlan_frame(42, inner[:10])),
        "tagged_inner": records(vxlan_frame(100, tagged(mac(0x20), mac(0x21), 20))),
        "mixed": records(arp(1, mac(0x30), REMOTE, LOCAL), vxlan_frame(42, inner), vxlan_frame(42, inner, flags=0)),
        "empty": b"",
    }
    for name, data in s.items():
        write("vxlan", name, data)


# --- lacp: a slow protocols PDU; then read as records [op][len][PDU] for a
# two-member LACP machine (bit 0 member, bits 1-3 half-seconds, bit 4 flap).

def port_info(tlv, system, key, port, state):
    return struct.pack("!BBH6sHHHB3x", tlv, 20, 0x8000, system, key, 0x00FF, port, state)


def lacpdu(actor_state=0x3D, partner_state=0x3D, version=1, subtype=1):
    return (struct.pack("!BB", subtype, version)
            + port_info(1, bytes.fromhex("020000000020"), 1, 1, actor_state)
            + port_info(2, bytes.fromhex("020000000010"), 1, 1, partner_state)
            + struct.pack("!BBH12x", 3, 16, 0) + struct.pack("!BB50x", 0, 0))


def marker(kind=1):
    return struct.pack("!BBBBH6sI2xBB90x", 2, 1, kind, 16, 1, bytes.fromhex("020000000020"), 7, 0, 0)


def lacp():
    good = lacpdu()
    s = {
        "lacpdu": good,
        "marker_information": marker(1),
        "marker_response": marker(2),
        "version0": lacpdu(version=0),
        "version2": lacpdu(version=2),
        "unknown_subtype": lacpdu(subtype=9),
        "truncated": good[:60],
        "bad_actor_tlv_len": good[:3] + b"\x13" + good[4:],
        "bad_terminator": good[:-52] + b"\x05\x00" + good[-50:],
        "negotiate_both_members": bytes([0x02, len(good)]) + good + bytes([0x03, len(good)]) + good,
        "timeout_then_flap": bytes([0x00, len(good)]) + good + bytes([0x0E, 3]) + b"\x01\x01\x01" + bytes([0x10, 0]),
        "garbage": bytes(range(0, 130)),
    }
    for name, data in s.items():
        write("lacp", name, data)


# --- vhost_queue: [flags][ring 0][ring 1][16 ops of 4 bytes][guest memory from address 0].
# flags: 1 MRG_RXBUF, 2 EVENT_IDX, 4 VERSION_1, 8 guest may ask checksums, 0x10 and TSO,
# 0x20 frames to the guest carry offload requests. A ring: [log2 size][desc][avail][used][base]
# (u16 LE each); ring 0 takes frames to the guest, ring 1 brings the guest's frames.
# Ops [kind][a][b][c]: 1 receive (a: batch slots used), 2 transmit (a & 0x7f) % 9 frames
# (a bit 7 jumbo, b c seed the lengths), 3 ring a&1's avail idx += b (a bit 1: set to b c),
# 4 poke byte c at address a b, 5 ring a&1 notifications off (b even) or on, 6 ring a&1
# stop (GET_VRING_BASE) and restart (a bit 1: at base b c).
# Memory: 64 KiB at 0 (from the input), a gap, a guard region at 0x11000.

VQ_GUARD = 0x11000
RX, TX, PUBLISH, POKE, NOTIFY, RESTART = 1, 2, 3, 4, 5, 6
F_NEXT, F_WRITE, F_INDIRECT = 1, 2, 4


class VqMemory:
    def __init__(self):
        self.mem = bytearray()

    def put(self, addr, data):
        if len(self.mem) < addr + len(data):
            self.mem.extend(b"\x00" * (addr + len(data) - len(self.mem)))
        self.mem[addr:addr + len(data)] = data

    def desc(self, at, addr, length, flags=0, nxt=0):
        self.put(at, struct.pack("<QIHH", addr, length, flags, nxt))


class VqRing:
    """The guest driver's side of a split ring laid out from `base`."""

    def __init__(self, m, base, log2, start=0):
        self.m, self.log2, self.size, self.base = m, log2, 1 << log2, start
        self.desc = base
        self.avail = base + 16 * self.size
        self.used = (self.avail + 6 + 2 * self.size + 3) & ~3
        self.next_desc, self.idx = 0, start
        m.put(self.avail + 2, struct.pack("<H", start & 0xFFFF))
        m.put(self.used, b"\x00" * (6 + 8 * self.size))

    def header(self):
        return struct.pack("<BHHHH", self.log2, self.desc, self.avail, self.used, self.base & 0xFFFF)

    def take(self):
        i = self.next_desc
        self.next_desc = (i + 1) % self.size
        return i

    def entry(self, head, publish=True):
        self.m.put(self.avail + 4 + 2 * (self.idx % self.size), struct.pack("<H", head))
        self.idx = (self.idx + 1) & 0xFFFF
        if publish:
            self.m.put(self.avail + 2, struct.pack("<H", self.idx))

    def chain(self, bufs, publish=True):
        """bufs: (addr, len, device_writable)."""
        idx = [self.take() for _ in bufs]
        for k, (addr, length, write) in enumerate(bufs):
            last = k + 1 == len(bufs)
            flags = (0 if last else F_NEXT) | (F_WRITE if write else 0)
            self.m.desc(self.desc + 16 * idx[k], addr, length, flags, 0 if last else idx[k + 1])
        self.entry(idx[0], publish)
        return idx[0]

    def indirect(self, table, bufs):
        for k, (addr, length, write) in enumerate(bufs):
            last = k + 1 == len(bufs)
            flags = (0 if last else F_NEXT) | (F_WRITE if write else 0)
            self.m.desc(table + 16 * k, addr, length, flags, 0 if last else k + 1)
        head = self.take()
        self.m.desc(self.desc + 16 * head, table, 16 * len(bufs), F_INDIRECT)
        self.entry(head)
        return head


def vq_input(flags, to_guest, from_guest, ops, m):
    assert len(ops) <= 16
    ops = list(ops) + [(0, 0, 0, 0)] * (16 - len(ops))
    return (bytes([flags]) + to_guest.header() + from_guest.header()
            + b"".join(bytes(o) for o in ops) + bytes(m.mem))


def vnet(flags=0, gso=0, hdr_len=0, gso_size=0, start=0, off=0):
    """The 12-byte header (num_buffers 0), host byte order as the port reads it."""
    return struct.pack("=BBHHHHH", flags, gso, hdr_len, gso_size, start, off, 0)


def tcp4(payload):
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40 + payload, 0, 0x4000, 64, 6, 0,
                     bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]))
    tcp = struct.pack("!HHIIBBHHH", 1000, 80, 1, 0, 0x50, 0x18, 65535, 0, 0)
    return mac(2) + mac(1) + b"\x08\x00" + ip + tcp + bytes(range(256)) * (payload // 256) + bytes(payload % 256)


def vq_rings(m, tx_log2=4, rx_log2=4, tx_start=0, rx_start=0):
    """Ring 0 (to the guest) at 0x100 and ring 1 (from it) at 0x1000; buffers from 0x2000."""
    return VqRing(m, 0x100, tx_log2, tx_start), VqRing(m, 0x1000, rx_log2, rx_start)


def vhost_queue():
    s = {}
    v1 = 4  # VERSION_1: 12-byte header without merging

    # Guest frames split every way: header alone, header with data, four pieces, indirect.
    m = VqMemory()
    t, r = vq_rings(m)
    f = [eth(mac(2), mac(1), 0x0800, bytes([n]) * (46 + 60 * n)) for n in range(4)]
    m.put(0x2000, vnet()); m.put(0x2100, f[0])
    r.chain([(0x2000, 12, False), (0x2100, len(f[0]), False)])
    m.put(0x2400, vnet() + f[1])
    r.chain([(0x2400, 12 + len(f[1]), False)])
    whole = vnet() + f[2]
    cuts = [0, 5, 40, 100, len(whole)]
    r.chain([(0x2800 + 0x100 * i, cuts[i + 1] - cuts[i], False) for i in range(4)])
    for i in range(4):
        m.put(0x2800 + 0x100 * i, whole[cuts[i]:cuts[i + 1]])
    whole = vnet() + f[3]
    m.put(0x3000, whole)
    r.indirect(0x1f00, [(0x3000, 70, False), (0x3046, 30, False), (0x3064, len(whole) - 100, False)])
    s["rx_layouts"] = vq_input(v1, t, r, [(RX, 0, 0, 0)], m)

    # Checksum-partial and TSO frames, allowed or not negotiated.
    m = VqMemory()
    t, r = vq_rings(m)
    frame = tcp4(3000)
    m.put(0x2000, vnet(1, 0, 0, 0, 34, 16) + frame)
    m.put(0x3000, vnet(1, 1, 54, 1448, 34, 16) + frame)
    m.put(0x4000, vnet(1, 1, 54, 0, 34, 16) + frame)  # GSO without a segment size
    m.put(0x5000, vnet(1, 0, 0, 0, 3000, 16) + frame)  # checksum past the frame
    for at in (0x2000, 0x3000, 0x4000, 0x5000):
        r.chain([(at, 12 + len(frame), False)])
    s["rx_offloads_allowed"] = vq_input(v1 | 8 | 0x10, t, r, [(RX, 0, 0, 0)], m)
    s["rx_offloads_not_negotiated"] = vq_input(v1, t, r, [(RX, 0, 0, 0)], m)

    # Hostile transmit chains: outside memory, across the region end, writable,
    # too short, a loop; a good one after them.
    m = VqMemory()
    t, r = vq_rings(m)
    good = vnet() + eth(mac(2), mac(1), 0x0800)
    m.put(0x2000, good)
    r.chain([(0x20000, 72, False)])
    r.chain([(0xFFF0, 72, False)])
    r.chain([(0x2000, 12, False), (0x2100, 60, True)])
    r.chain([(0x2000, 8, False)])
    r.chain([(VQ_GUARD, 72, False)])
    loop = r.take()
    m.desc(r.desc + 16 * loop, 0x2000, 72, F_NEXT, loop)
    r.entry(loop)
    r.chain([(0x2000, len(good), False)])
    s["rx_bad_descriptors"] = vq_input(v1, t, r, [(RX, 0, 0, 0), (RX, 0, 0, 0)], m)

    # A head past the ring; an available index that jumps past it; then a restart.
    m = VqMemory()
    t, r = vq_rings(m)
    m.put(0x2000, good)
    r.chain([(0x2000, len(good), False)])
    r.entry(40)
    s["rx_head_past_ring"] = vq_input(v1, t, r, [(RX, 0, 0, 0), (RESTART, 1, 0, 0), (RX, 0, 0, 0)], m)
    m = VqMemory()
    t, r = vq_rings(m)
    m.put(0x2000, good)
    r.chain([(0x2000, len(good), False)])
    m.put(r.avail + 2, struct.pack("<H", 40))
    s["rx_avail_jump"] = vq_input(v1, t, r, [(RX, 0, 0, 0), (RESTART, 1, 0, 0), (PUBLISH, 3, 1, 0),
                                           (RESTART, 3, 0, 0), (RX, 0, 0, 0)], m)

    # More chains than a batch holds, and a batch already partly used.
    m = VqMemory()
    t, r = vq_rings(m, rx_log2=6)
    m.put(0x2000, good)
    for _ in range(40):
        r.chain([(0x2000, len(good), False)])
    s["rx_full_batch"] = vq_input(v1, t, r, [(RX, 20, 0, 0), (RX, 0, 0, 0), (RX, 0, 0, 0)], m)

    # Frames to the guest: big buffers; small ones merged; no merging; offload headers.
    m = VqMemory()
    t, r = vq_rings(m)
    for i in range(4):
        t.chain([(0x2000 + 0x800 * i, 2048, True)])
    s["tx_big_buffers"] = vq_input(1, t, r, [(TX, 2, 1, 0), (TX, 1, 7, 0)], m)
    s["tx_offload_headers"] = vq_input(1 | 0x20, t, r, [(TX, 3, 1, 0)], m)
    m = VqMemory()
    t, r = vq_rings(m)
    for i in range(16):
        t.chain([(0x2000 + 0x100 * i, 128, True)])
    s["tx_merge_small_chains"] = vq_input(1, t, r, [(TX, 3, 0x10, 0), (TX, 2, 0x22, 0)], m)
    s["tx_no_merge_too_small"] = vq_input(v1, t, r, [(TX, 3, 0x10, 0), (TX, 2, 0x22, 0)], m)
    m = VqMemory()
    t, r = vq_rings(m)
    for i in range(8):
        t.chain([(0x2000 + 0x100 * i, 256, True), (0x2800 + 0x100 * i, 256, True)])
    s["tx_two_descriptor_chains"] = vq_input(v1, t, r, [(TX, 4, 0x33, 0)], m)

    # An empty ring, then the guest publishing buffers a few at a time.
    m = VqMemory()
    t, r = vq_rings(m)
    for i in range(12):
        t.chain([(0x2000 + 0x400 * i, 1024, True)], publish=False)
    s["tx_ring_empty_then_published"] = vq_input(1, t, r, [
        (TX, 3, 1, 0), (PUBLISH, 0, 2, 0), (TX, 3, 1, 0), (PUBLISH, 0, 6, 0),
        (TX, 0x83, 5, 0), (PUBLISH, 0, 4, 0), (TX, 8, 9, 0)], m)

    # Bad receive buffers: read-only, outside memory, across the region end,
    # too short for the header, a loop; one in the guard region (allowed).
    m = VqMemory()
    t, r = vq_rings(m)
    t.chain([(0x2000, 2048, False)])
    t.chain([(0x7000000, 2048, True)])
    t.chain([(0xFF00, 2048, True)])
    t.chain([(0x2000, 8, True)])
    loop = t.take()
    m.desc(t.desc + 16 * loop, 0x2800, 64, F_NEXT | F_WRITE, loop)
    t.entry(loop)
    t.chain([(VQ_GUARD + 0x100, 2048, True)])
    t.chain([(0x3000, 2048, True)])
    s["tx_bad_buffers"] = vq_input(1, t, r, [(TX, 8, 3, 0)], m)
    m.desc(t.desc, 0x2000, 0, F_INDIRECT)  # an empty indirect table
    s["tx_empty_indirect"] = vq_input(v1, t, r, [(TX, 3, 3, 0), (TX, 3, 3, 0)], m)

    # Both directions with EVENT_IDX, notifications off and on, the guest
    # rewriting a descriptor between bursts.
    m = VqMemory()
    t, r = vq_rings(m)
    for i in range(8):
        t.chain([(0x2000 + 0x800 * i, 2048, True)])
        m.put(0x6000 + 0x100 * i, vnet() + eth(mac(2), mac(i + 1), 0x0800))
        r.chain([(0x6000 + 0x100 * i, 72, False)])
    ops = [(NOTIFY, 0, 0, 0), (NOTIFY, 1, 0, 0), (RX, 0, 0, 0), (TX, 4, 2, 0),
           (POKE, 0x00, 0x10, 0x02), (NOTIFY, 1, 1, 0), (NOTIFY, 0, 1, 0), (PUBLISH, 1, 1, 0),
           (RX, 0, 0, 0), (TX, 4, 3, 0)]
    s["event_idx_both_ways"] = vq_input(1 | 2, t, r, ops, m)
    s["no_event_idx_both_ways"] = vq_input(1, t, r, ops, m)

    # Indices wrapping past 0xffff, and a restart at another base.
    m = VqMemory()
    t, r = vq_rings(m, tx_start=0xFFFE, rx_start=0xFFFD)
    for i in range(6):
        t.chain([(0x2000 + 0x800 * i, 2048, True)])
        m.put(0x6000 + 0x100 * i, vnet() + eth(mac(2), mac(i + 1), 0x0800))
        r.chain([(0x6000 + 0x100 * i, 72, False)])
    s["indices_wrap"] = vq_input(1, t, r, [(RX, 0, 0, 0), (TX, 5, 1, 0), (RESTART, 0, 0, 0),
                                           (RESTART, 3, 0xFD, 0xFF), (RX, 0, 0, 0), (TX, 2, 1, 0)], m)

    # Rings that do not fit in memory never run.
    m = VqMemory()
    t, r = vq_rings(m)
    t.log2, t.desc, t.avail, t.used = 10, 0xC000, 0xF000, 0xF800  # 16 KiB of descriptors
    r.used = 0xFFF8
    s["rings_outside_memory"] = vq_input(1, t, r, [(RX, 0, 0, 0), (TX, 3, 1, 0)], m)
    # Flag 0x80: a well-behaved guest checked against a model. Records
    # [op][x][seed u16]: 0 offer x % 17 receive buffers, 1 send frames,
    # 2 the guest sends frames, 3 take frames (x % 33 slots used).
    recs = [(0, 16, 1), (1, 8, 2), (0, 16, 3), (1, 0x88, 4), (2, 8, 5), (3, 0, 0),
            (2, 0x88, 6), (3, 30, 0), (0, 16, 7), (1, 8, 8), (0, 16, 9), (0, 16, 10),
            (0, 16, 11), (1, 0x88, 12), (2, 8, 13), (2, 8, 14), (3, 0, 0)]
    clean = b"".join(struct.pack("<BBH", *r) for r in recs)
    s["clean_merge"] = bytes([0x80 | 1]) + clean
    s["clean_no_merge"] = bytes([0x80 | v1]) + clean
    s["clean_legacy_header"] = bytes([0x80]) + clean
    s["empty"] = b""
    for name, data in s.items():
        write("vhost_queue", name, data)


# --- evpn: records of [op][args...] driving evpn::state (see vswitch/src/fuzzing/evpn.rs).
# Ops: 0 local [vlan][mac][local][ip], 1/2 remote update [rd][vni][vtep][kind][mac][ip][seq],
# 3 withdraw (a route's identity), 4 replace remote [n][routes], 5 replace local [n][(vlan,mac)],
# 6 topology [which][fresh], 7 withdraw all, 8 adopt [vni][mac][seq].
# VLAN index 0/1/2 = 10/20/99; VNI index 0/1/2 = 100/200/300 (300 not carried);
# VTEP index 0 = our own, 1..3 others; route kind 0 = type 3, else type 2.


def evpn():
    def local(vlan, mac, on, ip=0):
        return bytes([0, vlan, mac, 0 if on else 1, ip])

    def route(rd, vni, vtep, kind, mac=0, ip=0, seq=0, op=1):
        return bytes([op, rd, vni, vtep, kind, mac, ip, seq])

    s = {}
    s["local_then_gone"] = local(0, 1, True) + local(0, 1, False)
    s["local_with_arp_then_new_ip"] = local(0, 1, True, 1) + local(0, 1, True, 2)
    s["remote_then_local_outbids"] = route(1, 0, 1, 1, mac=1, seq=2) + local(0, 1, True)
    s["local_then_moves_away"] = local(0, 1, True) + route(1, 0, 2, 1, mac=1, seq=1)
    s["equal_seq_lower_address_wins"] = local(0, 1, True) + route(1, 0, 3, 1, mac=1, seq=0)
    s["flood_lists_and_limit"] = (route(1, 0, 1, 0) + route(2, 0, 2, 0) + route(3, 0, 3, 0)
                                  + route(1, 0, 1, 0, op=3))
    s["mac_limit"] = b"".join(route(n % 4, 0, 1, 1, mac=n, ip=n % 3) for n in range(8))
    s["own_routes_ignored"] = route(0, 0, 0, 1, mac=2) + route(0, 0, 0, 0)
    s["replace_tables"] = (route(1, 0, 1, 1, mac=1) + local(0, 2, True)
                           + bytes([4, 2]) + route(2, 0, 2, 1, mac=3)[1:] + route(1, 1, 1, 0)[1:]
                           + bytes([5, 1, 0, 4]))
    s["topology_change_and_fresh"] = (local(0, 1, True) + route(1, 0, 1, 1, mac=2)
                                      + bytes([6, 1, 0]) + bytes([6, 0, 0]) + bytes([6, 0, 1]))
    s["adopt_and_withdraw_all"] = local(0, 1, True, 1) + bytes([8, 0, 1, 5]) + bytes([7])
    s["empty"] = b""
    for name, data in s.items():
        write("evpn", name, data)


# --- fdb: [size] then records [op][key] driving fdb::table::MacTable against a HashMap
# (see vswitch/src/fuzzing/fdb.rs). size % 64 + 1 entries (8 slots for 0..1); op % 6:
# 0/1 insert (op bits 3-5 port/static/evpn, 0x80 a stamp past 32 bits), 2 remove,
# 3 find and set, 4 refresh, 5 sweep; key byte % 48 picks the key, 0x80 adds a flag bit.


def fdb():
    def ops(*pairs):
        return b"".join(bytes([op, k]) for op, k in pairs)

    s = {}
    s["insert_get_remove"] = bytes([16]) + ops((0, 1), (3, 1), (2, 1), (3, 1))
    s["fill_past_full"] = bytes([0]) + ops(*[(0, k) for k in range(12)])
    s["fill_then_remove_each"] = bytes([0]) + ops(*[(0, k) for k in range(8)]) + ops(
        *[(2, k) for k in range(8)])
    s["remove_in_chain_then_insert"] = (bytes([0]) + ops(*[(0, k) for k in range(10)])
                                        + ops((2, 3), (2, 5), (0, 40), (0, 41), (3, 7)))
    s["sweep_then_lookups"] = (bytes([1]) + ops(*[(1 | (p << 3), k) for p, k in
                                                  zip(range(5), range(14))])
                               + ops((5, 2), (3, 0), (3, 9), (0, 30)))
    s["flag_bit_is_the_same_key"] = bytes([8]) + ops((0, 5), (0, 0x80 | 5), (2, 0x80 | 5), (3, 5))
    s["stamps_saturate_and_refresh"] = bytes([8]) + ops((0x80, 2), (3, 2), (4, 2), (7, 2), (4, 2))
    s["static_and_evpn_flags"] = bytes([4]) + ops((0x10, 1), (0x20, 2), (0x30, 3), (5, 0), (3, 3))
    s["empty"] = b""
    for name, data in s.items():
        write("fdb", name, data)


if __name__ == "__main__":
    pipeline()
    control_request()
    ethernet()
    vxlan()
    lacp()
    vhost_queue()
    evpn()
    fdb()
