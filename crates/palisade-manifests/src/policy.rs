//! NetworkPolicy conversion with the API server's validation
//! (`ValidateNetworkPolicySpec`) and policyTypes defaulting.

use std::fmt;

use ipnet::IpNet;
use k8s_openapi::api::networking::v1 as net;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use palisade_policy::validation::check_port_name;
use palisade_policy::{Enforcement, IpBlock, NetworkPolicy, Peer, PortTarget, Protocol, Rule, RulePort};

use crate::error::FieldErrors;
use crate::selector::selector;

/// Parses a protocol field (absent = TCP).
pub fn protocol(value: Option<&String>, field: &dyn fmt::Display, errors: &mut FieldErrors) -> Protocol {
    match value.map(String::as_str) {
        None => Protocol::Tcp,
        Some(p) => Protocol::from_api(p).unwrap_or_else(|| {
            errors.push(
                field.to_string(),
                format!("unsupported value {p:?}: supported values are \"TCP\", \"UDP\", \"SCTP\""),
            );
            Protocol::Tcp
        }),
    }
}

/// Parses a CIDR, normalised to its network address.
fn cidr(s: &str, field: &dyn fmt::Display, errors: &mut FieldErrors) -> Option<IpNet> {
    if let Ok(net) = s.parse::<IpNet>() {
        Some(net.trunc())
    } else {
        errors.push(field.to_string(), format!("{s:?} is not a valid CIDR (for example 10.0.0.0/16 or 2001:db8::/64)"));
        None
    }
}

fn ip_block(block: &net::IPBlock, field: &dyn fmt::Display, errors: &mut FieldErrors) -> Option<IpBlock> {
    let net = cidr(&block.cidr, &format_args!("{field}.cidr"), errors);
    let mut except = Vec::new();
    for (i, e) in block.except.iter().flatten().enumerate() {
        let at = format!("{field}.except[{i}]");
        let Some(e) = cidr(e, &at, errors) else { continue };
        if let Some(net) = net {
            if !net.contains(&e) {
                errors.push(at, format!("{e} is not inside {net}"));
                continue;
            }
            if e.prefix_len() == net.prefix_len() {
                errors.push(at, format!("{e} must be a strict subset of cidr {net}"));
                continue;
            }
        }
        except.push(e);
    }
    net.map(|cidr| IpBlock { cidr, except })
}

fn peer(p: &net::NetworkPolicyPeer, field: &dyn fmt::Display, errors: &mut FieldErrors) -> Option<Peer> {
    let has_selector = p.pod_selector.is_some() || p.namespace_selector.is_some();
    match (&p.ip_block, has_selector) {
        (None, false) => {
            errors.push(field.to_string(), "must specify a peer: podSelector, namespaceSelector or ipBlock");
            None
        }
        (Some(_), true) => {
            errors.push(
                field.to_string(),
                "may not specify both ipBlock and another peer (podSelector/namespaceSelector)",
            );
            None
        }
        (Some(block), false) => ip_block(block, &format_args!("{field}.ipBlock"), errors).map(Peer::IpBlock),
        (None, true) => Some(Peer::Pods {
            namespace_selector: p
                .namespace_selector
                .as_ref()
                .map(|s| selector(s, &format_args!("{field}.namespaceSelector"), errors)),
            pod_selector: p.pod_selector.as_ref().map(|s| selector(s, &format_args!("{field}.podSelector"), errors)),
        }),
    }
}

