//! Which connections a change opens and closes.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::index::{ClusterIndex, PodId, PolicyId};
use crate::matrix::Case;
use crate::model::{Direction, PortTarget, Protocol};

/// One connection whose verdict differs.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Change {
    /// `namespace/pod` of the source.
    pub from: String,
    /// `namespace/pod` of the destination.
    pub to: String,
    /// Destination port.
    pub port: u16,
    /// Protocol.
    pub protocol: Protocol,
    /// Allowed after the change (opened) or not (closed).
    pub allowed: bool,
}

/// The result of comparing two cluster states.
#[derive(Debug, Serialize, Default)]
pub struct Diff {
    /// Port/protocol cases compared.
    pub cases: Vec<Case>,
    /// Connections opened and closed per pair of namespaces (sources,
    /// destinations), in name order.
    pub summary: Vec<PairSummary>,
    /// Connections newly allowed.
    pub opened: Vec<Change>,
    /// Connections newly denied.
    pub closed: Vec<Change>,
    /// Pods only in the after state.
    pub pods_added: Vec<String>,
    /// Pods only in the before state.
    pub pods_removed: Vec<String>,
}

/// The ports worth comparing: every declared container port and every port
/// number (and range end) a policy names, with its protocol.
#[must_use]
pub fn interesting_cases(indexes: &[&ClusterIndex]) -> Vec<Case> {
    let mut cases = BTreeSet::new();
    for index in indexes {
        for pod in index.pods_sorted() {
            for p in &index.pod(pod).pod().ports {
                cases.insert(Case { port: p.port, protocol: p.protocol });
            }
        }
        for id in index.cluster_policies() {
            let policy = index.cluster_policy(*id).policy();
            for port in policy.ingress.iter().chain(&policy.egress).flat_map(|r| r.ports.iter().flatten()) {
                if let crate::ClusterPort::Range { protocol, start, end } = port {
                    cases.insert(Case { port: *start, protocol: *protocol });
                    cases.insert(Case { port: *end, protocol: *protocol });
                }
            }
        }
        for policy in index.policies_sorted() {
            let policy = index.policy(policy).policy();
            for rule in policy.ingress.iter().chain(&policy.egress) {
                for port in &rule.ports {
                    if let PortTarget::Range { start, end } = port.target {
                        cases.insert(Case { port: start, protocol: port.protocol });
                        cases.insert(Case { port: end, protocol: port.protocol });
                    }
                }
            }
        }
    }
    cases.into_iter().collect()
}

fn endpoint_pods(index: &ClusterIndex) -> Vec<(String, PodId)> {
    index
        .pods_sorted()
        .into_iter()
        .filter(|p| index.pod(*p).pod().is_endpoint())
        .map(|p| (index.pod_name(p).to_string(), p))
        .collect()
}

/// Connections opened and closed between the pods of two namespaces.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct PairSummary {
    /// Namespace of the sources.
    pub from_namespace: String,
    /// Namespace of the destinations.
    pub to_namespace: String,
    /// Connections newly allowed.
    pub opened: usize,
    /// Connections newly denied.
    pub closed: usize,
}

/// A pod present in both states: its ids in each.
#[derive(Clone, Copy)]
struct Common {
    before: PodId,
    after: PodId,
}

/// Which of the common pods can see a verdict change: as a source (its
/// egress policies changed), as a destination (its ingress policies
/// changed), or both (the pod itself changed: labels, its namespace's
/// labels, addresses, ports, so any policy's peers may now match it
/// differently).
fn affected(before: &ClusterIndex, after: &ClusterIndex, common: &[Common]) -> (Vec<bool>, Vec<bool>) {
    let policies = |index: &ClusterIndex| -> BTreeMap<String, PolicyId> {
        index.policies_sorted().into_iter().map(|id| (index.policy_name(id).to_string(), id)).collect()
    };
    let (pb, pa) = (policies(before), policies(after));
    let changed: BTreeSet<&str> = pb
        .keys()
        .chain(pa.keys())
        .filter(|name| match (pb.get(*name), pa.get(*name)) {
            (Some(b), Some(a)) => before.policy(*b).policy() != after.policy(*a).policy(),
            _ => true,
        })
        .map(String::as_str)
        .collect();
    let cluster_keys = |index: &ClusterIndex, pod: PodId| -> Vec<crate::ObjectKey> {
        index.cluster_policies_of(pod).iter().map(|id| index.cluster_policy_key(*id)).collect()
    };
    let cluster_changed = |key: &crate::ObjectKey| {
        let b = before.cluster_policy_id(key).map(|id| before.cluster_policy(id).policy());
        let a = after.cluster_policy_id(key).map(|id| after.cluster_policy(id).policy());
        b != a
    };
    let mut as_source = vec![false; common.len()];
    let mut as_destination = vec![false; common.len()];
    for (i, c) in common.iter().enumerate() {
        let (b, a) = (before.pod(c.before), after.pod(c.after));
        // (The index keeps labels apart from the pod object.)
        let itself = b.pod() != a.pod()
            || before.pod_labels(c.before) != after.pod_labels(c.after)
            || before.namespace(b.namespace()).labels() != after.namespace(a.namespace()).labels();
        let policies_changed = |dir: Direction| {
            let names = |index: &ClusterIndex, ids: &[PolicyId]| -> Vec<String> {
                ids.iter().map(|id| index.policy_name(*id).to_string()).collect()
            };
            let (nb, na) = (names(before, b.isolating(dir)), names(after, a.isolating(dir)));
            nb != na || nb.iter().any(|n| changed.contains(n.as_str()))
        };
        // A cluster policy selecting the pod changed (or the set of them
        // did): either direction may have.
        let (kb, ka) = (cluster_keys(before, c.before), cluster_keys(after, c.after));
        let tiers = kb != ka || kb.iter().any(cluster_changed);
        as_source[i] = itself || tiers || policies_changed(Direction::Egress);
        as_destination[i] = itself || tiers || policies_changed(Direction::Ingress);
    }
    (as_source, as_destination)
}

