//! Which connections a change opens and closes.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::index::{ClusterIndex, PodId};
use crate::matrix::Case;
use crate::model::{PortTarget, Protocol};

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

/// Compares `before` and `after` over the pods both contain, for `cases`.
#[must_use]
pub fn diff(before: &ClusterIndex, after: &ClusterIndex, cases: &[Case]) -> Diff {
    let b_pods = endpoint_pods(before);
    let a_pods = endpoint_pods(after);
    let b_names: BTreeSet<&String> = b_pods.iter().map(|(n, _)| n).collect();
    let a_names: BTreeSet<&String> = a_pods.iter().map(|(n, _)| n).collect();
    let pods_added = a_names.difference(&b_names).map(|s| (*s).clone()).collect();
    let pods_removed = b_names.difference(&a_names).map(|s| (*s).clone()).collect();
    let common: Vec<&String> = b_names.intersection(&a_names).copied().collect();
    let ids = |pods: &[(String, PodId)]| -> Vec<PodId> {
        pods.iter().filter(|(n, _)| common.binary_search(&n).is_ok()).map(|(_, id)| *id).collect()
    };
    let mb = before.matrix(ids(&b_pods), cases.to_vec());
    let ma = after.matrix(ids(&a_pods), cases.to_vec());
    let mut result = Diff { cases: cases.to_vec(), pods_added, pods_removed, ..Diff::default() };
    for (c, case) in cases.iter().enumerate() {
        for from in 0..common.len() {
            for to in 0..common.len() {
                let (was, now) = (mb.allowed(c, from, to), ma.allowed(c, from, to));
                if was == now {
                    continue;
                }
                let change = Change {
                    from: common[from].clone(),
                    to: common[to].clone(),
                    port: case.port,
                    protocol: case.protocol,
                    allowed: now,
                };
                if now { result.opened.push(change) } else { result.closed.push(change) }
            }
        }
    }
    result
}
