//! The wire shapes of `policy.networking.k8s.io`: ClusterNetworkPolicy
//! (v1alpha2) and AdminNetworkPolicy / BaselineAdminNetworkPolicy
//! (v1alpha1, as frozen at v0.1.7), field for field as the Go types and
//! CRDs define them. Every field is optional here so that a missing one is
//! reported by validation with its path, not as a parse error; a field not
//! listed is an unknown field (reported like any other).

use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use serde::Deserialize;

/// Any of the three kinds: the object around its spec.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Object<Spec> {
    #[expect(dead_code, reason = "read so that it is a known field; the head gives the kind")]
    pub api_version: Option<String>,
    #[expect(dead_code, reason = "read so that it is a known field; the head gives the kind")]
    pub kind: Option<String>,
    pub metadata: Option<meta::ObjectMeta>,
    pub spec: Option<Spec>,
    #[expect(dead_code, reason = "status is the implementation's report, not policy")]
    pub status: Option<serde_json::Value>,
}

/// `namespaceSelector` + `podSelector`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct NamespacedPod {
    pub namespace_selector: Option<meta::LabelSelector>,
    pub pod_selector: Option<meta::LabelSelector>,
}

/// `spec.subject` (both versions).
#[derive(Debug, Deserialize)]
pub(crate) struct Subject {
    pub namespaces: Option<meta::LabelSelector>,
    pub pods: Option<NamespacedPod>,
}

/// An ingress peer (both versions): pods only.
#[derive(Debug, Deserialize)]
pub(crate) struct IngressPeer {
    pub namespaces: Option<meta::LabelSelector>,
    pub pods: Option<NamespacedPod>,
}

/// An egress peer (both versions; BaselineAdminNetworkPolicy has no
/// `domainNames`, which validation refuses there).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EgressPeer {
    pub namespaces: Option<meta::LabelSelector>,
    pub pods: Option<NamespacedPod>,
    pub nodes: Option<meta::LabelSelector>,
    pub networks: Option<Vec<String>>,
    pub domain_names: Option<Vec<String>>,
}

/// v1alpha2 `spec`.
#[derive(Debug, Deserialize)]
pub(crate) struct CnpSpec {
    pub tier: Option<String>,
    pub priority: Option<i64>,
    pub subject: Option<Subject>,
    pub ingress: Option<Vec<CnpRule<IngressPeer>>>,
    pub egress: Option<Vec<CnpRule<EgressPeer>>>,
}

/// A v1alpha2 rule: `from` in an ingress rule, `to` in an egress rule
/// (validation refuses the other one).
#[derive(Debug, Deserialize)]
pub(crate) struct CnpRule<Peer> {
    pub name: Option<String>,
    pub action: Option<String>,
    pub from: Option<Vec<Peer>>,
    pub to: Option<Vec<Peer>>,
    pub protocols: Option<Vec<CnpProtocol>>,
}

/// A v1alpha2 `protocols` entry.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CnpProtocol {
    pub tcp: Option<CnpProtocolPort>,
    pub udp: Option<CnpProtocolPort>,
    pub sctp: Option<CnpProtocolPort>,
    pub destination_named_port: Option<String>,
}

/// `tcp`/`udp`/`sctp`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CnpProtocolPort {
    pub destination_port: Option<CnpPort>,
}

/// `destinationPort`: a number or a range.
#[derive(Debug, Deserialize)]
pub(crate) struct CnpPort {
    pub number: Option<i64>,
    pub range: Option<CnpRange>,
}

/// A v1alpha2 `range`.
#[derive(Debug, Deserialize)]
pub(crate) struct CnpRange {
    pub start: Option<i64>,
    pub end: Option<i64>,
}

/// A v1alpha1 `portRange`.
#[derive(Debug, Deserialize)]
pub(crate) struct PortRange {
    pub protocol: Option<String>,
    pub start: Option<i64>,
    pub end: Option<i64>,
}

/// v1alpha1 AdminNetworkPolicy / BaselineAdminNetworkPolicy `spec`
/// (the baseline kind has no `priority`, which validation refuses there).
#[derive(Debug, Deserialize)]
pub(crate) struct AnpSpec {
    pub priority: Option<i64>,
    pub subject: Option<Subject>,
    pub ingress: Option<Vec<AnpRule<IngressPeer>>>,
    pub egress: Option<Vec<AnpRule<EgressPeer>>>,
}

/// A v1alpha1 rule.
#[derive(Debug, Deserialize)]
pub(crate) struct AnpRule<Peer> {
    pub name: Option<String>,
    pub action: Option<String>,
    pub from: Option<Vec<Peer>>,
    pub to: Option<Vec<Peer>>,
    pub ports: Option<Vec<AnpPort>>,
}

/// A v1alpha1 `ports` entry.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AnpPort {
    pub port_number: Option<AnpPortNumber>,
    pub named_port: Option<String>,
    pub port_range: Option<PortRange>,
}

/// v1alpha1 `portNumber`.
#[derive(Debug, Deserialize)]
pub(crate) struct AnpPortNumber {
    pub protocol: Option<String>,
    pub port: Option<i64>,
}