/// Compares `before` and `after` over the pods both contain, for `cases`.
/// Only connections from a pod whose egress may have changed, or to a pod
/// whose ingress may have changed, are evaluated ([`affected`]): a change
/// to one policy costs the rows and columns of the pods it selects, not
/// the whole matrix.
#[must_use]
pub fn diff(before: &ClusterIndex, after: &ClusterIndex, cases: &[Case]) -> Diff {
    let b_pods = endpoint_pods(before);
    let a_pods = endpoint_pods(after);
    let b_names: BTreeSet<&String> = b_pods.iter().map(|(n, _)| n).collect();
    let a_names: BTreeSet<&String> = a_pods.iter().map(|(n, _)| n).collect();
    let pods_added = a_names.difference(&b_names).map(|s| (*s).clone()).collect();
    let pods_removed = b_names.difference(&a_names).map(|s| (*s).clone()).collect();
    let a_ids: BTreeMap<&String, PodId> = a_pods.iter().map(|(n, id)| (n, *id)).collect();
    let (names, common): (Vec<&String>, Vec<Common>) =
        b_pods.iter().filter_map(|(n, b)| a_ids.get(n).map(|a| (n, Common { before: *b, after: *a }))).unzip();
    let (as_source, as_destination) = affected(before, after, &common);
    let mut changes: BTreeSet<(usize, usize, usize, bool)> = BTreeSet::new();
    let mut compare = |c: usize, case: &Case, from: usize, to: usize| {
        if from == to {
            return; // A pod always reaches itself.
        }
        let verdict = |index: &ClusterIndex, f: PodId, t: PodId| {
            index.evaluate(&index.pod_flow(f, t, case.port, case.protocol)).allowed
        };
        let was = verdict(before, common[from].before, common[to].before);
        let now = verdict(after, common[from].after, common[to].after);
        if was != now {
            changes.insert((c, from, to, now));
        }
    };
    for (c, case) in cases.iter().enumerate() {
        for from in (0..common.len()).filter(|f| as_source[*f]) {
            for to in 0..common.len() {
                compare(c, case, from, to);
            }
        }
        for to in (0..common.len()).filter(|t| as_destination[*t]) {
            for from in (0..common.len()).filter(|f| !as_source[*f]) {
                compare(c, case, from, to);
            }
        }
    }
    let mut result = Diff { cases: cases.to_vec(), pods_added, pods_removed, ..Diff::default() };
    let mut pairs: BTreeMap<(&str, &str), (usize, usize)> = BTreeMap::new();
    for (c, from, to, now) in changes {
        let namespace = |i: usize| names[i].split_once('/').map_or("", |(ns, _)| ns);
        let counts = pairs.entry((namespace(from), namespace(to))).or_default();
        if now {
            counts.0 += 1;
        } else {
            counts.1 += 1;
        }
        let change = Change {
            from: names[from].clone(),
            to: names[to].clone(),
            port: cases[c].port,
            protocol: cases[c].protocol,
            allowed: now,
        };
        if now { result.opened.push(change) } else { result.closed.push(change) }
    }
    result.summary = pairs
        .into_iter()
        .map(|((f, t), (opened, closed))| PairSummary {
            from_namespace: f.to_string(),
            to_namespace: t.to_string(),
            opened,
            closed,
        })
        .collect();
    result
}
