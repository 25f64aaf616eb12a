//! Evaluation of one flow: a verdict with the policy, rule, peer and port
//! that decided it.
//!
//! A connection is allowed when egress is allowed at the source AND ingress
//! is allowed at the destination. A side is allowed when its pod is not
//! isolated for that direction, or when some rule of some isolating policy
//! admits the peer and the port. A pod can always reach itself.
//!
//! Cluster policies (ClusterNetworkPolicy and the v1alpha1 kinds) wrap that
//! per side: the Admin tier first, the Baseline tier for a pod no
//! NetworkPolicy isolates (see [`crate::cluster_policy`] and [`tiers`]).

mod tiers;

use std::net::IpAddr;

use serde::Serialize;

use crate::cluster_policy::{Action, Tier};
use crate::compiled::{CompiledPeer, CompiledPort, CompiledRule, NamespaceMatch};
use crate::index::{ClusterIndex, ClusterPolicyId, NsId, PodEntry, PodId, PolicyId};
use crate::labels::CompiledLabels;
use crate::model::{ContainerPort, Direction, Labels, Protocol};

/// One end of a flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// A pod, at one of its addresses (`None`: a planned pod without IP;
    /// ipBlock peers cannot match it).
    Pod {
        /// The pod.
        id: PodId,
        /// The address the flow uses.
        addr: Option<IpAddr>,
    },
    /// An address outside the cluster.
    External(IpAddr),
}

impl Endpoint {
    /// The address the endpoint uses, if known.
    #[must_use]
    pub fn addr(self) -> Option<IpAddr> {
        match self {
            Endpoint::Pod { addr, .. } => addr,
            Endpoint::External(addr) => Some(addr),
        }
    }
}

/// A connection attempt: source, destination, destination port, protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Flow {
    /// Where the connection starts.
    pub src: Endpoint,
    /// Where it goes.
    pub dst: Endpoint,
    /// Destination port.
    pub port: u16,
    /// Protocol.
    pub protocol: Protocol,
}

/// Whether evaluation counts the audit (staged) NetworkPolicies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum AuditPolicies {
    /// As if they were enforced: the analyzer's default.
    #[default]
    Include,
    /// As if they did not exist: what the dataplane enforces.
    Exclude,
}

/// The rule that admitted a flow on one side.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct RuleRef {
    /// The policy.
    #[serde(skip)]
    pub policy: PolicyId,
    /// Which rule list.
    pub direction: Direction,
    /// Index into `spec.ingress`/`spec.egress`.
    pub rule: usize,
    /// Index into the rule's `from`/`to`; `None` when the rule has none (all peers).
    pub peer: Option<usize>,
    /// Index into the rule's `ports`; `None` when the rule has none (all ports).
    pub port: Option<usize>,
}

/// The cluster policy rule that decided (Accept or Deny) or passed (Pass)
/// a flow on one side.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct TierRuleRef {
    /// The cluster policy.
    #[serde(skip)]
    pub policy: ClusterPolicyId,
    /// Its tier.
    pub tier: Tier,
    /// Which rule list.
    pub direction: Direction,
    /// Index into the policy's `ingress`/`egress`.
    pub rule: usize,
    /// Index into the rule's `from`/`to`.
    pub peer: usize,
    /// Index into the rule's ports; `None` when it lists none (all ports).
    pub port: Option<usize>,
    /// The rule's action.
    pub action: Action,
}

/// The outcome on one side (egress at the source or ingress at the destination).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SideVerdict {
    /// The endpoint is an address outside the cluster: no policy applies there.
    NotAPod,
    /// Source and destination are the same pod, which can always reach itself.
    SamePod,
    /// No policy of this direction selects the pod.
    NotIsolated,
    /// Isolated, and this rule admits the flow.
    Allowed(RuleRef),
    /// Isolated, and no rule of the isolating policies admits the flow.
    Denied,
    /// A cluster policy rule decided: Accept or Deny.
    Tier(TierRuleRef),
}

impl SideVerdict {
    /// Whether this side lets the flow through.
    #[must_use]
    pub fn allows(self) -> bool {
        match self {
            SideVerdict::Denied => false,
            SideVerdict::Tier(r) => r.action != Action::Deny,
            _ => true,
        }
    }
}

/// The verdict for a flow, with both sides.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Verdict {
    /// Whether the connection is allowed.
    pub allowed: bool,
    /// Egress at the source.
    pub egress: SideVerdict,
    /// Ingress at the destination.
    pub ingress: SideVerdict,
    /// The Pass rule evaluation went through at the source, if any (an
    /// Admin-tier Pass, else a Baseline-tier one).
    pub egress_pass: Option<TierRuleRef>,
    /// The Pass rule evaluation went through at the destination, if any.
    pub ingress_pass: Option<TierRuleRef>,
}

