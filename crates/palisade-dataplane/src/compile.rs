//! Compiling the cluster index into the program for one node.
//!
//! The engine stays the single source of truth: isolation comes from the
//! index's per-pod policy lists, peer sets from the same peer matching that
//! evaluation uses, and named ports resolve on the destination pod exactly as
//! in evaluation.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::BuildHasher;
use std::net::IpAddr;

use palisade_policy::{
    ClusterIndex, Direction, ObjectKey, Peer, PodId, PodState, PolicyId, PortTarget, Protocol, Tier,
};
use rustc_hash::{FxBuildHasher, FxHashSet};

use crate::members::{NamedEntry, PodKeys, PodRef, PolicyMembers, RuleMembers};
use crate::program::{LocalPod, Peers, PolicyProgram, PortSet, Program, RuleProgram};
use crate::ranges::AddrSet;

/// Which pods are local.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeScope {
    /// Every pod (the lab: one node runs every pod).
    All,
    /// Pods whose `spec.nodeName` is this.
    Node(String),
}

impl NodeScope {
    fn includes(&self, node: Option<&str>) -> bool {
        match self {
            NodeScope::All => true,
            NodeScope::Node(name) => node == Some(name.as_str()),
        }
    }
}

pub(crate) fn active(index: &ClusterIndex, pod: PodId) -> bool {
    let p = index.pod(pod).pod();
    p.state == PodState::Active && !p.ips.is_empty()
}

/// Compiles the program for the pods in `scope`; `ifaces` maps a local pod
/// address to the node-side interface its traffic arrives on.
#[must_use]
pub fn compile(index: &ClusterIndex, scope: &NodeScope, ifaces: &BTreeMap<IpAddr, String>) -> Program {
    compile_node(index, scope, ifaces, &mut PodKeys::<FxBuildHasher>::default()).program
}

/// What [`compile`] builds, with what the incremental compiler keeps per
/// policy: the pods that went into its sets and its rules' members.
pub(crate) struct Compiled {
    pub(crate) program: Program,
    pub(crate) deps: BTreeMap<ObjectKey, PodDeps>,
    pub(crate) members: BTreeMap<ObjectKey, PolicyMembers>,
}

/// The whole node compiled: its local pods and every policy one of them lists.
pub(crate) fn compile_node<S: BuildHasher>(
    index: &ClusterIndex,
    scope: &NodeScope,
    ifaces: &BTreeMap<IpAddr, String>,
    keys: &mut PodKeys<S>,
) -> Compiled {
    let pods: BTreeMap<ObjectKey, LocalPod> = index
        .pods_sorted()
        .into_iter()
        .filter(|p| is_local(index, scope, *p))
        .map(|pod| (index.pod_key(pod), local_pod(index, pod, ifaces)))
        .collect();
    let mut compiled = Compiled { program: Program::default(), deps: BTreeMap::new(), members: BTreeMap::new() };
    for name in needed_policies(&pods) {
        let Some(id) = index.policy_id_of(&name) else { continue };
        let (program, deps, members) = compile_policy(index, id, scope, keys);
        compiled.program.policies.insert(name.clone(), program);
        compiled.deps.insert(name.clone(), deps);
        compiled.members.insert(name, members);
    }
    for name in needed_tiers(&pods) {
        let Some(id) = index.cluster_policy_id(&name) else { continue };
        let (program, deps, members) = crate::compile_tiers::compile_tier(index, id, scope, keys);
        compiled.program.tiers.insert(name.clone(), program);
        compiled.deps.insert(name.clone(), deps);
        compiled.members.insert(name, members);
    }
    compiled.program.pods = pods;
    compiled.program.cluster_addrs = cluster_addrs(index).flat_map(|(_, addrs)| addrs).copied().collect();
    compiled
}

/// Every active pod of the cluster and its addresses.
pub(crate) fn cluster_addrs(index: &ClusterIndex) -> impl Iterator<Item = (PodId, &[IpAddr])> {
    index.pod_ids().filter(move |p| active(index, *p)).map(move |p| (p, index.pod(p).pod().ips.as_slice()))
}

/// The addresses `pod` puts in the cluster's pod addresses: its own while
/// it is active, none otherwise.
pub(crate) fn cluster_member_addrs(index: &ClusterIndex, pod: PodId) -> &[IpAddr] {
    if active(index, pod) { &index.pod(pod).pod().ips } else { &[] }
}

