//! Reachability truth tables between pods, computed on classes of pods that
//! behave identically.
//!
//! Two pods behave identically under every policy when they share namespace,
//! labels and declared ports, and their addresses fall in the same ipBlocks.
//! The matrix evaluates one representative pair per pair of classes, which is
//! exact (evaluation sees nothing else of a pod) and makes large matrices
//! cheap; the classes double as the groups shown for large clusters.

use std::collections::BTreeSet;
use std::net::IpAddr;

use rustc_hash::FxHashMap;
use serde::Serialize;

use crate::evaluate::{Endpoint, Flow};
use crate::index::{ClusterIndex, PodId};
use crate::model::{IpBlock, Peer, Protocol};

/// One port and protocol of a matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Case {
    /// Destination port.
    pub port: u16,
    /// Protocol.
    pub protocol: Protocol,
}

/// A computed matrix.
#[derive(Debug)]
pub struct Matrix {
    /// The pods, in row/column order.
    pub pods: Vec<PodId>,
    /// The port/protocol cases.
    pub cases: Vec<Case>,
    /// Class of each pod (index into `classes`).
    pub class_of: Vec<usize>,
    /// Members of each class (indexes into `pods`), in pod order.
    pub classes: Vec<Vec<usize>>,
    /// Per case, `classes.len()²` cells, row-major (from, to).
    cells: Vec<Vec<bool>>,
    /// Classes merged for display: classes whose pods can be swapped without
    /// changing the matrix (see [`Matrix::groups`]).
    merged: Vec<Vec<usize>>,
}

impl Matrix {
    /// Whether `pods[from]` reaches `pods[to]` in case `case`.
    #[must_use]
    pub fn allowed(&self, case: usize, from: usize, to: usize) -> bool {
        from == to || self.class_allowed(case, self.class_of[from], self.class_of[to])
    }

    /// Whether a member of class `from` reaches a different member of class
    /// `to` (for a one-pod class to itself: the pod reaches itself).
    #[must_use]
    pub fn class_allowed(&self, case: usize, from: usize, to: usize) -> bool {
        self.cells[case][from * self.classes.len() + to]
    }

    /// Groups of pods (indexes into `pods`) that behave identically in this
    /// matrix: swapping any two members leaves every cell unchanged. Coarser
    /// than `classes`, which group by identical inputs.
    #[must_use]
    pub fn groups(&self) -> Vec<Vec<usize>> {
        self.merged
            .iter()
            .map(|classes| {
                let mut pods: Vec<usize> = classes.iter().flat_map(|c| self.classes[*c].iter().copied()).collect();
                pods.sort_unstable();
                pods
            })
            .collect()
    }

    /// Whether a member of group `from` reaches a different member of group
    /// `to` (a one-pod group to itself: the pod reaches itself).
    #[must_use]
    pub fn group_allowed(&self, case: usize, from: usize, to: usize) -> bool {
        let (f, t) = (&self.merged[from], &self.merged[to]);
        if from != to {
            return self.class_allowed(case, f[0], t[0]);
        }
        match (f.get(1), self.classes[f[0]].len()) {
            (_, 2..) => self.class_allowed(case, f[0], f[0]),
            (Some(second), _) => self.class_allowed(case, f[0], *second),
            (None, _) => true,
        }
    }

    /// Whether pods of classes `a` and `b` can be swapped without changing
    /// any cell of any case.
    fn swappable(&self, a: usize, b: usize) -> bool {
        let n = self.classes.len();
        (0..self.cases.len()).all(|c| {
            let cell = |f: usize, t: usize| self.cells[c][f * n + t];
            let between = cell(a, b);
            cell(b, a) == between
                && (self.classes[a].len() < 2 || cell(a, a) == between)
                && (self.classes[b].len() < 2 || cell(b, b) == between)
                && (0..n).filter(|k| *k != a && *k != b).all(|k| cell(a, k) == cell(b, k) && cell(k, a) == cell(k, b))
        })
    }

    /// Merges swappable classes. Swappability is an equivalence (a product
    /// of transpositions that preserve the matrix preserves it), so comparing
    /// with each group's first class suffices. Quadratic in classes, so only
    /// done up to `MERGE_LIMIT` classes.
    fn merge_classes(&mut self) {
        let mut merged: Vec<Vec<usize>> = Vec::new();
        for class in 0..self.classes.len() {
            let home = if self.classes.len() <= MERGE_LIMIT {
                merged.iter().position(|g| self.swappable(g[0], class))
            } else {
                None
            };
            match home {
                Some(g) => merged[g].push(class),
                None => merged.push(vec![class]),
            }
        }
        self.merged = merged;
    }
}

