//! The cluster-scoped policy model: ClusterNetworkPolicy
//! (`policy.networking.k8s.io/v1alpha2`) and the frozen v1alpha1 kinds it
//! replaces (AdminNetworkPolicy, BaselineAdminNetworkPolicy), as one
//! validated [`ClusterPolicy`], and the Nodes that a `nodes` peer selects.
//!
//! Evaluation of one side of a connection (egress at the source, ingress at
//! the destination), as the API defines it:
//! 1. Admin-tier policies selecting the pod, in [`ClusterPolicy::rank`]
//!    order, their rules in order: the first rule that matches decides.
//!    Accept (v1alpha1: Allow) or Deny ends evaluation; Pass skips the rest
//!    of the Admin tier.
//! 2. NetworkPolicy v1: a pod one of them isolates is decided there.
//! 3. Baseline-tier policies, likewise (Pass skips the rest of the tier).
//! 4. Otherwise the connection is allowed.
//!
//! Where two policies of a tier share a priority, Palisade orders them by
//! name, then by kind (ClusterNetworkPolicy before AdminNetworkPolicy).
//! BaselineAdminNetworkPolicy has no priority and comes after every
//! Baseline-tier ClusterNetworkPolicy.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::Serialize;

use crate::model::{LabelSelector, Labels, Protocol};

/// The tier a cluster policy belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Tier {
    /// Evaluated before NetworkPolicy; namespace owners cannot override it.
    Admin,
    /// Evaluated after NetworkPolicy, for pods no NetworkPolicy isolates.
    Baseline,
}

impl Tier {
    /// `admin` or `baseline`, as verdicts print it.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Admin => "admin",
            Tier::Baseline => "baseline",
        }
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a rule does with the connections it matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Action {
    /// Accept (v1alpha1: Allow): allowed; nothing after it on this side is
    /// evaluated.
    Accept,
    /// Deny: dropped; nothing after it on this side is evaluated.
    Deny,
    /// Pass: the rest of the tier is skipped; evaluation goes on in the next
    /// tier.
    Pass,
}

/// Which API kind a cluster policy was read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum ClusterPolicyKind {
    /// `ClusterNetworkPolicy` (v1alpha2).
    ClusterNetworkPolicy,
    /// `AdminNetworkPolicy` (v1alpha1): the Admin tier.
    AdminNetworkPolicy,
    /// `BaselineAdminNetworkPolicy` (v1alpha1): the Baseline tier.
    BaselineAdminNetworkPolicy,
}

impl ClusterPolicyKind {
    /// The kind's name, as in manifests.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            ClusterPolicyKind::ClusterNetworkPolicy => "ClusterNetworkPolicy",
            ClusterPolicyKind::AdminNetworkPolicy => "AdminNetworkPolicy",
            ClusterPolicyKind::BaselineAdminNetworkPolicy => "BaselineAdminNetworkPolicy",
        }
    }

    /// How the kind spells `action` (v1alpha1 says Allow for Accept).
    #[must_use]
    pub fn action_word(self, action: Action) -> &'static str {
        match (self, action) {
            (ClusterPolicyKind::ClusterNetworkPolicy, Action::Accept) => "Accept",
            (_, Action::Accept) => "Allow",
            (_, Action::Deny) => "Deny",
            (_, Action::Pass) => "Pass",
        }
    }
}

impl fmt::Display for ClusterPolicyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The pods a cluster policy applies to (hostNetwork pods never).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Subject {
    /// Every pod of the namespaces this selector selects.
    Namespaces(LabelSelector),
    /// The pods `pods` selects in the namespaces `namespaces` selects.
    Pods {
        /// `namespaceSelector` (empty: every namespace).
        namespaces: LabelSelector,
        /// `podSelector` (empty: every pod).
        pods: LabelSelector,
    },
}

/// One peer of a cluster policy rule.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ClusterPeer {
    /// Every pod of the selected namespaces.
    Namespaces(LabelSelector),
    /// Selected pods of selected namespaces.
    Pods {
        /// `namespaceSelector`.
        namespaces: LabelSelector,
        /// `podSelector`.
        pods: LabelSelector,
    },
    /// Egress only: addresses in these CIDRs, pod addresses included.
    Networks(Vec<IpNet>),
    /// Egress only: the addresses in `status.addresses` of the selected Nodes.
    Nodes(LabelSelector),
    /// Egress only, experimental: domain names. Palisade does not enforce
    /// them: such a peer matches no connection (and is reported).
    DomainNames(Vec<String>),
}

/// One entry of a rule's ports (v1alpha2 `protocols`, v1alpha1 `ports`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ClusterPort {
    /// A port number (`start == end`) or an inclusive range of one protocol.
    Range {
        /// The protocol.
        protocol: Protocol,
        /// First port.
        start: u16,
        /// Last port.
        end: u16,
    },
    /// A container port of the destination pod, by name, with the
    /// protocol that port declares.
    Named(String),
}

/// One rule of a cluster policy.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClusterRule {
    /// `name`, if given.
    pub name: Option<String>,
    /// `action`.
    pub action: Action,
    /// `from`/`to`: at least one peer.
    pub peers: Vec<ClusterPeer>,
    /// `protocols`/`ports`; `None` matches every port of every protocol.
    pub ports: Option<Vec<ClusterPort>>,
}

/// A validated ClusterNetworkPolicy, AdminNetworkPolicy or
/// BaselineAdminNetworkPolicy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterPolicy {
    /// The kind it was read from.
    pub kind: ClusterPolicyKind,
    /// `metadata.name`.
    pub name: String,
    /// The tier.
    pub tier: Tier,
    /// `spec.priority` (0–1000, lower first); `None` for a
    /// BaselineAdminNetworkPolicy, which has none.
    pub priority: Option<u32>,
    /// `spec.subject`.
    pub subject: Subject,
    /// `spec.ingress`.
    pub ingress: Vec<ClusterRule>,
    /// `spec.egress`.
    pub egress: Vec<ClusterRule>,
}

impl ClusterPolicy {
    /// Rules for `dir`.
    #[must_use]
    pub fn rules(&self, dir: crate::Direction) -> &[ClusterRule] {
        match dir {
            crate::Direction::Ingress => &self.ingress,
            crate::Direction::Egress => &self.egress,
        }
    }

    /// The order of evaluation: tier, priority (none last), name, kind.
    #[must_use]
    pub fn rank(&self) -> (Tier, u32, &str, ClusterPolicyKind) {
        (self.tier, self.priority.unwrap_or(u32::MAX), &self.name, self.kind)
    }

    /// How verdicts name the policy: its name for a ClusterNetworkPolicy,
    /// `Kind/name` for the v1alpha1 kinds.
    #[must_use]
    pub fn label(&self) -> String {
        match self.kind {
            ClusterPolicyKind::ClusterNetworkPolicy => self.name.clone(),
            kind => format!("{kind}/{}", self.name),
        }
    }
}

/// A Node: its labels (for `nodes` peers) and its addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.labels`.
    pub labels: Labels,
    /// The IP addresses of `status.addresses` (InternalIP, ExternalIP).
    pub addresses: Vec<IpAddr>,
}
