//! What the index holds per object: ids, the entries of namespaces, pods
//! and policies (the fields evaluation reads first), and the keys of the
//! pod-name table.

use std::hash::BuildHasher as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use rustc_hash::FxBuildHasher;

use crate::compiled::{CompiledPort, CompiledRule};
use crate::labels::{CompiledLabels, CompiledSelector};
use crate::model::{Direction, Labels, NetworkPolicy, Pod};

/// Identifies a namespace in one index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NsId(pub(crate) u32);
/// Identifies a pod in one index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PodId(pub(crate) u32);
/// Identifies a policy in one index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PolicyId(pub(crate) u32);

/// A namespace as indexed.
#[derive(Debug)]
pub struct NamespaceEntry {
    pub(super) name: String,
    /// Effective labels (declared or implicit, always with the name label).
    pub(super) labels: Labels,
    pub(super) declared: bool,
    pub(crate) compiled: CompiledLabels,
    pub(super) pods: Vec<PodId>,
    pub(super) policies: Vec<PolicyId>,
}

impl NamespaceEntry {
    /// Namespace name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Effective labels, including `kubernetes.io/metadata.name`.
    #[must_use]
    pub fn labels(&self) -> &Labels {
        &self.labels
    }
    /// Whether a Namespace object declared it (otherwise it exists implicitly).
    #[must_use]
    pub fn declared(&self) -> bool {
        self.declared
    }
    /// Pods in the namespace.
    #[must_use]
    pub fn pods(&self) -> &[PodId] {
        &self.pods
    }
    /// Policies in the namespace, by name.
    #[must_use]
    pub fn policies(&self) -> &[PolicyId] {
        &self.policies
    }
}

/// A pod as indexed. The fields a query reads come first, in declaration
/// order (`repr(C)`), so answering one touches the entry's first cache
/// lines and not the object it was built from.
#[derive(Debug)]
#[repr(C)]
pub struct PodEntry {
    pub(crate) ns: NsId,
    /// Whether the pod takes part in policy (`Pod::is_endpoint`), kept here
    /// so resolving a name needs no look at the pod object.
    pub(super) endpoint: bool,
    /// The pod's first address of each family, inline (no pointer to chase
    /// when a flow picks the pod's address).
    pub(crate) addrs: FirstAddrs,
    /// Policies selecting the pod that isolate it, per direction, by name.
    pub(super) selected_by: [Vec<PolicyId>; 2],
    /// Cluster policies whose subject selects the pod, in evaluation order.
    pub(crate) tiered: Vec<super::ClusterPolicyId>,
    pub(crate) labels: CompiledLabels,
    pub(crate) ports: Box<[CompiledPort]>,
    /// `namespace/name`, kept whole for output and lookups.
    pub(super) key: Box<str>,
    pub(super) pod: Pod,
}

/// A pod's first IPv4 and first IPv6 address and which of them it lists
/// first.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct FirstAddrs {
    v4: Option<Ipv4Addr>,
    v6: Option<Ipv6Addr>,
    v6_first: bool,
}

impl FirstAddrs {
    pub(super) fn of(ips: &[IpAddr]) -> Self {
        let v4 = ips.iter().find_map(|ip| if let IpAddr::V4(a) = ip { Some(*a) } else { None });
        let v6 = ips.iter().find_map(|ip| if let IpAddr::V6(a) = ip { Some(*a) } else { None });
        FirstAddrs { v4, v6, v6_first: ips.first().is_some_and(IpAddr::is_ipv6) }
    }

    /// The first address of the family of `toward` when there is one, else
    /// the first address.
    pub(crate) fn toward(self, toward: Option<IpAddr>) -> Option<IpAddr> {
        let (v4, v6) = (self.v4.map(IpAddr::V4), self.v6.map(IpAddr::V6));
        match toward {
            Some(IpAddr::V4(_)) if v4.is_some() => v4,
            Some(IpAddr::V6(_)) if v6.is_some() => v6,
            _ if self.v6_first => v6,
            _ => v4,
        }
    }
}

impl PodEntry {
    /// The pod as given, except its labels, which the index keeps interned:
    /// read them with [`ClusterIndex::pod_labels`] or
    /// [`ClusterIndex::pod_label`], or get the whole object back with
    /// [`ClusterIndex::pod_object`].
    #[must_use]
    pub fn pod(&self) -> &Pod {
        &self.pod
    }
    /// Whether the pod takes part in policy (`Pod::is_endpoint`).
    #[must_use]
    pub fn is_endpoint(&self) -> bool {
        self.endpoint
    }
    /// Its namespace.
    #[must_use]
    pub fn namespace(&self) -> NsId {
        self.ns
    }
    /// Policies that select the pod and isolate it for `dir`, by name.
    /// Empty means the pod is not isolated for `dir`.
    #[must_use]
    pub fn isolating(&self, dir: Direction) -> &[PolicyId] {
        &self.selected_by[dir.slot()]
    }
}

/// A policy as indexed. What evaluating a flow and naming the policy read
/// comes first, in declaration order (`repr(C)`), as in [`PodEntry`].
#[derive(Debug)]
#[repr(C)]
pub struct PolicyEntry {
    pub(crate) ns: NsId,
    pub(crate) rules: [Box<[CompiledRule]>; 2],
    /// `namespace/name`, kept whole for output.
    pub(super) key: Box<str>,
    pub(super) selector: CompiledSelector,
    pub(super) selected: Vec<PodId>,
    pub(super) policy: NetworkPolicy,
}

impl PolicyEntry {
    /// The policy as given.
    #[must_use]
    pub fn policy(&self) -> &NetworkPolicy {
        &self.policy
    }
    /// Its namespace.
    #[must_use]
    pub fn namespace(&self) -> NsId {
        self.ns
    }
    /// Pods its `podSelector` selects (endpoints only), in id order.
    #[must_use]
    pub fn selected(&self) -> &[PodId] {
        &self.selected
    }
}

/// A key as a hash slot holds it: short keys (most `namespace/name` pairs)
/// inline, so comparing one touches no other memory.
#[derive(Debug)]
pub(super) enum SlotKey {
    Inline { len: u8, bytes: [u8; SlotKey::INLINE] },
    Heap(Box<str>),
}

impl SlotKey {
    const INLINE: usize = 38;

    pub(super) fn new(key: &str) -> Self {
        match u8::try_from(key.len()) {
            Ok(len) if key.len() <= Self::INLINE => {
                let mut bytes = [0; Self::INLINE];
                bytes[..key.len()].copy_from_slice(key.as_bytes());
                SlotKey::Inline { len, bytes }
            }
            _ => SlotKey::Heap(key.into()),
        }
    }

    pub(super) fn as_bytes(&self) -> &[u8] {
        match self {
            SlotKey::Inline { len, bytes } => &bytes[..usize::from(*len)],
            SlotKey::Heap(key) => key.as_bytes(),
        }
    }

    pub(super) fn hash(key: &[u8]) -> u64 {
        FxBuildHasher.hash_one(key)
    }
}

pub(super) fn key(namespace: &str, name: &str) -> String {
    let mut k = String::with_capacity(namespace.len() + 1 + name.len());
    k.push_str(namespace);
    k.push('/');
    k.push_str(name);
    k
}
