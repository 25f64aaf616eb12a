//! Compiling a cluster policy (ClusterNetworkPolicy, AdminNetworkPolicy,
//! BaselineAdminNetworkPolicy) into its rules' peer and port sets, as the
//! engine matches them:
//! - `namespaces` and `pods` peers: the addresses of the endpoint pods they
//!   match (remote pods are set elements, as for NetworkPolicy peers);
//! - `networks`: the CIDRs; `nodes`: the addresses of the selected Nodes;
//! - `domainNames`: nothing (not enforced; the analyzer says so);
//! - a named port: resolved on the destination pod (the subject's local
//!   pods for ingress, the peer pods for egress) with the protocol each
//!   container port declares.

use std::hash::BuildHasher;

use palisade_policy::{ClusterIndex, ClusterPeer, ClusterPolicyId, ClusterPort, ClusterRule, Direction, PodId};

use crate::compile::{NodeScope, PodDeps, active, is_local, member_addrs, merge_port_ranges, set_id};
use crate::members::{NamedEntry, PodKeys, PodRef, PolicyMembers, RuleMembers};
use crate::program::{Peers, PolicyProgram, PortSet, RuleProgram, TierProgram};
use crate::ranges::AddrSet;

/// Compiles one cluster policy; also returns the pods whose addresses or
/// ports went into its sets, and each rule's members (which pod put which
/// addresses and named-port entries in), so that a pod change can update
/// the sets from that pod alone.
pub(crate) fn compile_tier<S: BuildHasher>(
    index: &ClusterIndex,
    id: ClusterPolicyId,
    scope: &NodeScope,
    keys: &mut PodKeys<S>,
) -> (TierProgram, PodDeps, PolicyMembers) {
    let policy = index.cluster_policy(id).policy();
    let mut deps = PodDeps::default();
    let mut members = PolicyMembers::new();
    let mut rules = |dir: Direction| -> Vec<RuleProgram> {
        (0..policy.rules(dir).len())
            .map(|r| {
                let members = members.entry((dir.slot(), r)).or_default();
                compile_rule(index, id, (dir, r), scope, keys, &mut deps, members)
            })
            .collect()
    };
    let program = PolicyProgram { ingress: rules(Direction::Ingress), egress: rules(Direction::Egress) };
    let actions = Direction::BOTH.map(|dir| policy.rules(dir).iter().map(|r| r.action).collect());
    (TierProgram { tier: policy.tier, rules: program, actions }, deps, members)
}

/// The port names of a rule (its `destinationNamedPort`s).
fn port_names(rule: &ClusterRule) -> Vec<&str> {
    rule.ports
        .iter()
        .flatten()
        .filter_map(|p| if let ClusterPort::Named(n) = p { Some(n.as_str()) } else { None })
        .collect()
}

/// The named-port entries `pod` resolves for `names`: every container port
/// of one of those names, with the protocol it declares, at each address.
fn named_entries(index: &ClusterIndex, pod: PodId, names: &[&str]) -> Vec<NamedEntry> {
    let p = index.pod(pod).pod();
    let mut out = Vec::new();
    for declared in &p.ports {
        if declared.name.as_deref().is_some_and(|n| names.contains(&n)) {
            out.extend(p.ips.iter().map(|ip| (*ip, declared.protocol, declared.port)));
        }
    }
    out
}

/// Whether `pod` is a destination on which rule `r`'s named ports resolve:
/// a local pod the subject selects (ingress), or an active pod the rule's
/// pod peers match (egress).
fn is_named_candidate(
    index: &ClusterIndex,
    id: ClusterPolicyId,
    (dir, r): (Direction, usize),
    scope: &NodeScope,
    pod: PodId,
) -> bool {
    match dir {
        Direction::Ingress => {
            index.cluster_policy(id).selected().binary_search(&pod).is_ok() && is_local(index, scope, pod)
        }
        Direction::Egress => active(index, pod) && index.cluster_rule_pod_peers_match(id, dir, r, pod),
    }
}

