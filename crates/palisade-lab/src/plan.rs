//! What to probe, and what the engine expects of each probe.

use std::net::IpAddr;

use palisade_policy::{ClusterIndex, Endpoint, Flow, Protocol};
use serde::Serialize;

use crate::probe::Probe;
use crate::topology::Topology;

/// One probed connection with both verdicts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProbeRow {
    /// `namespace/pod` or an address.
    pub from: String,
    /// `namespace/pod` or an address.
    pub to: String,
    /// The source address the probe used.
    pub from_addr: IpAddr,
    /// The destination address the probe used.
    pub to_addr: IpAddr,
    /// `v4` or `v6`.
    pub family: Family,
    /// Destination port.
    pub port: u16,
    /// Protocol.
    pub protocol: Protocol,
    /// What the packets did.
    pub measured: bool,
    /// What the engine says.
    pub expected: bool,
}

/// A probe target: a pod of the lab, a hostNetwork pod (an address of the
/// node), or an external address.
#[derive(Clone, Debug)]
struct End {
    label: String,
    ns: String,
    addr: IpAddr,
    endpoint: Endpoint,
    /// For a hostNetwork pod, the pod (its endpoint is its address).
    host: Option<palisade_policy::PodId>,
}

impl Family {
    /// The family of `addr`.
    #[must_use]
    pub fn of(addr: IpAddr) -> Family {
        if addr.is_ipv6() { Family::V6 } else { Family::V4 }
    }
}

impl std::fmt::Display for Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        })
    }
}

/// Which address family to probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// IPv4 only.
    V4,
    /// IPv6 only.
    V6,
}

fn ends(index: &ClusterIndex, topo: &Topology, family: Family) -> Vec<End> {
    let want_v6 = family == Family::V6;
    let mut out = Vec::new();
    for (key, pod) in &topo.pods {
        let Some(id) = index.pod_id_by_key(key) else { continue };
        if let Some(addr) = pod.addrs.iter().find(|a| a.is_ipv6() == want_v6) {
            out.push(End {
                label: key.clone(),
                ns: pod.ns.name().to_string(),
                addr: *addr,
                endpoint: Endpoint::Pod { id, addr: Some(*addr) },
                host: None,
            });
        }
    }
    for (key, addrs) in &topo.hosts {
        let Some(id) = index.pod_id_by_key(key) else { continue };
        if let Some(addr) = addrs.iter().find(|a| a.is_ipv6() == want_v6) {
            out.push(End {
                label: key.clone(),
                ns: topo.node.name().to_string(),
                addr: *addr,
                endpoint: Endpoint::External(*addr),
                host: Some(id),
            });
        }
    }
    if let Some(ext) = &topo.external {
        for addr in ext.addrs.iter().filter(|a| a.is_ipv6() == want_v6) {
            out.push(End {
                label: addr.to_string(),
                ns: ext.ns.name().to_string(),
                addr: *addr,
                endpoint: Endpoint::External(*addr),
                host: None,
            });
        }
    }
    out
}

/// What the engine expects of `from` → `to`: between a hostNetwork pod and
/// a pod on its node, node-local traffic (never filtered); otherwise the
/// policies' verdict.
fn expected(index: &ClusterIndex, from: &End, to: &End, flow: &Flow) -> bool {
    let node_local = |host: Option<palisade_policy::PodId>, other: &End| match (host, other.endpoint) {
        (Some(h), Endpoint::Pod { id, .. }) => index.same_node(h, id),
        _ => false,
    };
    node_local(from.host, to) || node_local(to.host, from) || index.evaluate_enforced(flow).allowed
}

/// Every pod (and external address) to every other one, on each port and
/// protocol, with the engine's expectation. External-to-external is skipped.
#[must_use]
pub fn plan(
    index: &ClusterIndex,
    topo: &Topology,
    ports: &[u16],
    protocols: &[Protocol],
    family: Family,
) -> (Vec<Probe>, Vec<ProbeRow>) {
    let ends = ends(index, topo, family);
    let mut probes = Vec::new();
    let mut rows = Vec::new();
    for protocol in protocols {
        for port in ports {
            for from in &ends {
                for to in &ends {
                    // Between two addresses that are no pod's (external
                    // hosts, the node's) no policy applies.
                    let external_pair =
                        matches!(from.endpoint, Endpoint::External(_)) && matches!(to.endpoint, Endpoint::External(_));
                    if from.label == to.label || external_pair {
                        continue;
                    }
                    let flow = Flow { src: from.endpoint, dst: to.endpoint, port: *port, protocol: *protocol };
                    let expected = expected(index, from, to, &flow);
                    probes.push(Probe {
                        from_ns: from.ns.clone(),
                        from: from.addr,
                        to_ns: to.ns.clone(),
                        to: to.addr,
                        port: *port,
                        protocol: *protocol,
                    });
                    rows.push(ProbeRow {
                        from: from.label.clone(),
                        to: to.label.clone(),
                        from_addr: from.addr,
                        to_addr: to.addr,
                        family,
                        port: *port,
                        protocol: *protocol,
                        measured: false,
                        expected,
                    });
                }
            }
        }
    }
    (probes, rows)
}
