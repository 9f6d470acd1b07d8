//! The device's protocol handlers, called as the `vhost` crate calls them
//! for the front end's messages.

use std::fs::File;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use vhost::vhost_user::message::{
    VhostUserConfigFlags, VhostUserMemoryRegion, VhostUserVringAddrFlags,
};
use vhost::vhost_user::VhostUserBackendReqHandlerMut;
use vm_memory::{Bytes, GuestAddress};

use super::super::device::Device;
use super::super::features::{self, Features};
use super::{frame, with_header, BUFS, MEM_LEN, RING_AT};
use crate::fuzzing::vhost::{Desc, Driver, SplitRing};
use crate::packet::offload::OffloadCaps;
use crate::packet::Batch;
use crate::pipeline::counters::PortCounters;
use crate::port::sys::epoll::Epoll;
use crate::wire::vnet::VnetHdr;
use crate::wire::MacAddr;

/// A device with a 64 KiB memory table at front-end address `USER`.
const USER: u64 = 0x7f00_0000_0000;

fn device() -> Device {
    let epoll = Arc::new(Epoll::new().expect("epoll"));
    let mac = MacAddr([0x52, 0x54, 0, 0x12, 0x34, 0x56]);
    let mut dev = Device::new(1, Some(mac), epoll);
    // The guest's memory: a file of its own (tests run in parallel),
    // unlinked once open.
    static FILES: AtomicUsize = AtomicUsize::new(0);
    let n = FILES.fetch_add(1, Ordering::Relaxed);
    let name = format!("vswitch-vhost-{}-{n}", std::process::id());
    let path = std::env::temp_dir().join(name);
    let file = File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    file.set_len(MEM_LEN).unwrap();
    let region = VhostUserMemoryRegion::new(0, MEM_LEN, USER, 0);
    assert_eq!(
        dev.set_mem_table(&[region], vec![file], None).ok(),
        Some(None)
    );
    dev
}

#[test]
fn ring_addresses_must_lie_in_the_memory_table() {
    let mut dev = device();
    let flags = VhostUserVringAddrFlags::empty;
    let r = SplitRing::at(RING_AT, 16);
    let (d, u, a) = (USER + r.desc, USER + r.used, USER + r.avail);
    assert!(dev.set_vring_addr(1, flags(), d, u, a, 0).is_ok());
    assert!(dev
        .set_vring_addr(1, flags(), d, USER + MEM_LEN, a, 0)
        .is_err());
    assert!(
        dev.set_vring_addr(1, flags(), r.desc, u, a, 0).is_err(),
        "a guest address"
    );
    assert!(
        dev.set_vring_addr(2, flags(), d, u, a, 0).is_err(),
        "no such ring"
    );
    assert!(dev.set_vring_num(1, 24).is_err());
    assert!(dev.set_vring_num(1, 65536).is_err());
    // Overlapping regions, or a region without its file, are refused.
    let two = [
        VhostUserMemoryRegion::new(0, MEM_LEN, USER, 0),
        VhostUserMemoryRegion::new(0x8000, MEM_LEN, USER + MEM_LEN, 0),
    ];
    let zero = || File::options().read(true).write(true).open("/dev/zero");
    let files = (0..2).map(|_| zero().unwrap()).collect();
    assert!(dev.set_mem_table(&two, files, None).is_err());
    assert!(dev.set_mem_table(&two[..1], Vec::new(), None).is_err());
}