fn compile_rule<S: BuildHasher>(
    index: &ClusterIndex,
    id: ClusterPolicyId,
    (dir, r): (Direction, usize),
    scope: &NodeScope,
    keys: &mut PodKeys<S>,
    deps: &mut PodDeps,
    members: &mut RuleMembers,
) -> RuleProgram {
    let policy = index.cluster_policy(id).policy();
    let rule = &policy.rules(dir)[r];
    let mut depend = |pod: PodId, deps: &mut PodDeps| {
        let dep = keys.id(index.pod_name(pod));
        deps.insert(dep);
        dep
    };
    let mut peers = Peers::default();
    let mut peer_pods: Vec<PodId> = Vec::new();
    for (k, peer) in rule.peers.iter().enumerate() {
        match peer {
            ClusterPeer::Namespaces(_) | ClusterPeer::Pods { .. } => {
                peers.pods.get_or_insert_with(Vec::new);
                peer_pods.extend(index.cluster_peer_pods(id, dir, r, k));
            }
            ClusterPeer::Networks(nets) => {
                let blocks = peers.blocks.get_or_insert_with(AddrSet::default);
                for net in nets {
                    blocks.insert_block(&palisade_policy::IpBlock { cidr: *net, except: Vec::new() });
                }
            }
            ClusterPeer::Nodes(selector) => {
                let blocks = peers.blocks.get_or_insert_with(AddrSet::default);
                for addr in index.node_addresses(selector) {
                    blocks.insert_block(&palisade_policy::IpBlock { cidr: addr.into(), except: Vec::new() });
                }
            }
            ClusterPeer::DomainNames(_) => {}
        }
    }
    peer_pods.sort_unstable();
    peer_pods.dedup();
    if let Some(addrs) = &mut peers.pods {
        for pod in &peer_pods {
            let dep = depend(*pod, deps);
            members.addrs.add(dep, member_addrs(index, *pod));
        }
        *addrs = members.addrs.set();
        let pod_peers: Vec<&ClusterPeer> =
            rule.peers.iter().filter(|p| matches!(p, ClusterPeer::Namespaces(_) | ClusterPeer::Pods { .. })).collect();
        peers.pods_id = set_id(&("tier-pods", pod_peers));
    }
    if let Some(blocks) = &mut peers.blocks {
        blocks.normalize();
    }
    let ports = rule.ports.as_ref().map(|list| {
        let mut ports = PortSet::default();
        for port in list {
            if let ClusterPort::Range { protocol, start, end } = port {
                ports.numeric.push((*protocol, *start, *end));
            }
        }
        let names = port_names(rule);
        if !names.is_empty() {
            ports.has_named = true;
            let candidates: Vec<PodId> = match dir {
                Direction::Ingress => index.cluster_policy(id).selected().to_vec(),
                Direction::Egress => peer_pods.clone(),
            };
            for pod in candidates {
                if is_named_candidate(index, id, (dir, r), scope, pod) {
                    let dep = depend(pod, deps);
                    members.named.add(dep, &named_entries(index, pod, &names));
                }
            }
            ports.named = members.named.set();
            let key = index.cluster_policy_key(id);
            ports.named_id = set_id(&("tier-named", key.kind, &key.name, dir, r));
        }
        ports.numeric = merge_port_ranges(ports.numeric);
        ports
    });
    RuleProgram { peers: Some(peers), ports }
}

/// `program` (of cluster policy `id`) with its rules' pod-peer and
/// named-port sets brought up to date for the changed pods, from the
/// recorded members (no scan of the cluster).
pub(crate) fn update_tier_members(
    index: &ClusterIndex,
    id: ClusterPolicyId,
    scope: &NodeScope,
    mut program: TierProgram,
    (members, deps): (&mut PolicyMembers, &mut PodDeps),
    changed: &[(PodRef, Option<PodId>)],
) -> TierProgram {
    let policy = index.cluster_policy(id).policy();
    for dir in Direction::BOTH {
        for (r, rule) in program.rules.rules_mut(dir).iter_mut().enumerate() {
            let names = port_names(&policy.rules(dir)[r]);
            members.entry((dir.slot(), r)).or_default().update(
                rule,
                changed,
                deps,
                |p| index.cluster_rule_pod_peers_match(id, dir, r, p).then(|| member_addrs(index, p)),
                |p| is_named_candidate(index, id, (dir, r), scope, p).then(|| named_entries(index, p, &names)),
            );
        }
    }
    program
}
