//! ClusterNetworkPolicy (v1alpha2), AdminNetworkPolicy and
//! BaselineAdminNetworkPolicy (v1alpha1) conversion, with the validation
//! their CRDs state (OpenAPI schema and CEL rules), and Nodes.
//!
//! Limits and checks, from `apis/v1alpha2/clusternetworkpolicy_types.go`
//! and the v0.1.7 v1alpha1 types:
//! - `spec.tier` Admin or Baseline (v1alpha2); `spec.priority` 0–1000
//!   (v1alpha2 and AdminNetworkPolicy; BaselineAdminNetworkPolicy has none
//!   and must be named `default`);
//! - `spec.subject`: exactly one of `namespaces`, `pods`;
//! - at most 25 rules per direction (v1alpha1: 100), 1–25 peers per rule
//!   (v1alpha1: 1–100), 1–25 ports (v1alpha1: 1–100), 1–25 networks and
//!   domain names per peer, each listed once;
//! - a peer sets exactly one field; ingress peers are pods only;
//! - a port sets exactly one field; numbers 1–65535; a v1alpha2 range has
//!   start < end (CEL); a v1alpha1 range must not end before it starts
//!   (its documentation; the CRD does not check it, Palisade refuses it);
//! - a named port cannot go with a networks, nodes or domainNames peer (CEL);
//! - a rule name is at most 100 characters; a network at most 43.

mod api;
mod ports;

use std::collections::BTreeSet;
use std::fmt;

use k8s_openapi::api::core::v1 as core;
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use palisade_policy::{
    Action, ClusterPeer, ClusterPolicy, ClusterPolicyKind, ClusterPort, ClusterRule, LabelSelector, Node, Subject, Tier,
};

pub(crate) use api::{AnpSpec, CnpSpec, Object};

use crate::error::FieldErrors;
use crate::selector::{labels, selector};

/// The list limits of an API version.
#[derive(Clone, Copy)]
struct Limits {
    rules: usize,
    peers: usize,
    ports: usize,
}

const V1ALPHA2: Limits = Limits { rules: 25, peers: 25, ports: 25 };
const V1ALPHA1: Limits = Limits { rules: 100, peers: 100, ports: 100 };
/// Networks and domain names per peer, in both versions.
const MAX_ADDRESSES: usize = 25;
const MAX_RULE_NAME: usize = 100;
const MAX_CIDR_LENGTH: usize = 43;

/// Converts a ClusterNetworkPolicy.
pub(crate) fn cluster_network_policy(spec: Option<&CnpSpec>, name: &str, errors: &mut FieldErrors) -> ClusterPolicy {
    let kind = ClusterPolicyKind::ClusterNetworkPolicy;
    let Some(spec) = spec else {
        errors.push("spec", "required");
        return empty(kind, name, Tier::Admin, None);
    };
    let tier = match spec.tier.as_deref() {
        Some("Admin") => Tier::Admin,
        Some("Baseline") => Tier::Baseline,
        Some(other) => {
            errors.push(
                "spec.tier",
                format!("unsupported value {other:?}: supported values are \"Admin\", \"Baseline\""),
            );
            Tier::Admin
        }
        None => {
            errors.push("spec.tier", "required");
            Tier::Admin
        }
    };
    let priority = priority(spec.priority, errors);
    let subject = subject(spec.subject.as_ref(), kind, errors);
    let ingress = rules(spec.ingress.as_deref(), Side::Ingress, kind, errors, ingress_peer);
    let egress = rules(spec.egress.as_deref(), Side::Egress, kind, errors, egress_peer);
    ClusterPolicy { kind, name: name.to_string(), tier, priority: Some(priority), subject, ingress, egress }
}

