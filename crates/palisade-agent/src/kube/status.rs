//! Realization status in the API: one ConfigMap per node
//! (`palisade-status-<node>` in the agent's namespace, labelled
//! `palisade.dev/status: node`) saying which policies the node has
//! programmed, at which generation and since when, and the last sync's
//! error; and an Event on each policy when a node first programs a
//! generation of it, or fails to.
//!
//! Cheap by construction: the reporter waits a second after a sync so
//! that bursts of syncs make one write; it writes the ConfigMap only when
//! what it says changed (a policy, its generation, the error), never
//! because time passed; and each node records at most one Event per policy
//! generation and outcome. `palisade status` reads the ConfigMaps.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use palisade_policy::ObjectKey;
use serde::{Deserialize, Serialize};
use tracing::warn;

use super::events::event;
use crate::realization::{Board, Realization};

/// The label of status ConfigMaps.
pub const STATUS_LABEL: &str = "palisade.dev/status";
/// The data key holding a node's status (JSON).
pub const STATUS_KEY: &str = "status.json";
/// The agent's namespace when `POD_NAMESPACE` is not set.
pub const DEFAULT_NAMESPACE: &str = "palisade-system";
/// How long the reporter waits after a sync for more.
const BATCH: Duration = Duration::from_secs(1);

/// `metadata.generation` of the watched policies, by key.
pub type Generations = Arc<Mutex<HashMap<ObjectKey, i64>>>;

/// One policy on one node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyStatus {
    /// `NetworkPolicy`, `ClusterNetworkPolicy`, …
    pub kind: String,
    /// `namespace/name`, or the name of a cluster-scoped policy.
    pub name: String,
    /// The `metadata.generation` programmed (when the API said).
    pub generation: Option<i64>,
    /// `programmed`, `audit` (staged: reported, not programmed) or `failed`.
    pub state: String,
    /// When this node first programmed this generation (RFC 3339).
    pub since: String,
    /// The pods of this node it selects.
    pub pods: usize,
}

/// One node's status document.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeStatus {
    /// The node.
    pub node: String,
    /// When it was written (RFC 3339).
    pub updated: String,
    /// The last sync's error, if it failed.
    pub error: Option<String>,
    /// Pods of this node programmed.
    pub pods_programmed: usize,
    /// Running pods of this node not programmed yet.
    pub pods_waiting: usize,
    /// The policies that select a pod of this node.
    pub policies: Vec<PolicyStatus>,
}

impl NodeStatus {
    /// What decides whether it must be written again: everything but times.
    fn essence(&self) -> NodeStatus {
        let mut essence = self.clone();
        essence.updated.clear();
        for p in &mut essence.policies {
            p.since.clear();
        }
        essence
    }
}

/// The status ConfigMap's name for `node` (within the 253 characters a
/// name may have).
#[must_use]
pub fn configmap_name(node: &str) -> String {
    use sha2::{Digest as _, Sha256};
    use std::fmt::Write as _;
    let name = format!("palisade-status-{node}");
    if name.len() <= 253 {
        return name;
    }
    let digest = Sha256::digest(name.as_bytes());
    let mut short = format!("{}-", &name[..200]);
    for b in &digest[..8] {
        let _ = write!(short, "{b:02x}");
    }
    short
}

/// The status document of `r` for `node`; `since` keeps when each
/// (policy, generation) was first programmed.
fn document(
    node: &str,
    r: &Realization,
    generations: &HashMap<ObjectKey, i64>,
    since: &mut BTreeMap<(ObjectKey, Option<i64>), String>,
) -> NodeStatus {
    let now = crate::flows::record::rfc3339(r.at.unwrap_or_else(SystemTime::now));
    let state = if r.error.is_some() { "failed" } else { "programmed" };
    let mut policies = Vec::new();
    let mut add = |key: &ObjectKey, state: &str, pods: usize| {
        let generation = generations.get(key).copied();
        let first = since.entry((key.clone(), generation)).or_insert_with(|| now.clone()).clone();
        let name = if key.kind.namespaced() { key.path() } else { key.name.clone() };
        policies.push(PolicyStatus {
            kind: key.kind.as_str().into(),
            name,
            generation,
            state: state.into(),
            since: first,
            pods,
        });
    };
    for (key, pods) in &r.policies {
        add(key, state, *pods);
    }
    for key in &r.audit {
        add(key, "audit", 0);
    }
    NodeStatus {
        node: node.into(),
        updated: now.clone(),
        error: r.error.clone(),
        pods_programmed: r.pods_programmed,
        pods_waiting: r.pods_waiting,
        policies,
    }
}

