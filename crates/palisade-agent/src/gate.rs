//! The new-pod gate's settings (`--new-pods`, `--pod-interface-prefix`,
//! `--pod-cidr`) as the dataplane's [`PodGate`].

use palisade_dataplane::PodGate;
use palisade_dataplane::ranges::AddrSet;
use palisade_policy::IpBlock;

/// Name prefixes of pod interfaces on the node side, per CNI, used when
/// `--new-pods=deny` is given without `--pod-interface-prefix`: Calico
/// (`cali`), Cilium (`lxc`), AWS VPC CNI (`eni`), Azure CNI (`azv`), GKE
/// (`gke`), and `veth` (flannel, kindnet, the bridge and ptp plugins; with
/// a bridge the forward hook sees the bridge, so give `--pod-cidr`).
pub const DEFAULT_PREFIXES: [&str; 6] = ["cali", "lxc", "eni", "azv", "gke", "veth"];

/// What becomes of traffic from or to a pod Palisade has not programmed yet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum NewPods {
    /// Dropped until the pod is programmed (fail closed).
    #[default]
    Deny,
    /// Let through, as for an unisolated pod, until the pod is programmed.
    Allow,
}

/// The gate for `new_pods`, pod interface name `prefixes` (none: the
/// defaults) and the node's pod `cidrs`.
///
/// # Errors
/// A prefix that is empty, longer than 15 bytes or not printable ASCII,
/// or a CIDR that does not parse, named.
pub fn pod_gate(new_pods: NewPods, prefixes: &[String], cidrs: &[String]) -> Result<PodGate, String> {
    if new_pods == NewPods::Allow {
        return Ok(PodGate::default());
    }
    let mut interface_prefixes: Vec<String> = if prefixes.is_empty() {
        DEFAULT_PREFIXES.iter().map(|p| (*p).to_string()).collect()
    } else {
        prefixes.to_vec()
    };
    for p in &interface_prefixes {
        if p.is_empty() || p.len() > 15 || !p.bytes().all(|b| b.is_ascii_graphic()) || p.contains('*') {
            return Err(format!("--pod-interface-prefix {p:?}: 1 to 15 printable characters, no '*'"));
        }
    }
    interface_prefixes.sort();
    interface_prefixes.dedup();
    let mut ranges = AddrSet::default();
    for c in cidrs {
        let cidr: ipnet::IpNet = c.parse().map_err(|_| format!("--pod-cidr {c:?} is not a CIDR"))?;
        ranges.insert_block(&IpBlock { cidr: cidr.trunc(), except: Vec::new() });
    }
    ranges.normalize();
    Ok(PodGate { interface_prefixes, cidrs: ranges })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deny_uses_the_defaults_allow_is_off_and_bad_values_are_named() {
        let gate = pod_gate(NewPods::Deny, &[], &["10.244.1.0/24".into()]).unwrap();
        assert_eq!(gate.interface_prefixes.len(), DEFAULT_PREFIXES.len());
        assert!(gate.cidrs.contains("10.244.1.77".parse().unwrap()));
        assert!(!gate.cidrs.contains("10.244.2.1".parse().unwrap()));
        assert!(!pod_gate(NewPods::Allow, &["pv".into()], &[]).unwrap().is_on());
        let err = pod_gate(NewPods::Deny, &["a*".into()], &[]).unwrap_err();
        assert!(err.contains("--pod-interface-prefix \"a*\""), "{err}");
        let err = pod_gate(NewPods::Deny, &[], &["10.0.0.0/33".into()]).unwrap_err();
        assert!(err.contains("--pod-cidr \"10.0.0.0/33\""), "{err}");
    }
}
