//! The input model: namespaces, pods and NetworkPolicies as plain data.
//!
//! These values are produced at the edge (manifest files, the Kubernetes API,
//! the synthetic generator) after validation, and consumed by
//! [`crate::ClusterIndex`]. They carry no behaviour beyond small helpers.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::Serialize;

/// Label set of an object: key to value, ordered for stable output.
pub type Labels = BTreeMap<String, String>;

/// The label every namespace carries, set by the API server.
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// A transport protocol NetworkPolicy ports can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Protocol {
    /// TCP, the default when a port omits its protocol.
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl Protocol {
    /// All protocols, in the order the e2e tests list them.
    pub const ALL: [Protocol; 3] = [Protocol::Tcp, Protocol::Udp, Protocol::Sctp];

    /// The API spelling: `TCP`, `UDP` or `SCTP`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        }
    }

    /// Parses the exact API spelling (`TCP`, `UDP`, `SCTP`).
    #[must_use]
    pub fn from_api(s: &str) -> Option<Protocol> {
        match s {
            "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            "SCTP" => Some(Protocol::Sctp),
            _ => None,
        }
    }

    /// Parses a protocol name in any letter case, for command lines.
    #[must_use]
    pub fn parse_loose(s: &str) -> Option<Protocol> {
        [Protocol::Tcp, Protocol::Udp, Protocol::Sctp].into_iter().find(|p| p.as_str().eq_ignore_ascii_case(s))
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The two directions a policy can isolate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Traffic arriving at the selected pod.
    Ingress,
    /// Traffic leaving the selected pod.
    Egress,
}

impl Direction {
    /// Both directions, ingress first.
    pub const BOTH: [Direction; 2] = [Direction::Ingress, Direction::Egress];

    /// Index of per-direction arrays: ingress 0, egress 1.
    #[must_use]
    pub fn slot(self) -> usize {
        match self {
            Direction::Ingress => 0,
            Direction::Egress => 1,
        }
    }

    /// `ingress` or `egress`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A namespace and its labels (the `kubernetes.io/metadata.name` label is
/// added by the index if missing, as the API server does).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Namespace {
    /// Namespace name.
    pub name: String,
    /// Labels from `metadata.labels`.
    pub labels: Labels,
}

/// A port a container declares; named ports are resolved against these.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContainerPort {
    /// `name`, if any (an IANA service name).
    pub name: Option<String>,
    /// `containerPort`.
    pub port: u16,
    /// `protocol` (TCP when omitted).
    pub protocol: Protocol,
}

/// Why a hostNetwork pod is not a policy endpoint (its
/// [`PodState::Excluded`] reason).
pub const HOST_NETWORK: &str = "hostNetwork: its traffic uses the node's address";

/// Whether a pod takes part in NetworkPolicy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", content = "reason", rename_all = "kebab-case")]
pub enum PodState {
    /// Running with (at least one) pod IP.
    Active,
    /// A pod described without status (a manifest or a workload template):
    /// analysed by its labels; ipBlock peers cannot match it.
    Planned,
    /// Not a policy endpoint; the reason says why (hostNetwork, no IP yet,
    /// phase Succeeded/Failed).
    Excluded(String),
}

/// A pod, or a workload template standing for its pods.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pod {
    /// Namespace of the pod.
    pub namespace: String,
    /// Pod name.
    pub name: String,
    /// Labels from `metadata.labels` (for templates, the template's labels).
    pub labels: Labels,
    /// Pod IPs from `status.podIPs`/`status.podIP`, IPv4 and IPv6.
    pub ips: Vec<IpAddr>,
    /// Declared container ports.
    pub ports: Vec<ContainerPort>,
    /// `spec.nodeName`, if scheduled.
    pub node_name: Option<String>,
    /// Whether the pod is a policy endpoint.
    pub state: PodState,
    /// The workload a template pod stands for, as `Kind/name`.
    pub workload: Option<String>,
}

impl Pod {
    /// Whether the pod takes part in policy (as a selected pod or a peer).
    #[must_use]
    pub fn is_endpoint(&self) -> bool {
        !matches!(self.state, PodState::Excluded(_))
    }
}

/// One `matchExpressions` operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Operator {
    /// The label's value is one of the values.
    In,
    /// The label is absent or its value is none of the values.
    NotIn,
    /// The label is present.
    Exists,
    /// The label is absent.
    DoesNotExist,
}

/// One `matchExpressions` requirement.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Requirement {
    /// Label key.
    pub key: String,
    /// Operator.
    pub operator: Operator,
    /// Values (empty for `Exists`/`DoesNotExist`).
    pub values: Vec<String>,
}