/// Converts an AdminNetworkPolicy (`baseline` false) or a
/// BaselineAdminNetworkPolicy (`baseline` true).
pub(crate) fn admin_network_policy(
    spec: Option<&AnpSpec>,
    name: &str,
    baseline: bool,
    errors: &mut FieldErrors,
) -> ClusterPolicy {
    let (kind, tier) = if baseline {
        (ClusterPolicyKind::BaselineAdminNetworkPolicy, Tier::Baseline)
    } else {
        (ClusterPolicyKind::AdminNetworkPolicy, Tier::Admin)
    };
    if baseline && name != "default" {
        errors.push(
            "metadata.name",
            "Only one baseline admin network policy with metadata.name=\"default\" can be created in the cluster",
        );
    }
    let Some(spec) = spec else {
        errors.push("spec", "required");
        return empty(kind, name, tier, None);
    };
    let priority = match (baseline, spec.priority) {
        (true, Some(_)) => {
            errors.push("spec.priority", "BaselineAdminNetworkPolicy has no priority");
            None
        }
        (true, None) => None,
        (false, p) => Some(priority(p, errors)),
    };
    let subject = subject(spec.subject.as_ref(), kind, errors);
    let ingress = rules(spec.ingress.as_deref(), Side::Ingress, kind, errors, ingress_peer);
    let egress = rules(spec.egress.as_deref(), Side::Egress, kind, errors, egress_peer);
    ClusterPolicy { kind, name: name.to_string(), tier, priority, subject, ingress, egress }
}

/// Converts a Node: its labels and the IP addresses of `status.addresses`.
pub(crate) fn node(node: &core::Node, name: &str, errors: &mut FieldErrors) -> Node {
    let labels = labels(node.metadata.labels.as_ref(), &"metadata.labels", errors);
    let addresses =
        node.status.iter().flat_map(|s| s.addresses.iter().flatten()).filter_map(|a| a.address.parse().ok()).collect();
    Node { name: name.to_string(), labels, addresses }
}

fn empty(kind: ClusterPolicyKind, name: &str, tier: Tier, priority: Option<u32>) -> ClusterPolicy {
    ClusterPolicy {
        kind,
        name: name.to_string(),
        tier,
        priority,
        subject: Subject::Namespaces(LabelSelector::default()),
        ingress: Vec::new(),
        egress: Vec::new(),
    }
}

fn priority(value: Option<i64>, errors: &mut FieldErrors) -> u32 {
    match value {
        None => {
            errors.push("spec.priority", "required");
            0
        }
        Some(p) => u32::try_from(p).ok().filter(|p| *p <= 1000).unwrap_or_else(|| {
            errors.push("spec.priority", format!("{p} must be between 0 and 1000, inclusive"));
            0
        }),
    }
}

fn subject(value: Option<&api::Subject>, kind: ClusterPolicyKind, errors: &mut FieldErrors) -> Subject {
    let fallback = Subject::Namespaces(LabelSelector::default());
    let Some(s) = value else {
        errors.push("spec.subject", "required");
        return fallback;
    };
    match (&s.namespaces, &s.pods) {
        (Some(ns), None) => Subject::Namespaces(selector(ns, &"spec.subject.namespaces", errors)),
        (None, Some(pods)) => {
            let (namespaces, pods) = namespaced_pod(pods, kind, &"spec.subject.pods", errors);
            Subject::Pods { namespaces, pods }
        }
        (None, None) => {
            errors.push("spec.subject", "must set exactly one of namespaces, pods");
            fallback
        }
        (Some(_), Some(_)) => {
            errors.push("spec.subject", "may set only one of namespaces, pods");
            fallback
        }
    }
}

/// `namespaceSelector` (optional in v1alpha2, required in v1alpha1) and
/// `podSelector` (required).
fn namespaced_pod(
    pods: &api::NamespacedPod,
    kind: ClusterPolicyKind,
    field: &dyn fmt::Display,
    errors: &mut FieldErrors,
) -> (LabelSelector, LabelSelector) {
    let namespaces = if let Some(s) = &pods.namespace_selector {
        selector(s, &format_args!("{field}.namespaceSelector"), errors)
    } else {
        if kind != ClusterPolicyKind::ClusterNetworkPolicy {
            errors.push(format!("{field}.namespaceSelector"), "required");
        }
        LabelSelector::default()
    };
    let pods = if let Some(s) = &pods.pod_selector {
        selector(s, &format_args!("{field}.podSelector"), errors)
    } else {
        errors.push(format!("{field}.podSelector"), "required");
        LabelSelector::default()
    };
    (namespaces, pods)
}

