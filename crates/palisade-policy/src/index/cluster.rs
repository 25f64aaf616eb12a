//! Cluster policies (ClusterNetworkPolicy and the v1alpha1 kinds) and Nodes
//! in the index: their compiled forms, and the per-pod list of the cluster
//! policies whose subject selects the pod, kept in evaluation order.
//!
//! A cluster policy's subject can select pods of any namespace by the
//! namespace's labels, so besides pod and policy changes a namespace
//! relabel re-tests the namespace's pods.

use std::net::IpAddr;

use ipnet::IpNet;

use super::{ClusterIndex, NsId, PodId};
use crate::cluster_policy::{Action, ClusterPeer, ClusterPolicy, ClusterPort, ClusterRule, Node, Subject, Tier};
use crate::key::ObjectKey;
use crate::labels::{CompiledLabels, CompiledSelector, Interner, Sym};
use crate::model::{Direction, Protocol};

/// Identifies a cluster policy in one index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClusterPolicyId(pub(crate) u32);

/// A compiled subject.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum CompiledSubject {
    Namespaces(CompiledSelector),
    Pods(CompiledSelector, CompiledSelector),
}

impl CompiledSubject {
    fn compile(subject: &Subject, interner: &mut Interner) -> Self {
        match subject {
            Subject::Namespaces(ns) => CompiledSubject::Namespaces(CompiledSelector::compile(ns, interner)),
            Subject::Pods { namespaces, pods } => CompiledSubject::Pods(
                CompiledSelector::compile(namespaces, interner),
                CompiledSelector::compile(pods, interner),
            ),
        }
    }

    /// Whether a pod with these namespace labels and labels is selected.
    pub(crate) fn matches(&self, ns_labels: &CompiledLabels, labels: &CompiledLabels) -> bool {
        match self {
            CompiledSubject::Namespaces(ns) => ns.matches(ns_labels),
            CompiledSubject::Pods(ns, pods) => ns.matches(ns_labels) && pods.matches(labels),
        }
    }
}

/// A compiled peer of a cluster policy rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum CompiledClusterPeer {
    /// Pods of namespaces matching the first selector and, when given, the
    /// second.
    Pods(CompiledSelector, Option<CompiledSelector>),
    Networks(Box<[IpNet]>),
    Nodes(CompiledSelector),
    /// Domain names: not enforced, so matching nothing.
    Nothing,
}

/// A compiled port of a cluster policy rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CompiledClusterPort {
    Range(Protocol, u16, u16),
    Named(Sym),
}

/// A compiled cluster policy rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CompiledClusterRule {
    pub(crate) action: Action,
    pub(crate) peers: Box<[CompiledClusterPeer]>,
    pub(crate) ports: Option<Box<[CompiledClusterPort]>>,
}

impl CompiledClusterRule {
    fn compile(rule: &ClusterRule, interner: &mut Interner) -> Self {
        let peers = rule
            .peers
            .iter()
            .map(|peer| match peer {
                ClusterPeer::Namespaces(ns) => CompiledClusterPeer::Pods(CompiledSelector::compile(ns, interner), None),
                ClusterPeer::Pods { namespaces, pods } => CompiledClusterPeer::Pods(
                    CompiledSelector::compile(namespaces, interner),
                    Some(CompiledSelector::compile(pods, interner)),
                ),
                ClusterPeer::Networks(nets) => CompiledClusterPeer::Networks(nets.clone().into_boxed_slice()),
                ClusterPeer::Nodes(nodes) => CompiledClusterPeer::Nodes(CompiledSelector::compile(nodes, interner)),
                ClusterPeer::DomainNames(_) => CompiledClusterPeer::Nothing,
            })
            .collect();
        let ports = rule.ports.as_ref().map(|ports| {
            ports
                .iter()
                .map(|p| match p {
                    ClusterPort::Range { protocol, start, end } => CompiledClusterPort::Range(*protocol, *start, *end),
                    ClusterPort::Named(name) => CompiledClusterPort::Named(interner.intern(name)),
                })
                .collect()
        });
        CompiledClusterRule { action: rule.action, peers, ports }
    }
}

/// A cluster policy as indexed.
#[derive(Debug)]
pub struct ClusterPolicyEntry {
    pub(crate) rules: [Box<[CompiledClusterRule]>; 2],
    pub(crate) subject: CompiledSubject,
    pub(super) selected: Vec<PodId>,
    pub(super) policy: ClusterPolicy,
}

