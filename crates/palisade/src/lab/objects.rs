//! The lab's view of a set of manifests: every pod (and workload template)
//! becomes a running pod with addresses, written back as Pod manifests the
//! agent reads; namespaces and policies are written unchanged.

use std::collections::BTreeMap;
use std::net::IpAddr;

use palisade_manifests::RawObject;
use serde_json::{Value, json};

/// The node name the lab's pods run on.
pub const NODE: &str = "lab";

/// A pod the lab runs.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
    /// Notes for the operator (skipped objects).
    pub notes: Vec<String>,
}

const WORKLOADS: [&str; 6] = ["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob"];

fn template(o: &RawObject) -> Option<&Value> {
    if o.kind == "CronJob" {
        o.value.pointer("/spec/jobTemplate/spec/template")
    } else {
        o.value.pointer("/spec/template")
    }
}

fn ports(spec: &Value, protocol: &str) -> Vec<u16> {
    let mut out: Vec<u16> = ["containers", "initContainers"]
        .iter()
        .filter_map(|list| spec.get(*list).and_then(Value::as_array))
        .flatten()
        .filter_map(|c| c.get("ports").and_then(Value::as_array))
        .flatten()
        .filter(|p| p.get("protocol").and_then(Value::as_str).unwrap_or("TCP") == protocol)
        .filter_map(|p| p.get("containerPort").and_then(Value::as_u64).and_then(|n| u16::try_from(n).ok()))
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

fn declared_ips(pod: &Value) -> Vec<IpAddr> {
    let mut ips: Vec<IpAddr> = pod
        .pointer("/status/podIPs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| p.get("ip")?.as_str()?.parse().ok())
        .collect();
    if ips.is_empty()
        && let Some(ip) = pod.pointer("/status/podIP").and_then(Value::as_str).and_then(|s| s.parse().ok())
    {
        ips.push(ip);
    }
    ips
}

/// Assigns the `n`-th lab address pair: 10.244.x.y and fd00:244::n.
#[must_use]
pub fn assigned(n: u32) -> Vec<IpAddr> {
    let v4 = std::net::Ipv4Addr::from(0x0AF4_0000_u32 + 1 + n + n / 254 * 2);
    let v6 = std::net::Ipv6Addr::new(0xfd00, 0x244, 0, 0, 0, 0, (n >> 16) as u16, (n & 0xffff) as u16 + 1);
    vec![IpAddr::V4(v4), IpAddr::V6(v6)]
}

/// Builds the lab objects; pods keep the addresses in `previous` (by key),
/// new ones without addresses get the next from `next_ip`.
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
            "Namespace" | "NetworkPolicy" => {
                out.files.insert(file, o.value.to_string());
            }
            "Pod" => pod(&mut out, o, &o.value, file, previous, &used, next_ip),
            kind if WORKLOADS.contains(&kind) => {
                let Some(t) = template(o) else {
                    out.notes.push(format!("{kind} {}/{}: no pod template, skipped", o.namespace, o.name));
                    continue;
                };
                let labels = t.pointer("/metadata/labels").cloned().unwrap_or(json!({}));
                let as_pod = json!({
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": o.name, "namespace": o.namespace, "labels": labels},
                    "spec": t.get("spec").cloned().unwrap_or(json!({"containers": []})),
                });
                pod(&mut out, o, &as_pod, format!("pod-{}-{}.json", o.namespace, o.name), previous, &used, next_ip);
            }
            other => out.notes.push(format!("{other} {}/{}: not used by the lab", o.namespace, o.name)),
        }
    }
    out
}

fn pod(
    out: &mut LabObjects,
    o: &RawObject,
    value: &Value,
    file: String,
    previous: &BTreeMap<String, PodPlan>,
    used: &[IpAddr],
    next_ip: &mut u32,
) {
    let key = format!("{}/{}", o.namespace, o.name);
    let spec = value.get("spec").cloned().unwrap_or(json!({}));
    if spec.get("hostNetwork").and_then(Value::as_bool) == Some(true) {
        out.notes.push(format!("pod {key}: hostNetwork, not a policy endpoint; skipped"));
        return;
    }
    let mut addrs = declared_ips(value);
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
    let mut value = value.clone();
    value["spec"]["nodeName"] = json!(NODE);
    let ips: Vec<Value> = addrs.iter().map(|a| json!({"ip": a.to_string()})).collect();
    value["status"] = json!({"phase": "Running", "podIP": addrs[0].to_string(), "podIPs": ips});
    out.pods
        .insert(key, PodPlan { addrs, tcp: ports(&spec, "TCP"), udp: ports(&spec, "UDP"), sctp: ports(&spec, "SCTP") });
    out.files.insert(file, value.to_string());
}