/// Ingress or egress, as validation sees a rule list.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Ingress,
    Egress,
}

impl Side {
    fn list(self) -> &'static str {
        match self {
            Side::Ingress => "ingress",
            Side::Egress => "egress",
        }
    }
    fn peers(self) -> (&'static str, &'static str) {
        match self {
            Side::Ingress => ("from", "to"),
            Side::Egress => ("to", "from"),
        }
    }
}

fn limits(kind: ClusterPolicyKind) -> Limits {
    if kind == ClusterPolicyKind::ClusterNetworkPolicy { V1ALPHA2 } else { V1ALPHA1 }
}

/// A rule as either API version writes it: the fields both have, and its
/// ports (v1alpha2 `protocols`, v1alpha1 `ports`).
trait ApiRule {
    type Peer;
    fn fields(&self) -> RuleFields<'_, Self::Peer>;
    fn ports(&self, field: &str, errors: &mut FieldErrors) -> Option<Vec<ClusterPort>>;
}

impl<P> ApiRule for api::CnpRule<P> {
    type Peer = P;
    fn fields(&self) -> RuleFields<'_, P> {
        (&self.name, &self.action, &self.from, &self.to)
    }
    fn ports(&self, field: &str, errors: &mut FieldErrors) -> Option<Vec<ClusterPort>> {
        ports::v1alpha2(self.protocols.as_deref(), field, errors)
    }
}

impl<P> ApiRule for api::AnpRule<P> {
    type Peer = P;
    fn fields(&self) -> RuleFields<'_, P> {
        (&self.name, &self.action, &self.from, &self.to)
    }
    fn ports(&self, field: &str, errors: &mut FieldErrors) -> Option<Vec<ClusterPort>> {
        ports::v1alpha1(self.ports.as_deref(), field, errors)
    }
}

/// Converts a rule list, checking its length; `peer` converts one peer of
/// the side. A rule that does not convert is left out (its errors reject
/// the object).
fn rules<R: ApiRule>(
    list: Option<&[R]>,
    side: Side,
    kind: ClusterPolicyKind,
    errors: &mut FieldErrors,
    peer: fn(&R::Peer, ClusterPolicyKind, &str, &mut FieldErrors) -> Option<ClusterPeer>,
) -> Vec<ClusterRule> {
    let list = list.unwrap_or_default();
    let max = limits(kind).rules;
    if list.len() > max {
        errors.push(format!("spec.{}", side.list()), format!("must have at most {max} items, has {}", list.len()));
    }
    list.iter()
        .enumerate()
        .filter_map(|(i, r)| {
            let field = format!("spec.{}[{i}]", side.list());
            let ports = r.ports(&field, errors);
            rule(kind, side, r.fields(), ports, &field, errors, peer)
        })
        .collect()
}

/// The fields every rule has: name, action, and the peer list of its side
/// (`from` or `to`; the other one is refused).
type RuleFields<'a, P> = (&'a Option<String>, &'a Option<String>, &'a Option<Vec<P>>, &'a Option<Vec<P>>);

