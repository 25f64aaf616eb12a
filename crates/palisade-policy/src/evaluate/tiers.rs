//! One tier of cluster policies on one side of a flow: the policies whose
//! subject selects the pod, in evaluation order, their rules in order; the
//! first rule whose peers and ports match decides (Accept, Deny) or ends
//! the tier (Pass).

use super::{PeerView, TierRuleRef};
use crate::cluster_policy::{Action, Tier};
use crate::compiled::CompiledPort;
use crate::index::{ClusterIndex, CompiledClusterPeer, CompiledClusterPort, CompiledClusterRule, PodEntry};
use crate::model::{Direction, Protocol};

/// What one side asks of a tier: the direction, the remote end, the
/// destination port and protocol, and the destination's declared ports
/// (for named ports).
pub(super) struct Sought<'a> {
    pub(super) dir: Direction,
    pub(super) peer: PeerView<'a>,
    pub(super) port: u16,
    pub(super) protocol: Protocol,
    pub(super) dst_ports: Option<&'a [CompiledPort]>,
}

/// The outcome of one tier.
pub(super) enum TierOutcome {
    /// An Accept or Deny rule matched.
    Decided(TierRuleRef),
    /// A Pass rule matched: the rest of the tier is skipped.
    Passed(TierRuleRef),
    /// No rule of the tier matched.
    NoMatch,
}

impl ClusterIndex {
    /// Runs `tier` for `pod` on one side.
    pub(super) fn tier_side(&self, pod: &PodEntry, tier: Tier, sought: &Sought<'_>) -> TierOutcome {
        for &id in &pod.tiered {
            let entry = self.cluster_policy(id);
            if entry.tier() != tier {
                continue;
            }
            for (index, rule) in entry.rules[sought.dir.slot()].iter().enumerate() {
                let Some((peer, port)) = self.cluster_rule_matches(rule, sought) else { continue };
                let found = TierRuleRef {
                    policy: id,
                    tier,
                    direction: sought.dir,
                    rule: index,
                    peer,
                    port,
                    action: rule.action,
                };
                return match rule.action {
                    Action::Pass => TierOutcome::Passed(found),
                    Action::Accept | Action::Deny => TierOutcome::Decided(found),
                };
            }
        }
        TierOutcome::NoMatch
    }

    /// Whether `rule` matches; returns the matching peer and port indexes
    /// (the port `None` when the rule lists no ports).
    fn cluster_rule_matches(&self, rule: &CompiledClusterRule, sought: &Sought<'_>) -> Option<(usize, Option<usize>)> {
        let port = match &rule.ports {
            None => None,
            Some(ports) => Some(ports.iter().position(|p| port_matches(*p, sought))?),
        };
        let peer = rule.peers.iter().position(|p| self.cluster_peer_matches(p, sought.peer))?;
        Some((peer, port))
    }

    fn cluster_peer_matches(&self, peer: &CompiledClusterPeer, view: PeerView<'_>) -> bool {
        match peer {
            CompiledClusterPeer::Pods(namespaces, pods) => view.pod.is_some_and(|pod| {
                namespaces.matches(pod.ns_labels) && pods.as_ref().is_none_or(|s| s.matches(pod.labels))
            }),
            CompiledClusterPeer::Networks(nets) => view.addr.is_some_and(|a| nets.iter().any(|n| n.contains(&a))),
            CompiledClusterPeer::Nodes(nodes) => {
                view.addr.and_then(|a| self.node_by_addr(a)).is_some_and(|node| nodes.matches(&node.labels))
            }
            CompiledClusterPeer::Nothing => false,
        }
    }
}

fn port_matches(port: CompiledClusterPort, sought: &Sought<'_>) -> bool {
    match port {
        CompiledClusterPort::Range(protocol, start, end) => {
            protocol == sought.protocol && (start..=end).contains(&sought.port)
        }
        CompiledClusterPort::Named(name) => sought.dst_ports.is_some_and(|ports| {
            ports.iter().any(|p| p.name == Some(name) && p.port == sought.port && p.protocol == sought.protocol)
        }),
    }
}
