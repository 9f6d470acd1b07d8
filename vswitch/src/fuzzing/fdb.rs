//! The `fdb` target: the forwarding table's storage (`fdb::table::MacTable`)
//! against a std `HashMap`, under any sequence of inserts, in-place
//! updates, refreshes, removals and sweeps.
//!
//! Input: `[size]` then records `[op][key]`. Tables hold 1 to 64 entries at
//! half load (8 to 128 slots) and keys come from 48 values, so buckets
//! overflow, chains wrap around the end, and the table fills up: an insert
//! into a full table must store nothing and lose nothing. Keys with flag
//! bits above the 60 key bits must behave as the key without them. After
//! every record the table must hold exactly the model's entries.

use std::collections::HashMap;

use crate::fdb::table::MacTable;
use crate::fdb::FdbEntry;

const KEY_BITS: u64 = (1 << 60) - 1;

/// One of 48 keys spread over the key bits, with a flag bit above them
/// when the byte's top bit is set (it must be ignored).
fn key_of(byte: u8) -> u64 {
    let k = (u64::from(byte % 48) + 1).wrapping_mul(0x0123_4567_89ab_cdef) & KEY_BITS;
    if byte & 0x80 != 0 {
        k | (1 << 61)
    } else {
        k
    }
}

/// What the table gives back for `e`: the second stamp is 32 bits wide.
fn stored(e: FdbEntry) -> FdbEntry {
    FdbEntry {
        last_seen: e.last_seen.min(u64::from(u32::MAX)),
        ..e
    }
}

fn entry_of(op: u8, k: u8) -> FdbEntry {
    FdbEntry {
        port: u32::from(op >> 3) % 5,
        last_seen: if op & 0x80 != 0 {
            u64::MAX - u64::from(k)
        } else {
            u64::from(k) * 1000
        },
        is_static: op & 0x10 != 0,
        evpn: op & 0x20 != 0,
    }
}

pub fn fdb(data: &[u8]) {
    let Some((&size, mut rest)) = data.split_first() else {
        return;
    };
    let mut table = MacTable::new(usize::from(size % 64) + 1);
    let room = table.capacity();
    let mut model: HashMap<u64, FdbEntry> = HashMap::new();
    let mut now = 0u64;
    while let [op, k, tail @ ..] = rest {
        rest = tail;
        let (op, k) = (*op, *k);
        let key = key_of(k);
        let id = key & KEY_BITS;
        now += u64::from(op & 3);
        match op % 6 {
            0 | 1 => {
                let e = entry_of(op, k);
                if model.len() < room || model.contains_key(&id) {
                    assert_eq!(table.insert(key, e), model.insert(id, stored(e)));
                } else {
                    assert_eq!(table.insert(key, e), None, "insert into a full table");
                    assert_eq!(table.get(key), None, "a full table stored a new key");
                }
            }
            2 => assert_eq!(table.remove(key), model.remove(&id)),
            3 => match table.find(key) {
                Some(at) => {
                    assert_eq!(Some(table.entry(at)), model.get(&id).copied());
                    let e = entry_of(op ^ 0x58, k);
                    table.set(at, &e);
                    model.insert(id, stored(e));
                }
                None => assert!(!model.contains_key(&id), "key {id:#x} lost"),
            },
            4 => {
                if let Some(at) = table.find(key) {
                    assert_eq!(table.port_at(at), model[&id].port);
                    let _ = table.refresh(at, now);
                    model.get_mut(&id).expect("found above").last_seen = now;
                }
            }
            _ => {
                let cut = u64::from(k % 7);
                table.retain(|key, e| (key ^ u64::from(e.port)) % 7 != cut);
                model.retain(|key, e| (*key ^ u64::from(e.port)) % 7 != cut);
            }
        }
        assert_eq!(table.len(), model.len());
        assert!(table.len() <= room);
        for (id, e) in &model {
            assert_eq!(table.get(*id), Some(*e), "key {id:#x}");
        }
    }
    let mut all: Vec<(u64, FdbEntry)> = table.iter().collect();
    all.sort_by_key(|(k, _)| *k);
    let mut want: Vec<(u64, FdbEntry)> = model.into_iter().collect();
    want.sort_by_key(|(k, _)| *k);
    assert_eq!(all, want);
}
