//! The Kubernetes API as a source of changes: one kube-rs watcher per kind
//! (Namespaces, Pods, NetworkPolicies, all namespaces), feeding the same
//! index and reconcile path as the manifests source.
//!
//! Objects are read untyped and converted at the edge by the manifests
//! loader's own checks, so one malformed object is logged with its name and
//! skipped instead of failing the whole list; only the fields policy needs
//! survive conversion (the API object is dropped at once).
//!
//! Until every kind has completed its first list, [`KubeState::ready`] is
//! false and the agent programs nothing, so the first list goes straight
//! into the index. A later relist (410 Gone, reconnect) is buffered per kind
//! and applied whole when it completes, so it never removes objects midway.

use std::collections::BTreeMap;

use futures::{Stream, StreamExt as _};
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::{WatchStreamExt as _, watcher};
use palisade_manifests::{ApiObject, LoadError, convert_api_object};
use palisade_policy::ClusterIndex;
use tracing::{debug, warn};

use super::source::{Change, apply_changes};

/// The kinds watched.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// v1 Namespace.
    Namespace,
    /// v1 Pod.
    Pod,
    /// networking.k8s.io/v1 NetworkPolicy.
    NetworkPolicy,
}

impl Kind {
    /// Every watched kind.
    pub const ALL: [Kind; 3] = [Kind::Namespace, Kind::Pod, Kind::NetworkPolicy];

    fn slot(self) -> usize {
        match self {
            Kind::Namespace => 0,
            Kind::Pod => 1,
            Kind::NetworkPolicy => 2,
        }
    }

    /// `(group, version, kind)`.
    #[must_use]
    pub fn gvk(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Kind::Namespace => ("", "v1", "Namespace"),
            Kind::Pod => ("", "v1", "Pod"),
            Kind::NetworkPolicy => ("networking.k8s.io", "v1", "NetworkPolicy"),
        }
    }

    fn api_version(self) -> String {
        match self.gvk() {
            ("", v, _) => v.to_string(),
            (g, v, _) => format!("{g}/{v}"),
        }
    }

    /// Name as in logs and metrics.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        self.gvk().2
    }
}

/// One watcher report, converted.
#[derive(Debug)]
pub enum WatchEvent {
    /// An object was added or changed (or failed to convert).
    Apply(Kind, String, Result<ApiObject, Vec<LoadError>>),
    /// An object was deleted.
    Delete(Kind, String),
    /// A (re)list starts.
    InitStart(Kind),
    /// An object of the (re)list.
    InitApply(Kind, String, Result<ApiObject, Vec<LoadError>>),
    /// The (re)list is complete.
    InitDone(Kind),
}

/// `namespace/name`, or the name of a cluster-scoped object.
fn key_of(obj: &DynamicObject) -> String {
    let name = obj.metadata.name.clone().unwrap_or_default();
    match &obj.metadata.namespace {
        Some(ns) => format!("{ns}/{name}"),
        None => name,
    }
}

/// Converts a watched object; items of a list carry no `kind`/`apiVersion`,
/// so they are set from the watcher's kind.
pub fn convert(kind: Kind, obj: &DynamicObject) -> (String, Result<ApiObject, Vec<LoadError>>) {
    let key = key_of(obj);
    let mut value = match serde_json::to_value(obj) {
        Ok(v) => v,
        Err(e) => {
            let error = LoadError::Read { file: "api".into(), message: format!("{} {key}: {e}", kind.as_str()) };
            return (key, Err(vec![error]));
        }
    };
    if let Some(map) = value.as_object_mut() {
        map.insert("kind".into(), kind.as_str().into());
        map.insert("apiVersion".into(), kind.api_version().into());
    }
    (key, convert_api_object("api", value))
}

/// The watcher of one kind, as a stream of converted events; connection
/// errors are logged and the watcher retries with backoff.
pub fn watch(client: Client, kind: Kind) -> impl Stream<Item = WatchEvent> + Send {
    let (group, version, k) = kind.gvk();
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, k));
    let api: Api<DynamicObject> = Api::all_with(client, &resource);
    watcher(api, watcher::Config::default()).default_backoff().filter_map(move |event| async move {
        match event {
            Ok(watcher::Event::Init) => Some(WatchEvent::InitStart(kind)),
            Ok(watcher::Event::InitDone) => Some(WatchEvent::InitDone(kind)),
            Ok(watcher::Event::InitApply(obj)) => {
                let (key, converted) = convert(kind, &obj);
                Some(WatchEvent::InitApply(kind, key, converted))
            }
            Ok(watcher::Event::Apply(obj)) => {
                let (key, converted) = convert(kind, &obj);
                Some(WatchEvent::Apply(kind, key, converted))
            }
            Ok(watcher::Event::Delete(obj)) => Some(WatchEvent::Delete(kind, key_of(&obj))),
            Err(e) => {
                warn!(kind = kind.as_str(), error = %e, "watch failed; retrying with backoff");
                None
            }
        }
    })
}

