//! Parsing `namespace/pod` or an IP address into flow endpoints.

use std::net::IpAddr;

use palisade_policy::{ClusterIndex, Endpoint, Flow, PodState, Protocol};

/// Where a flow end was named.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Named {
    /// A pod, resolved.
    Pod(palisade_policy::PodId),
    /// An address: a pod's (resolved to the pod) or outside the cluster.
    Address(IpAddr),
    /// A hostNetwork pod: its traffic carries its node's address, so it is
    /// that address to policies (ipBlock peers can match it; pod and
    /// namespace selectors cannot).
    HostNetwork(palisade_policy::PodId),
}

/// Resolves `text` (`namespace/pod` or an IP address).
pub fn resolve(index: &ClusterIndex, text: &str) -> Result<Named, String> {
    // Pod references contain '/', addresses never do: parse only what may be an address.
    if !text.contains('/') {
        return text
            .parse::<IpAddr>()
            .map(Named::Address)
            .map_err(|_| format!("{text:?} is neither namespace/pod nor an IP address"));
    }
    let id = index.pod_id_by_key(text).ok_or_else(|| format!("no pod {text} in the input"))?;
    let entry = index.pod(id);
    if !entry.is_endpoint()
        && let PodState::Excluded(reason) = &entry.pod().state
    {
        if reason == palisade_manifests::HOST_NETWORK {
            if entry.pod().ips.is_empty() {
                return Err(format!("{text} is a hostNetwork pod whose status gives no node address"));
            }
            return Ok(Named::HostNetwork(id));
        }
        return Err(format!("{text} is not a policy endpoint: {reason}"));
    }
    Ok(Named::Pod(id))
}

/// Builds the flow between two named ends, choosing pod addresses of a
/// common family where there is a choice.
#[must_use]
pub fn flow(index: &ClusterIndex, from: &Named, to: &Named, port: u16, protocol: Protocol) -> Flow {
    let fixed = |n: &Named| match n {
        Named::Address(ip) => Some(index.endpoint_at(*ip)),
        Named::HostNetwork(id) => index.pod(*id).pod().ips.first().map(|ip| Endpoint::External(*ip)),
        Named::Pod(_) => None,
    };
    let (src, dst) = match (fixed(from), fixed(to)) {
        (Some(s), Some(d)) => (s, d),
        (Some(s), None) => (s, pod_end(index, to, s.addr())),
        (None, Some(d)) => (pod_end(index, from, d.addr()), d),
        (None, None) => {
            let d = pod_end(index, to, None);
            (pod_end(index, from, d.addr()), d)
        }
    };
    Flow { src, dst, port, protocol }
}

fn pod_end(index: &ClusterIndex, named: &Named, toward: Option<IpAddr>) -> Endpoint {
    match named {
        Named::Pod(id) => index.pod_endpoint(*id, toward),
        Named::Address(ip) => Endpoint::External(*ip),
        Named::HostNetwork(id) => {
            let ips = &index.pod(*id).pod().ips;
            let same = ips.iter().find(|ip| toward.is_some_and(|t| t.is_ipv6() == ip.is_ipv6()));
            Endpoint::External(*same.or(ips.first()).expect("resolve checked a hostNetwork pod has an address"))
        }
    }
}

/// The node two ends share when one is a hostNetwork pod (its node's
/// addresses) and the other a pod scheduled on that node: traffic between
/// a pod and its own node is never filtered (Palisade filters forwarded
/// traffic; a node reaching its pods, or a pod its node, is not forwarded).
#[must_use]
pub fn shared_node<'a>(index: &'a ClusterIndex, a: &Named, b: &Named) -> Option<&'a str> {
    let pod = |n: &Named| match n {
        Named::HostNetwork(id) | Named::Pod(id) => Some(*id),
        Named::Address(ip) => index.pod_by_ip(*ip),
    };
    let host = matches!(a, Named::HostNetwork(_)) || matches!(b, Named::HostNetwork(_));
    let (pa, pb) = (pod(a)?, pod(b)?);
    (host && index.same_node(pa, pb)).then(|| index.pod(pa).pod().node_name.as_deref()).flatten()
}

