//! BGP EVPN (RFC 7432, RFC 8365) for the VXLAN overlay, through the host's
//! GoBGP.

#[cfg(gobgp_api)]
pub mod api;
