//! Pod-to-pod reachability of a whole cluster as bit rows, for the
//! report's namespace overview: exact, and fast enough for thousands of
//! pods where the pairwise `matrix` is not.
//!
//! A flow from `p` to `q` on a case (port, protocol) is allowed when both
//! sides allow it (NetworkPolicy v1): `p`'s egress (not isolated, or some
//! rule of an isolating policy admits `q`'s address on that port resolved
//! on `q`) and `q`'s ingress (not isolated, or some rule admits `p`'s
//! address on that port resolved on `q`). The rules' peers and ports come
//! from the node program compiled for every pod (the dataplane's compile,
//! which the lab checks against the engine with real packets); each rule
//! becomes a bit set over pods once, and a pod's row is the union of its
//! rules' sets. Addresses are chosen as `matrix` chooses them: the
//! destination's first address, the source's address of the same family.
//! Cluster policies and audit policies are not handled here (the caller
//! falls back); the differential test checks every pair against the
//! engine.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use palisade_dataplane::{NodeScope, PortSet, RuleProgram, compile};
use palisade_policy::matrix::Case;
use palisade_policy::{ClusterIndex, ObjectKey, PodId, Protocol};

/// A set of pods (indexes into the pod list) as bits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bits(Vec<u64>);

impl Bits {
    fn new(n: usize, all: bool) -> Bits {
        let mut words = vec![if all { u64::MAX } else { 0 }; n.div_ceil(64)];
        if all
            && !n.is_multiple_of(64)
            && let Some(last) = words.last_mut()
        {
            *last = (1u64 << (n % 64)) - 1;
        }
        Bits(words)
    }
    fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
    /// Whether `i` is in the set.
    #[must_use]
    pub fn get(&self, i: usize) -> bool {
        self.0[i / 64] & (1 << (i % 64)) != 0
    }
    pub(crate) fn or(&mut self, other: &Bits) {
        for (a, b) in self.0.iter_mut().zip(&other.0) {
            *a |= b;
        }
    }
    fn and(&mut self, other: &Bits) {
        for (a, b) in self.0.iter_mut().zip(&other.0) {
            *a &= b;
        }
    }
    /// Whether any of `range` is in the set.
    #[must_use]
    pub fn any_in(&self, range: std::ops::Range<usize>) -> bool {
        range.into_iter().any(|i| self.get(i))
    }
}

/// Why the fast path does not apply.
#[derive(Debug, PartialEq, Eq)]
pub enum Unsupported {
    /// Cluster policies are present.
    ClusterPolicies,
    /// Audit policies are counted (the dataplane's compile leaves them out).
    AuditPolicies,
}

/// Per case, each pod's row: the pods it may reach.
#[derive(Debug)]
pub struct Reach {
    /// The pods, in the caller's order.
    pub pods: Vec<PodId>,
    /// `rows[case][from]`: the destinations `from` reaches.
    pub rows: Vec<Vec<Bits>>,
}

/// A rule with its peer pods' addresses and its resolved named ports
/// hashed (both lists hold thousands of entries at scale).
struct RuleSets<'a> {
    ports: Option<&'a PortSet>,
    named: HashSet<(IpAddr, Protocol, u16)>,
    rule: &'a RuleProgram,
    peer_pods: HashSet<IpAddr>,
}

impl<'a> RuleSets<'a> {
    fn of(rule: &'a RuleProgram) -> Self {
        let named = rule.ports.iter().flat_map(|p| p.named.iter().copied()).collect();
        let peer_pods = rule.peers.iter().flat_map(|p| p.pods.iter().flatten().copied()).collect();
        RuleSets { ports: rule.ports.as_ref(), named, rule, peer_pods }
    }

    /// Whether the rule's peers include `addr` (every address when it
    /// lists none).
    fn peer(&self, addr: Option<IpAddr>) -> bool {
        let Some(peers) = &self.rule.peers else { return true };
        let Some(addr) = addr else { return false };
        self.peer_pods.contains(&addr) || peers.blocks.as_ref().is_some_and(|b| b.contains(addr))
    }

