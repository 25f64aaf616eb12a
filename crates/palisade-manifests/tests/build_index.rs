//! The index built while objects are taken ([`Build::Index`], what every
//! analyzer command uses) is the index built from the objects afterwards:
//! the same pods, policies and cluster policies, and the same verdict for
//! every pair of pods, whatever order the input holds them in (pods before
//! their namespace, cluster policies after the pods they select, workloads
//! merged in at the end, a duplicate, an audit policy).

use std::path::Path;

use palisade_manifests::{Build, Input, LoadOptions, load_with};
use palisade_policy::{ClusterIndex, Endpoint, Flow, Protocol, SideVerdict, Verdict};

/// The repository's examples, cluster policies written before the pods.
fn inputs(dir: &Path) -> Vec<Input> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut text = String::new();
    for file in [
        "cluster-policies/steps/01-baseline-namespace-isolation.yaml",
        "cluster-policies/steps/02-admin-protects-monitoring.yaml",
        "cluster-policies/steps/03-pass-to-namespace-policies.yaml",
        "cluster-policies/base/00-namespaces-and-pods.yaml",
        "three-tier/steps/02-policies.yaml",
        "three-tier/base/01-workloads.yaml",
        "three-tier/base/00-namespaces.yaml",
        "cluster-policies/steps/04-egress-networks-with-an-exception.yaml",
    ] {
        text.push_str(&std::fs::read_to_string(root.join(file)).unwrap());
        text.push_str("\n---\n");
    }
    // An audit policy, and a duplicate of it (the first copy stands).
    let staged = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: staged\n  namespace: shop\n  annotations: {palisade.dev/enforcement: audit}\nspec: {podSelector: {}, policyTypes: [Ingress, Egress]}\n";
    text.push_str(staged);
    text.push_str("---\n");
    text.push_str(&staged.replace("policyTypes: [Ingress, Egress]", "policyTypes: [Ingress]"));
    let file = dir.join("all.yaml");
    std::fs::write(&file, text).unwrap();
    vec![Input::Path(file)]
}

fn side(index: &ClusterIndex, v: SideVerdict) -> String {
    match v {
        SideVerdict::Allowed(r) => format!("allowed by {} {}", index.policy_key(r.policy), serde_json::json!(r)),
        SideVerdict::Tier(t) => {
            format!("decided by {} {}", index.cluster_policy(t.policy).policy().name, serde_json::json!(t))
        }
        other => format!("{other:?}"),
    }
}

fn described(index: &ClusterIndex, v: &Verdict) -> String {
    format!("{} egress {} ingress {}", v.allowed, side(index, v.egress), side(index, v.ingress))
}

/// Every pod pair's verdict on a few ports, by pod names.
fn verdicts(index: &ClusterIndex) -> Vec<String> {
    let pods = index.pods_sorted();
    let mut out = Vec::new();
    for &src in &pods {
        for &dst in &pods {
            for (port, protocol) in [(80, Protocol::Tcp), (5432, Protocol::Tcp), (53, Protocol::Udp)] {
                let flow = Flow {
                    src: Endpoint::Pod { id: src, addr: None },
                    dst: Endpoint::Pod { id: dst, addr: None },
                    port,
                    protocol,
                };
                let v = index.evaluate(&flow);
                out.push(format!(
                    "{} -> {} {port}: {}",
                    index.pod_name(src),
                    index.pod_name(dst),
                    described(index, &v)
                ));
            }
        }
    }
    out
}

fn listing(index: &ClusterIndex) -> Vec<String> {
    let pods = index.pods_sorted().into_iter().map(|p| format!("pod {} {:?}", index.pod_name(p), index.pod_labels(p)));
    let policies = index.policies_sorted().into_iter().map(|p| format!("policy {}", index.policy_key(p)));
    let namespaces = index.namespaces_sorted().into_iter().map(|n| format!("namespace {}", index.namespace(n).name()));
    pods.chain(policies).chain(namespaces).collect()
}

#[test]
fn the_index_built_while_loading_is_the_one_built_after() {
    let dir = palisade_testkit::temp::TempDir::new("build-index");
    let inputs = inputs(dir.path());
    for leave_out_audit in [false, true] {
        let mut objects = load_with(&inputs, &LoadOptions::new("default"));
        // The two examples share a namespace and two workloads: the first
        // copies stand.
        let errors: Vec<String> = objects.errors.iter().map(ToString::to_string).collect();
        assert!(errors.len() == 4 && errors.iter().all(|e| e.contains("duplicate")), "{errors:?}");
        assert_eq!(objects.staged, 1);
        if leave_out_audit {
            objects.policies.retain(|p| p.name != "staged");
        }
        let after = objects.take_index();
        let options = LoadOptions { build: Build::Index { leave_out_audit }, ..LoadOptions::new("default") };
        let mut built = load_with(&inputs, &options);
        assert!(built.pods.is_empty() && built.policies.is_empty(), "the objects are in the index");
        assert_eq!(built.staged, 1);
        assert_eq!(built.errors.iter().map(ToString::to_string).collect::<Vec<_>>(), errors);
        let during = built.take_index();
        assert!(after.pod_ids().count() == 7 && after.cluster_policies().len() == 5, "the examples load");
        assert_eq!(listing(&during), listing(&after));
        assert_eq!(verdicts(&during), verdicts(&after), "leave_out_audit: {leave_out_audit}");
    }
}