#[test]
fn get_vring_base_returns_where_the_ring_stopped() {
    let mut dev = device();
    let offered = dev.offered() & !(1 << features::VHOST_USER_F_PROTOCOL_FEATURES);
    dev.set_features(offered).unwrap();
    let r = SplitRing::at(RING_AT, 16);
    let flags = VhostUserVringAddrFlags::empty;
    dev.set_vring_num(1, 16).unwrap();
    let (d, u, a) = (USER + r.desc, USER + r.used, USER + r.avail);
    dev.set_vring_addr(1, flags(), d, u, a, 0).unwrap();
    dev.set_vring_base(1, 7).unwrap();
    dev.set_vring_kick(1, None).unwrap();
    let (mem, rings) = dev.memory_and_rings();
    let mem = mem.unwrap();
    // A ring resumed where it stopped: the guest's used index agrees.
    mem.write_obj(7u16.to_le(), GuestAddress(r.used + 2))
        .unwrap();
    assert!(rings[1].activate(Some(mem)));
    let mut driver = Driver::new(mem, r, 7);
    let wire = with_header(&VnetHdr::default(), &frame(60, 0));
    mem.write_slice(&wire, GuestAddress(BUFS)).unwrap();
    for _ in 0..2 {
        driver.add_chain(mem, &[Desc::readable(BUFS, 72)]);
    }
    let mut counters = PortCounters::default();
    let got = rings[1].receive(mem, &mut Batch::new(), 12, OffloadCaps::NONE, &mut counters);
    assert_eq!(got, Ok(2));
    let state = dev.get_vring_base(1).unwrap();
    assert_eq!({ state.num }, 9);
    let (mem, rings) = dev.memory_and_rings();
    assert!(!rings[1].is_active());
    assert!(!rings[1].activate(mem), "stopped until the next kick");
}

#[test]
fn features_not_offered_are_refused() {
    let mut dev = device();
    let packed = 1 << features::F_RING_PACKED;
    assert!(dev.set_features(packed).is_err());
    assert!(dev.set_features(dev.offered() | (1 << 40)).is_err());
    assert_eq!(dev.acked(), Features::default());
    dev.set_features(dev.offered()).unwrap();
    assert_eq!(dev.acked().header_len(), 12);
    assert!(dev.acked().has(features::NET_F_MRG_RXBUF));
}

#[test]
fn config_space_has_the_mac_and_link_status() {
    let mut dev = device();
    let flags = VhostUserConfigFlags::empty();
    let space = dev.get_config(0, 10, flags).unwrap();
    assert_eq!(space, [0x52, 0x54, 0, 0x12, 0x34, 0x56, 1, 0, 1, 0]);
    assert_eq!(
        dev.get_config(6, 2, flags).unwrap(),
        [1, 0],
        "NET_S_LINK_UP"
    );
    assert_eq!(dev.get_config(8, 4, flags).unwrap(), [1, 0, 0, 0]);
    assert_eq!(dev.get_config(4096, 2, flags).unwrap(), [0, 0]);
    assert!(dev.set_config(0, &[0; 6], flags).is_err());
}

#[test]
fn a_ring_resumes_at_the_guests_used_index_not_a_stale_base() {
    // virtio-user reconnecting to a restarted switch sends the base it
    // last knew (0 here) while its rings moved on to 5.
    let mut dev = device();
    let offered = dev.offered() & !(1 << features::VHOST_USER_F_PROTOCOL_FEATURES);
    dev.set_features(offered).unwrap();
    let r = SplitRing::at(RING_AT, 16);
    dev.set_vring_num(1, 16).unwrap();
    let (d, u, a) = (USER + r.desc, USER + r.used, USER + r.avail);
    dev.set_vring_addr(1, VhostUserVringAddrFlags::empty(), d, u, a, 0)
        .unwrap();
    dev.set_vring_base(1, 0).unwrap();
    dev.set_vring_kick(1, None).unwrap();
    let (mem, rings) = dev.memory_and_rings();
    let mem = mem.unwrap();
    mem.write_obj(5u16.to_le(), GuestAddress(r.used + 2))
        .unwrap();
    let mut driver = Driver::new(mem, r, 5);
    let wire = with_header(&VnetHdr::default(), &frame(60, 0));
    mem.write_slice(&wire, GuestAddress(BUFS)).unwrap();
    driver.add_chain(mem, &[Desc::readable(BUFS, 72)]);
    assert!(rings[1].activate(Some(mem)));
    let mut counters = PortCounters::default();
    let got = rings[1].receive(mem, &mut Batch::new(), 12, OffloadCaps::NONE, &mut counters);
    assert_eq!(
        got,
        Ok(1),
        "the chain after the used index is taken, no ring fault"
    );
    assert_eq!(rings[1].position(), (6, 6));
}