/// Converts one rule; `ports` are already converted (`None`: none listed).
fn rule<P>(
    kind: ClusterPolicyKind,
    side: Side,
    (name, action_value, from, to): RuleFields<'_, P>,
    ports: Option<Vec<ClusterPort>>,
    field: &str,
    errors: &mut FieldErrors,
    peer: fn(&P, ClusterPolicyKind, &str, &mut FieldErrors) -> Option<ClusterPeer>,
) -> Option<ClusterRule> {
    if let Some(name) = name
        && name.chars().count() > MAX_RULE_NAME
    {
        errors.push(format!("{field}.name"), format!("may not be longer than {MAX_RULE_NAME} characters"));
    }
    let action = action(kind, action_value.as_deref(), field, errors);
    let (list_name, other_name) = side.peers();
    let (list, other) = if side == Side::Ingress { (from, to) } else { (to, from) };
    if other.is_some() {
        errors.push(format!("{field}.{other_name}"), format!("not a field of an {} rule", side.list()));
    }
    let Some(list) = list else {
        errors.push(format!("{field}.{list_name}"), "required");
        return None;
    };
    let max = limits(kind).peers;
    if list.is_empty() || list.len() > max {
        errors.push(format!("{field}.{list_name}"), format!("must have between 1 and {max} items, has {}", list.len()));
    }
    let peers: Vec<ClusterPeer> = list
        .iter()
        .enumerate()
        .filter_map(|(i, p)| peer(p, kind, &format!("{field}.{list_name}[{i}]"), errors))
        .collect();
    let named = ports.iter().flatten().any(|p| matches!(p, ClusterPort::Named(_)));
    let addresses = peers
        .iter()
        .any(|p| matches!(p, ClusterPeer::Networks(_) | ClusterPeer::Nodes(_) | ClusterPeer::DomainNames(_)));
    if named && addresses {
        errors.push(
            field.to_string(),
            "networks/nodes/domainNames peer cannot be set with namedPorts since there are no namedPorts for \
             networks/nodes/domainNames",
        );
    }
    Some(ClusterRule { name: name.clone().filter(|n| !n.is_empty()), action: action?, peers, ports })
}

fn action(kind: ClusterPolicyKind, value: Option<&str>, field: &str, errors: &mut FieldErrors) -> Option<Action> {
    let allowed: &[(&str, Action)] = match kind {
        ClusterPolicyKind::ClusterNetworkPolicy => {
            &[("Accept", Action::Accept), ("Deny", Action::Deny), ("Pass", Action::Pass)]
        }
        ClusterPolicyKind::AdminNetworkPolicy => {
            &[("Allow", Action::Accept), ("Deny", Action::Deny), ("Pass", Action::Pass)]
        }
        ClusterPolicyKind::BaselineAdminNetworkPolicy => &[("Allow", Action::Accept), ("Deny", Action::Deny)],
    };
    let Some(value) = value else {
        errors.push(format!("{field}.action"), "required");
        return None;
    };
    let found = allowed.iter().find(|(word, _)| *word == value).map(|(_, a)| *a);
    if found.is_none() {
        let words: Vec<String> = allowed.iter().map(|(w, _)| format!("{w:?}")).collect();
        errors.push(
            format!("{field}.action"),
            format!("unsupported value {value:?}: supported values are {}", words.join(", ")),
        );
    }
    found
}

fn ingress_peer(
    p: &api::IngressPeer,
    kind: ClusterPolicyKind,
    field: &str,
    errors: &mut FieldErrors,
) -> Option<ClusterPeer> {
    let set = usize::from(p.namespaces.is_some()) + usize::from(p.pods.is_some());
    if set != 1 {
        errors.push(field.to_string(), "must set exactly one of namespaces, pods");
        return None;
    }
    pod_peer(p.namespaces.as_ref(), p.pods.as_ref(), kind, field, errors)
}

fn pod_peer(
    namespaces: Option<&meta::LabelSelector>,
    pods: Option<&api::NamespacedPod>,
    kind: ClusterPolicyKind,
    field: &str,
    errors: &mut FieldErrors,
) -> Option<ClusterPeer> {
    if let Some(ns) = namespaces {
        return Some(ClusterPeer::Namespaces(selector(ns, &format_args!("{field}.namespaces"), errors)));
    }
    let (namespaces, pods) = namespaced_pod(pods?, kind, &format_args!("{field}.pods"), errors);
    Some(ClusterPeer::Pods { namespaces, pods })
}

