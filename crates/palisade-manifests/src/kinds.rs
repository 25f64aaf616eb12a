//! API groups, and the kinds of other projects that change connectivity.

/// An `apiVersion` split into group and version (`v1` is the core group,
/// named "").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Group<'a> {
    pub name: &'a str,
    pub version: &'a str,
}

impl<'a> Group<'a> {
    pub(crate) fn of(api_version: &'a str) -> Self {
        match api_version.rsplit_once('/') {
            Some((name, version)) => Group { name, version },
            None => Group { name: "", version: api_version },
        }
    }
}

/// Policy kinds that other implementations enforce and Palisade does not
/// read, by API group: an input that holds one describes a cluster whose
/// connectivity Palisade's verdicts may not show. (`NetworkPolicy` of
/// `networking.k8s.io` is read; the same kind name in another group is one
/// of these; so are ClusterNetworkPolicy, AdminNetworkPolicy and
/// BaselineAdminNetworkPolicy of `policy.networking.k8s.io`, and the same
/// names in another group are not.) Kinds that only name addresses for policies to use, and
/// staged (audit-only) policies, change nothing on their own and are not
/// listed.
pub const IGNORED_POLICY_KINDS: &[(&str, &[&str])] = &[
    ("cilium.io", &["CiliumNetworkPolicy", "CiliumClusterwideNetworkPolicy"]),
    ("projectcalico.org", &["NetworkPolicy", "GlobalNetworkPolicy"]),
    ("crd.projectcalico.org", &["NetworkPolicy", "GlobalNetworkPolicy"]),
    ("crd.antrea.io", &["NetworkPolicy", "ClusterNetworkPolicy"]),
    ("security.istio.io", &["AuthorizationPolicy"]),
    ("networking.gke.io", &["FQDNNetworkPolicy"]),
    ("k8s.ovn.org", &["EgressFirewall"]),
    ("network.openshift.io", &["EgressNetworkPolicy"]),
];

/// Of [`IGNORED_POLICY_KINDS`], those whose objects can select pods of
/// every namespace (cluster-scoped kinds, and Istio's policies, which apply
/// mesh-wide from its root namespace).
const CLUSTER_WIDE: &[&str] =
    &["ClusterNetworkPolicy", "CiliumClusterwideNetworkPolicy", "GlobalNetworkPolicy", "AuthorizationPolicy"];

/// Whether `kind` of API group `group` is a policy kind Palisade does not
/// enforce (see [`IGNORED_POLICY_KINDS`]).
#[must_use]
pub fn ignored_policy_kind(group: &str, kind: &str) -> bool {
    IGNORED_POLICY_KINDS.iter().any(|(g, kinds)| *g == group && kinds.contains(&kind))
}

/// A policy of a kind Palisade does not evaluate, found in the input.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct IgnoredPolicy {
    /// `Kind (group)`.
    pub kind: String,
    /// The namespace whose pods it can select; `None` when it can select
    /// pods of any namespace (a cluster-scoped kind, or no namespace given).
    pub namespace: Option<String>,
    /// `metadata.name`.
    pub name: String,
}

impl IgnoredPolicy {
    pub(crate) fn new(group: &str, kind: &str, namespace: Option<&str>, name: &str) -> Self {
        let namespace = if CLUSTER_WIDE.contains(&kind) { None } else { namespace.map(str::to_string) };
        IgnoredPolicy { kind: format!("{kind} ({group})"), namespace, name: name.to_string() }
    }

    /// Whether it could change the verdict of a connection between pods of
    /// these namespaces (`None`: an address outside the cluster).
    #[must_use]
    pub fn could_affect(&self, from: Option<&str>, to: Option<&str>) -> bool {
        match &self.namespace {
            None => true,
            Some(ns) => from == Some(ns.as_str()) || to == Some(ns.as_str()),
        }
    }

    /// `Kind (group) namespace/name` or `Kind (group) name`.
    #[must_use]
    pub fn label(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{} {ns}/{}", self.kind, self.name),
            None => format!("{} {}", self.kind, self.name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_and_policy_kinds() {
        assert_eq!(Group::of("v1"), Group { name: "", version: "v1" });
        assert_eq!(Group::of("networking.k8s.io/v1"), Group { name: "networking.k8s.io", version: "v1" });
        assert!(ignored_policy_kind("projectcalico.org", "NetworkPolicy"));
        assert!(!ignored_policy_kind("networking.k8s.io", "NetworkPolicy"), "read, not ignored");
        assert!(!ignored_policy_kind("policy.networking.k8s.io", "BaselineAdminNetworkPolicy"), "read, not ignored");
        assert!(ignored_policy_kind("crd.antrea.io", "ClusterNetworkPolicy"), "another vendor's kind of that name");
        assert!(!ignored_policy_kind("", "Service"));
        let calico = IgnoredPolicy::new("projectcalico.org", "NetworkPolicy", Some("shop"), "deny");
        assert!(calico.could_affect(Some("shop"), None) && calico.could_affect(None, Some("shop")));
        assert!(!calico.could_affect(Some("other"), Some("other")));
        let acnp = IgnoredPolicy::new("crd.antrea.io", "ClusterNetworkPolicy", Some("x"), "a");
        assert_eq!(acnp.namespace, None, "cluster-scoped whatever the manifest says");
        assert!(acnp.could_affect(None, None));
    }
}
