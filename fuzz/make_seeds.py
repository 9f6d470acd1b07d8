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


if __name__ == "__main__":
    pipeline()
    control_request()
    ethernet()
    vxlan()
    lacp()
