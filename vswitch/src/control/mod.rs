//! The control plane: protocol types (shared with `vsctl`), the unix socket
//! server and the executor that applies requests.

pub mod executor;
pub mod protocol;
pub mod server;
pub mod stream;