/// Above this many classes, display groups are the classes themselves.
const MERGE_LIMIT: usize = 400;

impl ClusterIndex {
    /// The endpoint for `pod`, at its address of the family of `toward`
    /// when it has one, else at its first address.
    #[must_use]
    pub fn pod_endpoint(&self, pod: PodId, toward: Option<IpAddr>) -> Endpoint {
        Endpoint::Pod { id: pod, addr: self.pod(pod).addrs.toward(toward) }
    }

    /// The flow from pod `src` to pod `dst`: the destination at its first
    /// address, the source at its address of the same family.
    #[must_use]
    pub fn pod_flow(&self, src: PodId, dst: PodId, port: u16, protocol: Protocol) -> Flow {
        let dst = self.pod_endpoint(dst, None);
        Flow { src: self.pod_endpoint(src, dst.addr()), dst, port, protocol }
    }

    /// Every distinct ipBlock peer of every policy, and every `networks`
    /// CIDR of every cluster policy (as a block without exceptions).
    fn all_ip_blocks(&self) -> Vec<IpBlock> {
        let mut blocks = BTreeSet::new();
        for id in self.policies_sorted() {
            let policy = self.policy(id).policy();
            for rule in policy.ingress.iter().chain(&policy.egress) {
                for peer in &rule.peers {
                    if let Peer::IpBlock(b) = peer {
                        blocks.insert(b.clone());
                    }
                }
            }
        }
        for id in self.cluster_policies() {
            let policy = self.cluster_policy(*id).policy();
            for peer in policy.ingress.iter().chain(&policy.egress).flat_map(|r| &r.peers) {
                if let crate::ClusterPeer::Networks(nets) = peer {
                    blocks.extend(nets.iter().map(|cidr| IpBlock { cidr: *cidr, except: Vec::new() }));
                }
            }
        }
        blocks.into_iter().collect()
    }

    /// Groups `pods` into classes that behave identically; returns the class
    /// of each pod and the members of each class.
    #[must_use]
    pub fn behaviour_classes(&self, pods: &[PodId]) -> (Vec<usize>, Vec<Vec<usize>>) {
        let blocks = self.all_ip_blocks();
        let mut by_key = FxHashMap::default();
        let mut class_of = Vec::with_capacity(pods.len());
        let mut classes: Vec<Vec<usize>> = Vec::new();
        for (i, &pod_id) in pods.iter().enumerate() {
            let entry = self.pod(pod_id);
            let addresses: Vec<(bool, Vec<bool>)> = entry
                .pod()
                .ips
                .iter()
                .map(|ip| (ip.is_ipv4(), blocks.iter().map(|b| b.contains(*ip)).collect()))
                .collect();
            let key = (entry.ns, entry.labels.clone(), entry.ports.clone(), addresses);
            let next = classes.len();
            let class = *by_key.entry(key).or_insert(next);
            if class == next {
                classes.push(Vec::new());
            }
            classes[class].push(i);
            class_of.push(class);
        }
        (class_of, classes)
    }

    /// Computes the matrix of `pods` (rows = from, columns = to) for `cases`.
    #[must_use]
    pub fn matrix(&self, pods: Vec<PodId>, cases: Vec<Case>) -> Matrix {
        let (class_of, classes) = self.behaviour_classes(&pods);
        let n = classes.len();
        let mut cells = Vec::with_capacity(cases.len());
        for case in &cases {
            let mut table = vec![false; n * n];
            for (from, from_members) in classes.iter().enumerate() {
                for (to, to_members) in classes.iter().enumerate() {
                    let pair = if from == to {
                        from_members.get(1).map(|&second| (pods[from_members[0]], pods[second]))
                    } else {
                        Some((pods[from_members[0]], pods[to_members[0]]))
                    };
                    // A one-pod class to itself: the pod reaches itself.
                    let Some((src, dst)) = pair else {
                        table[from * n + to] = true;
                        continue;
                    };
                    table[from * n + to] = self.evaluate(&self.pod_flow(src, dst, case.port, case.protocol)).allowed;
                }
            }
            cells.push(table);
        }
        let mut matrix = Matrix { pods, cases, class_of, classes, cells, merged: Vec::new() };
        matrix.merge_classes();
        matrix
    }
}
