//! Audit (staged) policies, `palisade.dev/enforcement: audit`: read from
//! the annotation on both load paths (the lean one and the typed one the
//! agent's API objects take), counted by the analyzer's evaluation, and
//! ignored by the enforced evaluation (the dataplane's). Expected verdicts
//! are the NetworkPolicy spec's: an audit default-deny, were it enforced,
//! would isolate `prod/db` and deny `prod/web -> prod/db`.

use palisade_manifests::load_str;
use palisade_policy::{Endpoint, Enforcement, Flow, ObjectKey, ObjectKind, Protocol, SideVerdict};

const POLICIES: &str = "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: staged-deny
  namespace: prod
  annotations: {palisade.dev/enforcement: audit, unrelated: x}
spec: {podSelector: {matchLabels: {app: db}}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: logged
  namespace: prod
  annotations: {palisade.dev/log: allowed, palisade.dev/enforcement: enforce}
spec: {podSelector: {matchLabels: {app: web}}, ingress: [{}]}
";

fn pod(index: &palisade_policy::ClusterIndex, name: &str) -> Endpoint {
    let id = index.pod_id_of(&ObjectKey::new(ObjectKind::Pod, "prod", name)).expect("pod");
    Endpoint::Pod { id, addr: None }
}

#[test]
fn audit_policies_count_in_the_analyzer_and_not_in_the_dataplane() {
    let loaded =
        load_str("cluster.yaml", &format!("{}---{POLICIES}", palisade_testkit::fixtures::WEB_AND_DB), "default");
    assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
    let staged = loaded.policies.iter().find(|p| p.name == "staged-deny").unwrap();
    assert_eq!(staged.enforcement, Enforcement::Audit);
    assert!(!staged.log_allowed);
    let logged = loaded.policies.iter().find(|p| p.name == "logged").unwrap();
    assert_eq!(logged.enforcement, Enforcement::Enforce);
    assert!(logged.log_allowed);
    let index = loaded.index();
    let flow = Flow { src: pod(&index, "web"), dst: pod(&index, "db"), port: 5432, protocol: Protocol::Tcp };
    let analyzed = index.evaluate(&flow);
    assert!(!analyzed.allowed);
    assert_eq!(analyzed.ingress, SideVerdict::Denied);
    let enforced = index.evaluate_enforced(&flow);
    assert!(enforced.allowed);
    assert_eq!(enforced.ingress, SideVerdict::NotIsolated);
}

#[test]
fn the_agent_path_reads_the_annotations_too() {
    let object = serde_json::json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "staged", "namespace": "prod",
                     "annotations": {"palisade.dev/enforcement": "audit", "palisade.dev/log": "allowed"}},
        "spec": {"podSelector": {}}
    });
    let Ok(palisade_manifests::ApiObject::NetworkPolicy(policy)) =
        palisade_manifests::convert_api_object("api", &object)
    else {
        panic!("a policy")
    };
    assert_eq!(policy.enforcement, Enforcement::Audit);
    assert!(policy.log_allowed);
}
