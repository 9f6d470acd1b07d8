//! The bpf(2) calls an AF_XDP port needs: an XSKMAP, an XDP program loaded
//! from instructions assembled in Rust, the map's entries, and a BPF link
//! that attaches the program to an interface.
//!
//! A link (BPF_LINK_CREATE, Linux 5.9+) detaches the program by itself when
//! its last descriptor closes: when the port is deleted, and equally when
//! the daemon exits, crashes or is killed with SIGKILL, so no program is
//! ever left behind redirecting frames into sockets that no longer exist.
//!
//! libc has no eBPF definitions, so the parts of `union bpf_attr`
//! (include/uapi/linux/bpf.h) each command reads are declared here, one
//! `#[repr(C)]` struct per command, with the kernel's field names.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::{SysError, SysResult};

const BPF_MAP_CREATE: libc::c_int = 0;
const BPF_MAP_UPDATE_ELEM: libc::c_int = 2;
const BPF_PROG_LOAD: libc::c_int = 5;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_int = 15;
const BPF_LINK_CREATE: libc::c_int = 28;
const BPF_MAP_TYPE_XSKMAP: u32 = 17;
const BPF_PROG_TYPE_XDP: u32 = 6;
/// enum bpf_attach_type: BPF_XDP.
const BPF_XDP: u32 = 37;
/// Verifier log kept when loading fails.
const LOG_LEN: usize = 64 * 1024;

/// XDP attach flags (include/uapi/linux/if_link.h).
pub const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
pub const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;

/// bpf_attr for BPF_MAP_CREATE.
#[repr(C)]
struct MapCreateAttr {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    inner_map_fd: u32,
    numa_node: u32,
    map_name: [u8; 16],
}

/// bpf_attr for BPF_MAP_UPDATE_ELEM.
#[repr(C)]
struct MapElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

/// bpf_attr for BPF_PROG_LOAD, up to `expected_attach_type`.
#[repr(C)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// bpf_attr for BPF_LINK_CREATE, its common head.
#[repr(C)]
struct LinkCreateAttr {
    prog_fd: u32,
    target_ifindex: u32,
    attach_type: u32,
    flags: u32,
}

/// bpf_attr for BPF_OBJ_GET_INFO_BY_FD.
#[repr(C)]
struct InfoAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

/// The head of `struct bpf_prog_info`: all that is read back.
#[repr(C)]
struct ProgInfoHead {
    prog_type: u32,
    id: u32,
}