impl Verdict {
    /// The Pass rule evaluation went through on `dir`'s side, if any.
    #[must_use]
    pub fn pass(&self, dir: Direction) -> Option<TierRuleRef> {
        match dir {
            Direction::Ingress => self.ingress_pass,
            Direction::Egress => self.egress_pass,
        }
    }

    /// The verdict on `dir`'s side.
    #[must_use]
    pub fn side(&self, dir: Direction) -> SideVerdict {
        match dir {
            Direction::Ingress => self.ingress,
            Direction::Egress => self.egress,
        }
    }
}

/// A pod-like peer as evaluation sees it.
#[derive(Clone, Copy)]
struct PodView<'a> {
    ns: Option<NsId>,
    ns_labels: &'a CompiledLabels,
    labels: &'a CompiledLabels,
    ports: &'a [CompiledPort],
}

/// The remote end of one side.
#[derive(Clone, Copy)]
struct PeerView<'a> {
    pod: Option<PodView<'a>>,
    addr: Option<IpAddr>,
}

impl ClusterIndex {
    fn pod_view<'a>(&'a self, entry: &'a PodEntry) -> PodView<'a> {
        PodView {
            ns: Some(entry.ns),
            ns_labels: &self.namespace(entry.ns).compiled,
            labels: &entry.labels,
            ports: &entry.ports,
        }
    }

    fn peer_view(&self, endpoint: Endpoint) -> PeerView<'_> {
        match endpoint {
            Endpoint::Pod { id, addr } => PeerView { pod: Some(self.pod_view(self.pod(id))), addr },
            Endpoint::External(addr) => PeerView { pod: None, addr: Some(addr) },
        }
    }

    /// Evaluates `flow` with every policy, audit (staged) ones included:
    /// what the analyzer answers.
    #[must_use]
    pub fn evaluate(&self, flow: &Flow) -> Verdict {
        self.evaluate_with(flow, AuditPolicies::Include)
    }

    /// Evaluates `flow` with the enforced policies only: what the dataplane
    /// does (audit policies neither isolate nor admit).
    #[must_use]
    pub fn evaluate_enforced(&self, flow: &Flow) -> Verdict {
        self.evaluate_with(flow, AuditPolicies::Exclude)
    }

    /// Evaluates `flow`, with or without the audit policies.
    #[must_use]
    pub fn evaluate_with(&self, flow: &Flow, audit: AuditPolicies) -> Verdict {
        if let (Endpoint::Pod { id: a, .. }, Endpoint::Pod { id: b, .. }) = (flow.src, flow.dst)
            && a == b
        {
            return Verdict {
                allowed: true,
                egress: SideVerdict::SamePod,
                ingress: SideVerdict::SamePod,
                egress_pass: None,
                ingress_pass: None,
            };
        }
        let src = self.peer_view(flow.src);
        let dst = self.peer_view(flow.dst);
        let dst_ports = dst.pod.map(|p| p.ports);
        let (egress, egress_pass) = match flow.src {
            Endpoint::Pod { id, .. } => {
                self.side(self.pod(id), Direction::Egress, dst, (flow.port, flow.protocol, dst_ports), audit)
            }
            Endpoint::External(_) => (SideVerdict::NotAPod, None),
        };
        let (ingress, ingress_pass) = match flow.dst {
            Endpoint::Pod { id, .. } => {
                self.side(self.pod(id), Direction::Ingress, src, (flow.port, flow.protocol, dst_ports), audit)
            }
            Endpoint::External(_) => (SideVerdict::NotAPod, None),
        };
        Verdict { allowed: egress.allows() && ingress.allows(), egress, ingress, egress_pass, ingress_pass }
    }

    /// Evaluates one side: may `pod` send to (egress) or receive from
    /// (ingress) `peer` on `port`/`protocol`? `dst_ports` are the ports the
    /// destination declares, for named ports. Also returns the Pass rule
    /// evaluation went through, if any.
    fn side(
        &self,
        pod: &PodEntry,
        dir: Direction,
        peer: PeerView<'_>,
        (port, protocol, dst_ports): (u16, Protocol, Option<&[CompiledPort]>),
        audit: AuditPolicies,
    ) -> (SideVerdict, Option<TierRuleRef>) {
        let sought = tiers::Sought { dir, peer, port, protocol, dst_ports };
        let mut passed = None;
        match self.tier_side(pod, Tier::Admin, &sought) {
            tiers::TierOutcome::Decided(rule) => return (SideVerdict::Tier(rule), None),
            tiers::TierOutcome::Passed(rule) => passed = Some(rule),
            tiers::TierOutcome::NoMatch => {}
        }
        let isolating = pod.isolating(dir);
        let counts = |id: &PolicyId| audit == AuditPolicies::Include || !self.is_audit(*id);
        if !isolating.iter().any(counts) {
            return match self.tier_side(pod, Tier::Baseline, &sought) {
                tiers::TierOutcome::Decided(rule) => (SideVerdict::Tier(rule), passed),
                tiers::TierOutcome::Passed(rule) => (SideVerdict::NotIsolated, passed.or(Some(rule))),
                tiers::TierOutcome::NoMatch => (SideVerdict::NotIsolated, passed),
            };
        }
        let side = if isolating.iter().all(counts) {
            self.network_policy_side(isolating, dir, peer, port, protocol, dst_ports)
        } else {
            let enforced: Vec<PolicyId> = isolating.iter().copied().filter(counts).collect();
            self.network_policy_side(&enforced, dir, peer, port, protocol, dst_ports)
        };
        (side, passed)
    }

    /// Whether a NetworkPolicy is staged (`palisade.dev/enforcement: audit`).
    #[must_use]
    pub fn is_audit(&self, id: PolicyId) -> bool {
        self.policy(id).policy().enforcement == crate::Enforcement::Audit
    }

    /// The NetworkPolicy tier of one side, for a pod `isolating` isolates.
    fn network_policy_side(
        &self,
        isolating: &[PolicyId],
        dir: Direction,
        peer: PeerView<'_>,
        port: u16,
        protocol: Protocol,
        dst_ports: Option<&[CompiledPort]>,
    ) -> SideVerdict {
        for &policy_id in isolating {
            let policy = self.policy(policy_id);
            for (rule_index, rule) in policy.rules[dir.slot()].iter().enumerate() {
                if let Some((peer_index, port_index)) = rule_admits(rule, policy.ns, peer, port, protocol, dst_ports) {
                    return SideVerdict::Allowed(RuleRef {
                        policy: policy_id,
                        direction: dir,
                        rule: rule_index,
                        peer: peer_index,
                        port: port_index,
                    });
                }
            }
        }
        SideVerdict::Denied
    }

    /// Egress from `pod` to a pod that may not exist in the index (for
    /// example cluster DNS when the input has no DNS pods).
    #[must_use]
    pub fn egress_to_virtual_pod(&self, pod: PodId, target: &VirtualPod, port: u16, protocol: Protocol) -> SideVerdict {
        let ns_labels = CompiledLabels::lookup(&target.namespace_labels, &self.interner);
        let labels = CompiledLabels::lookup(&target.labels, &self.interner);
        let ports: Vec<CompiledPort> = target
            .ports
            .iter()
            .map(|p| CompiledPort {
                name: p.name.as_deref().and_then(|n| self.interner.get(n)),
                port: p.port,
                protocol: p.protocol,
            })
            .collect();
        let view =
            PodView { ns: self.namespace_id(&target.namespace), ns_labels: &ns_labels, labels: &labels, ports: &ports };
        let peer = PeerView { pod: Some(view), addr: None };
        self.side(self.pod(pod), Direction::Egress, peer, (port, protocol, Some(&ports)), AuditPolicies::Include).0
    }
}

