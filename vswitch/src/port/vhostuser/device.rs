//! The virtio-net device state a vhost-user front end (QEMU, DPDK's
//! virtio-user) sets up over the socket: negotiated features, the guest's
//! shared memory, and the virtqueues with their kick and call eventfds.
//!
//! The `vhost` crate parses the protocol and calls the handler below; the
//! handler only records state. The port (`super`) reads it to poll the
//! queues, and notices changes through `generation`.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::sync::Arc;

use vhost::vhost_user::message::{
    VhostTransferStateDirection, VhostTransferStatePhase, VhostUserConfigFlags, VhostUserInflight,
    VhostUserLog, VhostUserMemoryRegion, VhostUserShMemConfig, VhostUserSharedMsg,
    VhostUserSingleMemoryRegion, VhostUserVringAddrFlags, VhostUserVringState,
};
use vhost::vhost_user::{
    Error, GpuBackend, Result, VhostUserBackendReqHandlerMut, VhostUserProtocolFeatures,
};
use vm_memory::{FileOffset, GuestAddress, GuestMemoryMmap, GuestRegionMmap};

use super::features::{self, Features};
use super::virtq::Vring;
use crate::port::sys::epoll::Epoll;
use crate::wire::MacAddr;

/// The largest virtqueue the switch accepts (virtio's limit for split rings).
pub const MAX_QUEUE_SIZE: u16 = 32768;

/// One region of the front end's memory table, for translating the ring
/// addresses it gives in its own address space.
#[derive(Debug, Clone, Copy)]
struct UserRegion {
    user_addr: u64,
    size: u64,
    guest_addr: u64,
}

/// The device side of one vhost-user connection.
pub struct Device {
    queue_pairs: u16,
    mac: Option<MacAddr>,
    acked: Features,
    acked_protocol: VhostUserProtocolFeatures,
    memory: Option<GuestMemoryMmap>,
    regions: Vec<UserRegion>,
    pub(super) vrings: Vec<Vring>,
    /// The port's readiness set, which holds the guest's transmit kicks.
    epoll: Arc<Epoll>,
    /// Bumped on every change the port must react to (rings started or
    /// stopped, eventfds replaced, features or memory changed).
    pub(super) generation: u64,
}

fn invalid(what: &'static str) -> Error {
    Error::InvalidOperation(what)
}

impl Device {
    pub fn new(queue_pairs: u16, mac: Option<MacAddr>, epoll: Arc<Epoll>) -> Device {
        let vrings = (0..queue_pairs as usize * 2)
            .map(|_| Vring::new(MAX_QUEUE_SIZE))
            .collect();
        Device {
            queue_pairs,
            mac,
            acked: Features::default(),
            acked_protocol: VhostUserProtocolFeatures::empty(),
            memory: None,
            regions: Vec::new(),
            vrings,
            epoll,
            generation: 0,
        }
    }

    /// The virtio features this device offers.
    pub fn offered(&self) -> u64 {
        features::offered(self.queue_pairs, self.mac.is_some())
    }

    pub fn acked(&self) -> Features {
        self.acked
    }

    /// Splits the device into its memory and its rings, so the data path
    /// can borrow both at once.
    pub(super) fn memory_and_rings(&mut self) -> (Option<&GuestMemoryMmap>, &mut [Vring]) {
        (self.memory.as_ref(), &mut self.vrings)
    }

    /// Forgets everything the front end set up: what a disconnect or a
    /// reset leaves behind. Counters of the rings stay.
    pub fn reset(&mut self) {
        self.acked = Features::default();
        self.acked_protocol = VhostUserProtocolFeatures::empty();
        self.memory = None;
        self.regions.clear();
        for vring in &mut self.vrings {
            if let Some(kick) = &vring.kick {
                let _ = self.epoll.remove(kick.as_raw_fd());
            }
            vring.reset();
        }
        self.generation += 1;
    }

    /// Clears a kick the guest sent while the datapath was not listening,
    /// so the readiness set does not stay readable.
    pub fn clear_kick(&mut self, fd: RawFd) {
        if let Some(kick) = self
            .vrings
            .iter()
            .filter_map(|v| v.kick.as_ref())
            .find(|k| k.as_raw_fd() == fd)
        {
            // Readable, so the read does not block.
            let _ = (&*kick).read(&mut [0u8; 8]);
        }
    }

    fn vring(&mut self, index: u32) -> Result<&mut Vring> {
        self.vrings
            .get_mut(index as usize)
            .ok_or(Error::InvalidParam)
    }

    /// A front-end virtual address as a guest physical address.
    fn to_guest(&self, user_addr: u64) -> Result<GuestAddress> {
        self.regions
            .iter()
            .find(|r| user_addr >= r.user_addr && user_addr - r.user_addr < r.size)
            .map(|r| GuestAddress(r.guest_addr + (user_addr - r.user_addr)))
            .ok_or(invalid("ring address outside the memory table"))
    }

