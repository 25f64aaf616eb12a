//! The cluster index: namespaces, pods and policies, kept ready for
//! evaluation.
//!
//! Updates are synchronous and proportional to what they affect:
//! - a pod change re-tests only the policies of its namespace against it;
//! - a policy change re-tests only the pods of its namespace;
//! - a namespace relabel updates one label set (peers are matched against
//!   namespace labels at evaluation time, so nothing else is stale).
//!
//! Every update returns whether anything changed.

mod cluster;
mod entries;

use std::net::IpAddr;

use hashbrown::HashTable;
use rustc_hash::FxHashMap;

use crate::changes::Changes;
use crate::compiled::{CompiledPort, CompiledRule};
use crate::key::{ObjectKey, ObjectKind};
use crate::labels::{CompiledLabels, CompiledSelector, Interner};
use crate::model::{Direction, Labels, NAMESPACE_NAME_LABEL, Namespace, NetworkPolicy, Pod, PodState};
use crate::slab::Slab;

pub use cluster::{ClusterPolicyEntry, ClusterPolicyId};
pub(crate) use cluster::{CompiledClusterPeer, CompiledClusterPort, CompiledClusterRule};
use entries::{FirstAddrs, SlotKey, key};
pub use entries::{NamespaceEntry, NsId, PodEntry, PodId, PolicyEntry, PolicyId};

/// Namespaces, pods and policies with everything evaluation needs.
#[derive(Debug, Default)]
pub struct ClusterIndex {
    pub(crate) interner: Interner,
    namespaces: Slab<NamespaceEntry>,
    ns_by_name: FxHashMap<String, NsId>,
    pods: Slab<PodEntry>,
    /// Pods by `namespace/name`. The slot holds a copy of the key, so a
    /// lookup compares it without visiting the pod's entry.
    pod_by_key: HashTable<(SlotKey, PodId)>,
    pod_by_ip: FxHashMap<IpAddr, PodId>,
    policies: Slab<PolicyEntry>,
    policy_by_key: FxHashMap<String, PolicyId>,
    /// Cluster policies and Nodes.
    cluster: cluster::ClusterState,
    /// What changed since last taken; `None` until a consumer asks for it.
    journal: Option<Changes>,
}

impl ClusterIndex {
    /// An empty index.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds an index from objects in any order.
    pub fn from_objects(
        namespaces: impl IntoIterator<Item = Namespace>,
        pods: impl IntoIterator<Item = Pod>,
        policies: impl IntoIterator<Item = NetworkPolicy>,
    ) -> Self {
        let mut index = Self::new();
        for ns in namespaces {
            index.apply_namespace(ns);
        }
        for pod in pods {
            index.apply_pod(pod);
        }
        for policy in policies {
            index.apply_policy(policy);
        }
        index
    }

    /// Makes room for this many more namespaces, pods and policies, so
    /// that building a large index does not grow (and copy) its tables
    /// step by step.
    pub fn reserve(&mut self, namespaces: usize, pods: usize, policies: usize) {
        self.namespaces.reserve(namespaces);
        self.ns_by_name.reserve(namespaces);
        self.pods.reserve(pods);
        self.pod_by_key.reserve(pods, |(key, _)| SlotKey::hash(key.as_bytes()));
        self.pod_by_ip.reserve(pods);
        self.policies.reserve(policies);
        self.policy_by_key.reserve(policies);
    }

    // ----- change journal --------------------------------------------------

    /// Starts recording which objects change (off by default, so one-shot
    /// users pay nothing).
    pub fn track_changes(&mut self) {
        self.journal.get_or_insert_with(Changes::default);
    }

    /// What changed since tracking started or the journal was last taken;
    /// `None` when tracking is off.
    pub fn take_changes(&mut self) -> Option<Changes> {
        self.journal.as_mut().map(std::mem::take)
    }

    fn record(&mut self, what: impl FnOnce(&mut Changes)) {
        if let Some(journal) = &mut self.journal {
            what(journal);
        }
    }

    // ----- lookups -------------------------------------------------------