impl ClusterPolicyEntry {
    /// The policy as given.
    #[must_use]
    pub fn policy(&self) -> &ClusterPolicy {
        &self.policy
    }
    /// The pods its subject selects (endpoints only), in id order.
    #[must_use]
    pub fn selected(&self) -> &[PodId] {
        &self.selected
    }
    /// Its tier.
    #[must_use]
    pub fn tier(&self) -> Tier {
        self.policy.tier
    }
    /// Whether it has rules for `dir`.
    #[must_use]
    pub fn has_rules(&self, dir: Direction) -> bool {
        !self.rules[dir.slot()].is_empty()
    }
}

/// A Node as indexed.
#[derive(Debug)]
pub(crate) struct NodeEntry {
    pub(crate) labels: CompiledLabels,
    pub(crate) node: Node,
}

impl ClusterIndex {
    /// Cluster policy by id.
    ///
    /// # Panics
    /// If the id is not from this index.
    #[must_use]
    pub fn cluster_policy(&self, id: ClusterPolicyId) -> &ClusterPolicyEntry {
        self.cluster.policies.get(id.0).expect("cluster policy id from this index")
    }

    /// Cluster policy id by key (kind and name).
    #[must_use]
    pub fn cluster_policy_id(&self, key: &ObjectKey) -> Option<ClusterPolicyId> {
        self.cluster.by_key.get(key).copied()
    }

    /// A cluster policy's key.
    #[must_use]
    pub fn cluster_policy_key(&self, id: ClusterPolicyId) -> ObjectKey {
        let policy = &self.cluster_policy(id).policy;
        ObjectKey::cluster_policy(policy.kind, &policy.name)
    }

    /// Every cluster policy, in evaluation order (tier, priority, name, kind).
    #[must_use]
    pub fn cluster_policies(&self) -> &[ClusterPolicyId] {
        &self.cluster.ordered
    }

    /// The cluster policies whose subject selects `pod`, in evaluation order.
    #[must_use]
    pub fn cluster_policies_of(&self, pod: PodId) -> &[ClusterPolicyId] {
        &self.pod(pod).tiered
    }

    /// Every Node, by name.
    pub fn nodes(&self) -> impl Iterator<Item = &Node> {
        self.cluster.nodes.values().map(|n| &n.node)
    }

    /// The Node that has `addr` among its addresses, with its compiled labels.
    pub(crate) fn node_by_addr(&self, addr: IpAddr) -> Option<&NodeEntry> {
        self.cluster.node_by_ip.get(&addr).and_then(|name| self.cluster.nodes.get(name))
    }

    /// Adds or updates a cluster policy. Returns whether anything changed.
    pub fn apply_cluster_policy(&mut self, policy: ClusterPolicy) -> bool {
        let key = ObjectKey::cluster_policy(policy.kind, &policy.name);
        if let Some(id) = self.cluster_policy_id(&key) {
            if self.cluster_policy(id).policy == policy {
                return false;
            }
            self.remove_cluster_policy(id);
        }
        let subject = CompiledSubject::compile(&policy.subject, &mut self.interner);
        let ingress = policy.ingress.iter().map(|r| CompiledClusterRule::compile(r, &mut self.interner)).collect();
        let egress = policy.egress.iter().map(|r| CompiledClusterRule::compile(r, &mut self.interner)).collect();
        let id = ClusterPolicyId(self.cluster.policies.insert(ClusterPolicyEntry {
            rules: [ingress, egress],
            subject,
            selected: Vec::new(),
            policy,
        }));
        self.cluster.by_key.insert(key.clone(), id);
        let at = self.cluster.ordered.partition_point(|p| self.rank_before(*p, id));
        self.cluster.ordered.insert(at, id);
        let pods: Vec<PodId> = self.pod_ids().collect();
        for pod in pods {
            if self.subject_selects(id, pod) {
                self.link_cluster(id, pod);
            }
        }
        self.record(|c| {
            c.cluster_policies.insert(key);
        });
        true
    }

    /// Removes a cluster policy. Returns whether it existed.
    pub fn delete_cluster_policy(&mut self, key: &ObjectKey) -> bool {
        let Some(id) = self.cluster_policy_id(key) else { return false };
        self.remove_cluster_policy(id);
        self.record(|c| {
            c.cluster_policies.insert(key.clone());
        });
        true
    }