    /// The virtio-net configuration space: MAC, link status, queue pairs.
    fn config_space(&self) -> [u8; 10] {
        let mut space = [0u8; 10];
        if let Some(mac) = self.mac {
            space[..6].copy_from_slice(&mac.0);
        }
        space[6..8].copy_from_slice(&features::NET_S_LINK_UP.to_le_bytes());
        space[8..10].copy_from_slice(&self.queue_pairs.to_le_bytes());
        space
    }
}

impl VhostUserBackendReqHandlerMut for Device {
    fn set_owner(&mut self) -> Result<()> {
        Ok(())
    }

    fn reset_owner(&mut self) -> Result<()> {
        self.reset();
        Ok(())
    }

    fn reset_device(&mut self) -> Result<()> {
        self.reset();
        Ok(())
    }

    fn get_features(&mut self) -> Result<u64> {
        Ok(self.offered())
    }

    fn set_features(&mut self, bits: u64) -> Result<()> {
        if bits & !self.offered() != 0 {
            return Err(invalid("front end acked features the device did not offer"));
        }
        self.acked = Features(bits);
        let event_idx = self.acked.has(features::RING_F_EVENT_IDX);
        for vring in &mut self.vrings {
            vring.set_event_idx(event_idx);
        }
        // Without VHOST_USER_F_PROTOCOL_FEATURES a ring runs as soon as it
        // has a kick; with it, only once enabled (vhost-user spec, "Ring
        // states"), which QEMU may have done already, before this ack.
        if !self.acked.has(features::VHOST_USER_F_PROTOCOL_FEATURES) {
            for vring in &mut self.vrings {
                vring.enabled = true;
            }
        }
        self.generation += 1;
        Ok(())
    }

    fn set_mem_table(
        &mut self,
        ctx: &[VhostUserMemoryRegion],
        files: Vec<File>,
        _postcopy_listening: Option<bool>,
    ) -> Result<Option<Vec<u64>>> {
        if ctx.len() != files.len() {
            return Err(Error::InvalidParam);
        }
        let mut mapped = Vec::with_capacity(ctx.len());
        let mut regions = Vec::with_capacity(ctx.len());
        for (region, file) in ctx.iter().zip(files) {
            let size = usize::try_from(region.memory_size).map_err(|_| Error::InvalidParam)?;
            if size == 0 {
                return Err(Error::InvalidParam);
            }
            // A mapping past the end of its file faults (SIGBUS) when
            // touched, which would take the whole switch down: refuse a
            // region its file does not back.
            let end = region
                .mmap_offset
                .checked_add(region.memory_size)
                .ok_or(Error::InvalidParam)?;
            let backed = file.metadata().map(|m| m.len()).unwrap_or(0);
            if backed < end {
                return Err(invalid("memory region larger than the file that backs it"));
            }
            let offset = FileOffset::new(file, region.mmap_offset);
            let mmap = GuestRegionMmap::from_range(
                GuestAddress(region.guest_phys_addr),
                size,
                Some(offset),
            )
            .map_err(|e| Error::ReqHandlerError(std::io::Error::other(e)))?;
            mapped.push(mmap);
            regions.push(UserRegion {
                user_addr: region.user_addr,
                size: region.memory_size,
                guest_addr: region.guest_phys_addr,
            });
        }
        // Overlapping regions are refused here.
        let memory = GuestMemoryMmap::from_regions(mapped)
            .map_err(|e| Error::ReqHandlerError(std::io::Error::other(e)))?;
        self.memory = Some(memory);
        self.regions = regions;
        self.generation += 1;
        Ok(None)
    }

    fn set_vring_num(&mut self, index: u32, num: u32) -> Result<()> {
        let size = u16::try_from(num).map_err(|_| Error::InvalidParam)?;
        self.vring(index)?.set_size(size)
    }

    fn set_vring_addr(
        &mut self,
        index: u32,
        _flags: VhostUserVringAddrFlags,
        descriptor: u64,
        used: u64,
        available: u64,
        _log: u64,
    ) -> Result<()> {
        let desc = self.to_guest(descriptor)?;
        let used = self.to_guest(used)?;
        let avail = self.to_guest(available)?;
        self.vring(index)?.set_addresses(desc, avail, used)
    }

    fn set_vring_base(&mut self, index: u32, base: u32) -> Result<()> {
        let base = u16::try_from(base).map_err(|_| Error::InvalidParam)?;
        self.vring(index)?.set_base(base);
        Ok(())
    }

    fn get_vring_base(&mut self, index: u32) -> Result<VhostUserVringState> {
        let next = self.vring(index)?.stop();
        self.generation += 1;
        Ok(VhostUserVringState::new(index, u32::from(next)))
    }