/// Writes realizations from `board` to the API until the task is aborted.
pub async fn report(client: Client, board: Arc<Board>, node: String, namespace: String, generations: Generations) {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), &namespace);
    let name = configmap_name(&node);
    let mut since = BTreeMap::new();
    let mut written: Option<NodeStatus> = None;
    let mut evented: BTreeSet<(ObjectKey, Option<i64>, String)> = BTreeSet::new();
    loop {
        let mut r = board.next().await;
        tokio::time::sleep(BATCH).await;
        if let Some(newer) = board.take() {
            r = newer;
        }
        let known = generations.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        let doc = document(&node, &r, &known, &mut since);
        // Forget what no longer applies (bounded by the node's policies).
        let current: BTreeSet<(ObjectKey, Option<i64>)> =
            r.policies.keys().chain(&r.audit).map(|k| (k.clone(), known.get(k).copied())).collect();
        since.retain(|k, _| current.contains(k));
        if written.as_ref().is_some_and(|w| w.essence() == doc.essence()) {
            continue;
        }
        let text = serde_json::to_string(&doc).unwrap_or_default();
        let configmap = ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(namespace.clone()),
                labels: Some([(STATUS_LABEL.to_string(), "node".to_string())].into()),
                ..ObjectMeta::default()
            },
            data: Some([(STATUS_KEY.to_string(), text)].into()),
            ..ConfigMap::default()
        };
        match api.patch(&name, &PatchParams::apply("palisade").force(), &Patch::Apply(&configmap)).await {
            Ok(_) => written = Some(doc.clone()),
            Err(e) => warn!(configmap = %name, error = %e, "cannot write the node's realization status"),
        }
        events(&client, &node, &r, &known, &mut evented).await;
    }
}

/// One Event per policy, generation and outcome this node has not
/// reported yet.
async fn events(
    client: &Client,
    node: &str,
    r: &Realization,
    generations: &HashMap<ObjectKey, i64>,
    evented: &mut BTreeSet<(ObjectKey, Option<i64>, String)>,
) {
    let outcome = r.error.clone().unwrap_or_default();
    evented.retain(|(k, _, _)| r.policies.contains_key(k));
    for (key, pods) in &r.policies {
        let generation = generations.get(key).copied();
        if !evented.insert((key.clone(), generation, outcome.clone())) {
            continue;
        }
        let at = generation.map(|g| format!(" (generation {g})")).unwrap_or_default();
        let e = match &r.error {
            None => {
                event(key, ("Normal", "Programmed"), &format!("programmed on node {node}{at} for {pods} pods"), node)
            }
            Some(error) => event(
                key,
                ("Warning", "ProgrammingFailed"),
                &format!("not programmed on node {node}{at}: {error}"),
                node,
            ),
        };
        let namespace = e.metadata.namespace.clone().unwrap_or_else(|| "default".into());
        let api: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client.clone(), &namespace);
        if let Err(err) = api.create(&PostParams::default(), &e).await {
            warn!(policy = %key, error = %err, "cannot record the realization as an Event");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_policy::ObjectKind;

    #[test]
    fn a_document_changes_only_with_what_it_says() {
        let key = ObjectKey::new(ObjectKind::NetworkPolicy, "prod", "db");
        let mut r = Realization { sync: 1, policies: [(key.clone(), 2)].into(), ..Realization::default() };
        let generations: HashMap<ObjectKey, i64> = [(key.clone(), 3)].into();
        let mut since = BTreeMap::new();
        let first = document("node-1", &r, &generations, &mut since);
        assert_eq!(first.policies[0].name, "prod/db");
        assert_eq!(first.policies[0].generation, Some(3));
        assert_eq!(first.policies[0].state, "programmed");
        r.sync = 2;
        r.at = Some(SystemTime::now());
        let again = document("node-1", &r, &generations, &mut since);
        assert_eq!(first.essence(), again.essence(), "a sync that changed nothing writes nothing");
        assert_eq!(first.policies[0].since, again.policies[0].since);
        r.error = Some("kernel said no".into());
        let failed = document("node-1", &r, &generations, &mut since);
        assert_ne!(failed.essence(), first.essence());
        assert_eq!(failed.policies[0].state, "failed");
    }

    #[test]
    fn long_node_names_make_valid_configmap_names() {
        assert_eq!(configmap_name("node-1"), "palisade-status-node-1");
        let long = configmap_name(&"n".repeat(253));
        assert!(long.len() <= 253);
        assert_ne!(long, configmap_name(&format!("{}m", "n".repeat(252))));
    }
}
