//! The dataplane program for one node: plain data, independent of nftables.
//!
//! Local pods (the node's active pods) are dispatched by address; each
//! isolated pod lists, per direction, the policies whose rules may admit its
//! traffic. Each policy rule is a set of peer addresses and a set of ports;
//! remote pods only ever appear as addresses inside these sets.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use palisade_policy::{Action, Direction, ObjectKey, Protocol, Tier};

use crate::ranges::AddrSet;

/// Everything one node enforces.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Program {
    /// Local pods.
    pub pods: BTreeMap<ObjectKey, LocalPod>,
    /// Policies that select at least one local pod.
    pub policies: BTreeMap<ObjectKey, PolicyProgram>,
    /// Cluster policies (ClusterNetworkPolicy, AdminNetworkPolicy,
    /// BaselineAdminNetworkPolicy) some local pod lists.
    pub tiers: BTreeMap<ObjectKey, TierProgram>,
    /// The addresses of every active pod of the cluster, local or not: an
    /// ICMP error from one of them is accepted as related to a connection
    /// only when it comes from that connection's peer.
    pub cluster_addrs: BTreeSet<IpAddr>,
    /// What becomes of traffic of pods not programmed yet.
    pub gate: PodGate,
    /// Where denied packets (and observed new connections) are logged:
    /// `None` logs denials through the kernel log, as before flow logs.
    pub flow_log: Option<FlowLog>,
}

/// What a node's program holds besides what the cluster decides.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeOptions {
    /// The new-pod gate.
    pub gate: PodGate,
    /// The flow log.
    pub flow_log: Option<FlowLog>,
}

/// Flow logs: the first packets of denied connections, and of the new
/// connections of observed pods, go to an NFLOG group (read by the agent,
/// which attributes them with the engine). Each pod chain's logging is
/// rate-limited per pod and direction; a packet over the limit is still
/// judged, only not logged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowLog {
    /// The NFLOG group.
    pub group: u16,
    /// Log records per second per pod and direction.
    pub per_second: u32,
    /// The burst the limit allows.
    pub burst: u32,
}

/// The new-pod gate: traffic from or to a pod the agent has not programmed
/// yet (a pod interface, or an address of the node's pod ranges, that no
/// local pod of the program has) is dropped. Off when both lists are empty
/// (`--new-pods=allow`): such traffic then passes, as for an unisolated pod.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodGate {
    /// Name prefixes of the node's pod interfaces (`cali`, `lxc`, `veth`…).
    pub interface_prefixes: Vec<String>,
    /// The node's pod address ranges (its `podCIDRs`).
    pub cidrs: AddrSet,
}

impl PodGate {
    /// Whether the gate drops anything.
    #[must_use]
    pub fn is_on(&self) -> bool {
        !self.interface_prefixes.is_empty() || !self.cidrs.v4.is_empty() || !self.cidrs.v6.is_empty()
    }
}

/// A pod on this node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LocalPod {
    /// Its addresses.
    pub addrs: Vec<IpAddr>,
    /// The node-side interface its traffic arrives on, when known (anti-spoofing).
    pub iface: Option<String>,
    /// Whether it is isolated for ingress (`None`: not), and the isolating
    /// policies with ingress rules, the only ones that can admit its
    /// traffic, in evaluation order.
    pub ingress: Option<Vec<ObjectKey>>,
    /// The same for egress.
    pub egress: Option<Vec<ObjectKey>>,
    /// Per direction ([`Direction::slot`]): the Admin-tier cluster policies
    /// whose subject selects the pod and that have rules for the direction,
    /// in evaluation order.
    pub admin: [Vec<ObjectKey>; 2],
    /// The same for the Baseline tier, listed only for a direction in which
    /// no NetworkPolicy isolates the pod (otherwise it never decides).
    pub baseline: [Vec<ObjectKey>; 2],
    /// Per direction ([`Direction::slot`]): whether its new connections go
    /// to the flow log whatever their verdict, because an audit policy
    /// selects the pod for the direction (the agent reports the flows it
    /// would deny) or an enforced one asks for logs of what it admits
    /// (`palisade.dev/log: allowed`).
    pub observe: [bool; 2],
}

impl LocalPod {
    /// Whether the pod has a chain for `dir`: a NetworkPolicy isolates it,
    /// or a cluster policy with rules for `dir` selects it.
    #[must_use]
    pub fn has_chain(&self, dir: Direction) -> bool {
        self.isolation(dir).is_some()
            || !self.admin[dir.slot()].is_empty()
            || !self.baseline[dir.slot()].is_empty()
            || self.observe[dir.slot()]
    }

