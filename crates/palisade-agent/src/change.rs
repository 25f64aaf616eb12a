//! What sources feed the driver: objects, already converted and validated at
//! the edge, as changes keyed by [`ObjectKey`].

use palisade_manifests::ApiObject;
use palisade_policy::{ClusterIndex, Namespace, NetworkPolicy, ObjectKey, ObjectKind, Pod};

/// An object the index holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Object {
    /// A namespace.
    Namespace(Namespace),
    /// A pod.
    Pod(Pod),
    /// A policy.
    Policy(NetworkPolicy),
}

impl Object {
    /// The object's key.
    #[must_use]
    pub fn key(&self) -> ObjectKey {
        match self {
            Object::Namespace(n) => ObjectKey::namespace(&n.name),
            Object::Pod(p) => ObjectKey::pod(&p.namespace, &p.name),
            Object::Policy(p) => ObjectKey::policy(&p.namespace, &p.name),
        }
    }
}

impl From<ApiObject> for Object {
    fn from(object: ApiObject) -> Self {
        match object {
            ApiObject::Namespace(n) => Object::Namespace(n),
            ApiObject::Pod(p) => Object::Pod(p),
            ApiObject::NetworkPolicy(p) => Object::Policy(p),
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
}

impl Change {
    /// The key of the object changed.
    #[must_use]
    pub fn key(&self) -> ObjectKey {
        match self {
            Change::Apply(object) => object.key(),
            Change::Delete(key) => key.clone(),
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
            Change::Delete(key) => match key.kind {
                ObjectKind::Namespace => index.delete_namespace(&key.name),
                ObjectKind::Pod => index.delete_pod(&key.namespace, &key.name),
                ObjectKind::NetworkPolicy => index.delete_policy(&key.namespace, &key.name),
            },
        };
    }
    any
}