    fn remove_cluster_policy(&mut self, id: ClusterPolicyId) {
        let entry = self.cluster.policies.remove(id.0).expect("cluster policy exists");
        self.cluster.by_key.remove(&ObjectKey::cluster_policy(entry.policy.kind, &entry.policy.name));
        self.cluster.ordered.retain(|p| *p != id);
        for pod in entry.selected {
            self.pods.get_mut(pod.0).expect("selected pod exists").tiered.retain(|p| *p != id);
        }
    }

    /// Whether `a` is evaluated before `b`.
    fn rank_before(&self, a: ClusterPolicyId, b: ClusterPolicyId) -> bool {
        self.cluster_policy(a).policy.rank() < self.cluster_policy(b).policy.rank()
    }

    fn subject_selects(&self, id: ClusterPolicyId, pod: PodId) -> bool {
        let entry = self.pod(pod);
        entry.endpoint && self.cluster_policy(id).subject.matches(&self.namespace(entry.ns).compiled, &entry.labels)
    }

    fn link_cluster(&mut self, id: ClusterPolicyId, pod: PodId) {
        let selected = &mut self.cluster.policies.get_mut(id.0).expect("cluster policy exists").selected;
        if let Err(at) = selected.binary_search(&pod) {
            selected.insert(at, pod);
        }
        let list = &self.pod(pod).tiered;
        if list.contains(&id) {
            return;
        }
        let at = list.partition_point(|p| self.rank_before(*p, id));
        self.pods.get_mut(pod.0).expect("pod exists").tiered.insert(at, id);
    }

    /// Links a pod that is linked to none (new, or just unlinked) to the
    /// cluster policies whose subject selects it: its list is those of
    /// the policies in evaluation order that select it, built in one pass.
    pub(super) fn link_pod_to_cluster_policies(&mut self, pod: PodId) {
        debug_assert!(self.pod(pod).tiered.is_empty(), "the pod is linked to no cluster policy");
        let tiered: Vec<ClusterPolicyId> =
            self.cluster.ordered.iter().copied().filter(|id| self.subject_selects(*id, pod)).collect();
        for id in &tiered {
            let selected = &mut self.cluster.policies.get_mut(id.0).expect("cluster policy exists").selected;
            if let Err(at) = selected.binary_search(&pod) {
                selected.insert(at, pod);
            }
        }
        self.pods.get_mut(pod.0).expect("pod exists").tiered = tiered;
    }

    /// Unlinks a pod being removed from the cluster policies it is in.
    pub(super) fn unlink_pod_from_cluster_policies(&mut self, pod: PodId, tiered: &[ClusterPolicyId]) {
        for id in tiered {
            let selected = &mut self.cluster.policies.get_mut(id.0).expect("linked cluster policy").selected;
            if let Ok(at) = selected.binary_search(&pod) {
                selected.remove(at);
            }
        }
    }

    /// Re-tests the pods of a relabelled namespace against every cluster
    /// policy's subject.
    pub(super) fn relink_namespace_pods(&mut self, ns: NsId) {
        if self.cluster.ordered.is_empty() {
            return;
        }
        for pod in self.namespace(ns).pods.clone() {
            let old = std::mem::take(&mut self.pods.get_mut(pod.0).expect("namespace pod exists").tiered);
            self.unlink_pod_from_cluster_policies(pod, &old);
            self.link_pod_to_cluster_policies(pod);
        }
    }

    /// Adds or updates a Node. Returns whether anything changed.
    pub fn apply_node(&mut self, node: Node) -> bool {
        if self.cluster.nodes.get(&node.name).is_some_and(|n| n.node == node) {
            return false;
        }
        self.remove_node(&node.name);
        let labels = CompiledLabels::compile(&node.labels, &mut self.interner);
        for addr in &node.addresses {
            self.cluster.node_by_ip.insert(*addr, node.name.clone());
        }
        self.record(|c| {
            c.nodes.insert(ObjectKey::node(&node.name));
        });
        self.cluster.nodes.insert(node.name.clone(), NodeEntry { labels, node });
        true
    }

    /// Removes a Node. Returns whether it existed.
    pub fn delete_node(&mut self, name: &str) -> bool {
        let existed = self.remove_node(name);
        if existed {
            self.record(|c| {
                c.nodes.insert(ObjectKey::node(name));
            });
        }
        existed
    }