/// Whether `pod` is an active pod of this node.
#[must_use]
pub fn is_local(index: &ClusterIndex, scope: &NodeScope, pod: PodId) -> bool {
    active(index, pod) && scope.includes(index.pod(pod).pod().node_name.as_deref())
}

/// A local pod's addresses, interface and isolating policies. Audit
/// (staged) policies neither isolate nor admit here: the dataplane
/// enforces the others; they only make the pod observed.
pub(crate) fn local_pod(index: &ClusterIndex, pod: PodId, ifaces: &BTreeMap<IpAddr, String>) -> LocalPod {
    let entry = index.pod(pod);
    // Isolated or not is decided by every enforced isolating policy; only
    // those with rules for the direction can admit anything, so only they
    // are listed (a policy such as a default deny, with none, costs no jump).
    let isolation = |dir: Direction| {
        let mut enforced = entry.isolating(dir).iter().filter(|p| !index.is_audit(**p)).peekable();
        enforced.peek().is_some().then(|| {
            enforced
                .filter(|p| !index.policy(**p).policy().rules(dir).is_empty())
                .map(|p| index.policy_key(*p))
                .collect()
        })
    };
    let observe = Direction::BOTH
        .map(|dir| entry.isolating(dir).iter().any(|p| index.is_audit(*p) || index.policy(*p).policy().log_allowed));
    let addrs = entry.pod().ips.clone();
    let iface = addrs.iter().find_map(|a| ifaces.get(a).cloned());
    let (ingress, egress) = (isolation(Direction::Ingress), isolation(Direction::Egress));
    let admin = Direction::BOTH.map(|dir| tier_list(index, pod, Tier::Admin, dir));
    let baseline = Direction::BOTH.map(|dir| {
        let isolated = if dir == Direction::Ingress { ingress.is_some() } else { egress.is_some() };
        if isolated { Vec::new() } else { tier_list(index, pod, Tier::Baseline, dir) }
    });
    LocalPod { addrs, iface, ingress, egress, admin, baseline, observe }
}

/// The cluster policies of `tier` whose subject selects `pod` and that have
/// rules for `dir`, in evaluation order.
fn tier_list(index: &ClusterIndex, pod: PodId, tier: Tier, dir: Direction) -> Vec<ObjectKey> {
    index
        .cluster_policies_of(pod)
        .iter()
        .filter(|id| {
            let entry = index.cluster_policy(**id);
            entry.tier() == tier && entry.has_rules(dir)
        })
        .map(|id| index.cluster_policy_key(*id))
        .collect()
}

/// Policies some local pod lists, by name.
pub(crate) fn needed_policies(pods: &BTreeMap<ObjectKey, LocalPod>) -> BTreeSet<ObjectKey> {
    pods.values().flat_map(|p| p.ingress.iter().chain(&p.egress).flatten().cloned()).collect()
}

/// Cluster policies some local pod lists, by key. (Every local pod may list
/// the same hundreds: they are told apart by hash first, and only the
/// distinct ones sorted.)
pub(crate) fn needed_tiers(pods: &BTreeMap<ObjectKey, LocalPod>) -> BTreeSet<ObjectKey> {
    let distinct: FxHashSet<&ObjectKey> =
        pods.values().flat_map(|p| p.admin.iter().chain(&p.baseline).flatten()).collect();
    distinct.into_iter().cloned().collect()
}

/// Pods a compiled policy depends on.
pub(crate) type PodDeps = FxHashSet<PodRef>;

/// The named-port entries `pod` resolves for `rule`'s named ports.
pub(crate) fn named_entries(index: &ClusterIndex, pod: PodId, rule: &palisade_policy::Rule) -> Vec<NamedEntry> {
    let p = index.pod(pod).pod();
    let mut out = Vec::new();
    for port in &rule.ports {
        let PortTarget::Named(name) = &port.target else { continue };
        for declared in &p.ports {
            if declared.name.as_deref() == Some(name.as_str()) && declared.protocol == port.protocol {
                out.extend(p.ips.iter().map(|ip| (*ip, port.protocol, declared.port)));
            }
        }
    }
    out
}

