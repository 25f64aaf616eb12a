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
        return Err(format!("{text} is not a policy endpoint: {reason}"));
    }
    Ok(Named::Pod(id))
}

/// Builds the flow between two named ends, choosing pod addresses of a
/// common family where there is a choice.
#[must_use]
pub fn flow(index: &ClusterIndex, from: &Named, to: &Named, port: u16, protocol: Protocol) -> Flow {
    let fixed = |n: &Named| match n {
        Named::Address(ip) => Some(match index.pod_by_ip(*ip) {
            Some(id) => Endpoint::Pod { id, addr: Some(*ip) },
            None => Endpoint::External(*ip),
        }),
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
}
