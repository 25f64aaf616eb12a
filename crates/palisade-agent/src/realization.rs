//! Realization status: which policies this node has programmed, for which
//! of its pods, and whether the last sync failed.
//!
//! The driver computes it after every sync (an O(local pods) walk of the
//! index it already holds) and publishes it here; the metrics take the
//! counts at once, and with the Kubernetes source a reporter task writes it
//! to the API (see `kube::status`), batched and only when it changed,
//! never from the packet path.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::SystemTime;

use palisade_dataplane::NodeScope;
use palisade_dataplane::compile::is_local;
use palisade_policy::{ClusterIndex, Direction, ObjectKey, PodId};

/// What this node enforces after a sync.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Realization {
    /// The driver's sync count when it was computed.
    pub sync: u64,
    /// When.
    pub at: Option<SystemTime>,
    /// Enforced NetworkPolicies and cluster policies that select a pod of
    /// this node, with how many of its pods each selects.
    pub policies: BTreeMap<ObjectKey, usize>,
    /// Audit (staged) policies that select a pod of this node (reported,
    /// not programmed).
    pub audit: BTreeSet<ObjectKey>,
    /// The error of the last sync, if it failed (the kernel keeps the
    /// previous rules).
    pub error: Option<String>,
    /// Pods of this node in the applied program.
    pub pods_programmed: usize,
    /// Running pods of this node (with addresses) not in the applied
    /// program yet: their traffic waits (`--new-pods=deny`) or passes
    /// unfiltered (`allow`).
    pub pods_waiting: usize,
}

/// The policies that select the `local` pods, split into enforced (with
/// how many pods each selects) and audit ones.
#[must_use]
pub fn applying(index: &ClusterIndex, local: &[PodId]) -> (BTreeMap<ObjectKey, usize>, BTreeSet<ObjectKey>) {
    let (mut enforced, mut audit) = (BTreeMap::new(), BTreeSet::new());
    for &pod in local {
        let entry = index.pod(pod);
        let mut seen = BTreeSet::new();
        for dir in Direction::BOTH {
            for id in entry.isolating(dir) {
                let key = index.policy_key(*id);
                if index.is_audit(*id) {
                    audit.insert(key);
                } else {
                    seen.insert(key);
                }
            }
        }
        for id in index.cluster_policies_of(pod) {
            seen.insert(index.cluster_policy_key(*id));
        }
        for key in seen {
            *enforced.entry(key).or_default() += 1;
        }
    }
    (enforced, audit)
}

/// Running pods of `scope` (active, with addresses), in one walk of the
/// index: the pods the dataplane programs.
#[must_use]
pub fn local_pods(index: &ClusterIndex, scope: &NodeScope) -> Vec<PodId> {
    index.pod_ids().filter(|id| is_local(index, scope, *id)).collect()
}

/// The latest realization, for a reporter that may wait on it.
#[derive(Debug, Default)]
pub struct Board {
    latest: Mutex<Option<Realization>>,
    notify: tokio::sync::Notify,
}

impl Board {
    /// Publishes `r` (replacing an unread one).
    pub fn publish(&self, r: Realization) {
        *self.latest.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(r);
        self.notify.notify_one();
    }

    /// The latest realization, once one is published that was not taken.
    pub async fn next(&self) -> Realization {
        loop {
            if let Some(r) = self.latest.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take() {
                return r;
            }
            self.notify.notified().await;
        }
    }

    /// The latest realization not taken yet, if any.
    pub fn take(&self) -> Option<Realization> {
        self.latest.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take()
    }
}