    /// Isolating policies for `dir`.
    #[must_use]
    pub fn isolation(&self, dir: Direction) -> Option<&Vec<ObjectKey>> {
        match dir {
            Direction::Ingress => self.ingress.as_ref(),
            Direction::Egress => self.egress.as_ref(),
        }
    }
}

/// The compiled rules of one cluster policy: its rules' peers and ports as
/// for a NetworkPolicy, and each rule's action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TierProgram {
    /// Its tier.
    pub tier: Tier,
    /// Its rules, compiled (every rule, whatever its action).
    pub rules: PolicyProgram,
    /// Per direction ([`Direction::slot`]), each rule's action.
    pub actions: [Vec<Action>; 2],
}

impl TierProgram {
    /// Whether a rule of `dir` is a Pass.
    #[must_use]
    pub fn passes(&self, dir: Direction) -> bool {
        self.actions[dir.slot()].contains(&Action::Pass)
    }
}

/// The compiled rules of one policy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PolicyProgram {
    /// Ingress rules (empty when the policy does not isolate ingress).
    pub ingress: Vec<RuleProgram>,
    /// Egress rules (empty when the policy does not isolate egress).
    pub egress: Vec<RuleProgram>,
}

impl PolicyProgram {
    /// Rules for `dir`.
    #[must_use]
    pub fn rules(&self, dir: Direction) -> &[RuleProgram] {
        match dir {
            Direction::Ingress => &self.ingress,
            Direction::Egress => &self.egress,
        }
    }
    /// Rules for `dir`, to change in place.
    pub(crate) fn rules_mut(&mut self, dir: Direction) -> &mut [RuleProgram] {
        match dir {
            Direction::Ingress => &mut self.ingress,
            Direction::Egress => &mut self.egress,
        }
    }
}

/// One rule: traffic from/to `peers` on `ports` is admitted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuleProgram {
    /// Peer addresses (the source for ingress, the destination for egress);
    /// `None`: the rule lists no peers, so every address matches.
    pub peers: Option<Peers>,
    /// Ports; `None`: the rule lists no ports, so every port and protocol matches.
    pub ports: Option<PortSet>,
}

/// A rule's peers: pod addresses (hash sets: O(1) lookups, and nft never
/// needs to read them back to change them) and ipBlock ranges (interval sets).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Peers {
    /// Addresses of the pods the pod peers match; `Some` iff the rule has pod peers.
    pub pods: Option<Vec<IpAddr>>,
    /// What decides `pods` (the policy's namespace and the rule's pod
    /// peers), as a digest: rules with the same one share their sets.
    pub pods_id: String,
    /// The ipBlocks' ranges; `Some` iff the rule has ipBlock peers.
    pub blocks: Option<AddrSet>,
}

/// Numeric ports, and named ports resolved on their destination pods.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortSet {
    /// Protocol and inclusive port range.
    pub numeric: Vec<(Protocol, u16, u16)>,
    /// Destination address, protocol and port of each resolved named port.
    pub named: Vec<(IpAddr, Protocol, u16)>,
    /// Whether the rule names ports (its named-port rules exist even while
    /// no pod resolves them, so rules depend on policies only).
    pub has_named: bool,
    /// What decides `named` (the direction, the policy's namespace, the
    /// pods it can resolve on, the port names), as a digest: rules with the
    /// same one share their sets.
    pub named_id: String,
}

impl Program {
    /// Counts for reports: local pods, isolated (pod, direction) pairs,
    /// policies, rules, and set elements (addresses ranges and ports).
    #[must_use]
    pub fn stats(&self) -> ProgramStats {
        let mut s =
            ProgramStats { local_pods: self.pods.len(), policies: self.policies.len(), ..ProgramStats::default() };
        for pod in self.pods.values() {
            s.isolated += usize::from(pod.ingress.is_some()) + usize::from(pod.egress.is_some());
        }
        s.policies += self.tiers.len();
        for policy in self.policies.values().chain(self.tiers.values().map(|t| &t.rules)) {
            for rule in policy.ingress.iter().chain(&policy.egress) {
                s.rules += 1;
                if let Some(peers) = &rule.peers {
                    s.elements += peers.pods.as_ref().map_or(0, Vec::len);
                    s.elements += peers.blocks.as_ref().map_or(0, |b| b.v4.len() + b.v6.len());
                }
                if let Some(ports) = &rule.ports {
                    s.elements += ports.numeric.len() + ports.named.len();
                }
            }
        }
        s
    }
}

/// Sizes of a program.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProgramStats {
    /// Local pods.
    pub local_pods: usize,
    /// Isolated (pod, direction) pairs.
    pub isolated: usize,
    /// Policies compiled (NetworkPolicies and cluster policies).
    pub policies: usize,
    /// Policy rules compiled.
    pub rules: usize,
    /// Set elements (address ranges, ports).
    pub elements: usize,
}
