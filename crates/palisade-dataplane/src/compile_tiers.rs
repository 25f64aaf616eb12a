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

use palisade_policy::{ClusterIndex, ClusterPeer, ClusterPolicyId, ClusterPort, Direction, PodId};

use crate::compile::{NodeScope, PodDeps, active, is_local, member_addrs, merge_port_ranges, set_id};
use crate::members::PodKeys;
use crate::program::{Peers, PolicyProgram, PortSet, RuleProgram, TierProgram};
use crate::ranges::AddrSet;

/// Compiles one cluster policy; also returns the pods whose addresses or
/// ports went into its sets.
pub(crate) fn compile_tier<S: BuildHasher>(
    index: &ClusterIndex,
    id: ClusterPolicyId,
    scope: &NodeScope,
    keys: &mut PodKeys<S>,
) -> (TierProgram, PodDeps) {
    let policy = index.cluster_policy(id).policy();
    let mut deps = PodDeps::default();
    let mut rules = |dir: Direction| -> Vec<RuleProgram> {
        (0..policy.rules(dir).len()).map(|r| compile_rule(index, id, (dir, r), scope, keys, &mut deps)).collect()
    };
    let program = PolicyProgram { ingress: rules(Direction::Ingress), egress: rules(Direction::Egress) };
    let actions = Direction::BOTH.map(|dir| policy.rules(dir).iter().map(|r| r.action).collect());
    (TierProgram { tier: policy.tier, rules: program, actions }, deps)
}

fn compile_rule<S: BuildHasher>(
    index: &ClusterIndex,
    id: ClusterPolicyId,
    (dir, r): (Direction, usize),
    scope: &NodeScope,
    keys: &mut PodKeys<S>,
    deps: &mut PodDeps,
) -> RuleProgram {
    let policy = index.cluster_policy(id).policy();
    let rule = &policy.rules(dir)[r];
    let mut depend = |pod: PodId, deps: &mut PodDeps| {
        deps.insert(keys.id(index.pod_name(pod)));
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
            depend(*pod, deps);
            addrs.extend_from_slice(member_addrs(index, *pod));
        }
        addrs.sort_unstable();
        addrs.dedup();
        let pod_peers: Vec<&ClusterPeer> =
            rule.peers.iter().filter(|p| matches!(p, ClusterPeer::Namespaces(_) | ClusterPeer::Pods { .. })).collect();
        peers.pods_id = set_id(&("tier-pods", pod_peers));
    }
    if let Some(blocks) = &mut peers.blocks {
        blocks.normalize();
    }
    let ports = rule.ports.as_ref().map(|list| {
        let mut ports = PortSet::default();
        let mut names = Vec::new();
        for port in list {
            match port {
                ClusterPort::Range { protocol, start, end } => ports.numeric.push((*protocol, *start, *end)),
                ClusterPort::Named(name) => names.push(name.as_str()),
            }
        }
        if !names.is_empty() {
            ports.has_named = true;
            // The destination: the subject's local pods (ingress) or the
            // pods the rule's pod peers match (egress).
            let candidates: Vec<PodId> = match dir {
                Direction::Ingress => {
                    index.cluster_policy(id).selected().iter().copied().filter(|p| is_local(index, scope, *p)).collect()
                }
                Direction::Egress => peer_pods.iter().copied().filter(|p| active(index, *p)).collect(),
            };
            for pod in candidates {
                depend(pod, deps);
                let p = index.pod(pod).pod();
                for declared in &p.ports {
                    if declared.name.as_deref().is_some_and(|n| names.contains(&n)) {
                        ports.named.extend(p.ips.iter().map(|ip| (*ip, declared.protocol, declared.port)));
                    }
                }
            }
            ports.named.sort_unstable();
            ports.named.dedup();
            let key = index.cluster_policy_key(id);
            ports.named_id = set_id(&("tier-named", key.kind, &key.name, dir, r));
        }
        ports.numeric = merge_port_ranges(ports.numeric);
        ports
    });
    RuleProgram { peers: Some(peers), ports }
}
