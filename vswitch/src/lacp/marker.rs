//! The marker responder (802.1AX-2014 6.5.4.2): a marker information PDU
//! is answered on the same link with the same fields as a marker response.
//! The switch never sends markers itself (it does not move conversations
//! between links in a way that needs them), so responses it receives are
//! only counted.

use super::member::Member;
use crate::wire::lacp::{MarkerKind, MarkerPdu};

/// The response to `pdu` received on `member`, if it asks for one.
pub(super) fn respond(member: &mut Member, pdu: &MarkerPdu) -> Option<MarkerPdu> {
    member.counters.markers_in += 1;
    if pdu.kind != MarkerKind::Information {
        return None;
    }
    member.counters.marker_responses_out += 1;
    Some(MarkerPdu {
        kind: MarkerKind::Response,
        ..*pdu
    })
}
