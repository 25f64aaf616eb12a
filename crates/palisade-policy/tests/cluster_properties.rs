//! Randomized invariants of the cluster policy tiers over the e2e model:
//! random NetworkPolicies and random ClusterNetworkPolicies of both tiers
//! (`palisade_testkit::strategy`). Whether a cluster policy rule matches a
//! flow is computed here from the model objects with the uncompiled
//! selectors, independently of the index.

use palisade_policy::synth::e2e::model;
use palisade_policy::{
    Action, ClusterIndex, ClusterPeer, ClusterPolicy, ClusterPort, ClusterRule, Direction, Endpoint, Flow,
    NAMESPACE_NAME_LABEL, Namespace, NetworkPolicy, Pod, Subject, Tier,
};
use palisade_testkit::e2e::all_flows;
use palisade_testkit::strategy::{cluster_policies, cluster_rule, policies};
use proptest::prelude::*;

fn build(policies: &[NetworkPolicy], cluster: &[ClusterPolicy]) -> ClusterIndex {
    let (namespaces, pods) = model();
    let mut index = ClusterIndex::from_objects(namespaces, pods, policies.to_vec());
    for c in cluster {
        index.apply_cluster_policy(c.clone());
    }
    index
}

/// The model's namespaces (with their name label) and pods, by name.
struct Model {
    namespaces: Vec<Namespace>,
    pods: Vec<Pod>,
}

impl Model {
    fn new() -> Self {
        let (mut namespaces, pods) = model();
        for ns in &mut namespaces {
            ns.labels.insert(NAMESPACE_NAME_LABEL.into(), ns.name.clone());
        }
        Model { namespaces, pods }
    }

    fn namespace_labels(&self, pod: &Pod) -> &palisade_policy::Labels {
        &self.namespaces.iter().find(|n| n.name == pod.namespace).expect("model namespace").labels
    }

    fn pod(&self, index: &ClusterIndex, end: Endpoint) -> Option<&Pod> {
        let Endpoint::Pod { id, .. } = end else { return None };
        let name = index.pod_name(id);
        self.pods.iter().find(|p| format!("{}/{}", p.namespace, p.name) == name)
    }

    fn subject_selects(&self, subject: &Subject, pod: &Pod) -> bool {
        match subject {
            Subject::Namespaces(ns) => ns.matches(self.namespace_labels(pod)),
            Subject::Pods { namespaces, pods } => {
                namespaces.matches(self.namespace_labels(pod)) && pods.matches(&pod.labels)
            }
        }
    }

    /// Whether `rule` matches the side of `flow` whose pod is `dir`'s.
    fn rule_matches(&self, index: &ClusterIndex, rule: &ClusterRule, flow: &Flow, dir: Direction) -> bool {
        let remote_end = if dir == Direction::Egress { flow.dst } else { flow.src };
        let remote = self.pod(index, remote_end);
        let destination = self.pod(index, flow.dst);
        let peer_ok = rule.peers.iter().any(|peer| match peer {
            ClusterPeer::Namespaces(ns) => remote.is_some_and(|p| ns.matches(self.namespace_labels(p))),
            ClusterPeer::Pods { namespaces, pods } => {
                remote.is_some_and(|p| namespaces.matches(self.namespace_labels(p)) && pods.matches(&p.labels))
            }
            ClusterPeer::Networks(nets) => remote_end.addr().is_some_and(|a| nets.iter().any(|n| n.contains(&a))),
            ClusterPeer::Nodes(_) | ClusterPeer::DomainNames(_) => false,
        });
        let port_ok = rule.ports.as_ref().is_none_or(|ports| {
            ports.iter().any(|port| match port {
                ClusterPort::Range { protocol, start, end } => {
                    *protocol == flow.protocol && (*start..=*end).contains(&flow.port)
                }
                ClusterPort::Named(name) => destination.is_some_and(|d| {
                    d.ports
                        .iter()
                        .any(|c| c.name.as_deref() == Some(name) && c.port == flow.port && c.protocol == flow.protocol)
                }),
            })
        });
        peer_ok && port_ok
    }

    /// Whether `policy` selects the pod on `dir`'s side of `flow` and one of
    /// its rules for `dir` matches.
    fn matches(&self, index: &ClusterIndex, policy: &ClusterPolicy, flow: &Flow, dir: Direction) -> bool {
        let end = if dir == Direction::Egress { flow.src } else { flow.dst };
        self.pod(index, end).is_some_and(|pod| {
            self.subject_selects(&policy.subject, pod)
                && policy.rules(dir).iter().any(|r| self.rule_matches(index, r, flow, dir))
        })
    }
}

/// Whether the pod on `dir`'s side of `flow` is isolated by a NetworkPolicy.
fn isolated(index: &ClusterIndex, flow: &Flow, dir: Direction) -> bool {
    let end = if dir == Direction::Egress { flow.src } else { flow.dst };
    matches!(end, Endpoint::Pod { id, .. } if !index.pod(id).isolating(dir).is_empty())
}

