//! Pods, workload templates and namespaces.

use std::net::IpAddr;

use k8s_openapi::api::core::v1 as core;
use palisade_policy::validation::check_port_name;
use palisade_policy::{ContainerPort, Labels, Pod, PodState, Protocol};

use crate::error::FieldErrors;
use crate::policy::protocol;
use crate::selector::{labels, owned_labels};

/// Declared container ports of a pod spec (containers and init containers,
/// whose restartable sidecars serve too), validated, at `field`.
fn ports(spec: &core::PodSpec, field: &str, errors: &mut FieldErrors) -> Vec<ContainerPort> {
    let mut out = Vec::new();
    let lists = [("containers", Some(&spec.containers)), ("initContainers", spec.init_containers.as_ref())];
    for (list, containers) in lists {
        for (c, container) in containers.into_iter().flatten().enumerate() {
            for (p, port) in container.ports.iter().flatten().enumerate() {
                // Field paths are written only for an error (most pods have none).
                let at = |leaf: &str| format!("{field}.{list}[{c}].ports[{p}].{leaf}");
                let Some(number) = u16::try_from(port.container_port).ok().filter(|n| *n >= 1) else {
                    errors.push(
                        at("containerPort"),
                        format!("{} must be between 1 and 65535, inclusive", port.container_port),
                    );
                    continue;
                };
                if let Some(name) = &port.name {
                    errors.check(|| at("name"), check_port_name(name).map_err(|e| format!("{name:?}: {e}")));
                }
                let protocol = match port.protocol.as_deref() {
                    None | Some("TCP") => Protocol::Tcp,
                    Some(_) => protocol(port.protocol.as_ref(), &at("protocol"), errors),
                };
                out.push(ContainerPort { name: port.name.clone(), port: number, protocol });
            }
        }
    }
    out
}

fn addresses(status: &core::PodStatus, errors: &mut FieldErrors) -> Vec<IpAddr> {
    let mut ips = Vec::new();
    // (index in status.podIPs, or None for status.podIP; the address text)
    let listed: Vec<(Option<usize>, &str)> = match &status.pod_ips {
        Some(list) if !list.is_empty() => list.iter().enumerate().map(|(i, ip)| (Some(i), ip.ip.as_str())).collect(),
        _ => status.pod_ip.iter().map(|ip| (None, ip.as_str())).collect(),
    };
    for (at, text) in listed {
        match text.parse::<IpAddr>() {
            Ok(ip) if !ips.contains(&ip) => ips.push(ip),
            Ok(_) => {}
            Err(_) => {
                let field = at.map_or_else(|| "status.podIP".to_string(), |i| format!("status.podIPs[{i}].ip"));
                errors.push(field, format!("{text:?} is not a valid IP address"));
            }
        }
    }
    ips
}

pub use palisade_policy::HOST_NETWORK;

/// Converts a Pod.
pub fn pod(mut p: core::Pod, namespace: &str, name: &str, errors: &mut FieldErrors) -> Pod {
    let labels = owned_labels(p.metadata.labels.take().unwrap_or_default(), &"metadata.labels", errors);
    let default_spec = core::PodSpec::default();
    let spec = p.spec.as_ref().unwrap_or(&default_spec);
    let ports = ports(spec, "spec", errors);
    let ips = p.status.as_ref().map(|s| addresses(s, errors)).unwrap_or_default();
    let phase = p.status.as_ref().and_then(|s| s.phase.clone());
    let state = if spec.host_network == Some(true) {
        PodState::Excluded(HOST_NETWORK.into())
    } else if let Some(phase @ ("Succeeded" | "Failed")) = phase.as_deref() {
        PodState::Excluded(format!("phase {phase}"))
    } else if !ips.is_empty() {
        PodState::Active
    } else if phase.is_some() {
        PodState::Excluded(format!("no pod IP yet (phase {})", phase.unwrap_or_default()))
    } else {
        PodState::Planned
    };
    Pod {
        namespace: namespace.to_string(),
        name: name.to_string(),
        labels,
        ips,
        ports,
        node_name: spec.node_name.clone(),
        state,
        workload: None,
    }
}

/// Converts a workload's pod template (at `field`) into a planned pod that
/// stands for the workload's pods.
pub fn template(
    t: &core::PodTemplateSpec,
    field: &str,
    namespace: &str,
    workload: (&str, &str),
    errors: &mut FieldErrors,
) -> Pod {
    let labels =
        labels(t.metadata.as_ref().and_then(|m| m.labels.as_ref()), &format!("{field}.metadata.labels"), errors);
    let default_spec = core::PodSpec::default();
    let spec = t.spec.as_ref().unwrap_or(&default_spec);
    let ports = ports(spec, &format!("{field}.spec"), errors);
    let state =
        if spec.host_network == Some(true) { PodState::Excluded(HOST_NETWORK.into()) } else { PodState::Planned };
    Pod {
        namespace: namespace.to_string(),
        name: workload.1.to_string(),
        labels,
        ips: Vec::new(),
        ports,
        node_name: None,
        state,
        workload: Some(format!("{}/{}", workload.0, workload.1)),
    }
}

/// Validates a Namespace's labels.
pub fn namespace_labels(ns: core::Namespace, errors: &mut FieldErrors) -> Labels {
    owned_labels(ns.metadata.labels.unwrap_or_default(), &"metadata.labels", errors)
}
