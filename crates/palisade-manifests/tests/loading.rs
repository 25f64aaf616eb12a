//! Input forms: multi-document YAML, JSON, `kind: List`, directories,
//! workload templates, implicit namespaces and pod endpoint states.

use std::fs;

use palisade_manifests::{Input, load, load_str};
use palisade_policy::{NAMESPACE_NAME_LABEL, PodState, Protocol};

#[test]
fn kubectl_list_dump_loads() {
    // The shape `kubectl get namespaces,pods,networkpolicies -A -o yaml` prints.
    let text = r"
apiVersion: v1
kind: List
metadata: {resourceVersion: ''}
items:
- apiVersion: v1
  kind: Namespace
  metadata: {name: prod, labels: {kubernetes.io/metadata.name: prod, env: prd}}
- apiVersion: v1
  kind: Pod
  metadata: {name: web-5d8f-abc, namespace: prod, labels: {app: web}, ownerReferences: [{apiVersion: apps/v1, kind: ReplicaSet, name: web-5d8f, uid: u1}]}
  spec: {nodeName: n1, containers: [{name: c, image: i, ports: [{containerPort: 8080, name: http}]}]}
  status: {phase: Running, podIP: 10.1.0.5, podIPs: [{ip: 10.1.0.5}, {ip: 'fd00::5'}]}
- apiVersion: v1
  kind: Pod
  metadata: {name: done, namespace: prod}
  spec: {containers: [{name: c, image: i}]}
  status: {phase: Succeeded, podIP: 10.1.0.6}
- apiVersion: v1
  kind: Pod
  metadata: {name: pending, namespace: prod}
  spec: {containers: [{name: c, image: i}]}
  status: {phase: Pending}
- apiVersion: v1
  kind: Pod
  metadata: {name: node-agent, namespace: kube-system}
  spec: {hostNetwork: true, containers: [{name: c, image: i}]}
  status: {phase: Running, podIP: 192.168.1.10}
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata: {name: deny, namespace: prod}
  spec: {podSelector: {}}
- apiVersion: v1
  kind: Service
  metadata: {name: web, namespace: prod}
";
    let loaded = load_str("dump.yaml", text, "default");
    assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
    assert_eq!(loaded.namespaces.len(), 1);
    assert_eq!(loaded.policies.len(), 1);
    let state = |name: &str| loaded.pods.iter().find(|p| p.name == name).expect("pod").state.clone();
    assert_eq!(state("web-5d8f-abc"), PodState::Active);
    assert_eq!(state("done"), PodState::Excluded("phase Succeeded".into()));
    assert_eq!(state("pending"), PodState::Excluded("no pod IP yet (phase Pending)".into()));
    assert!(matches!(state("node-agent"), PodState::Excluded(r) if r.starts_with("hostNetwork")));
    let web = loaded.pods.iter().find(|p| p.name == "web-5d8f-abc").expect("web");
    assert_eq!(web.ips.len(), 2, "IPv4 and IPv6 from podIPs");
    assert_eq!(web.ports[0].name.as_deref(), Some("http"));
    assert_eq!(web.ports[0].protocol, Protocol::Tcp);
    assert_eq!(loaded.skipped.get("Service"), Some(&1));
    assert_eq!(
        loaded.skipped_summary().as_deref(),
        Some("skipped 1 object(s) of kinds Palisade does not use: 1 Service")
    );
}

#[test]
fn json_list_and_concatenated_json() {
    let text = r#"{"apiVersion":"v1","kind":"List","items":[
      {"apiVersion":"v1","kind":"Pod","metadata":{"name":"a","namespace":"x","labels":{"app":"a"}},"spec":{"containers":[]}}
    ]}
    {"apiVersion":"v1","kind":"PodList","items":[{"apiVersion":"v1","kind":"Pod","metadata":{"name":"b"},"spec":{"containers":[]}}]}"#;
    let loaded = load_str("dump.json", text, "team");
    assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
    let names: Vec<String> = loaded.pods.iter().map(|p| format!("{}/{}", p.namespace, p.name)).collect();
    assert_eq!(names, ["x/a", "team/b"], "objects without namespace go to the default namespace");
}

#[test]
fn workloads_become_planned_pods() {
    let text = r"
apiVersion: apps/v1
kind: Deployment
metadata: {name: api, namespace: shop}
spec:
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api, tier: backend}}
    spec: {containers: [{name: c, image: i, ports: [{containerPort: 9000, name: grpc}]}]}
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: report, namespace: shop}
spec:
  schedule: '* * * * *'
  jobTemplate: {spec: {template: {metadata: {labels: {app: report}}, spec: {restartPolicy: Never, containers: [{name: c, image: i}]}}}}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: shop}