/// A label selector; empty selects everything.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LabelSelector {
    /// `matchLabels`.
    pub match_labels: Labels,
    /// `matchExpressions`.
    pub match_expressions: Vec<Requirement>,
}

impl LabelSelector {
    /// True when the selector selects everything.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.match_labels.is_empty() && self.match_expressions.is_empty()
    }

    /// Whether `labels` satisfy this selector (uncompiled; the index uses a
    /// compiled form).
    #[must_use]
    pub fn matches(&self, labels: &Labels) -> bool {
        self.match_labels.iter().all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|r| {
                let value = labels.get(&r.key);
                match r.operator {
                    Operator::In => value.is_some_and(|v| r.values.contains(v)),
                    Operator::NotIn => value.is_none_or(|v| !r.values.contains(v)),
                    Operator::Exists => value.is_some(),
                    Operator::DoesNotExist => value.is_none(),
                }
            })
    }
}

/// An `ipBlock` peer: a CIDR minus its `except` ranges.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IpBlock {
    /// `cidr`, normalised to its network address.
    pub cidr: IpNet,
    /// `except`, each inside `cidr`.
    pub except: Vec<IpNet>,
}

impl IpBlock {
    /// Whether `addr` is in the block and in none of its exceptions.
    #[must_use]
    pub fn contains(&self, addr: IpAddr) -> bool {
        self.cidr.contains(&addr) && !self.except.iter().any(|e| e.contains(&addr))
    }
}

/// One entry of a rule's `from`/`to`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Peer {
    /// `podSelector` and/or `namespaceSelector` (both in one peer = AND).
    Pods {
        /// `namespaceSelector`; `None` means the policy's own namespace.
        namespace_selector: Option<LabelSelector>,
        /// `podSelector`; `None` means every pod of the selected namespaces.
        pod_selector: Option<LabelSelector>,
    },
    /// `ipBlock`.
    IpBlock(IpBlock),
}

/// What a rule port matches on its protocol.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PortTarget {
    /// No `port`: every port of the protocol.
    Any,
    /// A number, or a range with `endPort` (inclusive).
    Range {
        /// `port`.
        start: u16,
        /// `endPort`, or `port` when absent.
        end: u16,
    },
    /// A named port, resolved on the destination pod.
    Named(String),
}

/// One entry of a rule's `ports`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RulePort {
    /// `protocol` (TCP when omitted).
    pub protocol: Protocol,
    /// `port`/`endPort`.
    pub target: PortTarget,
}

/// One ingress or egress rule.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Rule {
    /// `from`/`to`; empty means every peer (pods and addresses).
    pub peers: Vec<Peer>,
    /// `ports`; empty means every port of every protocol.
    pub ports: Vec<RulePort>,
}

/// A validated NetworkPolicy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkPolicy {
    /// Namespace of the policy (and of the pods it selects).
    pub namespace: String,
    /// Policy name.
    pub name: String,
    /// `spec.podSelector`.
    pub pod_selector: LabelSelector,
    /// Effective policy types after defaulting: ingress isolation.
    pub isolates_ingress: bool,
    /// Effective policy types after defaulting: egress isolation.
    pub isolates_egress: bool,
    /// `spec.ingress` (ignored unless `isolates_ingress`).
    pub ingress: Vec<Rule>,
    /// `spec.egress` (ignored unless `isolates_egress`).
    pub egress: Vec<Rule>,
    /// How it takes effect (annotation `palisade.dev/enforcement`).
    pub enforcement: Enforcement,
    /// Whether the connections its rules admit are logged (annotation
    /// `palisade.dev/log: allowed`).
    pub log_allowed: bool,
}

/// How a NetworkPolicy takes effect.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Enforcement {
    /// In the dataplane and the analyzer (the default).
    #[default]
    Enforce,
    /// Staged: in the analyzer and in flow logs ("would deny"), not in the
    /// dataplane (`palisade.dev/enforcement: audit`).
    Audit,
}

impl NetworkPolicy {
    /// Whether the policy isolates pods for `dir`.
    #[must_use]
    pub fn isolates(&self, dir: Direction) -> bool {
        match dir {
            Direction::Ingress => self.isolates_ingress,
            Direction::Egress => self.isolates_egress,
        }
    }

    /// Rules for `dir`.
    #[must_use]
    pub fn rules(&self, dir: Direction) -> &[Rule] {
        match dir {
            Direction::Ingress => &self.ingress,
            Direction::Egress => &self.egress,
        }
    }
}
