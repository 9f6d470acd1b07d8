//! The four calls the session makes to gobgpd.

use tonic::transport::{Channel, Endpoint};

use super::{Received, CONNECT_TIMEOUT, RPC_TIMEOUT};
use crate::evpn::api::{self, gobgp_api_client::GobgpApiClient};
use crate::evpn::routes;

pub(super) async fn connect(addr: &str) -> Result<GobgpApiClient<Channel>, String> {
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| format!("gobgp={addr}: {e}"))?
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(RPC_TIMEOUT);
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| format!("connecting to gobgpd at {addr}: {e}"))?;
    // 100k routes in one listing are larger than tonic's 4 MiB default.
    Ok(GobgpApiClient::new(channel).max_decoding_message_size(64 * 1024 * 1024))
}

pub(super) async fn add(c: &mut GobgpApiClient<Channel>, path: &api::Path) -> Result<(), String> {
    c.add_path(api::AddPathRequest {
        table_type: api::TableType::Global as i32,
        vrf_id: String::new(),
        path: Some(path.clone()),
    })
    .await
    .map(|_| ())
    .map_err(|e| format!("adding a route to gobgpd: {}", e.message()))
}

pub(super) async fn delete(
    c: &mut GobgpApiClient<Channel>,
    path: &api::Path,
) -> Result<(), String> {
    c.delete_path(api::DeletePathRequest {
        table_type: api::TableType::Global as i32,
        vrf_id: String::new(),
        family: Some(routes::family()),
        path: Some(path.clone()),
        uuid: Vec::new(),
    })
    .await
    .map(|_| ())
    .map_err(|e| format!("deleting a route from gobgpd: {}", e.message()))
}

/// Deletes a path found in GoBGP by its NLRI as found (an earlier life may
/// have added it with another address or sequence).
pub(super) async fn delete_received(
    c: &mut GobgpApiClient<Channel>,
    r: &Received,
) -> Result<(), String> {
    let path = api::Path {
        nlri: r.nlri.clone(),
        family: Some(routes::family()),
        is_withdraw: true,
        ..Default::default()
    };
    delete(c, &path).await
}
