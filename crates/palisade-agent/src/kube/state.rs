//! Watch events as changes: what the Kubernetes source knows per kind, and
//! how a (re)list becomes changes.
//!
//! Until every kind has completed its first list, [`KubeState::ready`] is
//! false and the driver programs nothing, so the first list goes straight
//! out as changes. A later relist (410 Gone, reconnect) is buffered per kind
//! and turned into changes whole when it completes, so it never removes
//! objects midway. Objects that fail conversion keep their last good state.

use std::collections::{BTreeMap, BTreeSet};

use palisade_manifests::{ApiObject, LoadError};
use palisade_policy::{ObjectKey, ObjectKind};
use tracing::{debug, warn};

use crate::change::Change;

/// The kinds every cluster serves, always watched.
pub const KINDS: [ObjectKind; 3] = [ObjectKind::Namespace, ObjectKind::Pod, ObjectKind::NetworkPolicy];

/// The kinds watched when the cluster serves the `policy.networking.k8s.io`
/// API (their CRDs are installed): the cluster policy kinds it serves, and
/// Nodes, which `nodes` peers select.
pub const POLICY_API_KINDS: [ObjectKind; 3] =
    [ObjectKind::ClusterNetworkPolicy, ObjectKind::AdminNetworkPolicy, ObjectKind::BaselineAdminNetworkPolicy];

/// One watcher report, converted.
#[derive(Debug)]
pub enum WatchEvent {
    /// An object was added or changed (or failed to convert).
    Apply(ObjectKey, Result<ApiObject, Vec<LoadError>>),
    /// An object was deleted.
    Delete(ObjectKey),
    /// A (re)list starts.
    InitStart(ObjectKind),
    /// An object of the (re)list.
    InitApply(ObjectKey, Result<ApiObject, Vec<LoadError>>),
    /// The (re)list is complete.
    InitDone(ObjectKind),
}

/// What one event did: the changes to apply, and the objects it rejected.
#[derive(Debug, Default)]
pub struct Handled {
    /// Changes for the driver.
    pub changes: Vec<Change>,
    /// Objects rejected by the event, with why (to report as Events).
    pub rejected: Vec<(ObjectKey, Vec<LoadError>)>,
}

/// What the source knows from the API, per kind: relists in progress and
/// the objects it rejects. The driver's index is the only store of the
/// objects themselves: a completed relist sends the listed keys
/// ([`Change::Relisted`]) and the driver drops what was not listed.
#[derive(Debug)]
pub struct KubeState {
    /// A relist in progress, per kind: converted objects (`None` for one
    /// that failed to convert: its last good state stays, or for one of the
    /// first list, which went out at once).
    relist: BTreeMap<ObjectKind, BTreeMap<ObjectKey, Option<ApiObject>>>,
    /// Kinds whose first list is complete.
    synced: BTreeSet<ObjectKind>,
    /// Kinds that must be listed before the state is ready (those watched
    /// from the start; a kind whose API appears later does not hold back
    /// what is already enforced).
    required: BTreeSet<ObjectKind>,
    /// Objects currently rejected, with why.
    pub rejected: BTreeMap<ObjectKey, Vec<LoadError>>,
}

impl Default for KubeState {
    /// The state of a source watching [`KINDS`].
    fn default() -> Self {
        Self::watching(&KINDS)
    }
}

impl KubeState {
    /// The state of a source that watches `kinds` from the start.
    #[must_use]
    pub fn watching(kinds: &[ObjectKind]) -> Self {
        KubeState {
            relist: BTreeMap::new(),
            synced: BTreeSet::new(),
            required: kinds.iter().copied().collect(),
            rejected: BTreeMap::new(),
        }
    }

    /// Whether every kind watched from the start has completed its first list.
    #[must_use]
    pub fn ready(&self) -> bool {
        self.required.is_subset(&self.synced)
    }

    /// The current problems, one line per rejected object.
    #[must_use]
    pub fn problems(&self) -> Vec<String> {
        self.rejected
            .iter()
            .map(|(key, errors)| {
                let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
                format!("{key}: {}", errors.join("; "))
            })
            .collect()
    }

    /// Handles one event.
    pub fn handle(&mut self, event: WatchEvent) -> Handled {
        let mut out = Handled::default();
        match event {
            WatchEvent::InitStart(kind) => {
                self.relist.insert(kind, BTreeMap::new());
            }
            WatchEvent::InitApply(key, converted) => {
                let kind = key.kind;
                let object = self.accept(&key, converted, &mut out);
                let object = match object {
                    Some(object) if !self.synced.contains(&kind) => {
                        put(object, &mut out);
                        None
                    }
                    other => other,
                };
                self.relist.entry(kind).or_default().insert(key, object);
            }
            WatchEvent::InitDone(kind) => {
                let listed = self.relist.remove(&kind).unwrap_or_default();
                out.changes.push(Change::Relisted(kind, listed.keys().cloned().collect()));
                // An object that failed to convert keeps what the driver has (if anything).
                for object in listed.into_values().flatten() {
                    put(object, &mut out);
                }
                self.synced.insert(kind);
                debug!(kind = kind.as_str(), "list complete");
            }
            WatchEvent::Apply(key, converted) => {
                if let Some(object) = self.accept(&key, converted, &mut out) {
                    put(object, &mut out);
                }
            }
            WatchEvent::Delete(key) => {
                self.rejected.remove(&key);
                out.changes.push(Change::Delete(key));
            }
        }
        out
    }