/// Whether `pod` is a destination on which rule `r`'s named ports resolve,
/// as [`named_port_candidates`] decides for the whole cluster.
pub(crate) fn is_named_candidate(
    index: &ClusterIndex,
    id: PolicyId,
    dir: Direction,
    r: usize,
    scope: &NodeScope,
    pod: PodId,
) -> bool {
    match dir {
        Direction::Ingress => index.policy(id).selected().binary_search(&pod).is_ok() && is_local(index, scope, pod),
        Direction::Egress => {
            let rule = &index.policy(id).policy().rules(dir)[r];
            active(index, pod)
                && (rule.peers.is_empty()
                    || index.rule_pod_peers_match(id, dir, r, pod)
                    || rule.peers.iter().any(|peer| match peer {
                        Peer::IpBlock(b) => index.pod(pod).pod().ips.iter().any(|ip| b.contains(*ip)),
                        Peer::Pods { .. } => false,
                    }))
        }
    }
}

/// Compiles one policy; also returns the pods whose addresses or ports went
/// into its sets (what it depends on) and its rules' pod-peer members.
pub(crate) fn compile_policy<S: BuildHasher>(
    index: &ClusterIndex,
    id: PolicyId,
    scope: &NodeScope,
    keys: &mut PodKeys<S>,
) -> (PolicyProgram, PodDeps, PolicyMembers) {
    let policy = index.policy(id).policy();
    let mut deps = PodDeps::default();
    let mut members = PolicyMembers::new();
    let mut rules = |dir: Direction| -> Vec<RuleProgram> {
        if !policy.isolates(dir) {
            return Vec::new();
        }
        (0..policy.rules(dir).len())
            .map(|r| {
                let members = members.entry((dir.slot(), r)).or_default();
                compile_rule(index, id, (dir, r), scope, keys, &mut deps, members)
            })
            .collect()
    };
    let program = PolicyProgram { ingress: rules(Direction::Ingress), egress: rules(Direction::Egress) };
    (program, deps, members)
}

/// Addresses of `pod` that go into peer sets (none unless it is active).
pub(crate) fn member_addrs(index: &ClusterIndex, pod: PodId) -> &[IpAddr] {
    if active(index, pod) { &index.pod(pod).pod().ips } else { &[] }
}