    /// Namespace by id.
    ///
    /// # Panics
    /// If the id is not from this index (ids stay valid while their object exists).
    #[must_use]
    pub fn namespace(&self, id: NsId) -> &NamespaceEntry {
        self.namespaces.get(id.0).expect("namespace id from this index")
    }
    /// Pod by id.
    ///
    /// # Panics
    /// If the id is not from this index.
    #[must_use]
    pub fn pod(&self, id: PodId) -> &PodEntry {
        self.pods.get(id.0).expect("pod id from this index")
    }
    /// Policy by id.
    ///
    /// # Panics
    /// If the id is not from this index.
    #[must_use]
    pub fn policy(&self, id: PolicyId) -> &PolicyEntry {
        self.policies.get(id.0).expect("policy id from this index")
    }
    /// Namespace id by name.
    #[must_use]
    pub fn namespace_id(&self, name: &str) -> Option<NsId> {
        self.ns_by_name.get(name).copied()
    }
    /// Pod id by namespace and name.
    #[must_use]
    pub fn pod_id(&self, namespace: &str, name: &str) -> Option<PodId> {
        self.pod_id_by_key(&key(namespace, name))
    }
    /// Pod id by `namespace/name`.
    #[must_use]
    pub fn pod_id_by_key(&self, ns_slash_name: &str) -> Option<PodId> {
        let wanted = ns_slash_name.as_bytes();
        self.pod_by_key.find(SlotKey::hash(wanted), |(key, _)| key.as_bytes() == wanted).map(|(_, id)| *id)
    }
    /// The active pod that owns `ip`, if any.
    #[must_use]
    pub fn pod_by_ip(&self, ip: IpAddr) -> Option<PodId> {
        self.pod_by_ip.get(&ip).copied()
    }

    /// What a packet's address stands for: the policy endpoint pod that
    /// owns it, or an address outside the cluster's pods (a hostNetwork
    /// pod's address is its node's).
    #[must_use]
    pub fn endpoint_at(&self, addr: IpAddr) -> crate::Endpoint {
        match self.pod_by_ip(addr) {
            Some(id) if self.pod(id).pod().is_endpoint() => crate::Endpoint::Pod { id, addr: Some(addr) },
            _ => crate::Endpoint::External(addr),
        }
    }

