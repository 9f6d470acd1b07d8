//! Which bridge and port indices are taken, across every worker.
//!
//! A port's index is its `PortId`: the tables, flood lists and tunnel links
//! hold it. Workers draw indices from one shared set so that a bridge can
//! move to another worker with its ports and table as they are (a VXLAN
//! port's bridge joins its underlay's worker), with no index rewritten.
//! Each worker's vectors are sparse: the indices of other workers' bridges
//! and ports are `None` there.

use std::sync::{Arc, Mutex};

#[derive(Debug, Default)]
struct Taken {
    bridges: Vec<bool>,
    ports: Vec<bool>,
}

/// The indices in use; shared by the workers of one datapath (`Arc`).
/// Locked only when a bridge or port is added or deleted.
#[derive(Debug, Default, Clone)]
pub struct SlotIds {
    taken: Arc<Mutex<Taken>>,
}

/// Takes the lowest free index of `v`.
fn claim(v: &mut Vec<bool>) -> usize {
    match v.iter().position(|t| !t) {
        Some(i) => {
            v[i] = true;
            i
        }
        None => {
            v.push(true);
            v.len() - 1
        }
    }
}

impl SlotIds {
    fn with<R>(&self, f: impl FnOnce(&mut Taken) -> R) -> R {
        // A worker that panicked while holding the lock aborts the process
        // (panic = "abort"), so the lock is never found poisoned in use;
        // tests unwind, and the set is still consistent then.
        let mut taken = self.taken.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut taken)
    }

    pub fn claim_bridge(&self) -> usize {
        self.with(|t| claim(&mut t.bridges))
    }

    pub fn claim_port(&self) -> usize {
        self.with(|t| claim(&mut t.ports))
    }

    pub fn release_bridge(&self, i: usize) {
        self.with(|t| t.bridges.get_mut(i).map(|b| *b = false));
    }

    pub fn release_port(&self, i: usize) {
        self.with(|t| t.ports.get_mut(i).map(|b| *b = false));
    }
}

/// Makes `v[i]` exist (as `None` if new) and returns it.
pub fn slot_at<T>(v: &mut Vec<Option<T>>, i: usize) -> &mut Option<T> {
    if v.len() <= i {
        v.resize_with(i + 1, || None);
    }
    &mut v[i]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_sharing_the_set_never_get_the_same_index() {
        let a = SlotIds::default();
        let b = a.clone();
        assert_eq!(a.claim_port(), 0);
        assert_eq!(b.claim_port(), 1);
        assert_eq!(a.claim_bridge(), 0);
        a.release_port(0);
        assert_eq!(b.claim_port(), 0, "a released index is reused");
        assert_eq!(a.claim_port(), 2);
        // Releasing what was never claimed changes nothing.
        b.release_bridge(7);
        assert_eq!(b.claim_bridge(), 1);
    }

    #[test]
    fn slot_at_grows_with_empty_slots() {
        let mut v: Vec<Option<u8>> = Vec::new();
        *slot_at(&mut v, 3) = Some(9);
        assert_eq!(v, vec![None, None, None, Some(9)]);
        assert_eq!(*slot_at(&mut v, 1), None);
        assert_eq!(v.len(), 4);
    }
}
