//! What sources feed the driver: objects, already converted and validated at
//! the edge, as changes keyed by [`ObjectKey`].

use std::collections::BTreeSet;

use palisade_manifests::ApiObject;
use palisade_policy::{ClusterIndex, ClusterPolicy, Namespace, NetworkPolicy, Node, ObjectKey, ObjectKind, Pod};

/// An object the index holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Object {
    /// A namespace.
    Namespace(Namespace),
    /// A pod.
    Pod(Pod),
    /// A policy.
    Policy(NetworkPolicy),
    /// A cluster policy (any of the three kinds).
    ClusterPolicy(ClusterPolicy),
    /// A Node.
    Node(Node),
}

impl Object {
    /// The object's key.
    #[must_use]
    pub fn key(&self) -> ObjectKey {
        match self {
            Object::Namespace(n) => ObjectKey::namespace(&n.name),
            Object::Pod(p) => ObjectKey::pod(&p.namespace, &p.name),
            Object::Policy(p) => ObjectKey::policy(&p.namespace, &p.name),
            Object::ClusterPolicy(p) => ObjectKey::cluster_policy(p.kind, &p.name),
            Object::Node(n) => ObjectKey::node(&n.name),
        }
    }
}

/// Takes the objects out of what the manifests loader read, namespaces
/// first (its errors stay where they are).
pub fn take_loaded(loaded: &mut palisade_manifests::Loaded) -> impl Iterator<Item = Object> + use<> {
    let namespaces = std::mem::take(&mut loaded.namespaces).into_iter().map(Object::Namespace);
    let nodes = std::mem::take(&mut loaded.nodes).into_iter().map(Object::Node);
    let pods = std::mem::take(&mut loaded.pods).into_iter().map(Object::Pod);
    let policies = std::mem::take(&mut loaded.policies).into_iter().map(Object::Policy);
    let cluster = std::mem::take(&mut loaded.cluster_policies).into_iter().map(Object::ClusterPolicy);
    namespaces.chain(nodes).chain(pods).chain(policies).chain(cluster)
}

impl From<ApiObject> for Object {
    fn from(object: ApiObject) -> Self {
        match object {
            ApiObject::Namespace(n) => Object::Namespace(n),
            ApiObject::Pod(p) => Object::Pod(p),
            ApiObject::NetworkPolicy(p) => Object::Policy(p),
            ApiObject::ClusterPolicy(p) => Object::ClusterPolicy(p),
            ApiObject::Node(n) => Object::Node(n),
        }
    }
}

/// One change to apply to the index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// Add or replace an object.
    Apply(Object),
    /// Remove the object with this key.
    Delete(ObjectKey),
    /// A complete list of one kind: remove every object of the kind that
    /// is not listed (declared namespaces only: implicit ones go with
    /// their last object).
    Relisted(ObjectKind, BTreeSet<ObjectKey>),
}

impl Change {
    /// The kind of the objects changed.
    #[must_use]
    pub fn kind(&self) -> ObjectKind {
        match self {
            Change::Apply(Object::Namespace(_)) => ObjectKind::Namespace,
            Change::Apply(Object::Pod(_)) => ObjectKind::Pod,
            Change::Apply(Object::Policy(_)) => ObjectKind::NetworkPolicy,
            Change::Apply(Object::ClusterPolicy(p)) => ObjectKind::of_cluster_policy(p.kind),
            Change::Apply(Object::Node(_)) => ObjectKind::Node,
            Change::Delete(key) => key.kind,
            Change::Relisted(kind, _) => *kind,
        }
    }
}

/// Applies `changes` to `index`; returns whether anything changed.
pub fn apply_changes(index: &mut ClusterIndex, changes: Vec<Change>) -> bool {
    let mut any = false;
    for change in changes {
        any |= match change {
            Change::Apply(Object::Namespace(n)) => index.apply_namespace(n),
            Change::Apply(Object::Pod(p)) => index.apply_pod(p),
            Change::Apply(Object::Policy(p)) => index.apply_policy(p),
            Change::Apply(Object::ClusterPolicy(p)) => index.apply_cluster_policy(p),
            Change::Apply(Object::Node(n)) => index.apply_node(n),
            Change::Delete(key) => delete(index, &key),
            Change::Relisted(kind, listed) => keys(index, kind)
                .into_iter()
                .filter(|k| !listed.contains(k))
                .fold(false, |deleted, key| delete(index, &key) | deleted),
        };
    }
    any
}

fn delete(index: &mut ClusterIndex, key: &ObjectKey) -> bool {
    match key.kind {
        ObjectKind::Namespace => index.delete_namespace(&key.name),
        ObjectKind::Pod => index.delete_pod(&key.namespace, &key.name),
        ObjectKind::NetworkPolicy => index.delete_policy(&key.namespace, &key.name),
        ObjectKind::ClusterNetworkPolicy | ObjectKind::AdminNetworkPolicy | ObjectKind::BaselineAdminNetworkPolicy => {
            index.delete_cluster_policy(key)
        }
        ObjectKind::Node => index.delete_node(&key.name),
    }
}

/// Keys of `kind` in the index (declared namespaces only).
fn keys(index: &ClusterIndex, kind: ObjectKind) -> Vec<ObjectKey> {
    match kind {
        ObjectKind::Namespace => index
            .namespace_ids()
            .filter(|id| index.namespace(*id).declared())
            .map(|id| ObjectKey::namespace(index.namespace(id).name()))
            .collect(),
        ObjectKind::Pod => index.pods_sorted().into_iter().map(|id| index.pod_key(id)).collect(),
        ObjectKind::NetworkPolicy => index.policies_sorted().into_iter().map(|id| index.policy_key(id)).collect(),
        ObjectKind::ClusterNetworkPolicy | ObjectKind::AdminNetworkPolicy | ObjectKind::BaselineAdminNetworkPolicy => {
            index
                .cluster_policies()
                .iter()
                .map(|id| index.cluster_policy_key(*id))
                .filter(|key| key.kind == kind)
                .collect()
        }
        ObjectKind::Node => index.nodes().map(|n| ObjectKey::node(&n.name)).collect(),
    }
}