spec:
  serviceName: db
  selector: {matchLabels: {app: db}}
  template: {metadata: {labels: {app: db}}, spec: {containers: [{name: c, image: i, ports: [{containerPort: 5432, protocol: TCP}]}]}}
";
    let loaded = load_str("apps.yaml", text, "default");
    assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
    let api = loaded.pods.iter().find(|p| p.name == "api").expect("api template pod");
    assert_eq!(api.state, PodState::Planned);
    assert_eq!(api.workload.as_deref(), Some("Deployment/api"));
    assert_eq!(api.labels.get("tier").map(String::as_str), Some("backend"));
    assert_eq!(api.ports[0].port, 9000);
    assert!(loaded.pods.iter().any(|p| p.workload.as_deref() == Some("CronJob/report")));
    assert!(loaded.pods.iter().any(|p| p.workload.as_deref() == Some("StatefulSet/db")));
}

#[test]
fn live_pods_replace_their_workload_template() {
    let text = r"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: prod}
spec: {selector: {matchLabels: {app: web}}, template: {metadata: {labels: {app: web}}, spec: {containers: [{name: c, image: i}]}}}
---
apiVersion: v1
kind: Pod
metadata: {name: web-5d8f-abc, namespace: prod, labels: {app: web}, ownerReferences: [{apiVersion: apps/v1, kind: ReplicaSet, name: web-5d8f, uid: u1}]}
spec: {containers: [{name: c, image: i}]}
status: {phase: Running, podIP: 10.1.0.5}
";
    let loaded = load_str("mixed.yaml", text, "default");
    assert_eq!(loaded.pods.len(), 1, "the Deployment's template is dropped: {:?}", loaded.pods);
    assert_eq!(loaded.skipped.get("Deployment (live pods present)"), Some(&1));
}

#[test]
fn namespaces_exist_implicitly_with_their_name_label() {
    let loaded = load_str(
        "p.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: a, namespace: ghost}\nspec: {containers: []}\n",
        "default",
    );
    let index = loaded.index();
    let ns = index.namespace(index.namespace_id("ghost").expect("implicit namespace"));
    assert!(!ns.declared());
    assert_eq!(ns.labels().get(NAMESPACE_NAME_LABEL).map(String::as_str), Some("ghost"));
}

#[test]
fn directories_are_searched_recursively_in_order() {
    let dir = std::env::temp_dir().join(format!("palisade-load-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.join("nested/deeper")).expect("temp dir");
    fs::write(dir.join("b.yaml"), "apiVersion: v1\nkind: Namespace\nmetadata: {name: b}\n").expect("write");
    fs::write(dir.join("nested/a.yml"), "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n").expect("write");
    fs::write(dir.join("nested/deeper/c.json"), r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"c"}}"#)
        .expect("write");
    fs::write(dir.join("notes.txt"), "not a manifest").expect("write");
    let loaded = load(&[Input::Path(dir.clone())], "default");
    let _ = fs::remove_dir_all(&dir);
    assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
    assert_eq!(loaded.files, 3, ".txt files are not read");
    let names: Vec<&str> = loaded.namespaces.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["b", "a", "c"], "sorted by path: b.yaml, nested/a.yml, nested/deeper/c.json");
}

#[test]
fn missing_paths_are_reported() {
    let loaded = load(&[Input::Path("/nonexistent/palisade".into())], "default");
    assert_eq!(loaded.errors.len(), 1);
    assert!(loaded.errors[0].to_string().starts_with("/nonexistent/palisade: "));
}

/// `load` and `raw_objects` flatten Lists the same way: nested Lists are
/// read down to four levels, and anything deeper is an error in both
/// (neither drops it silently).
#[test]
fn nested_lists_read_alike_by_load_and_raw_objects() {
    let ns = |name: &str| format!(r#"{{"apiVersion":"v1","kind":"Namespace","metadata":{{"name":"{name}"}}}}"#);
    let list = |items: &str| format!(r#"{{"apiVersion":"v1","kind":"List","items":[{items}]}}"#);
    // Namespace a at depth 1, b at depth 4 (read), c at depth 5 (too deep).
    let mut deep = list(&ns("c"));
    deep = list(&format!("{},{deep}", ns("b")));
    for _ in 0..3 {
        deep = list(&deep);
    }
    let text = format!("{}\n{}", list(&ns("a")), deep);
    let dir = palisade_testkit::temp::TempDir::new("nested");
    let file = dir.path().join("lists.json");
    fs::write(&file, &text).expect("write");
    let inputs = [Input::Path(file.clone())];
    let loaded = load(&inputs, "default");
    let names: Vec<&str> = loaded.namespaces.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    let (raw, raw_errors) = palisade_manifests::raw_objects(&inputs, "default");
    let raw_names: Vec<&str> = raw.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(raw_names, names, "the same objects");
    for errors in [&loaded.errors, &raw_errors] {
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].to_string().contains("Lists nested too deeply"), "{}", errors[0]);
    }
}