fn egress_peer(
    p: &api::EgressPeer,
    kind: ClusterPolicyKind,
    field: &str,
    errors: &mut FieldErrors,
) -> Option<ClusterPeer> {
    if p.domain_names.is_some() && kind == ClusterPolicyKind::BaselineAdminNetworkPolicy {
        errors.push(format!("{field}.domainNames"), "not a field of a BaselineAdminNetworkPolicy peer");
        return None;
    }
    let set =
        [p.namespaces.is_some(), p.pods.is_some(), p.nodes.is_some(), p.networks.is_some(), p.domain_names.is_some()]
            .into_iter()
            .filter(|s| *s)
            .count();
    if set != 1 {
        errors.push(field.to_string(), "must set exactly one of namespaces, pods, nodes, networks, domainNames");
        return None;
    }
    if let Some(nodes) = &p.nodes {
        return Some(ClusterPeer::Nodes(selector(nodes, &format_args!("{field}.nodes"), errors)));
    }
    if let Some(networks) = &p.networks {
        let field = format!("{field}.networks");
        check_set(networks, &field, errors);
        let nets = networks
            .iter()
            .enumerate()
            .filter_map(|(i, n)| {
                if n.len() > MAX_CIDR_LENGTH {
                    errors
                        .push(format!("{field}[{i}]"), format!("may not be longer than {MAX_CIDR_LENGTH} characters"));
                }
                n.parse::<ipnet::IpNet>().map(|n| n.trunc()).ok().or_else(|| {
                    errors.push(format!("{field}[{i}]"), format!("Invalid CIDR format provided: {n:?}"));
                    None
                })
            })
            .collect();
        return Some(ClusterPeer::Networks(nets));
    }
    if let Some(names) = &p.domain_names {
        let field = format!("{field}.domainNames");
        check_set(names, &field, errors);
        for (i, name) in names.iter().enumerate() {
            if !is_domain_name(name) {
                errors.push(
                    format!("{field}[{i}]"),
                    format!("{name:?} is not a domain name (labels of letters, digits, '-' and '_', optionally led by \"*.\")"),
                );
            }
        }
        return Some(ClusterPeer::DomainNames(names.clone()));
    }
    pod_peer(p.namespaces.as_ref(), p.pods.as_ref(), kind, field, errors)
}

/// A `listType=set` of 1–25 items: non-empty, bounded, each listed once.
fn check_set(items: &[String], field: &str, errors: &mut FieldErrors) {
    if items.is_empty() || items.len() > MAX_ADDRESSES {
        errors.push(field.to_string(), format!("must have between 1 and {MAX_ADDRESSES} items, has {}", items.len()));
    }
    let mut seen = BTreeSet::new();
    for (i, item) in items.iter().enumerate() {
        if !seen.insert(item) {
            errors.push(format!("{field}[{i}]"), format!("duplicate value {item:?}"));
        }
    }
}

/// The CRD's domain name pattern:
/// `^(\*\.)?([a-zA-Z0-9]([-a-zA-Z0-9_]*[a-zA-Z0-9])?\.)+[a-zA-Z0-9]([-a-zA-Z0-9_]*[a-zA-Z0-9])?\.?$`
/// (at least two labels, an optional leading `*.` and trailing dot).
fn is_domain_name(name: &str) -> bool {
    let name = name.strip_prefix("*.").unwrap_or(name);
    let name = name.strip_suffix('.').unwrap_or(name);
    let labels: Vec<&str> = name.split('.').collect();
    let label_ok = |l: &str| {
        let b = l.as_bytes();
        !b.is_empty()
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'_')
    };
    labels.len() >= 2 && labels.into_iter().all(label_ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_names_as_the_crd_pattern_reads_them() {
        for good in ["kubernetes.io", "*.kubernetes.io", "blog.kubernetes.io.", "a_b.example.com", "x1.io"] {
            assert!(is_domain_name(good), "{good}");
        }
        for bad in ["kubernetes", "*.io", "-a.io", "a-.io", "a..io", "www.*.io", "*", "a b.io", ""] {
            assert!(!is_domain_name(bad), "{bad}");
        }
    }
}
