//! The net effect of all policies on one pod, merged across policies.

use std::fmt::Write as _;
use std::net::IpAddr;

use serde::Serialize;

use crate::cluster_policy::Tier;
use crate::compiled::{CompiledPeer, NamespaceMatch};
use crate::describe;
use crate::index::{ClusterIndex, PodId, PolicyId};
use crate::model::{Direction, Labels, PodState};

/// What `explain` says about a pod.
#[derive(Debug, Serialize)]
pub struct Explanation {
    /// `namespace/name`.
    pub pod: String,
    /// Pod labels.
    pub labels: Labels,
    /// Pod IPs.
    pub ips: Vec<IpAddr>,
    /// Whether the pod is a policy endpoint.
    pub state: PodState,
    /// The workload a template pod stands for.
    pub workload: Option<String>,
    /// Policies whose `podSelector` selects the pod, with the directions they isolate.
    pub selected_by: Vec<SelectingPolicy>,
    /// Cluster policies whose subject selects the pod, in evaluation order:
    /// `admin ns-isolation priority 10`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cluster_policies: Vec<String>,
    /// Ingress summary.
    pub ingress: DirectionSummary,
    /// Egress summary.
    pub egress: DirectionSummary,
}

/// A policy selecting the pod.
#[derive(Debug, Serialize)]
pub struct SelectingPolicy {
    /// `namespace/name`.
    pub policy: String,
    /// Directions it isolates.
    pub isolates: Vec<Direction>,
}

/// The merged allowances for one direction.
#[derive(Debug, Serialize)]
pub struct DirectionSummary {
    /// Whether some NetworkPolicy isolates the pod in this direction.
    pub isolated: bool,
    /// True when everything is allowed (not isolated, or a rule with no
    /// peers and no ports) and no cluster policy rule denies anything.
    pub allows_everything: bool,
    /// Distinct allowances, merged across policies, each with its sources.
    pub allowed: Vec<Allowance>,
    /// Admin-tier rules of the cluster policies selecting the pod, in
    /// evaluation order: evaluated before the NetworkPolicies.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub admin: Vec<TierRuleLine>,
    /// Baseline-tier rules, in evaluation order: evaluated only when no
    /// NetworkPolicy isolates the pod in this direction.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub baseline: Vec<TierRuleLine>,
}

/// One cluster policy rule that applies to the pod.
#[derive(Debug, Serialize)]
pub struct TierRuleLine {
    /// `ns-isolation priority 10 ingress rule 0 (same-team)`, the kind named
    /// when it is not ClusterNetworkPolicy.
    pub source: String,
    /// The action as the kind spells it.
    pub action: &'static str,
    /// For example `Deny from all pods in all namespaces, on TCP 80`.
    pub text: String,
}

/// One allowance in plain words.
#[derive(Debug, Serialize)]
pub struct Allowance {
    /// For example `from pods with app=api in namespace prod, on TCP 5432`.
    pub text: String,
    /// The rules that grant it: `prod/allow-api ingress rule 0`.
    pub sources: Vec<String>,
    /// How many pods its pod peers currently match (`None` for ipBlock-only or all-peer rules).
    pub matching_pods: Option<usize>,
}

impl ClusterIndex {
    /// Explains the net effect of all policies on `pod`.
    #[must_use]
    pub fn explain(&self, pod_id: PodId) -> Explanation {
        let entry = self.pod(pod_id);
        let pod = entry.pod();
        let mut selected_by: Vec<PolicyId> =
            Direction::BOTH.iter().flat_map(|d| entry.isolating(*d).iter().copied()).collect();
        selected_by.sort_by_key(|p| self.policy(*p).policy().name.clone());
        selected_by.dedup();
        let selected_by = selected_by
            .into_iter()
            .map(|p| SelectingPolicy {
                policy: self.policy_name(p).to_string(),
                isolates: Direction::BOTH.into_iter().filter(|d| self.policy(p).policy().isolates(*d)).collect(),
            })
            .collect();
        Explanation {
            pod: self.pod_name(pod_id).to_string(),
            labels: self.pod_labels(pod_id),
            ips: pod.ips.clone(),
            state: pod.state.clone(),
            workload: pod.workload.clone(),
            selected_by,
            cluster_policies: self
                .cluster_policies_of(pod_id)
                .iter()
                .map(|id| {
                    let policy = self.cluster_policy(*id).policy();
                    match policy.priority {
                        Some(p) => format!("{} {} priority {p}", policy.tier, policy.label()),
                        None => format!("{} {}", policy.tier, policy.label()),
                    }
                })
                .collect(),
            ingress: self.summarize(pod_id, Direction::Ingress),
            egress: self.summarize(pod_id, Direction::Egress),
        }
    }