/// bpf(2) with `attr`, which the kernel reads (and for some commands
/// writes) for its size.
fn bpf<T>(cmd: libc::c_int, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a valid, exclusively borrowed value of the layout
    // the kernel expects for `cmd` (the structs above), and the size passed
    // is its size; pointers inside it point to live buffers of the stated
    // lengths (checked by each caller).
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            (attr as *mut T).cast::<libc::c_void>(),
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// bpf(2) for a command that returns a new descriptor.
fn bpf_fd<T>(cmd: libc::c_int, attr: &mut T) -> io::Result<OwnedFd> {
    let fd = bpf(cmd, attr)?;
    // SAFETY: the kernel just returned this descriptor (O_CLOEXEC) and
    // nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

fn name16(name: &str) -> [u8; 16] {
    let mut out = [0u8; 16];
    for (o, b) in out.iter_mut().zip(name.bytes().take(15)) {
        *o = b;
    }
    out
}

/// A new XSKMAP of `entries` slots (queue id -> AF_XDP socket).
pub fn create_xskmap(entries: u32) -> SysResult<OwnedFd> {
    let mut attr = MapCreateAttr {
        map_type: BPF_MAP_TYPE_XSKMAP,
        key_size: 4,
        value_size: 4,
        max_entries: entries,
        map_flags: 0,
        inner_map_fd: 0,
        numa_node: 0,
        map_name: name16("vswitch_xsks"),
    };
    bpf_fd(BPF_MAP_CREATE, &mut attr).map_err(|source| SysError {
        what: "create the XSKMAP (bpf BPF_MAP_CREATE)",
        source,
    })
}

/// Stores socket `sock` at `key` of the XSKMAP `map`.
pub fn xskmap_set(map: &OwnedFd, key: u32, sock: RawFd) -> SysResult<()> {
    let value = sock as u32;
    let mut attr = MapElemAttr {
        map_fd: map.as_raw_fd() as u32,
        _pad: 0,
        key: (&key as *const u32) as u64,
        value: (&value as *const u32) as u64,
        flags: 0,
    };
    bpf(BPF_MAP_UPDATE_ELEM, &mut attr)
        .map(|_| ())
        .map_err(|source| SysError {
            what: "insert the socket into the XSKMAP",
            source,
        })
}

/// Loads an XDP program from its encoded instructions (8 bytes each). On
/// failure the error carries the verifier's log.
pub fn load_xdp_program(insns: &[u8], name: &str) -> SysResult<OwnedFd> {
    const LICENSE: &[u8] = b"GPL\0";
    let load = |log: Option<&mut [u8]>| {
        let (log_level, log_size, log_buf) = match log {
            Some(buf) => (1, buf.len() as u32, buf.as_mut_ptr() as u64),
            None => (0, 0, 0),
        };
        let mut attr = ProgLoadAttr {
            prog_type: BPF_PROG_TYPE_XDP,
            insn_cnt: (insns.len() / 8) as u32,
            insns: insns.as_ptr() as u64,
            license: LICENSE.as_ptr() as u64,
            log_level,
            log_size,
            log_buf,
            kern_version: 0,
            prog_flags: 0,
            prog_name: name16(name),
            prog_ifindex: 0,
            expected_attach_type: BPF_XDP,
        };
        bpf_fd(BPF_PROG_LOAD, &mut attr)
    };
    let what = "load the XDP program (bpf BPF_PROG_LOAD)";
    match load(None) {
        Ok(fd) => Ok(fd),
        Err(first) => {
            // Load again with the verifier's log on, to say why.
            let mut log = vec![0u8; LOG_LEN];
            let source = match load(Some(&mut log[..])) {
                Ok(fd) => return Ok(fd),
                Err(e) => e,
            };
            let end = log.iter().position(|b| *b == 0).unwrap_or(log.len());
            let text = String::from_utf8_lossy(&log[..end]);
            let text = text.trim();
            let source = if text.is_empty() {
                first
            } else {
                io::Error::new(source.kind(), format!("{source}; verifier log: {text}"))
            };
            Err(SysError { what, source })
        }
    }
}

/// Attaches `prog` to interface `ifindex` through a BPF link, in the mode
/// `flags` selects (`XDP_FLAGS_DRV_MODE` or `XDP_FLAGS_SKB_MODE`). The
/// program stays attached as long as the returned descriptor is open.
pub fn xdp_link_create(prog: &OwnedFd, ifindex: u32, flags: u32) -> io::Result<OwnedFd> {
    let mut attr = LinkCreateAttr {
        prog_fd: prog.as_raw_fd() as u32,
        target_ifindex: ifindex,
        attach_type: BPF_XDP,
        flags,
    };
    bpf_fd(BPF_LINK_CREATE, &mut attr)
}

/// The kernel's id of the loaded program `prog` (what `ip link` shows).
pub fn prog_id(prog: &OwnedFd) -> SysResult<u32> {
    let mut info = ProgInfoHead {
        prog_type: 0,
        id: 0,
    };
    let mut attr = InfoAttr {
        bpf_fd: prog.as_raw_fd() as u32,
        info_len: std::mem::size_of::<ProgInfoHead>() as u32,
        info: (&mut info as *mut ProgInfoHead) as u64,
    };
    bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr).map_err(|source| SysError {
        what: "read the XDP program's id",
        source,
    })?;
    Ok(info.id)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The attr structs have the offsets of union bpf_attr's members.
    #[test]
    fn attr_layouts_match_the_kernel() {
        assert_eq!(std::mem::size_of::<MapCreateAttr>(), 44);
        assert_eq!(std::mem::offset_of!(MapCreateAttr, map_name), 28);
        assert_eq!(std::mem::offset_of!(MapElemAttr, value), 16);
        assert_eq!(std::mem::offset_of!(ProgLoadAttr, log_buf), 32);
        assert_eq!(std::mem::offset_of!(ProgLoadAttr, prog_name), 48);
        assert_eq!(std::mem::offset_of!(ProgLoadAttr, expected_attach_type), 68);
        assert_eq!(std::mem::offset_of!(LinkCreateAttr, flags), 12);
        assert_eq!(std::mem::offset_of!(InfoAttr, info), 8);
    }

    #[test]
    fn names_are_cut_to_fit() {
        assert_eq!(&name16("abc")[..4], b"abc\0");
        assert_eq!(name16("0123456789abcdefgh")[15], 0);
    }
}
