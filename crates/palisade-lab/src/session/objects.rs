//! The lab's view of a set of manifests: every pod (and workload template)
//! becomes a running pod with addresses, written back as Pod manifests the
//! agent reads; namespaces and policies are written unchanged.

use std::collections::BTreeMap;
use std::net::IpAddr;

use palisade_manifests::encode::pod_manifest;
use palisade_manifests::{HOST_NETWORK, RawObject, load_str};
use palisade_policy::{Pod, PodState, Protocol};

/// The node name the lab's pods run on.
pub const NODE: &str = "lab";

/// A pod the lab runs.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PodPlan {
    /// Addresses (from the manifest, or assigned).
    pub addrs: Vec<IpAddr>,
    /// TCP ports to serve.
    pub tcp: Vec<u16>,
    /// UDP ports to serve.
    pub udp: Vec<u16>,
    /// SCTP ports to serve (where the kernel has SCTP sockets).
    #[serde(default)]
    pub sctp: Vec<u16>,
}

/// Manifests for the agent and the pods to run.
#[derive(Clone, Debug, Default)]
pub struct LabObjects {
    /// File name → JSON text.
    pub files: BTreeMap<String, String>,
    /// `namespace/name` → pod.
    pub pods: BTreeMap<String, PodPlan>,
    /// `namespace/name` → hostNetwork pod: served in the node namespace on
    /// node addresses of its own.
    pub hosts: BTreeMap<String, PodPlan>,
    /// Notes for the operator (skipped objects).
    pub notes: Vec<String>,
}

const WORKLOADS: [&str; 6] = ["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob"];

/// The declared ports of `pod` for `protocol`, sorted, once each.
fn ports(pod: &Pod, protocol: Protocol) -> Vec<u16> {
    let mut out: Vec<u16> = pod.ports.iter().filter(|p| p.protocol == protocol).map(|p| p.port).collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// Assigns the `n`-th lab address pair: 10.244.x.y and fd00:244::n.
#[must_use]
pub fn assigned(n: u32) -> Vec<IpAddr> {
    let v4 = std::net::Ipv4Addr::from(0x0AF4_0000_u32 + 1 + n + n / 254 * 2);
    let v6 = std::net::Ipv6Addr::new(0xfd00, 0x244, 0, 0, 0, 0, (n >> 16) as u16, (n & 0xffff) as u16 + 1);
    vec![IpAddr::V4(v4), IpAddr::V6(v6)]
}

/// Builds the lab objects; pods keep the addresses in `previous` (by key),
/// new ones without addresses get the next from `next_ip`. Pods and
/// workload templates are read by the manifests loader (the same
/// conversion the agent and the analyzer use) and written back as the Pod
/// manifests the lab runs.
pub fn build(raw: &[RawObject], previous: &BTreeMap<String, PodPlan>, next_ip: &mut u32) -> LabObjects {
    let mut out = LabObjects::default();
    let used: Vec<IpAddr> = previous.values().flat_map(|p| p.addrs.clone()).collect();
    for o in raw {
        let file = format!(
            "{}-{}-{}.json",
            o.kind.to_lowercase(),
            if o.namespace.is_empty() { "_" } else { &o.namespace },
            o.name
        );
        match o.kind.as_str() {
            "Namespace"
            | "NetworkPolicy"
            | "ClusterNetworkPolicy"
            | "AdminNetworkPolicy"
            | "BaselineAdminNetworkPolicy"
            | "Node" => {
                out.files.insert(file, o.value.to_string());
            }
            kind if kind == "Pod" || WORKLOADS.contains(&kind) => {
                let loaded = load_str(&o.file, &o.value.to_string(), &o.namespace);
                if loaded.pods.is_empty() {
                    let why = loaded.errors.first().map_or_else(|| "no pod template".to_string(), ToString::to_string);
                    out.notes.push(format!("{kind} {}/{}: {why}; skipped", o.namespace, o.name));
                }
                for p in loaded.pods {
                    let file = format!("pod-{}-{}.json", p.namespace, p.name);
                    pod(&mut out, p, file, previous, &used, next_ip);
                }
            }
            other => out.notes.push(format!("{other} {}/{}: not used by the lab", o.namespace, o.name)),
        }
    }
    out
}

fn pod(
    out: &mut LabObjects,
    mut pod: Pod,
    file: String,
    previous: &BTreeMap<String, PodPlan>,
    used: &[IpAddr],
    next_ip: &mut u32,
) {
    let key = format!("{}/{}", pod.namespace, pod.name);
    let host_network = pod.state == PodState::Excluded(HOST_NETWORK.into());
    let mut addrs = std::mem::take(&mut pod.ips);
    if addrs.is_empty() {
        addrs = previous.get(&key).map(|p| p.addrs.clone()).unwrap_or_default();
    }
    while addrs.is_empty() {
        let candidate = assigned(*next_ip);
        *next_ip += 1;
        if !candidate.iter().any(|a| used.contains(a)) {
            addrs = candidate;
        }
    }
    let plan = PodPlan {
        addrs: addrs.clone(),
        tcp: ports(&pod, Protocol::Tcp),
        udp: ports(&pod, Protocol::Udp),
        sctp: ports(&pod, Protocol::Sctp),
    };
    pod.ips = addrs;
    pod.node_name = Some(NODE.into());
    if host_network {
        // The node's address to policies; the agent leaves it alone.
        let mut manifest = pod_manifest(&Pod { state: PodState::Active, ..pod });
        manifest["spec"]["hostNetwork"] = serde_json::json!(true);
        out.hosts.insert(key, plan);
        out.files.insert(file, manifest.to_string());
        return;
    }
    pod.state = PodState::Active;
    out.pods.insert(key, plan);
    out.files.insert(file, pod_manifest(&pod).to_string());
}