/// What the agent knows from the API, per kind, and how it feeds the index.
/// The index itself is the store: objects are kept once, converted.
#[derive(Debug, Default)]
pub struct KubeState {
    /// A relist in progress, per kind: converted objects (`None` for one
    /// that failed to convert: its last good state stays). The first list
    /// of a kind goes straight into the index (nothing is programmed before
    /// every kind is listed), so only its keys are kept here.
    relist: [Option<BTreeMap<String, Option<ApiObject>>>; 3],
    synced: [bool; 3],
    /// Objects currently rejected, by `Kind key`, with why.
    pub rejected: BTreeMap<String, Vec<LoadError>>,
}

impl KubeState {
    /// Whether every kind has completed its first list.
    #[must_use]
    pub fn ready(&self) -> bool {
        self.synced.iter().all(|s| *s)
    }

    /// Objects known per kind.
    #[must_use]
    pub fn counts(index: &ClusterIndex) -> [(Kind, usize); 3] {
        let (_, pods, policies) = index.counts();
        let declared = index.namespace_ids().filter(|id| index.namespace(*id).declared()).count();
        [(Kind::Namespace, declared), (Kind::Pod, pods), (Kind::NetworkPolicy, policies)]
    }

    /// Keys of `kind` in the index.
    fn indexed(index: &ClusterIndex, kind: Kind) -> Vec<String> {
        match kind {
            Kind::Namespace => index
                .namespace_ids()
                .filter(|id| index.namespace(*id).declared())
                .map(|id| index.namespace(id).name().to_string())
                .collect(),
            Kind::Pod => index.pods_sorted().into_iter().map(|id| index.pod_name(id).to_string()).collect(),
            Kind::NetworkPolicy => {
                index.policies_sorted().into_iter().map(|id| index.policy_name(id).to_string()).collect()
            }
        }
    }

    /// Applies one event to `index`. Returns the objects rejected by it (to
    /// log, and to report as Events).
    pub fn handle(&mut self, index: &mut ClusterIndex, event: WatchEvent) -> Vec<(Kind, String, Vec<LoadError>)> {
        let mut rejected = Vec::new();
        match event {
            WatchEvent::InitStart(kind) => self.relist[kind.slot()] = Some(BTreeMap::new()),
            WatchEvent::InitApply(kind, key, converted) => {
                let object = self.accept(kind, &key, converted, &mut rejected);
                let first_list = !self.synced[kind.slot()];
                let object = match object {
                    Some(object) if first_list => {
                        Self::apply(index, object);
                        None
                    }
                    other => other,
                };
                self.relist[kind.slot()].get_or_insert_with(BTreeMap::new).insert(key, object);
            }
            WatchEvent::InitDone(kind) => {
                let listed = self.relist[kind.slot()].take().unwrap_or_default();
                for key in Self::indexed(index, kind).into_iter().filter(|k| !listed.contains_key(k)) {
                    Self::remove(index, kind, &key);
                }
                // An object that failed to convert keeps what the index has (if anything).
                for object in listed.into_values().flatten() {
                    Self::apply(index, object);
                }
                self.synced[kind.slot()] = true;
                debug!(kind = kind.as_str(), "list complete");
            }
            WatchEvent::Apply(kind, key, converted) => {
                if let Some(object) = self.accept(kind, &key, converted, &mut rejected) {
                    Self::apply(index, object);
                }
            }
            WatchEvent::Delete(kind, key) => {
                self.rejected.remove(&format!("{} {key}", kind.as_str()));
                Self::remove(index, kind, &key);
            }
        }
        rejected
    }

    fn accept(
        &mut self,
        kind: Kind,
        key: &str,
        converted: Result<ApiObject, Vec<LoadError>>,
        rejected: &mut Vec<(Kind, String, Vec<LoadError>)>,
    ) -> Option<ApiObject> {
        let id = format!("{} {key}", kind.as_str());
        match converted {
            Ok(object) => {
                self.rejected.remove(&id);
                Some(object)
            }
            Err(errors) => {
                for e in &errors {
                    warn!(object = %id, error = %e, "invalid object skipped; its last good state stays");
                }
                self.rejected.insert(id, errors.clone());
                rejected.push((kind, key.to_string(), errors));
                None
            }
        }
    }