fn same_pod(flow: &Flow) -> bool {
    matches!((flow.src, flow.dst), (Endpoint::Pod { id: a, .. }, Endpoint::Pod { id: b, .. }) if a == b)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// A Baseline-tier policy never changes the verdict of a side whose pod
    /// a NetworkPolicy isolates in that direction.
    #[test]
    fn baseline_never_overrides_a_network_policy(policies in policies(4), cluster in cluster_policies(4)) {
        let with = build(&policies, &cluster);
        let admin_only: Vec<ClusterPolicy> = cluster.iter().filter(|c| c.tier == Tier::Admin).cloned().collect();
        let without = build(&policies, &admin_only);
        for (label, flow) in all_flows(&with) {
            for dir in Direction::BOTH {
                if isolated(&with, &flow, dir) {
                    let (a, b) = (with.evaluate(&flow).side(dir).allows(), without.evaluate(&flow).side(dir).allows());
                    prop_assert_eq!(a, b, "{} {}", label, dir);
                }
            }
        }
    }

    /// An Admin-tier Deny evaluated first denies every connection it
    /// matches, whatever the other policies say.
    #[test]
    fn the_first_admin_deny_denies_what_it_matches(
        policies in policies(4),
        cluster in cluster_policies(4),
        first in palisade_testkit::strategy::cluster_policy(),
        rule in cluster_rule(false),
        egress_rule in cluster_rule(true),
    ) {
        let deny = ClusterRule { action: Action::Deny, ..rule };
        let egress_deny = ClusterRule { action: Action::Deny, ..egress_rule };
        let first = ClusterPolicy {
            name: "aaa-first".into(),
            tier: Tier::Admin,
            priority: Some(0),
            ingress: vec![deny],
            egress: vec![egress_deny],
            ..first
        };
        let mut all = cluster;
        all.push(first.clone());
        let index = build(&policies, &all);
        let model = Model::new();
        for (label, flow) in all_flows(&index) {
            if same_pod(&flow) {
                continue;
            }
            for dir in Direction::BOTH {
                if model.matches(&index, &first, &flow, dir) {
                    prop_assert!(!index.evaluate(&flow).allowed, "{} {}", label, dir);
                }
            }
        }
    }

    /// For the connections an Admin-tier Pass evaluated first matches, the
    /// verdict is the one without any Admin-tier policy.
    #[test]
    fn a_pass_is_as_if_the_rest_of_the_admin_tier_did_not_exist(
        policies in policies(4),
        cluster in cluster_policies(4),
        first in palisade_testkit::strategy::cluster_policy(),
        rule in cluster_rule(false),
        egress_rule in cluster_rule(true),
    ) {
        let first = ClusterPolicy {
            name: "aaa-first".into(),
            tier: Tier::Admin,
            priority: Some(0),
            ingress: vec![ClusterRule { action: Action::Pass, ..rule }],
            egress: vec![ClusterRule { action: Action::Pass, ..egress_rule }],
            ..first
        };
        let mut all = cluster;
        all.push(first.clone());
        let index = build(&policies, &all);
        let baseline_only: Vec<ClusterPolicy> = all.iter().filter(|c| c.tier == Tier::Baseline).cloned().collect();
        let without_admin = build(&policies, &baseline_only);
        let model = Model::new();
        for (label, flow) in all_flows(&index) {
            for dir in Direction::BOTH {
                if model.matches(&index, &first, &flow, dir) {
                    let (a, b) = (index.evaluate(&flow).side(dir), without_admin.evaluate(&flow).side(dir));
                    prop_assert_eq!(a.allows(), b.allows(), "{} {}", label, dir);
                }
            }
        }
    }

    /// The verdicts do not depend on the order objects arrive in: cluster
    /// policies before pods and namespaces (so the index re-tests subjects
    /// when namespace labels arrive) give what the usual order gives.
    #[test]
    fn cluster_policies_are_independent_of_object_order(policies in policies(3), cluster in cluster_policies(5)) {
        let forward = build(&policies, &cluster);
        let (mut namespaces, mut pods) = model();
        namespaces.reverse();
        pods.reverse();
        let mut backward = ClusterIndex::new();
        for c in cluster.iter().rev() { backward.apply_cluster_policy(c.clone()); }
        for p in &policies { backward.apply_policy(p.clone()); }
        for p in pods { backward.apply_pod(p); }
        for n in namespaces { backward.apply_namespace(n); }
        let verdicts = |index: &ClusterIndex| {
            let mut v: Vec<(String, bool)> =
                all_flows(index).into_iter().map(|(label, f)| (label, index.evaluate(&f).allowed)).collect();
            v.sort();
            v
        };
        prop_assert_eq!(verdicts(&forward), verdicts(&backward));
    }
}
