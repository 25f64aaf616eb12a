//! Pods, workload templates and namespaces.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1 as core;
use palisade_policy::validation::check_port_name;
use palisade_policy::{ContainerPort, Labels, Pod, PodState, Protocol};

use crate::error::FieldErrors;
use crate::policy::protocol;
use crate::selector::{labels, owned_labels};

/// What policy reads of a pod, from either path of conversion (the lean
/// reader, or k8s-openapi's types), so that both are validated by the same
/// code and neither builds a full `core::Pod` (2 KB, and as much again per
/// container) only to read a few fields of it.
#[derive(Debug, Default)]
pub(crate) struct PodParts {
    pub labels: Option<BTreeMap<String, String>>,
    /// `(kind, name)` of each owner reference.
    pub owners: Vec<(String, String)>,
    pub spec: SpecParts,
    pub status: StatusParts,
}

/// What policy reads of a pod spec (an absent spec reads as an empty one).
#[derive(Debug, Default)]
pub(crate) struct SpecParts {
    /// Each container's declared ports, in order.
    pub containers: Vec<Vec<PortParts>>,
    /// Each init container's declared ports (restartable sidecars serve).
    pub init_containers: Vec<Vec<PortParts>>,
    pub host_network: Option<bool>,
    pub node_name: Option<String>,
}

/// One declared container port.
#[derive(Debug)]
pub(crate) struct PortParts {
    pub number: i32,
    pub name: Option<String>,
    pub protocol: Option<String>,
}

/// What policy reads of a pod's status (an absent status reads as empty).
#[derive(Debug, Default)]
pub(crate) struct StatusParts {
    pub phase: Option<String>,
    pub pod_ip: Option<String>,
    pub pod_ips: Vec<String>,
}

impl PodParts {
    /// The parts of a pod read with k8s-openapi's types.
    pub(crate) fn of_api(p: core::Pod) -> PodParts {
        let owners = p.metadata.owner_references.into_iter().flatten().map(|o| (o.kind, o.name)).collect();
        let status = p.status.map(|s| StatusParts {
            phase: s.phase,
            pod_ip: s.pod_ip,
            pod_ips: s.pod_ips.into_iter().flatten().map(|ip| ip.ip).collect(),
        });
        PodParts {
            labels: p.metadata.labels,
            owners,
            spec: p.spec.as_ref().map(SpecParts::of_api).unwrap_or_default(),
            status: status.unwrap_or_default(),
        }
    }
}

impl SpecParts {
    /// The parts of a pod spec read with k8s-openapi's types.
    pub(crate) fn of_api(spec: &core::PodSpec) -> SpecParts {
        let ports = |containers: &[core::Container]| -> Vec<Vec<PortParts>> {
            containers
                .iter()
                .map(|c| {
                    let ports = c.ports.iter().flatten();
                    ports
                        .map(|p| PortParts {
                            number: p.container_port,
                            name: p.name.clone(),
                            protocol: p.protocol.clone(),
                        })
                        .collect()
                })
                .collect()
        };
        SpecParts {
            containers: ports(&spec.containers),
            init_containers: ports(spec.init_containers.as_deref().unwrap_or_default()),
            host_network: spec.host_network,
            node_name: spec.node_name.clone(),
        }
    }
}

/// Declared container ports of a pod spec (containers and init containers,
/// whose restartable sidecars serve too), validated, at `field`.
fn ports(spec: &SpecParts, field: &str, errors: &mut FieldErrors) -> Vec<ContainerPort> {
    let mut out = Vec::new();
    for (list, containers) in [("containers", &spec.containers), ("initContainers", &spec.init_containers)] {
        for (c, container) in containers.iter().enumerate() {
            for (p, port) in container.iter().enumerate() {
                // Field paths are written only for an error (most pods have none).
                let at = |leaf: &str| format!("{field}.{list}[{c}].ports[{p}].{leaf}");
                let Some(number) = u16::try_from(port.number).ok().filter(|n| *n >= 1) else {
                    errors.push(at("containerPort"), format!("{} must be between 1 and 65535, inclusive", port.number));
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

fn addresses(status: &StatusParts, errors: &mut FieldErrors) -> Vec<IpAddr> {
    let mut ips = Vec::new();
    // (index in status.podIPs, or None for status.podIP; the address text)
    let listed: Vec<(Option<usize>, &str)> = if status.pod_ips.is_empty() {
        status.pod_ip.iter().map(|ip| (None, ip.as_str())).collect()
    } else {
        status.pod_ips.iter().enumerate().map(|(i, ip)| (Some(i), ip.as_str())).collect()
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
pub(crate) fn pod(p: PodParts, namespace: &str, name: &str, errors: &mut FieldErrors) -> Pod {
    let labels = owned_labels(p.labels.unwrap_or_default(), &"metadata.labels", errors);
    let spec = p.spec;
    let ports = ports(&spec, "spec", errors);
    let ips = addresses(&p.status, errors);
    let phase = p.status.phase;
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
        node_name: spec.node_name,
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
    let spec = t.spec.as_ref().map(SpecParts::of_api).unwrap_or_default();
    let ports = ports(&spec, &format!("{field}.spec"), errors);
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