    /// The rules of `tier` for `dir` of the cluster policies selecting the
    /// pod, in evaluation order.
    fn tier_lines(&self, pod_id: PodId, tier: Tier, dir: Direction) -> Vec<TierRuleLine> {
        let word = match dir {
            Direction::Ingress => "from",
            Direction::Egress => "to",
        };
        let mut lines = Vec::new();
        for &id in self.cluster_policies_of(pod_id) {
            let policy = self.cluster_policy(id).policy();
            if policy.tier != tier {
                continue;
            }
            for (i, rule) in policy.rules(dir).iter().enumerate() {
                let mut source = policy.label();
                if let Some(priority) = policy.priority {
                    let _ = write!(source, " priority {priority}");
                }
                let _ = write!(source, " {dir} rule {i}");
                if let Some(name) = &rule.name {
                    let _ = write!(source, " ({name})");
                }
                let text = describe::cluster_rule(policy, rule, word);
                lines.push(TierRuleLine { source, action: policy.kind.action_word(rule.action), text });
            }
        }
        lines
    }

    fn summarize(&self, pod_id: PodId, dir: Direction) -> DirectionSummary {
        let mut summary = self.summarize_network_policies(pod_id, dir);
        summary.admin = self.tier_lines(pod_id, Tier::Admin, dir);
        if !summary.isolated {
            summary.baseline = self.tier_lines(pod_id, Tier::Baseline, dir);
        }
        let denies = |lines: &[TierRuleLine]| lines.iter().any(|l| l.action == "Deny");
        summary.allows_everything &= !denies(&summary.admin) && !denies(&summary.baseline);
        summary
    }

    fn summarize_network_policies(&self, pod_id: PodId, dir: Direction) -> DirectionSummary {
        let isolating = self.pod(pod_id).isolating(dir);
        if isolating.is_empty() {
            return DirectionSummary {
                isolated: false,
                allows_everything: true,
                allowed: Vec::new(),
                admin: Vec::new(),
                baseline: Vec::new(),
            };
        }
        let word = match dir {
            Direction::Ingress => "from",
            Direction::Egress => "to",
        };
        let mut allowed: Vec<Allowance> = Vec::new();
        let mut allows_everything = false;
        for &policy_id in isolating {
            let policy = self.policy(policy_id).policy();
            for (i, rule) in policy.rules(dir).iter().enumerate() {
                allows_everything |= rule.peers.is_empty() && rule.ports.is_empty();
                let text = describe::rule(rule, word, &policy.namespace);
                let source = format!("{} {dir} rule {i}", self.policy_name(policy_id));
                if let Some(existing) = allowed.iter_mut().find(|a| a.text == text) {
                    existing.sources.push(source);
                    continue;
                }
                let matching_pods = self.rule_peer_pods(policy_id, dir, i).map(|pods| pods.len());
                allowed.push(Allowance { text, sources: vec![source], matching_pods });
            }
        }
        DirectionSummary { isolated: true, allows_everything, allowed, admin: Vec::new(), baseline: Vec::new() }
    }

    /// Pods that the pod peers of one rule match (distinct, sorted); `None`
    /// when the rule has no pod peers (ipBlocks only) or no peers at all.
    #[must_use]
    pub fn rule_peer_pods(&self, policy_id: PolicyId, dir: Direction, rule: usize) -> Option<Vec<PodId>> {
        let compiled = &self.policy(policy_id).rules[dir.slot()][rule];
        if compiled.peers.is_empty() || !compiled.peers.iter().any(|p| matches!(p, CompiledPeer::Pods { .. })) {
            return None;
        }
        let mut pods: Vec<PodId> =
            (0..compiled.peers.len()).flat_map(|i| self.peer_pods(policy_id, dir, rule, i)).collect();
        pods.sort_unstable();
        pods.dedup();
        Some(pods)
    }

    /// Endpoint pods matched by one pod peer (empty for an ipBlock peer), in
    /// no particular order.
    #[must_use]
    pub fn peer_pods(&self, policy_id: PolicyId, dir: Direction, rule: usize, peer: usize) -> Vec<PodId> {
        let policy = self.policy(policy_id);
        let CompiledPeer::Pods { namespaces, pods } = &policy.rules[dir.slot()][rule].peers[peer] else {
            return Vec::new();
        };
        let candidate_namespaces = match namespaces {
            NamespaceMatch::Own => vec![policy.ns],
            NamespaceMatch::Selector(sel) => {
                self.namespace_ids().filter(|ns| sel.matches(&self.namespace(*ns).compiled)).collect()
            }
        };
        candidate_namespaces
            .into_iter()
            .flat_map(|ns| self.namespace(ns).pods().iter().copied())
            .filter(|p| {
                let entry = self.pod(*p);
                entry.pod().is_endpoint() && pods.as_ref().is_none_or(|sel| sel.matches(&entry.labels))
            })
            .collect()
    }
}