/// A pod described by value rather than indexed.
#[derive(Clone, Debug, Default)]
pub struct VirtualPod {
    /// Namespace name.
    pub namespace: String,
    /// Labels of that namespace (including `kubernetes.io/metadata.name`).
    pub namespace_labels: Labels,
    /// Pod labels.
    pub labels: Labels,
    /// Declared ports.
    pub ports: Vec<ContainerPort>,
}

/// Whether `rule` admits `peer` on `port`/`protocol`; returns the matching
/// peer and port indexes (`None` where the rule lists none).
fn rule_admits(
    rule: &CompiledRule,
    policy_ns: NsId,
    peer: PeerView<'_>,
    port: u16,
    protocol: Protocol,
    dst_ports: Option<&[CompiledPort]>,
) -> Option<(Option<usize>, Option<usize>)> {
    let port_index = if rule.ports.is_empty() {
        None
    } else {
        Some(rule.ports.iter().position(|p| p.admits(port, protocol, dst_ports))?)
    };
    let peer_index = if rule.peers.is_empty() {
        None
    } else {
        Some(rule.peers.iter().position(|p| peer_matches(p, policy_ns, peer))?)
    };
    Some((peer_index, port_index))
}

fn peer_matches(peer: &CompiledPeer, policy_ns: NsId, view: PeerView<'_>) -> bool {
    match peer {
        CompiledPeer::Pods { namespaces, pods } => view.pod.is_some_and(|pod| {
            let ns_ok = match namespaces {
                NamespaceMatch::Own => pod.ns == Some(policy_ns),
                NamespaceMatch::Selector(s) => s.matches(pod.ns_labels),
            };
            ns_ok && pods.as_ref().is_none_or(|s| s.matches(pod.labels))
        }),
        CompiledPeer::Block(block) => view.addr.is_some_and(|a| block.contains(a)),
    }
}