fn port(p: &net::NetworkPolicyPort, field: &dyn fmt::Display, errors: &mut FieldErrors) -> Option<RulePort> {
    let protocol = protocol(p.protocol.as_ref(), &format_args!("{field}.protocol"), errors);
    let valid_number = |n: i32| u16::try_from(n).ok().filter(|n| *n >= 1);
    let target = match (&p.port, p.end_port) {
        (None, None) => PortTarget::Any,
        (None, Some(_)) => {
            errors.push(format!("{field}.endPort"), "may not be specified when `port` is not specified");
            return None;
        }
        (Some(IntOrString::String(name)), end) => {
            if end.is_some() {
                errors.push(format!("{field}.endPort"), "may not be specified when `port` is a named port");
            }
            errors.check(|| format!("{field}.port"), check_port_name(name).map_err(|e| format!("{name:?}: {e}")));
            PortTarget::Named(name.clone())
        }
        (Some(IntOrString::Int(start)), end) => {
            let Some(start) = valid_number(*start) else {
                errors.push(format!("{field}.port"), format!("{start} must be between 1 and 65535, inclusive"));
                return None;
            };
            let end = match end {
                None => start,
                Some(e) => match valid_number(e) {
                    Some(e) if e >= start => e,
                    Some(e) => {
                        errors.push(
                            format!("{field}.endPort"),
                            format!("{e} must be greater than or equal to `port` ({start})"),
                        );
                        return None;
                    }
                    None => {
                        errors.push(format!("{field}.endPort"), format!("{e} must be between 1 and 65535, inclusive"));
                        return None;
                    }
                },
            };
            PortTarget::Range { start, end }
        }
    };
    Some(RulePort { protocol, target })
}

fn rule(
    peers: Option<&Vec<net::NetworkPolicyPeer>>,
    ports: Option<&Vec<net::NetworkPolicyPort>>,
    field: &dyn fmt::Display,
    peer_list: &str,
    errors: &mut FieldErrors,
) -> Rule {
    Rule {
        peers: peers
            .into_iter()
            .flatten()
            .enumerate()
            .filter_map(|(i, p)| peer(p, &format_args!("{field}.{peer_list}[{i}]"), errors))
            .collect(),
        ports: ports
            .into_iter()
            .flatten()
            .enumerate()
            .filter_map(|(i, p)| port(p, &format_args!("{field}.ports[{i}]"), errors))
            .collect(),
    }
}

/// Converts a NetworkPolicy's spec; `namespace`/`name` come from metadata.
pub fn convert(
    spec: Option<&net::NetworkPolicySpec>,
    namespace: &str,
    name: &str,
    errors: &mut FieldErrors,
) -> NetworkPolicy {
    let default_spec = net::NetworkPolicySpec::default();
    let spec = spec.unwrap_or(&default_spec);
    let pod_selector = spec.pod_selector.as_ref().map(|s| selector(s, &"spec.podSelector", errors)).unwrap_or_default();
    let ingress: Vec<Rule> = spec
        .ingress
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, r)| rule(r.from.as_ref(), r.ports.as_ref(), &format_args!("spec.ingress[{i}]"), "from", errors))
        .collect();
    let egress: Vec<Rule> = spec
        .egress
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, r)| rule(r.to.as_ref(), r.ports.as_ref(), &format_args!("spec.egress[{i}]"), "to", errors))
        .collect();
    let (isolates_ingress, isolates_egress) = match spec.policy_types.as_deref() {
        // Defaulting: Ingress always; Egress when there are egress rules.
        None | Some([]) => (true, !egress.is_empty()),
        Some(types) => {
            if types.len() > 2 {
                errors.push("spec.policyTypes", "may not have more than 2 values");
            }
            let mut seen = (false, false);
            for (i, t) in types.iter().enumerate() {
                let slot = match t.as_str() {
                    "Ingress" => &mut seen.0,
                    "Egress" => &mut seen.1,
                    other => {
                        errors.push(
                            format!("spec.policyTypes[{i}]"),
                            format!("unsupported value {other:?}: supported values are \"Ingress\", \"Egress\""),
                        );
                        continue;
                    }
                };
                if *slot {
                    errors.push(format!("spec.policyTypes[{i}]"), format!("duplicate value {t:?}"));
                }
                *slot = true;
            }
            seen
        }
    };
    NetworkPolicy {
        namespace: namespace.to_string(),
        name: name.to_string(),
        pod_selector,
        isolates_ingress,
        isolates_egress,
        ingress,
        egress,
        enforcement: Enforcement::Enforce,
        log_allowed: false,
    }
}
