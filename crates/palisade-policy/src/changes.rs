//! What changed in an index, for consumers that update incrementally (the
//! dataplane compiler), and which pods a policy's compiled form can depend on.

use std::collections::BTreeSet;

use crate::ObjectKey;
use crate::compiled::{CompiledPeer, CompiledTarget, NamespaceMatch};
use crate::index::{ClusterIndex, PodEntry, PodId, PolicyEntry, PolicyId};

/// Objects changed since the journal was last taken, by kind. An object is
/// listed when an apply or delete changed it, whatever the change.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// Namespaces whose labels changed (declared, relabelled or deleted).
    pub namespaces: BTreeSet<ObjectKey>,
    /// Pods added, changed or removed.
    pub pods: BTreeSet<ObjectKey>,
    /// Policies added, changed or removed.
    pub policies: BTreeSet<ObjectKey>,
    /// Cluster policies (all three kinds) added, changed or removed.
    pub cluster_policies: BTreeSet<ObjectKey>,
    /// Nodes added, changed or removed.
    pub nodes: BTreeSet<ObjectKey>,
}

impl Changes {
    /// Whether nothing changed.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.namespaces.is_empty()
            && self.pods.is_empty()
            && self.policies.is_empty()
            && self.cluster_policies.is_empty()
            && self.nodes.is_empty()
    }
}

impl ClusterIndex {
    /// Whether `pod` can take part in what `policy` compiles to: the policy
    /// selects it, a pod peer of one of its rules matches it, one of its
    /// addresses is in an ipBlock of a rule, or a rule without peers names a
    /// port (every pod is then a candidate destination). A change to a pod
    /// for which this is false, before and after the change, cannot change
    /// the policy's compiled form.
    #[must_use]
    pub fn pod_may_affect(&self, policy: PolicyId, pod: PodId) -> bool {
        let entry = self.policy(policy);
        let p = self.pod(pod);
        if entry.selected().binary_search(&pod).is_ok() {
            return true;
        }
        entry.rules.iter().flatten().any(|rule| {
            let named = rule.ports.iter().any(|port| matches!(port.target, CompiledTarget::Named(_)));
            (rule.peers.is_empty() && named)
                || rule.peers.iter().any(|peer| match peer {
                    CompiledPeer::Pods { .. } => self.pod_peer_matches(entry, peer, p),
                    CompiledPeer::Block(block) => p.pod().ips.iter().any(|ip| block.contains(*ip)),
                })
        })
    }

    /// Whether `peer` (of the policy `entry`) is a pod peer whose
    /// namespaceSelector (or the policy's own namespace) and podSelector
    /// match `pod`.
    fn pod_peer_matches(&self, entry: &PolicyEntry, peer: &CompiledPeer, pod: &PodEntry) -> bool {
        let CompiledPeer::Pods { namespaces, pods } = peer else { return false };
        let ns_ok = match namespaces {
            NamespaceMatch::Own => pod.ns == entry.ns,
            NamespaceMatch::Selector(s) => s.matches(&self.namespace(pod.ns).compiled),
        };
        ns_ok && pods.as_ref().is_none_or(|s| s.matches(&pod.labels))
    }

    /// Whether a pod peer (podSelector and/or namespaceSelector) of rule
    /// `rule` of `policy` for `dir` matches `pod`, as evaluation and
    /// [`ClusterIndex::peer_pods`] match it (endpoints only).
    #[must_use]
    pub fn rule_pod_peers_match(&self, policy: PolicyId, dir: crate::Direction, rule: usize, pod: PodId) -> bool {
        let entry = self.policy(policy);
        let p = self.pod(pod);
        if !p.pod().is_endpoint() {
            return false;
        }
        entry.rules[dir.slot()]
            .get(rule)
            .is_some_and(|r| r.peers.iter().any(|peer| self.pod_peer_matches(entry, peer, p)))
    }

    /// Whether a peer of `policy` selects namespaces by label, so that a
    /// namespace relabel can change which pods it matches.
    #[must_use]
    pub fn policy_selects_namespaces(&self, policy: PolicyId) -> bool {
        self.policy(policy)
            .rules
            .iter()
            .flatten()
            .flat_map(|r| r.peers.iter())
            .any(|peer| matches!(peer, CompiledPeer::Pods { namespaces: NamespaceMatch::Selector(_), .. }))
    }
}
