//! One typed key for every object Palisade reads: its kind, namespace and
//! name. Shared by the manifests loader, the agent's sources, the index's
//! change journal and the dataplane compiler, so no layer encodes keys in
//! strings or tuples of its own.

use std::fmt;

/// The kinds of objects Palisade reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ObjectKind {
    /// v1 Namespace (cluster-scoped).
    Namespace,
    /// v1 Pod.
    Pod,
    /// networking.k8s.io/v1 NetworkPolicy.
    NetworkPolicy,
    /// policy.networking.k8s.io/v1alpha2 ClusterNetworkPolicy (cluster-scoped).
    ClusterNetworkPolicy,
    /// policy.networking.k8s.io/v1alpha1 AdminNetworkPolicy (cluster-scoped).
    AdminNetworkPolicy,
    /// policy.networking.k8s.io/v1alpha1 BaselineAdminNetworkPolicy (cluster-scoped).
    BaselineAdminNetworkPolicy,
    /// v1 Node (cluster-scoped).
    Node,
}

impl ObjectKind {
    /// The kind's name, as in manifests.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::Namespace => "Namespace",
            ObjectKind::Pod => "Pod",
            ObjectKind::NetworkPolicy => "NetworkPolicy",
            ObjectKind::ClusterNetworkPolicy => "ClusterNetworkPolicy",
            ObjectKind::AdminNetworkPolicy => "AdminNetworkPolicy",
            ObjectKind::BaselineAdminNetworkPolicy => "BaselineAdminNetworkPolicy",
            ObjectKind::Node => "Node",
        }
    }

    /// Whether objects of the kind live in a namespace.
    #[must_use]
    pub fn namespaced(self) -> bool {
        matches!(self, ObjectKind::Pod | ObjectKind::NetworkPolicy)
    }

    /// The kind of a cluster policy.
    #[must_use]
    pub fn of_cluster_policy(kind: crate::ClusterPolicyKind) -> ObjectKind {
        match kind {
            crate::ClusterPolicyKind::ClusterNetworkPolicy => ObjectKind::ClusterNetworkPolicy,
            crate::ClusterPolicyKind::AdminNetworkPolicy => ObjectKind::AdminNetworkPolicy,
            crate::ClusterPolicyKind::BaselineAdminNetworkPolicy => ObjectKind::BaselineAdminNetworkPolicy,
        }
    }
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An object's identity: kind, namespace (empty for cluster-scoped kinds)
/// and name. Ordered by kind, then namespace, then name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    /// The kind.
    pub kind: ObjectKind,
    /// The namespace; empty for a cluster-scoped kind.
    pub namespace: String,
    /// The name.
    pub name: String,
}

impl ObjectKey {
    /// A key of `kind`; the namespace is dropped for a cluster-scoped kind.
    #[must_use]
    pub fn new(kind: ObjectKind, namespace: &str, name: &str) -> ObjectKey {
        let namespace = if kind.namespaced() { namespace.to_string() } else { String::new() };
        ObjectKey { kind, namespace, name: name.to_string() }
    }

    /// A namespace's key.
    #[must_use]
    pub fn namespace(name: &str) -> ObjectKey {
        ObjectKey::new(ObjectKind::Namespace, "", name)
    }

    /// A pod's key.
    #[must_use]
    pub fn pod(namespace: &str, name: &str) -> ObjectKey {
        ObjectKey::new(ObjectKind::Pod, namespace, name)
    }

    /// A NetworkPolicy's key.
    #[must_use]
    pub fn policy(namespace: &str, name: &str) -> ObjectKey {
        ObjectKey::new(ObjectKind::NetworkPolicy, namespace, name)
    }

    /// A cluster policy's key.
    #[must_use]
    pub fn cluster_policy(kind: crate::ClusterPolicyKind, name: &str) -> ObjectKey {
        ObjectKey::new(ObjectKind::of_cluster_policy(kind), "", name)
    }

    /// A Node's key.
    #[must_use]
    pub fn node(name: &str) -> ObjectKey {
        ObjectKey::new(ObjectKind::Node, "", name)
    }

    /// `namespace/name`, or the name of a cluster-scoped object: how
    /// Kubernetes tools write an object of a known kind.
    #[must_use]
    pub fn path(&self) -> String {
        if self.kind.namespaced() { format!("{}/{}", self.namespace, self.name) } else { self.name.clone() }
    }
}

/// `Kind namespace/name`, e.g. `NetworkPolicy prod/db`.
impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.kind.namespaced() {
            write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
        } else {
            write!(f, "{} {}", self.kind, self.name)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_read_as_kubectl_writes_them() {
        assert_eq!(ObjectKey::policy("prod", "db").to_string(), "NetworkPolicy prod/db");
        assert_eq!(ObjectKey::pod("x", "a").path(), "x/a");
        let ns = ObjectKey::new(ObjectKind::Namespace, "ignored", "x");
        assert_eq!((ns.path(), ns.to_string(), ns.namespace.as_str()), ("x".into(), "Namespace x".into(), ""));
    }

    #[test]
    fn keys_that_would_collide_as_strings_do_not() {
        // "a-b/c" and "a/b-c" are different paths; as tuples they are
        // different keys even where a joined string with another separator
        // would not be.
        assert_ne!(ObjectKey::pod("a-b", "c"), ObjectKey::pod("a", "b-c"));
        assert_ne!(ObjectKey::pod("x", "a"), ObjectKey::policy("x", "a"));
    }
}