    fn apply(index: &mut ClusterIndex, object: ApiObject) {
        apply_changes(index, vec![Change::Apply(object.into())]);
    }

    fn remove(index: &mut ClusterIndex, kind: Kind, key: &str) {
        let key = match (kind, key.split_once('/')) {
            (Kind::Namespace, _) => (kind.as_str(), String::new(), key.to_string()),
            (_, Some((ns, name))) => (kind.as_str(), ns.to_string(), name.to_string()),
            (_, None) => return,
        };
        apply_changes(index, vec![Change::Delete(key)]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy(name: &str, cidr: &str) -> (String, Result<ApiObject, Vec<LoadError>>) {
        let value = json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": "x"},
            "spec": {"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": cidr}}]}]}});
        (format!("x/{name}"), convert_api_object("api", value))
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
        kind: Kind,
        items: Vec<(String, Result<ApiObject, Vec<LoadError>>)>,
    ) {
        state.handle(index, WatchEvent::InitStart(kind));
        for (key, item) in items {
            state.handle(index, WatchEvent::InitApply(kind, key, item));
        }
        state.handle(index, WatchEvent::InitDone(kind));
    }

    #[test]
    fn ready_only_after_every_kind_is_listed() {
        let (mut state, mut index) = (KubeState::default(), ClusterIndex::new());
        list(&mut state, &mut index, Kind::NetworkPolicy, vec![policy("a", "10.0.0.0/8")]);
        list(&mut state, &mut index, Kind::Namespace, vec![]);
        assert!(!state.ready());
        list(&mut state, &mut index, Kind::Pod, vec![]);
        assert!(state.ready());
        assert_eq!(cidr_of(&index, "a").as_deref(), Some("10.0.0.0/8"));
    }

    #[test]
    fn an_invalid_update_keeps_the_last_good_state() {
        let (mut state, mut index) = (KubeState::default(), ClusterIndex::new());
        list(&mut state, &mut index, Kind::NetworkPolicy, vec![policy("a", "10.0.0.0/8")]);
        let (key, bad) = policy("a", "10.0.0.0/33");
        let rejected = state.handle(&mut index, WatchEvent::Apply(Kind::NetworkPolicy, key, bad));
        assert_eq!(rejected.len(), 1, "the invalid object is reported");
        assert!(rejected[0].2[0].to_string().contains("spec.ingress[0].from[0].ipBlock.cidr"), "{:?}", rejected[0].2);
        assert_eq!(cidr_of(&index, "a").as_deref(), Some("10.0.0.0/8"), "last good state stays");
        assert_eq!(state.rejected.len(), 1);
        // A relist where it is still invalid keeps it too; one without it deletes it.
        let (key, bad) = policy("a", "10.0.0.0/33");
        list(&mut state, &mut index, Kind::NetworkPolicy, vec![(key, bad), policy("b", "192.168.0.0/16")]);
        assert_eq!(cidr_of(&index, "a").as_deref(), Some("10.0.0.0/8"));
        list(&mut state, &mut index, Kind::NetworkPolicy, vec![policy("b", "192.168.0.0/16")]);
        assert_eq!(cidr_of(&index, "a"), None, "gone from the relist: deleted");
        assert_eq!(cidr_of(&index, "b").as_deref(), Some("192.168.0.0/16"));
    }

    #[test]
    fn a_relist_changes_nothing_until_it_completes() {
        let (mut state, mut index) = (KubeState::default(), ClusterIndex::new());
        list(&mut state, &mut index, Kind::NetworkPolicy, vec![policy("a", "10.0.0.0/8"), policy("b", "10.1.0.0/16")]);
        index.track_changes();
        state.handle(&mut index, WatchEvent::InitStart(Kind::NetworkPolicy));
        let (key, item) = policy("b", "10.2.0.0/16");
        state.handle(&mut index, WatchEvent::InitApply(Kind::NetworkPolicy, key, item));
        assert!(index.take_changes().expect("tracking").is_empty(), "nothing applied midway");
        assert_eq!(cidr_of(&index, "a").as_deref(), Some("10.0.0.0/8"));
        state.handle(&mut index, WatchEvent::InitDone(Kind::NetworkPolicy));
        assert_eq!(cidr_of(&index, "a"), None);
        assert_eq!(cidr_of(&index, "b").as_deref(), Some("10.2.0.0/16"));
    }
}
