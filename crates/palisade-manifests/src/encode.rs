//! The model written back as Kubernetes manifests (JSON values of the API's
//! shape): for generated clusters that tools and benchmarks feed to the
//! loader or the agent. Loading what this writes gives the same objects
//! (a test checks it on a synthetic cluster).

use palisade_policy::{
    ContainerPort, IpBlock, LabelSelector, Namespace, NetworkPolicy, Operator, Peer, Pod, PodState, PortTarget, Rule,
    RulePort,
};
use serde_json::{Map, Value, json};

fn selector(s: &LabelSelector) -> Value {
    let mut out = Map::new();
    if !s.match_labels.is_empty() {
        out.insert("matchLabels".into(), json!(s.match_labels));
    }
    if !s.match_expressions.is_empty() {
        let exprs: Vec<Value> = s
            .match_expressions
            .iter()
            .map(|r| {
                let operator = match r.operator {
                    Operator::In => "In",
                    Operator::NotIn => "NotIn",
                    Operator::Exists => "Exists",
                    Operator::DoesNotExist => "DoesNotExist",
                };
                let mut e = json!({"key": r.key, "operator": operator});
                if !r.values.is_empty() {
                    e["values"] = json!(r.values);
                }
                e
            })
            .collect();
        out.insert("matchExpressions".into(), Value::Array(exprs));
    }
    Value::Object(out)
}

fn block(b: &IpBlock) -> Value {
    let mut v = json!({"cidr": b.cidr.to_string()});
    if !b.except.is_empty() {
        v["except"] = json!(b.except.iter().map(ToString::to_string).collect::<Vec<_>>());
    }
    v
}

fn peer(p: &Peer) -> Value {
    match p {
        Peer::IpBlock(b) => json!({"ipBlock": block(b)}),
        Peer::Pods { namespace_selector, pod_selector } => {
            let mut v = Map::new();
            if let Some(s) = namespace_selector {
                v.insert("namespaceSelector".into(), selector(s));
            }
            if let Some(s) = pod_selector {
                v.insert("podSelector".into(), selector(s));
            }
            Value::Object(v)
        }
    }
}

fn port(p: &RulePort) -> Value {
    let mut v = json!({"protocol": p.protocol.as_str()});
    match &p.target {
        PortTarget::Any => {}
        PortTarget::Range { start, end } => {
            v["port"] = json!(start);
            if end != start {
                v["endPort"] = json!(end);
            }
        }
        PortTarget::Named(name) => v["port"] = json!(name),
    }
    v
}

fn rule(r: &Rule, peers_key: &str) -> Value {
    let mut v = Map::new();
    if !r.peers.is_empty() {
        v.insert(peers_key.into(), Value::Array(r.peers.iter().map(peer).collect()));
    }
    if !r.ports.is_empty() {
        v.insert("ports".into(), Value::Array(r.ports.iter().map(port).collect()));
    }
    Value::Object(v)
}

/// A Namespace manifest.
#[must_use]
pub fn namespace_manifest(ns: &Namespace) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns.name, "labels": ns.labels}})
}

fn container_port(p: &ContainerPort) -> Value {
    let mut v = json!({"containerPort": p.port, "protocol": p.protocol.as_str()});
    if let Some(name) = &p.name {
        v["name"] = json!(name);
    }
    v
}

/// A Pod manifest; an active pod gets a Running status with its IPs.
#[must_use]
pub fn pod_manifest(pod: &Pod) -> Value {
    let mut v = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": pod.name, "namespace": pod.namespace, "labels": pod.labels},
        "spec": {"containers": [{"name": "main", "image": "registry.example/app", "ports": pod.ports.iter().map(container_port).collect::<Vec<_>>()}]},
    });
    if let Some(node) = &pod.node_name {
        v["spec"]["nodeName"] = json!(node);
    }
    if pod.state == PodState::Active {
        let ips: Vec<Value> = pod.ips.iter().map(|ip| json!({"ip": ip.to_string()})).collect();
        v["status"] = json!({"phase": "Running", "podIPs": ips});
        if let Some(first) = pod.ips.first() {
            v["status"]["podIP"] = json!(first.to_string());
        }
    }
    v
}

/// A NetworkPolicy manifest with explicit `policyTypes`.
#[must_use]
pub fn policy_manifest(p: &NetworkPolicy) -> Value {
    let mut types = Vec::new();
    if p.isolates_ingress {
        types.push("Ingress");
    }
    if p.isolates_egress {
        types.push("Egress");
    }
    let mut spec = json!({"podSelector": selector(&p.pod_selector), "policyTypes": types});
    if p.isolates_ingress {
        spec["ingress"] = Value::Array(p.ingress.iter().map(|r| rule(r, "from")).collect());
    }
    if p.isolates_egress {
        spec["egress"] = Value::Array(p.egress.iter().map(|r| rule(r, "to")).collect());
    }
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
           "metadata": {"name": p.name, "namespace": p.namespace}, "spec": spec})
}

/// The manifests of a whole cluster: its namespaces, then pods, then
/// policies.
#[must_use]
pub fn cluster_manifests(namespaces: &[Namespace], pods: &[Pod], policies: &[NetworkPolicy]) -> Vec<Value> {
    namespaces
        .iter()
        .map(namespace_manifest)
        .chain(pods.iter().map(pod_manifest))
        .chain(policies.iter().map(policy_manifest))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_policy::synth::{Size, generate};

    fn debug(items: &[impl std::fmt::Debug]) -> Vec<String> {
        let mut v: Vec<String> = items.iter().map(|i| format!("{i:?}")).collect();
        v.sort();
        v
    }

    #[test]
    fn loading_what_is_written_gives_the_same_objects() {
        let c = generate(Size { namespaces: 40, pods: 400, policies: 300 }, 7);
        let items = cluster_manifests(&c.namespaces, &c.pods, &c.policies);
        let text = json!({"apiVersion": "v1", "kind": "List", "items": items}).to_string();
        let loaded = crate::load_str("generated.json", &text, "default");
        assert!(loaded.errors.is_empty(), "{:?}", &loaded.errors[..loaded.errors.len().min(3)]);
        assert_eq!(debug(&loaded.namespaces), debug(&c.namespaces));
        assert_eq!(debug(&loaded.pods), debug(&c.pods));
        assert_eq!(debug(&loaded.policies), debug(&c.policies));
    }
}