    /// Whether two pods are scheduled on the same node (both name one, and
    /// it is the same). Traffic between a hostNetwork pod (its node's
    /// address) and a pod on that node is node-local: not forwarded, so
    /// never filtered.
    #[must_use]
    pub fn same_node(&self, a: PodId, b: PodId) -> bool {
        let node = |id: PodId| self.pod(id).pod.node_name.as_deref();
        node(a).is_some() && node(a) == node(b)
    }
    /// Policy id by namespace and name.
    #[must_use]
    pub fn policy_id(&self, namespace: &str, name: &str) -> Option<PolicyId> {
        self.policy_by_key.get(&key(namespace, name)).copied()
    }
    /// The id of the pod `key` names (`None` for another kind).
    #[must_use]
    pub fn pod_id_of(&self, key: &ObjectKey) -> Option<PodId> {
        (key.kind == ObjectKind::Pod).then(|| self.pod_id(&key.namespace, &key.name)).flatten()
    }
    /// The id of the policy `key` names (`None` for another kind).
    #[must_use]
    pub fn policy_id_of(&self, key: &ObjectKey) -> Option<PolicyId> {
        (key.kind == ObjectKind::NetworkPolicy).then(|| self.policy_id(&key.namespace, &key.name)).flatten()
    }
    /// A pod's key.
    #[must_use]
    pub fn pod_key(&self, id: PodId) -> ObjectKey {
        let pod = &self.pod(id).pod;
        ObjectKey::pod(&pod.namespace, &pod.name)
    }
    /// A policy's key.
    #[must_use]
    pub fn policy_key(&self, id: PolicyId) -> ObjectKey {
        let policy = &self.policy(id).policy;
        ObjectKey::policy(&policy.namespace, &policy.name)
    }
    /// `namespace/name` of a pod.
    #[must_use]
    pub fn pod_name(&self, id: PodId) -> &str {
        &self.pod(id).key
    }
    /// A pod's labels.
    #[must_use]
    pub fn pod_labels(&self, id: PodId) -> Labels {
        self.pod(id)
            .labels
            .pairs()
            .iter()
            .map(|(k, v)| (self.interner.resolve(*k).to_string(), self.interner.resolve(*v).to_string()))
            .collect()
    }
    /// The value of one of a pod's labels.
    #[must_use]
    pub fn pod_label(&self, id: PodId, key: &str) -> Option<&str> {
        let key = self.interner.get(key)?;
        self.pod(id).labels.get(key).map(|v| self.interner.resolve(v))
    }
    /// The pod as given, labels included.
    #[must_use]
    pub fn pod_object(&self, id: PodId) -> Pod {
        Pod { labels: self.pod_labels(id), ..self.pod(id).pod.clone() }
    }
    /// `namespace/name` of a policy.
    #[must_use]
    pub fn policy_name(&self, id: PolicyId) -> &str {
        &self.policy(id).key
    }
    /// All namespaces, in no particular order.
    pub fn namespace_ids(&self) -> impl Iterator<Item = NsId> + '_ {
        self.namespaces.iter().map(|(i, _)| NsId(i))
    }
    /// All namespaces, sorted by name.
    #[must_use]
    pub fn namespaces_sorted(&self) -> Vec<NsId> {
        let mut ids: Vec<NsId> = self.namespaces.iter().map(|(i, _)| NsId(i)).collect();
        ids.sort_by(|a, b| self.namespace(*a).name.cmp(&self.namespace(*b).name));
        ids
    }
    /// All pods, in no particular order.
    pub fn pod_ids(&self) -> impl Iterator<Item = PodId> + '_ {
        self.pods.iter().map(|(i, _)| PodId(i))
    }
    /// All pods, sorted by namespace then name.
    #[must_use]
    pub fn pods_sorted(&self) -> Vec<PodId> {
        let mut ids: Vec<PodId> = self.pods.iter().map(|(i, _)| PodId(i)).collect();
        ids.sort_by(|a, b| {
            let (a, b) = (&self.pod(*a).pod, &self.pod(*b).pod);
            (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name))
        });
        ids
    }
    /// Number of pods held.
    #[must_use]
    pub fn pod_count(&self) -> usize {
        self.pods.len()
    }
    /// All policies, sorted by namespace then name.
    #[must_use]
    pub fn policies_sorted(&self) -> Vec<PolicyId> {
        let mut ids: Vec<PolicyId> = self.policies.iter().map(|(i, _)| PolicyId(i)).collect();
        ids.sort_by(|a, b| {
            let (a, b) = (&self.policy(*a).policy, &self.policy(*b).policy);
            (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name))
        });
        ids
    }
    /// Object counts: namespaces, pods, policies.
    #[must_use]
    pub fn counts(&self) -> (usize, usize, usize) {
        (self.namespaces.len(), self.pods.len(), self.policies.len())
    }
    /// The label interner (read-only), for building virtual endpoints.
    #[must_use]
    pub fn interner(&self) -> &Interner {
        &self.interner
    }

    // ----- namespaces ----------------------------------------------------

    fn implicit_labels(name: &str) -> Labels {
        Labels::from([(NAMESPACE_NAME_LABEL.to_string(), name.to_string())])
    }

    fn ensure_namespace(&mut self, name: &str) -> NsId {
        if let Some(&id) = self.ns_by_name.get(name) {
            return id;
        }
        let labels = Self::implicit_labels(name);
        let compiled = CompiledLabels::compile(&labels, &mut self.interner);
        let id = NsId(self.namespaces.insert(NamespaceEntry {
            name: name.to_string(),
            labels,
            declared: false,
            compiled,
            pods: Vec::new(),
            policies: Vec::new(),
        }));
        self.ns_by_name.insert(name.to_string(), id);
        id
    }

    fn drop_namespace_if_unused(&mut self, id: NsId) {
        let entry = self.namespace(id);
        if !entry.declared && entry.pods.is_empty() && entry.policies.is_empty() {
            let name = entry.name.clone();
            self.namespaces.remove(id.0);
            self.ns_by_name.remove(&name);
        }
    }

    /// Adds or updates a namespace. Returns whether anything changed.
    pub fn apply_namespace(&mut self, ns: Namespace) -> bool {
        let mut labels = ns.labels;
        labels.insert(NAMESPACE_NAME_LABEL.to_string(), ns.name.clone());
        let id = self.ensure_namespace(&ns.name);
        let entry = self.namespace(id);
        if entry.declared && entry.labels == labels {
            return false;
        }
        let compiled = CompiledLabels::compile(&labels, &mut self.interner);
        let entry = self.namespaces.get_mut(id.0).expect("namespace just ensured");
        entry.declared = true;
        entry.labels = labels;
        entry.compiled = compiled;
        self.record(|c| {
            c.namespaces.insert(ObjectKey::namespace(&ns.name));
        });
        self.relink_namespace_pods(id);
        true
    }

    /// Removes a declared namespace. Its pods and policies stay indexed (the
    /// namespace then exists implicitly with only its name label). Returns
    /// whether anything changed.
    pub fn delete_namespace(&mut self, name: &str) -> bool {
        let Some(id) = self.namespace_id(name) else { return false };
        if !self.namespace(id).declared {
            return false;
        }
        let labels = Self::implicit_labels(name);
        let compiled = CompiledLabels::compile(&labels, &mut self.interner);
        let entry = self.namespaces.get_mut(id.0).expect("namespace exists");
        entry.declared = false;
        entry.labels = labels;
        entry.compiled = compiled;
        self.relink_namespace_pods(id);
        self.drop_namespace_if_unused(id);
        self.record(|c| {
            c.namespaces.insert(ObjectKey::namespace(name));
        });
        true
    }

    // ----- pods ----------------------------------------------------------

    /// Adds or updates a pod. Returns whether anything changed.
    pub fn apply_pod(&mut self, pod: Pod) -> bool {
        self.apply_pod_returning_labels(pod).0
    }

    /// [`apply_pod`](Self::apply_pod), handing back the pod's label map,
    /// which the index does not keep (it keeps the labels interned): for a
    /// caller that frees it later or on another thread. The loader does, as
    /// the map was allocated by the thread that converted the pod, and
    /// freeing it here while that thread still allocates contends for its
    /// allocator's lock.
    pub fn apply_pod_returning_labels(&mut self, mut pod: Pod) -> (bool, Labels) {
        let pod_key = key(&pod.namespace, &pod.name);
        // Labels are kept once, interned (see `pod_labels`): at 10^5 pods the
        // map and its strings would otherwise be half of each pod's memory.
        let map = std::mem::take(&mut pod.labels);
        let labels = CompiledLabels::compile(&map, &mut self.interner);
        if let Some(id) = self.pod_id_by_key(&pod_key) {
            if self.pod(id).pod == pod && self.pod(id).labels == labels {
                return (false, map);
            }
            self.remove_pod(id);
        }
        self.record(|c| {
            c.pods.insert(ObjectKey::pod(&pod.namespace, &pod.name));
        });
        let ns = self.ensure_namespace(&pod.namespace);
        let ports = CompiledPort::compile_all(&pod.ports, &mut self.interner);
        let active = pod.state == PodState::Active;
        let endpoint = pod.is_endpoint();
        let ips = if active { pod.ips.clone() } else { Vec::new() };
        let addrs = FirstAddrs::of(&pod.ips);
        let id = PodId(self.pods.insert(PodEntry {
            ns,
            endpoint,
            addrs,
            selected_by: [Vec::new(), Vec::new()],
            tiered: Vec::new(),
            labels,
            ports,
            key: pod_key.as_str().into(),
            pod,
        }));
        self.pod_by_key.insert_unique(SlotKey::hash(pod_key.as_bytes()), (SlotKey::new(&pod_key), id), |(key, _)| {
            SlotKey::hash(key.as_bytes())
        });
        for ip in ips {
            self.pod_by_ip.insert(ip, id);
        }
        let ns_entry = self.namespaces.get_mut(ns.0).expect("namespace ensured");
        ns_entry.pods.push(id);
        if endpoint {
            let policies = ns_entry.policies.clone();
            for policy_id in policies {
                if self.policy(policy_id).selector.matches(&self.pod(id).labels) {
                    self.link(policy_id, id);
                }
            }
            self.link_pod_to_cluster_policies(id);
        }
        (true, map)
    }

    /// Removes a pod. Returns whether it existed.
    pub fn delete_pod(&mut self, namespace: &str, name: &str) -> bool {
        let Some(id) = self.pod_id(namespace, name) else { return false };
        self.record(|c| {
            c.pods.insert(ObjectKey::pod(namespace, name));
        });
        let ns = self.remove_pod(id);
        self.drop_namespace_if_unused(ns);
        true
    }

    fn remove_pod(&mut self, id: PodId) -> NsId {
        let entry = self.pods.remove(id.0).expect("pod exists");
        if let Ok(slot) = self.pod_by_key.find_entry(SlotKey::hash(entry.key.as_bytes()), |(_, i)| *i == id) {
            slot.remove();
        }
        for ip in &entry.pod.ips {
            if self.pod_by_ip.get(ip) == Some(&id) {
                self.pod_by_ip.remove(ip);
            }
        }
        let mut unlinked: Vec<PolicyId> = entry.selected_by.iter().flatten().copied().collect();
        unlinked.sort_unstable();
        unlinked.dedup();
        for policy_id in unlinked {
            let selected = &mut self.policies.get_mut(policy_id.0).expect("linked policy exists").selected;
            if let Ok(pos) = selected.binary_search(&id) {
                selected.remove(pos);
            }
        }
        self.unlink_pod_from_cluster_policies(id, &entry.tiered);
        let ns = self.namespaces.get_mut(entry.ns.0).expect("pod namespace exists");
        ns.pods.retain(|p| *p != id);
        entry.ns
    }

    // ----- policies --------------------------------------------------------

    /// Adds or updates a policy. Returns whether anything changed.
    pub fn apply_policy(&mut self, policy: NetworkPolicy) -> bool {
        let policy_key = key(&policy.namespace, &policy.name);
        if let Some(&id) = self.policy_by_key.get(&policy_key) {
            if self.policy(id).policy == policy {
                return false;
            }
            self.remove_policy(id);
        }
        self.record(|c| {
            c.policies.insert(ObjectKey::policy(&policy.namespace, &policy.name));
        });
        let ns = self.ensure_namespace(&policy.namespace);
        let selector = CompiledSelector::compile(&policy.pod_selector, &mut self.interner);
        let ingress = policy.ingress.iter().map(|r| CompiledRule::compile(r, &mut self.interner)).collect();
        let egress = policy.egress.iter().map(|r| CompiledRule::compile(r, &mut self.interner)).collect();
        let id = PolicyId(self.policies.insert(PolicyEntry {
            ns,
            rules: [ingress, egress],
            key: policy_key.as_str().into(),
            selector,
            selected: Vec::new(),
            policy,
        }));
        self.policy_by_key.insert(policy_key, id);
        // Keep the namespace's policy list sorted by name.
        let ns_policies = &self.namespaces.get(ns.0).expect("namespace ensured").policies;
        let name = &self.policy(id).policy.name;
        let at = ns_policies.partition_point(|p| self.policy(*p).policy.name < *name);
        self.namespaces.get_mut(ns.0).expect("namespace ensured").policies.insert(at, id);
        let ns_pods = self.namespace(ns).pods.clone();
        for pod_id in ns_pods {
            let pod = self.pod(pod_id);
            if pod.pod.is_endpoint() && self.policy(id).selector.matches(&pod.labels) {
                self.link(id, pod_id);
            }
        }
        true
    }

    /// Removes a policy. Returns whether it existed.
    pub fn delete_policy(&mut self, namespace: &str, name: &str) -> bool {
        let Some(id) = self.policy_id(namespace, name) else { return false };
        self.record(|c| {
            c.policies.insert(ObjectKey::policy(namespace, name));
        });
        let ns = self.remove_policy(id);
        self.drop_namespace_if_unused(ns);
        true
    }

    fn remove_policy(&mut self, id: PolicyId) -> NsId {
        let entry = self.policies.remove(id.0).expect("policy exists");
        self.policy_by_key.remove(&key(&entry.policy.namespace, &entry.policy.name));
        for pod_id in &entry.selected {
            let pod = self.pods.get_mut(pod_id.0).expect("selected pod exists");
            for list in &mut pod.selected_by {
                list.retain(|p| *p != id);
            }
        }
        let ns = self.namespaces.get_mut(entry.ns.0).expect("policy namespace exists");
        ns.policies.retain(|p| *p != id);
        entry.ns
    }

    /// Records that `policy` selects `pod`, keeping lists sorted.
    fn link(&mut self, policy_id: PolicyId, pod_id: PodId) {
        let entry = self.policies.get_mut(policy_id.0).expect("policy exists");
        if let Err(pos) = entry.selected.binary_search(&pod_id) {
            entry.selected.insert(pos, pod_id);
        }
        let policy = &self.policies.get(policy_id.0).expect("policy exists").policy;
        for dir in Direction::BOTH {
            if !policy.isolates(dir) {
                continue;
            }
            let list = &self.pods.get(pod_id.0).expect("pod exists").selected_by[dir.slot()];
            let pos = list.partition_point(|p| self.policy(*p).policy.name < policy.name);
            self.pods.get_mut(pod_id.0).expect("pod exists").selected_by[dir.slot()].insert(pos, policy_id);
        }
    }
}