/// How a flow end reads: [`describe`], except that a hostNetwork pod says
/// what it is (`kube-system/agent (hostNetwork, node address 192.168.46.2)`).
#[must_use]
pub fn describe_named(index: &ClusterIndex, named: &Named, e: Endpoint) -> String {
    match (named, e) {
        (Named::HostNetwork(id), Endpoint::External(a)) => {
            format!("{} (hostNetwork, node address {a})", index.pod_name(*id))
        }
        _ => describe(index, e),
    }
}

/// The namespace of a pod end; `None` for an address outside the cluster.
#[must_use]
pub fn namespace_of(index: &ClusterIndex, e: Endpoint) -> Option<&str> {
    match e {
        Endpoint::Pod { id, .. } => Some(index.pod(id).pod().namespace.as_str()),
        Endpoint::External(_) => None,
    }
}

/// A flow end as machine fields: the pod's `namespace/name` (or the
/// address), and the address used (`None` for a pod without one).
#[must_use]
pub fn name_and_address(index: &ClusterIndex, e: Endpoint) -> (String, Option<IpAddr>) {
    match e {
        Endpoint::Pod { id, addr } => (index.pod_name(id).to_string(), addr),
        Endpoint::External(a) => (a.to_string(), Some(a)),
    }
}

/// `namespace/pod (ip)` or the address.
#[must_use]
pub fn describe(index: &ClusterIndex, e: Endpoint) -> String {
    match e {
        Endpoint::Pod { id, addr: Some(a) } => format!("{} ({a})", index.pod_name(id)),
        Endpoint::Pod { id, addr: None } => format!("{} (no IP)", index.pod_name(id)),
        Endpoint::External(a) => a.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_policy::Pod;

    fn pod(state: PodState) -> Pod {
        Pod {
            namespace: "x".into(),
            name: "a".into(),
            labels: std::collections::BTreeMap::default(),
            ips: vec!["10.0.0.1".parse().expect("address")],
            ports: Vec::new(),
            node_name: None,
            state,
            workload: None,
        }
    }

    #[test]
    fn a_pod_that_is_no_endpoint_is_refused_by_name_and_follows_its_updates() {
        let mut index = ClusterIndex::from_objects([], [pod(PodState::Active)], []);
        assert!(matches!(resolve(&index, "x/a"), Ok(Named::Pod(_))));
        index.apply_pod(pod(PodState::Excluded("phase Succeeded".into())));
        assert_eq!(resolve(&index, "x/a"), Err("x/a is not a policy endpoint: phase Succeeded".to_string()));
        index.apply_pod(pod(PodState::Planned));
        assert!(matches!(resolve(&index, "x/a"), Ok(Named::Pod(_))));
        assert_eq!(resolve(&index, "x/b"), Err("no pod x/b in the input".to_string()));
    }

    #[test]
    fn a_host_network_pod_is_its_nodes_address() {
        let host = Pod {
            name: "agent".into(),
            ips: vec!["192.168.46.2".parse().expect("address")],
            node_name: Some("n1".into()),
            ..pod(PodState::Excluded(palisade_manifests::HOST_NETWORK.into()))
        };
        let local = Pod { node_name: Some("n1".into()), ..pod(PodState::Active) };
        let remote = Pod {
            name: "b".into(),
            ips: vec!["10.0.0.2".parse().expect("address")],
            node_name: Some("n2".into()),
            ..pod(PodState::Active)
        };
        let index = ClusterIndex::from_objects([], [host, local, remote], []);
        let agent = resolve(&index, "x/agent").expect("a hostNetwork pod resolves");
        assert!(matches!(agent, Named::HostNetwork(_)));
        let a = resolve(&index, "x/a").expect("pod");
        let f = flow(&index, &agent, &a, 80, Protocol::Tcp);
        assert_eq!(f.src, Endpoint::External("192.168.46.2".parse().expect("address")));
        assert_eq!(describe_named(&index, &agent, f.src), "x/agent (hostNetwork, node address 192.168.46.2)");
        assert_eq!(shared_node(&index, &agent, &a), Some("n1"));
        assert_eq!(shared_node(&index, &agent, &resolve(&index, "x/b").expect("pod")), None);
        assert_eq!(shared_node(&index, &a, &resolve(&index, "x/b").expect("pod")), None, "no hostNetwork end");
    }
}