    fn ok(&self, case: Case, dst: IpAddr) -> bool {
        let Some(ports) = self.ports else { return true };
        ports
            .numeric
            .iter()
            .any(|(proto, first, last)| *proto == case.protocol && (*first..=*last).contains(&case.port))
            || self.named.contains(&(dst, case.protocol, case.port))
    }
}

/// The addresses flows use: each pod's first (as a destination), and its
/// address of each family (as a source toward a destination of it).
struct Addrs<'a> {
    dst: &'a [Option<IpAddr>],
    src: &'a [Vec<Option<IpAddr>>; 2],
}

/// Per source pod, the destinations its egress admits on `case`; each
/// rule's destinations are computed once.
fn egress_rows(table: &[RuleSets<'_>], rules: &[Option<Vec<usize>>], case: Case, addrs: &Addrs<'_>) -> Vec<Bits> {
    let n = addrs.dst.len();
    let mut dests: Vec<Option<Bits>> = vec![None; table.len()];
    let mut out: Vec<Bits> = Vec::with_capacity(n);
    for list in rules {
        let Some(list) = list else {
            out.push(Bits::new(n, true));
            continue;
        };
        let mut row = Bits::new(n, false);
        for id in list {
            let set = dests[*id].get_or_insert_with(|| {
                let rule = &table[*id];
                let mut set = Bits::new(n, false);
                for (q, addr) in addrs.dst.iter().enumerate() {
                    if rule.peer(*addr) && addr.is_some_and(|a| rule.ok(case, a)) {
                        set.set(q);
                    }
                }
                set
            });
            row.or(set);
        }
        out.push(row);
    }
    out
}

/// Per destination pod, the sources its ingress admits on `case` (the
/// rule's ports judged on the destination); each rule's sources are
/// computed once per address family.
fn ingress_columns(table: &[RuleSets<'_>], rules: &[Option<Vec<usize>>], case: Case, addrs: &Addrs<'_>) -> Vec<Bits> {
    let n = addrs.dst.len();
    let mut sources: Vec<[Option<Bits>; 2]> = vec![[None, None]; table.len()];
    let mut into: Vec<Bits> = Vec::with_capacity(n);
    for (q, list) in rules.iter().enumerate() {
        let Some(list) = list else {
            into.push(Bits::new(n, true));
            continue;
        };
        let family = usize::from(addrs.dst[q].is_some_and(|a| a.is_ipv6()));
        let mut col = Bits::new(n, false);
        for id in list {
            let rule = &table[*id];
            if !addrs.dst[q].is_some_and(|a| rule.ok(case, a)) {
                continue;
            }
            let set = sources[*id][family].get_or_insert_with(|| {
                let mut set = Bits::new(n, false);
                for (p, addr) in addrs.src[family].iter().enumerate() {
                    if rule.peer(*addr) {
                        set.set(p);
                    }
                }
                set
            });
            col.or(set);
        }
        into.push(col);
    }
    into
}

/// Computes the reachability of `pods` for `cases`.
///
/// # Errors
/// Inputs the fast path does not handle.
pub fn reach(index: &ClusterIndex, pods: Vec<PodId>, cases: &[Case]) -> Result<Reach, Unsupported> {
    if !index.cluster_policies().is_empty() {
        return Err(Unsupported::ClusterPolicies);
    }
    if index.policies_sorted().into_iter().any(|id| index.is_audit(id)) {
        return Err(Unsupported::AuditPolicies);
    }
    let program = compile(index, &NodeScope::All, &std::collections::BTreeMap::new());
    let n = pods.len();
    let keys: Vec<ObjectKey> = pods.iter().map(|p| index.pod_key(*p)).collect();
    let dst_addr: Vec<Option<IpAddr>> = pods.iter().map(|p| index.pod_endpoint(*p, None).addr()).collect();
    let v4: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
    let v6: Option<IpAddr> = Some(IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED));
    let src_addr: [Vec<Option<IpAddr>>; 2] =
        [v4, v6].map(|toward| pods.iter().map(|p| index.pod_endpoint(*p, toward).addr()).collect());
    // Every rule a pod's isolation lists, numbered once; per pod and
    // direction, the numbers of its isolating rules (None: not isolated).
    let mut numbered: HashMap<(&ObjectKey, usize, bool), usize> = HashMap::new();
    let mut table: Vec<RuleSets<'_>> = Vec::new();
    let mut lists = |egress: bool| -> Vec<Option<Vec<usize>>> {
        keys.iter()
            .map(|key| {
                let pod = program.pods.get(key)?;
                let list = if egress { pod.egress.as_ref() } else { pod.ingress.as_ref() }?;
                let mut ids = Vec::new();
                for policy in list {
                    let Some(compiled) = program.policies.get(policy) else { continue };
                    let rules: &[RuleProgram] = if egress { &compiled.egress } else { &compiled.ingress };
                    for (r, rule) in rules.iter().enumerate() {
                        let id = *numbered.entry((policy, r, egress)).or_insert_with(|| {
                            table.push(RuleSets::of(rule));
                            table.len() - 1
                        });
                        ids.push(id);
                    }
                }
                Some(ids)
            })
            .collect()
    };
    let egress_rules = lists(true);
    let ingress_rules = lists(false);
    let addrs = Addrs { dst: &dst_addr, src: &src_addr };
    let mut rows = Vec::with_capacity(cases.len());
    for case in cases {
        let mut out = egress_rows(&table, &egress_rules, *case, &addrs);
        let into = ingress_columns(&table, &ingress_rules, *case, &addrs);
        // rows[p] = out[p] ∧ {q : p ∈ into[q]}; a pod reaches itself.
        let mut transposed: Vec<Bits> = (0..n).map(|_| Bits::new(n, false)).collect();
        for (q, col) in into.iter().enumerate() {
            for (w, word) in col.0.iter().enumerate() {
                let mut bits = *word;
                while bits != 0 {
                    let p = w * 64 + bits.trailing_zeros() as usize;
                    transposed[p].set(q);
                    bits &= bits - 1;
                }
            }
        }
        for (p, (row, t)) in out.iter_mut().zip(&transposed).enumerate() {
            row.and(t);
            row.set(p);
        }
        rows.push(out);
    }
    Ok(Reach { pods, rows })
}

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_policy::Protocol;
    use palisade_policy::synth::Rng;
    use palisade_policy::synth::e2e::{model, random_policies};

    /// Every pair and case of 300 random policy sets over the e2e model
    /// (dual-stack pods, named ports, ipBlocks): the rows equal the engine.
    #[test]
    fn rows_equal_the_engine_for_every_pair() {
        let cases: Vec<Case> = [Protocol::Tcp, Protocol::Udp, Protocol::Sctp]
            .into_iter()
            .flat_map(|protocol| [80, 81].map(|port| Case { port, protocol }))
            .collect();
        let mut rng = Rng::new(0x5EAC);
        for seed in 0..300 {
            let (namespaces, pods) = model();
            let count = rng.below(6);
            let index = ClusterIndex::from_objects(namespaces, pods, random_policies(&mut rng, count));
            let pods: Vec<PodId> =
                index.pods_sorted().into_iter().filter(|p| index.pod(*p).pod().is_endpoint()).collect();
            let reach = reach(&index, pods.clone(), &cases).expect("NetworkPolicies only");
            for (c, case) in cases.iter().enumerate() {
                for (i, p) in pods.iter().enumerate() {
                    for (j, q) in pods.iter().enumerate() {
                        let engine = index.evaluate(&index.pod_flow(*p, *q, case.port, case.protocol)).allowed;
                        assert_eq!(
                            reach.rows[c][i].get(j),
                            engine,
                            "seed {seed}: {} -> {} {}/{}",
                            index.pod_name(*p),
                            index.pod_name(*q),
                            case.protocol,
                            case.port
                        );
                    }
                }
            }
        }
    }
}