    fn remove_node(&mut self, name: &str) -> bool {
        let Some(entry) = self.cluster.nodes.remove(name) else { return false };
        for addr in &entry.node.addresses {
            if self.cluster.node_by_ip.get(addr).is_some_and(|n| n == name) {
                self.cluster.node_by_ip.remove(addr);
            }
        }
        true
    }
}

/// The index's cluster policies and Nodes.
#[derive(Debug, Default)]
pub(crate) struct ClusterState {
    policies: crate::slab::Slab<ClusterPolicyEntry>,
    by_key: rustc_hash::FxHashMap<ObjectKey, ClusterPolicyId>,
    /// Every cluster policy in evaluation order.
    ordered: Vec<ClusterPolicyId>,
    nodes: std::collections::BTreeMap<String, NodeEntry>,
    node_by_ip: rustc_hash::FxHashMap<IpAddr, String>,
}

impl ClusterIndex {
    /// Endpoint pods one pod peer (`namespaces` or `pods`) of a cluster
    /// policy rule matches, in id order; empty for another kind of peer.
    #[must_use]
    pub fn cluster_peer_pods(&self, id: ClusterPolicyId, dir: Direction, rule: usize, peer: usize) -> Vec<PodId> {
        let entry = self.cluster_policy(id);
        let Some(CompiledClusterPeer::Pods(namespaces, pods)) =
            entry.rules[dir.slot()].get(rule).and_then(|r| r.peers.get(peer))
        else {
            return Vec::new();
        };
        let mut out: Vec<PodId> = self
            .namespace_ids()
            .filter(|ns| namespaces.matches(&self.namespace(*ns).compiled))
            .flat_map(|ns| self.namespace(ns).pods().iter().copied())
            .filter(|p| {
                let pod = self.pod(*p);
                pod.endpoint && pods.as_ref().is_none_or(|s| s.matches(&pod.labels))
            })
            .collect();
        out.sort_unstable();
        out
    }

    /// Whether `pod` can take part in what cluster policy `id` compiles to:
    /// a pod peer of one of its rules matches it, or its subject selects it
    /// and the policy has ingress named ports (which resolve on the
    /// subject's pods). A change to a pod for which this is false before
    /// and after cannot change the policy's compiled form.
    #[must_use]
    pub fn cluster_pod_may_affect(&self, id: ClusterPolicyId, pod: PodId) -> bool {
        let entry = self.cluster_policy(id);
        let p = self.pod(pod);
        let ns_labels = &self.namespace(p.ns).compiled;
        let named_ingress = entry.rules[Direction::Ingress.slot()]
            .iter()
            .any(|r| r.ports.iter().flatten().any(|port| matches!(port, CompiledClusterPort::Named(_))));
        (named_ingress && entry.selected.binary_search(&pod).is_ok())
            || entry.rules.iter().flatten().flat_map(|r| r.peers.iter()).any(|peer| match peer {
                CompiledClusterPeer::Pods(namespaces, pods) => {
                    p.endpoint && namespaces.matches(ns_labels) && pods.as_ref().is_none_or(|s| s.matches(&p.labels))
                }
                _ => false,
            })
    }

    /// Whether a pod peer (`namespaces` or `pods`) of rule `rule` of cluster
    /// policy `id` for `dir` matches `pod` (endpoints only), as
    /// [`ClusterIndex::cluster_peer_pods`] matches it.
    #[must_use]
    pub fn cluster_rule_pod_peers_match(&self, id: ClusterPolicyId, dir: Direction, rule: usize, pod: PodId) -> bool {
        let p = self.pod(pod);
        let ns_labels = &self.namespace(p.ns).compiled;
        p.endpoint
            && self.cluster_policy(id).rules[dir.slot()].get(rule).is_some_and(|r| {
                r.peers.iter().any(|peer| match peer {
                    CompiledClusterPeer::Pods(namespaces, pods) => {
                        namespaces.matches(ns_labels) && pods.as_ref().is_none_or(|s| s.matches(&p.labels))
                    }
                    _ => false,
                })
            })
    }

    /// The addresses of the Nodes `selector` selects, sorted.
    #[must_use]
    pub fn node_addresses(&self, selector: &crate::LabelSelector) -> Vec<IpAddr> {
        let mut out: Vec<IpAddr> = self
            .cluster
            .nodes
            .values()
            .filter(|n| selector.matches(&n.node.labels))
            .flat_map(|n| n.node.addresses.iter().copied())
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }
}
