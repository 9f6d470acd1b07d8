//! Loading the port's XDP program and attaching it to the interface.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use super::config::XdpMode;
use super::program;
use crate::port::sys::bpf;
use crate::port::PortError;

/// The program, its XSKMAP and the link that keeps it attached. Dropping
/// it closes the link, which detaches the program.
pub struct Attachment {
    // Closed first: the program leaves the interface before the map goes.
    _link: OwnedFd,
    pub map: OwnedFd,
    _prog: OwnedFd,
    pub prog_id: u32,
    /// Native or Generic: the mode that took.
    pub mode: XdpMode,
}

/// Loads the redirect program for a map of `queues` slots and attaches it
/// to `ifindex` in `mode` (auto: native, else generic).
pub fn attach(
    iface: &str,
    ifindex: u32,
    queues: u32,
    mode: XdpMode,
) -> Result<Attachment, PortError> {
    let os = |e: crate::port::sys::SysError| e.into_port_error(iface);
    let map = bpf::create_xskmap(queues).map_err(os)?;
    let insns = program::encode(&program::xsk_redirect(map.as_raw_fd()));
    let prog = bpf::load_xdp_program(&insns, "vswitch_xsk").map_err(os)?;
    let prog_id = bpf::prog_id(&prog).map_err(os)?;
    let try_mode = |m: XdpMode| {
        let flags = match m {
            XdpMode::Generic => bpf::XDP_FLAGS_SKB_MODE,
            _ => bpf::XDP_FLAGS_DRV_MODE,
        };
        bpf::xdp_link_create(&prog, ifindex, flags)
    };
    let (link, mode) = match mode {
        XdpMode::Auto => match try_mode(XdpMode::Native) {
            Ok(link) => (link, XdpMode::Native),
            Err(e) if no_native_support(&e) => (
                try_mode(XdpMode::Generic).map_err(|e| link_error(iface, XdpMode::Generic, e))?,
                XdpMode::Generic,
            ),
            Err(e) => return Err(link_error(iface, XdpMode::Native, e)),
        },
        m => (try_mode(m).map_err(|e| link_error(iface, m, e))?, m),
    };
    Ok(Attachment {
        _link: link,
        map,
        _prog: prog,
        prog_id,
        mode,
    })
}

/// The driver has no native XDP (dev_xdp_attach: "Underlying driver does
/// not support XDP in native mode").
fn no_native_support(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::EOPNOTSUPP)
}

fn link_error(iface: &str, mode: XdpMode, e: io::Error) -> PortError {
    let msg = match e.raw_os_error() {
        // EBUSY: a program is attached in this mode; EEXIST: in the other
        // (native and generic cannot both be active).
        Some(libc::EBUSY | libc::EEXIST) => format!(
            "interface {iface:?} already has an XDP program attached by someone else \
             (see `ip link show {iface}`): detach it first"
        ),
        Some(libc::EOPNOTSUPP) if mode == XdpMode::Native => {
            format!("the driver of {iface:?} has no native XDP: use xdp_mode=generic (or auto)")
        }
        _ => format!(
            "attach the XDP program to {iface:?} in {} mode (bpf BPF_LINK_CREATE): {e}",
            mode.as_str()
        ),
    };
    PortError::Invalid(msg)
}