    fn set_vring_kick(&mut self, index: u8, fd: Option<File>) -> Result<()> {
        let epoll = Arc::clone(&self.epoll);
        let vring = self.vring(u32::from(index))?;
        // Only the guest's transmit queues (odd) wake the datapath; the
        // old descriptor leaves the set while it is still open.
        if let Some(old) = &vring.kick {
            let _ = epoll.remove(old.as_raw_fd());
        }
        if let Some(new) = &fd {
            // Kicks are cleared by reads that must never wait, even if a
            // descriptor number was reused between a readiness check and
            // the read.
            crate::port::sys::set_nonblocking(new.as_fd()).map_err(Error::ReqHandlerError)?;
        }
        if let Some(new) = fd.as_ref().filter(|_| index % 2 == 1) {
            epoll
                .add(new.as_raw_fd())
                .map_err(|e| Error::ReqHandlerError(e.source))?;
        }
        vring.set_kick(fd);
        self.generation += 1;
        Ok(())
    }

    fn set_vring_call(&mut self, index: u8, fd: Option<File>) -> Result<()> {
        if let Some(call) = &fd {
            // A write to it must never wait, whatever the front end passed
            // (an eventfd, or a pipe that could fill up).
            crate::port::sys::set_nonblocking(call.as_fd()).map_err(Error::ReqHandlerError)?;
        }
        self.vring(u32::from(index))?.call = fd;
        Ok(())
    }

    fn set_vring_err(&mut self, index: u8, _fd: Option<File>) -> Result<()> {
        self.vring(u32::from(index)).map(|_| ())
    }

    fn get_protocol_features(&mut self) -> Result<VhostUserProtocolFeatures> {
        let mut offered = VhostUserProtocolFeatures::MQ
            | VhostUserProtocolFeatures::REPLY_ACK
            | VhostUserProtocolFeatures::RESET_DEVICE;
        if self.mac.is_some() {
            offered |= VhostUserProtocolFeatures::CONFIG;
        }
        Ok(offered)
    }

    fn set_protocol_features(&mut self, bits: u64) -> Result<()> {
        let acked = VhostUserProtocolFeatures::from_bits(bits)
            .ok_or(invalid("unknown protocol feature"))?;
        if !self.get_protocol_features()?.contains(acked) {
            return Err(invalid("front end acked protocol features not offered"));
        }
        self.acked_protocol = acked;
        Ok(())
    }

    fn get_queue_num(&mut self) -> Result<u64> {
        Ok(u64::from(self.queue_pairs) * 2)
    }

    fn set_vring_enable(&mut self, index: u32, enable: bool) -> Result<()> {
        self.vring(index)?.enabled = enable;
        self.generation += 1;
        Ok(())
    }

    fn get_config(
        &mut self,
        offset: u32,
        size: u32,
        _flags: VhostUserConfigFlags,
    ) -> Result<Vec<u8>> {
        let space = self.config_space();
        let start = offset as usize;
        let end = start
            .checked_add(size as usize)
            .ok_or(Error::InvalidParam)?;
        // Past the fields the device has, the space reads as zeros.
        let mut out = vec![0u8; size as usize];
        if start < space.len() {
            let have = end.min(space.len());
            out[..have - start].copy_from_slice(&space[start..have]);
        }
        Ok(out)
    }

    fn set_config(
        &mut self,
        _offset: u32,
        _buf: &[u8],
        _flags: VhostUserConfigFlags,
    ) -> Result<()> {
        Err(invalid("virtio-net configuration space is read-only"))
    }

    fn set_gpu_socket(&mut self, _gpu_backend: GpuBackend) -> Result<()> {
        Err(invalid("not a GPU device"))
    }

    fn get_shared_object(&mut self, _uuid: VhostUserSharedMsg) -> Result<File> {
        Err(invalid("shared objects are not supported"))
    }

    fn get_inflight_fd(
        &mut self,
        _inflight: &VhostUserInflight,
    ) -> Result<(VhostUserInflight, File)> {
        Err(invalid("inflight tracking is not supported"))
    }

    fn set_inflight_fd(&mut self, _inflight: &VhostUserInflight, _file: File) -> Result<()> {
        Err(invalid("inflight tracking is not supported"))
    }

    fn get_max_mem_slots(&mut self) -> Result<u64> {
        Err(invalid("memory slots are not supported"))
    }

    fn add_mem_region(
        &mut self,
        _region: &VhostUserSingleMemoryRegion,
        _fd: File,
        _postcopy_listening: Option<bool>,
    ) -> Result<Option<u64>> {
        Err(invalid("memory slots are not supported"))
    }

    fn remove_mem_region(&mut self, _region: &VhostUserSingleMemoryRegion) -> Result<()> {
        Err(invalid("memory slots are not supported"))
    }

    fn set_device_state_fd(
        &mut self,
        _direction: VhostTransferStateDirection,
        _phase: VhostTransferStatePhase,
        _fd: File,
    ) -> Result<Option<File>> {
        Err(invalid("device state transfer is not supported"))
    }

    fn check_device_state(&mut self) -> Result<()> {
        Err(invalid("device state transfer is not supported"))
    }

    fn get_shmem_config(&mut self) -> Result<VhostUserShMemConfig> {
        Err(invalid("shared memory regions are not supported"))
    }

    fn set_log_base(&mut self, _log: &VhostUserLog, _file: File) -> Result<()> {
        Err(invalid("dirty logging (live migration) is not supported"))
    }
}