/// Cluster-scoped kinds in the dumps `kubectl get … -o json` prints: a typed
/// `ClusterNetworkPolicyList` whose items carry no kind, and a `List` mixing
/// Nodes and the v1alpha1 kinds; and the same objects on stdin as YAML.
#[test]
fn cluster_policies_and_nodes_load_from_lists() {
    let typed = r#"{"kind": "ClusterNetworkPolicyList", "apiVersion": "policy.networking.k8s.io/v1alpha2", "metadata": {},
        "items": [{"metadata": {"name": "a"}, "spec": {"tier": "Admin", "priority": 1, "subject": {"namespaces": {}}}},
                  {"metadata": {"name": "b"}, "spec": {"tier": "Baseline", "priority": 2, "subject": {"namespaces": {}}}}]}"#;
    let loaded = load_str("cnps.json", typed, "default");
    assert!(loaded.errors.is_empty() && loaded.warnings.is_empty(), "{:?} {:?}", loaded.errors, loaded.warnings);
    assert_eq!(loaded.cluster_policies.len(), 2);
    let mixed = r#"{"kind": "List", "apiVersion": "v1", "items": [
        {"kind": "Node", "apiVersion": "v1", "metadata": {"name": "n1", "labels": {"role": "infra"}},
         "status": {"addresses": [{"type": "InternalIP", "address": "192.168.0.1"}, {"type": "Hostname", "address": "n1"}]}},
        {"kind": "AdminNetworkPolicy", "apiVersion": "policy.networking.k8s.io/v1alpha1", "metadata": {"name": "anp"},
         "spec": {"priority": 3, "subject": {"namespaces": {}}, "ingress": [{"action": "Allow", "from": [{"namespaces": {}}]}]}},
        {"kind": "BaselineAdminNetworkPolicy", "apiVersion": "policy.networking.k8s.io/v1alpha1", "metadata": {"name": "default"},
         "spec": {"subject": {"namespaces": {}}}}]}"#;
    let loaded = load_str("dump.json", mixed, "default");
    assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
    assert_eq!((loaded.nodes.len(), loaded.cluster_policies.len()), (1, 2));
    assert_eq!(
        loaded.nodes[0].addresses,
        ["192.168.0.1".parse::<std::net::IpAddr>().expect("ip")],
        "IP addresses only"
    );
    let index = loaded.index();
    assert_eq!(index.cluster_policies().len(), 2);
}

/// A pod as one JSON List item.
fn pod_item(name: &str, ip: &str) -> String {
    format!(
        r#"{{"apiVersion": "v1", "kind": "Pod", "metadata": {{"name": "{name}", "namespace": "big", "labels": {{"app": "a"}}}},
  "spec": {{"containers": [{{"name": "c", "image": "i"}}]}}, "status": {{"phase": "Running", "podIP": "{ip}"}}}}"#
    )
}

