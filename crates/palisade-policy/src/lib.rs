//! Palisade's NetworkPolicy (networking.k8s.io/v1) semantics: a pure model,
//! a cluster index, and evaluation with provenance. No I/O, no async.
//!
//! ```text
//! model (validated Namespace / Pod / NetworkPolicy values)
//!     |  apply / delete (synchronous, incremental)
//!     v
//! ClusterIndex  --evaluate(flow)-->  Verdict { egress, ingress: which policy, rule, peer, port }
//!     |
//!     +-- explain (net effect on one pod)   +-- matrix (truth tables, grouped)
//!     +-- lint (findings with a fix)        +-- diff (connections opened / closed)
//! ```
//!
//! Conventions beyond the API text, shared by every consumer:
//! - A pod can always reach itself.
//! - Traffic between a node and its own pods (kubelet probes) is outside the
//!   model; the dataplane always allows it.
//! - Named ports resolve on the destination pod; an egress named port never
//!   matches a destination outside the cluster.
//! - ipBlock peers match pod IPs as well as external addresses.

pub mod attribution;
mod changes;
pub mod cluster_policy;
mod compiled;
pub mod describe;
pub mod diff;
mod evaluate;
pub mod explain;
mod index;
mod key;
pub mod labels;
pub mod lint;
pub mod matrix;
pub mod model;
mod slab;
pub mod synth;
pub mod validation;

pub use changes::Changes;
pub use cluster_policy::{
    Action, ClusterPeer, ClusterPolicy, ClusterPolicyKind, ClusterPort, ClusterRule, Node, Subject, Tier,
};
pub use evaluate::{AuditPolicies, Endpoint, Flow, RuleRef, SideVerdict, TierRuleRef, Verdict, VirtualPod};
pub use index::{
    ClusterIndex, ClusterPolicyEntry, ClusterPolicyId, NamespaceEntry, NsId, PodEntry, PodId, PolicyEntry, PolicyId,
};
pub use key::{ObjectKey, ObjectKind};
pub use model::{
    ContainerPort, Direction, Enforcement, HOST_NETWORK, IpBlock, LabelSelector, Labels, NAMESPACE_NAME_LABEL,
    Namespace, NetworkPolicy, Operator, Peer, Pod, PodState, PortTarget, Protocol, Requirement, Rule, RulePort,
};