/// A digest of what decides a shared set's elements: 128 bits of
/// SHA-256 of its description, as hex. Equal descriptions give equal
/// elements; different ones collide only if SHA-256 does.
pub(crate) fn set_id(description: &impl std::fmt::Debug) -> String {
    use sha2::{Digest as _, Sha256};
    use std::fmt::Write as _;
    let digest = Sha256::digest(format!("{description:?}").as_bytes());
    digest[..16].iter().fold(String::with_capacity(32), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn compile_rule<S: BuildHasher>(
    index: &ClusterIndex,
    id: PolicyId,
    (dir, r): (Direction, usize),
    scope: &NodeScope,
    keys: &mut PodKeys<S>,
    deps: &mut PodDeps,
    members: &mut RuleMembers,
) -> RuleProgram {
    let policy = index.policy(id).policy();
    let rule = &policy.rules(dir)[r];
    let mut depend = |pod: PodId| {
        let dep = keys.id(index.pod_name(pod));
        deps.insert(dep);
        dep
    };
    let peers = (!rule.peers.is_empty()).then(|| {
        let mut peers = Peers::default();
        for (k, peer) in rule.peers.iter().enumerate() {
            match peer {
                Peer::Pods { .. } => {
                    peers.pods.get_or_insert_with(Vec::new);
                    for pod in index.peer_pods(id, dir, r, k) {
                        let dep = depend(pod);
                        members.addrs.add(dep, member_addrs(index, pod));
                    }
                }
                Peer::IpBlock(block) => peers.blocks.get_or_insert_with(AddrSet::default).insert_block(block),
            }
        }
        if let Some(addrs) = &mut peers.pods {
            *addrs = members.addrs.set();
            // The pods a rule's pod peers match depend on these alone (the
            // policy's namespace only for a peer without namespaceSelector).
            let pod_peers: Vec<&Peer> = rule.peers.iter().filter(|p| matches!(p, Peer::Pods { .. })).collect();
            let own_namespace = pod_peers.iter().any(|p| matches!(p, Peer::Pods { namespace_selector: None, .. }));
            let namespace = own_namespace.then_some(policy.namespace.as_str());
            peers.pods_id = set_id(&("pods", namespace, pod_peers));
        }
        if let Some(blocks) = &mut peers.blocks {
            blocks.normalize();
        }
        peers
    });
    let ports = (!rule.ports.is_empty()).then(|| {
        let mut ports = PortSet::default();
        for port in &rule.ports {
            match &port.target {
                PortTarget::Any => ports.numeric.push((port.protocol, 0, u16::MAX)),
                PortTarget::Range { start, end } => ports.numeric.push((port.protocol, *start, *end)),
                PortTarget::Named(_) => ports.has_named = true,
            }
        }
        if ports.has_named {
            for pod in named_port_candidates(index, id, dir, r, scope) {
                let dep = depend(pod);
                members.named.add(dep, &named_entries(index, pod, rule));
            }
            ports.named = members.named.set();
            // Where named ports resolve: the selected local pods (ingress)
            // or the peers (egress); what they resolve to: the names.
            let names: Vec<_> = rule.ports.iter().filter(|p| matches!(p.target, PortTarget::Named(_))).collect();
            ports.named_id = match dir {
                Direction::Ingress => set_id(&("named-in", &policy.namespace, &policy.pod_selector, names)),
                Direction::Egress => set_id(&("named-out", &policy.namespace, &rule.peers, names)),
            };
        }
        ports.numeric = merge_port_ranges(ports.numeric);
        ports
    });
    RuleProgram { peers, ports }
}

/// Pods on which a named port of this rule can resolve: for ingress the
/// local pods the policy selects (the destination is the selected pod); for
/// egress every active pod the rule's peers can match (the destination is
/// the peer).
fn named_port_candidates(
    index: &ClusterIndex,
    id: PolicyId,
    dir: Direction,
    r: usize,
    scope: &NodeScope,
) -> Vec<PodId> {
    match dir {
        Direction::Ingress => index
            .policy(id)
            .selected()
            .iter()
            .copied()
            .filter(|p| active(index, *p) && scope.includes(index.pod(*p).pod().node_name.as_deref()))
            .collect(),
        Direction::Egress => {
            let rule = &index.policy(id).policy().rules(dir)[r];
            let all = index.pods_sorted().into_iter().filter(|p| active(index, *p));
            if rule.peers.is_empty() {
                return all.collect();
            }
            let mut out: Vec<PodId> = index.rule_peer_pods(id, dir, r).unwrap_or_default();
            let blocks: Vec<_> =
                rule.peers.iter().filter_map(|p| if let Peer::IpBlock(b) = p { Some(b) } else { None }).collect();
            if !blocks.is_empty() {
                out.extend(
                    all.filter(|p| index.pod(*p).pod().ips.iter().any(|ip| blocks.iter().any(|b| b.contains(*ip)))),
                );
            }
            out.retain(|p| active(index, *p));
            out.sort_unstable();
            out.dedup();
            out
        }
    }
}

/// Sorts and merges overlapping or adjacent ranges of the same protocol:
/// nft interval sets reject overlapping elements.
pub(crate) fn merge_port_ranges(mut ranges: Vec<(Protocol, u16, u16)>) -> Vec<(Protocol, u16, u16)> {
    ranges.sort_unstable();
    let mut out: Vec<(Protocol, u16, u16)> = Vec::with_capacity(ranges.len());
    for (proto, start, end) in ranges {
        match out.last_mut() {
            Some(last) if last.0 == proto && u32::from(start) <= u32::from(last.2) + 1 => last.2 = last.2.max(end),
            _ => out.push((proto, start, end)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_ranges_merge_per_protocol() {
        let merged = merge_port_ranges(vec![
            (Protocol::Tcp, 80, 81),
            (Protocol::Tcp, 80, 80),
            (Protocol::Udp, 53, 53),
            (Protocol::Tcp, 82, 90),
            (Protocol::Tcp, 100, 100),
            (Protocol::Udp, 54, 54),
        ]);
        assert_eq!(merged, vec![(Protocol::Tcp, 80, 90), (Protocol::Tcp, 100, 100), (Protocol::Udp, 53, 54)]);
    }
}