/// Thousands of items convert in blocks on several threads and are taken
/// in input order while later blocks still convert: the result is the one
/// a sequential read gives. The first of two copies is kept wherever the
/// second falls, errors keep the input's order, and a syntax error in a
/// later file stops that file only.
#[test]
fn many_pieces_are_taken_in_input_order() {
    let dir = palisade_testkit::temp::TempDir::new("load-order");
    let mut items: Vec<String> =
        (0..3_000).map(|i| pod_item(&format!("p{i}"), &format!("10.9.{}.{}", i / 250, i % 250))).collect();
    // A duplicate of p10 far away, in another block, with another address.
    items.insert(2_500, pod_item("p10", "10.99.0.1"));
    // Invalid items at the start, in the middle and at the end.
    for at in [0, 1_500, items.len()] {
        items.insert(at, format!(r#"{{"apiVersion": "v1", "kind": "Pod", "metadata": {{"name": "bad{at}", "namespace": "big"}}, "spec": 5}}"#));
    }
    let list = format!(r#"{{"apiVersion": "v1", "kind": "List", "items": [{}]}}"#, items.join(",\n"));
    fs::write(dir.path().join("a.json"), list).unwrap();
    // A second file: one pod, then a syntax error; nothing after it is read.
    fs::write(dir.path().join("b.yaml"), "apiVersion: v1\nkind: Pod\nmetadata: {name: last, namespace: big}\n---\nkind: [\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: never, namespace: big}\n").unwrap();
    let loaded = load(&[Input::Path(dir.path().to_path_buf())], "default");
    let names: Vec<&str> = loaded.pods.iter().map(|p| p.name.as_str()).collect();
    let expected: Vec<String> = (0..3_000).map(|i| format!("p{i}")).chain(["last".to_string()]).collect();
    assert_eq!(names, expected.iter().map(String::as_str).collect::<Vec<_>>());
    let p10 = loaded.pods.iter().find(|p| p.name == "p10").unwrap();
    assert_eq!(p10.ips, ["10.9.0.10".parse::<std::net::IpAddr>().unwrap()], "the first copy is kept");
    let messages: Vec<String> = loaded.errors.iter().map(ToString::to_string).collect();
    let order: Vec<usize> = ["bad0", "bad1500", "duplicate Pod", "bad3001", "b.yaml"]
        .iter()
        .map(|needle| {
            messages.iter().position(|m| m.contains(needle)).unwrap_or_else(|| panic!("{needle}: {messages:#?}"))
        })
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "errors in input order: {messages:#?}");
    assert_eq!(messages.len(), 5, "{messages:#?}");
}

/// A List's items are cut and converted while the rest of the text is
/// still being read, before its `kind` (which kubectl and the API write
/// after `items`) is known. They stand only if the text turns out to be one
/// List; otherwise the text is read again exactly, and the result is the
/// one a whole read gives.
#[test]
fn streamed_list_items_stand_only_when_the_text_is_one_list() {
    let items = |n: usize| -> String {
        let all: Vec<String> =
            (0..n).map(|i| pod_item(&format!("p{i}"), &format!("10.8.{}.{}", i / 250, i % 250))).collect();
        all.join(",\n")
    };
    let names = |text: &str| -> (Vec<String>, Vec<String>) {
        let loaded = load_str("dump.json", text, "default");
        let pods = loaded.pods.iter().map(|p| p.name.clone()).collect();
        (pods, loaded.errors.iter().map(ToString::to_string).collect())
    };
    let all: Vec<String> = (0..3_000).map(|i| format!("p{i}")).collect();

    // A typed list as the API serves it: items without a kind, the list's
    // kind written last.
    let kindless: Vec<String> = (0..3_000)
        .map(|i| {
            format!(
                r#"{{"metadata": {{"name": "p{i}", "namespace": "big"}}, "status": {{"podIP": "10.7.{}.{}"}}}}"#,
                i / 250,
                i % 250
            )
        })
        .collect();
    let typed =
        format!(r#"{{"items": [{}], "apiVersion": "v1", "kind": "PodList", "metadata": {{}}}}"#, kindless.join(","));
    assert_eq!(names(&typed), (all.clone(), vec![]), "items take the kind the list implies");

    // A List followed by another object: both are read.
    let two = format!(
        r#"{{"items": [{}], "apiVersion": "v1", "kind": "List"}} {{"apiVersion": "v1", "kind": "Namespace", "metadata": {{"name": "big"}}}}"#,
        items(3_000)
    );
    let loaded = load_str("dump.json", &two, "default");
    assert_eq!(loaded.pods.len(), 3_000);
    assert_eq!(loaded.namespaces.len(), 1);
    assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);

    // Not a List at all: an object of another kind that has `items`.
    let other = format!(
        r#"{{"items": [{}], "apiVersion": "v1", "kind": "ConfigMap", "metadata": {{"name": "c"}}}}"#,
        items(3_000)
    );
    let loaded = load_str("dump.json", &other, "default");
    assert!(loaded.pods.is_empty(), "no item of a ConfigMap is a pod");
    assert_eq!(loaded.skipped.get("ConfigMap"), Some(&1));

    // A syntax error near the end: nothing of the List is read, as when
    // the whole List is read first.
    let broken = format!(r#"{{"apiVersion": "v1", "items": [{}, {{"kind": }}], "kind": "List"}}"#, items(3_000));
    let (pods, errors) = names(&broken);
    assert!(pods.is_empty(), "{} pods read from a broken List", pods.len());
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].starts_with("dump.json:") && errors[0].contains("expected value"), "{errors:?}");

    // A duplicate `kind`: refused as a whole read refuses it.
    let twice = format!(r#"{{"kind": "List", "items": [{}], "kind": "List"}}"#, items(3_000));
    let (pods, errors) = names(&twice);
    assert!(pods.is_empty());
    assert!(errors.len() == 1 && errors[0].contains("duplicate field `kind`"), "{errors:?}");
}