    fn accept(
        &mut self,
        key: &ObjectKey,
        converted: Result<ApiObject, Vec<LoadError>>,
        out: &mut Handled,
    ) -> Option<ApiObject> {
        match converted {
            Ok(object) => {
                self.rejected.remove(key);
                Some(object)
            }
            Err(errors) => {
                for e in &errors {
                    warn!(object = %key, error = %e, "invalid object skipped; its last good state stays");
                }
                self.rejected.insert(key.clone(), errors.clone());
                out.rejected.push((key.clone(), errors));
                None
            }
        }
    }
}

fn put(object: ApiObject, out: &mut Handled) {
    out.changes.push(Change::Apply(object.into()));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use crate::change::apply_changes;
    use palisade_manifests::convert_api_object;
    use palisade_policy::ClusterIndex;

    fn policy(name: &str, cidr: &str) -> (ObjectKey, Result<ApiObject, Vec<LoadError>>) {
        let value = json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": "x"},
            "spec": {"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": cidr}}]}]}});
        (ObjectKey::policy("x", name), convert_api_object("api", &value))
    }

    /// Handles `event` and applies its changes to `index`.
    fn handle(state: &mut KubeState, index: &mut ClusterIndex, event: WatchEvent) -> Handled {
        let mut handled = state.handle(event);
        apply_changes(index, std::mem::take(&mut handled.changes));
        handled
    }

    fn cidr_of(index: &ClusterIndex, name: &str) -> Option<String> {
        let id = index.policy_id("x", name)?;
        match &index.policy(id).policy().ingress[0].peers[0] {
            palisade_policy::Peer::IpBlock(b) => Some(b.cidr.to_string()),
            palisade_policy::Peer::Pods { .. } => None,
        }
    }

    fn list(
        state: &mut KubeState,
        index: &mut ClusterIndex,
        kind: ObjectKind,
        items: Vec<(ObjectKey, Result<ApiObject, Vec<LoadError>>)>,
    ) {
        handle(state, index, WatchEvent::InitStart(kind));
        for (key, item) in items {
            handle(state, index, WatchEvent::InitApply(key, item));
        }
        handle(state, index, WatchEvent::InitDone(kind));
    }

    #[test]
    fn ready_only_after_every_kind_is_listed() {
        let (mut state, mut index) = (KubeState::default(), ClusterIndex::new());
        list(&mut state, &mut index, ObjectKind::NetworkPolicy, vec![policy("a", "10.0.0.0/8")]);
        list(&mut state, &mut index, ObjectKind::Namespace, vec![]);
        assert!(!state.ready());
        list(&mut state, &mut index, ObjectKind::Pod, vec![]);
        assert!(state.ready());
        assert_eq!(cidr_of(&index, "a").as_deref(), Some("10.0.0.0/8"));
    }

    #[test]
    fn an_invalid_update_keeps_the_last_good_state() {
        let (mut state, mut index) = (KubeState::default(), ClusterIndex::new());
        list(&mut state, &mut index, ObjectKind::NetworkPolicy, vec![policy("a", "10.0.0.0/8")]);
        let (key, bad) = policy("a", "10.0.0.0/33");
        let rejected = handle(&mut state, &mut index, WatchEvent::Apply(key, bad)).rejected;
        assert_eq!(rejected.len(), 1, "the invalid object is reported");
        assert!(rejected[0].1[0].to_string().contains("spec.ingress[0].from[0].ipBlock.cidr"), "{:?}", rejected[0].1);
        assert_eq!(cidr_of(&index, "a").as_deref(), Some("10.0.0.0/8"), "last good state stays");
        assert_eq!(state.rejected.len(), 1);
        // A relist where it is still invalid keeps it too; one without it deletes it.
        let (key, bad) = policy("a", "10.0.0.0/33");
        list(&mut state, &mut index, ObjectKind::NetworkPolicy, vec![(key, bad), policy("b", "192.168.0.0/16")]);
        assert_eq!(cidr_of(&index, "a").as_deref(), Some("10.0.0.0/8"));
        list(&mut state, &mut index, ObjectKind::NetworkPolicy, vec![policy("b", "192.168.0.0/16")]);
        assert_eq!(cidr_of(&index, "a"), None, "gone from the relist: deleted");
        assert_eq!(cidr_of(&index, "b").as_deref(), Some("192.168.0.0/16"));
    }

    #[test]
    fn a_relist_changes_nothing_until_it_completes() {
        let (mut state, mut index) = (KubeState::default(), ClusterIndex::new());
        list(
            &mut state,
            &mut index,
            ObjectKind::NetworkPolicy,
            vec![policy("a", "10.0.0.0/8"), policy("b", "10.1.0.0/16")],
        );
        index.track_changes();
        handle(&mut state, &mut index, WatchEvent::InitStart(ObjectKind::NetworkPolicy));
        let (key, item) = policy("b", "10.2.0.0/16");
        handle(&mut state, &mut index, WatchEvent::InitApply(key, item));
        assert!(index.take_changes().expect("tracking").is_empty(), "nothing applied midway");
        assert_eq!(cidr_of(&index, "a").as_deref(), Some("10.0.0.0/8"));
        handle(&mut state, &mut index, WatchEvent::InitDone(ObjectKind::NetworkPolicy));
        assert_eq!(cidr_of(&index, "a"), None);
        assert_eq!(cidr_of(&index, "b").as_deref(), Some("10.2.0.0/16"));
    }
}
