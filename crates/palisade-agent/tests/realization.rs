//! Realization status against a mock API server (real kube-rs client, the
//! API server's wire format) and the fake kernel: after a sync the node's
//! status ConfigMap names each policy that selects its pods with its
//! generation, an Event says it was programmed, `/metrics`-side gauges
//! count programmed and waiting pods; a sync that changes nothing writes
//! nothing, and a new generation is written and announced once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use palisade_agent::fake::FakeKernel;
use palisade_agent::kube::KubeApi;
use palisade_agent::kube::status::{NodeStatus, STATUS_KEY};
use palisade_agent::realization::Board;
use palisade_agent::{DriverConfig, Metrics};
use palisade_dataplane::NodeScope;
use palisade_testkit::kube_mock::{Mock, Resource};
use serde_json::{Value, json};

fn pod(name: &str, node: &str, ip: &str) -> Value {
    json!({
        "metadata": {"name": name, "namespace": "shop", "uid": format!("uid-{name}"), "labels": {"app": name}},
        "spec": {"nodeName": node, "containers": [{"name": "app", "image": "nginx"}]},
        "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]}
    })
}

fn policy(name: &str, generation: i64, spec: &Value, annotations: &Value) -> Value {
    json!({"metadata": {"name": name, "namespace": "shop", "uid": format!("uid-np-{name}"),
                        "generation": generation, "annotations": annotations}, "spec": spec})
}

/// The db policy's third generation: port 5433.
fn db_spec_v3() -> Value {
    json!({"podSelector": {"matchLabels": {"app": "db"}},
           "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "web"}}}], "ports": [{"port": 5433}]}]})
}

/// The node's status document, once `want` holds (within 10 s).
fn status_when(mock: &Mock, want: impl Fn(&NodeStatus) -> bool) -> (NodeStatus, usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (maps, writes) = mock.configmaps();
        let doc = maps.iter().find_map(|m| serde_json::from_str::<NodeStatus>(m["data"][STATUS_KEY].as_str()?).ok());
        if let Some(doc) = doc {
            if want(&doc) {
                return (doc, writes);
            }
            assert!(Instant::now() < deadline, "status never became as wanted: {doc:?}");
        }
        assert!(Instant::now() < deadline, "no status written");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_node_reports_what_it_programmed_once_per_generation() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let mock = runtime.block_on(Mock::start());
    mock.put(Resource::Namespaces, json!({"metadata": {"name": "shop", "uid": "uid-shop"}}));
    mock.put(Resource::Pods, pod("web", "node-1", "10.1.0.1"));
    mock.put(Resource::Pods, pod("db", "node-1", "10.1.0.2"));
    // On another node: a policy selecting only it does not apply here.
    mock.put(Resource::Pods, pod("cache", "node-2", "10.1.0.3"));
    let db_spec = json!({"podSelector": {"matchLabels": {"app": "db"}}, "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "web"}}}]}]});
    mock.put(Resource::NetworkPolicies, policy("db", 1, &db_spec, &json!({})));
    mock.put(
        Resource::NetworkPolicies,
        policy("cache", 1, &json!({"podSelector": {"matchLabels": {"app": "cache"}}}), &json!({})),
    );
    mock.put(
        Resource::NetworkPolicies,
        policy("staged", 4, &json!({"podSelector": {}}), &json!({"palisade.dev/enforcement": "audit"})),
    );
    let board = Arc::new(Board::default());
    let metrics = Arc::new(Metrics::new());
    let config =
        DriverConfig { realization: Some(board.clone()), ..DriverConfig::new(NodeScope::Node("node-1".into())) };
    let client = runtime.block_on(mock.client());
    let source = KubeApi::new(client, runtime.handle().clone(), "node-1").with_status(board, "palisade-system");
    let kernel = FakeKernel::new();
    let agent =
        palisade_agent::start(config, Box::new(source), Box::new(kernel.clone()), metrics.clone()).expect("start");

    let (doc, writes) = status_when(&mock, |d| !d.policies.is_empty());
    assert_eq!(doc.node, "node-1");
    assert_eq!((doc.pods_programmed, doc.pods_waiting, doc.error.as_deref()), (2, 0, None));
    let names: Vec<(&str, &str, Option<i64>)> =
        doc.policies.iter().map(|p| (p.name.as_str(), p.state.as_str(), p.generation)).collect();
    assert_eq!(names, vec![("shop/db", "programmed", Some(1)), ("shop/staged", "audit", Some(4))]);
    assert_eq!(doc.policies[0].pods, 1);
    assert_eq!(metrics.pods_programmed.get(), 2);
    assert_eq!(metrics.pods_waiting.get(), 0);
    assert_eq!(metrics.policies_programmed.get(), 1);
    let programmed = |events: &[Value]| {
        events.iter().filter(|e| e["reason"] == "Programmed" && e["involvedObject"]["name"] == "db").count()
    };
    assert_eq!(programmed(&mock.events()), 1, "{:?}", mock.events());

    // A change that does not touch what node-1 says (a pod on node-2):
    // no new write, no new Event.
    mock.put(Resource::Pods, pod("cache-2", "node-2", "10.1.0.4"));
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(mock.configmaps().1, writes, "nothing new to say, nothing written");
    assert_eq!(programmed(&mock.events()), 1);

    // A new generation of the policy: written and announced once.
    let mut spec = db_spec;
    spec["ingress"][0]["ports"] = json!([{"port": 5432}]);
    mock.put(Resource::NetworkPolicies, policy("db", 2, &spec, &json!({})));
    let (doc, _) = status_when(&mock, |d| d.policies.iter().any(|p| p.name == "shop/db" && p.generation == Some(2)));
    assert_eq!(doc.policies[0].state, "programmed");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(programmed(&mock.events()), 2, "one Event per generation");

    // The kernel refuses the next generation: the node says so, once, and
    // its new pod waits (the previous rules stay in force).
    kernel.state().fail_next = 1_000;
    mock.put(Resource::Pods, pod("worker", "node-1", "10.1.0.5"));
    mock.put(Resource::NetworkPolicies, policy("db", 3, &db_spec_v3(), &json!({})));
    let (doc, _) = status_when(&mock, |d| d.error.is_some() && d.policies.iter().any(|p| p.generation == Some(3)));
    assert_eq!(doc.policies[0].state, "failed");
    assert_eq!(doc.pods_waiting, 1, "the new pod is not programmed");
    assert_eq!(metrics.pods_waiting.get(), 1);
    let failed = |events: &[Value]| events.iter().filter(|e| e["reason"] == "ProgrammingFailed").count();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(failed(&mock.events()), 1, "one Event for the failure, not one per retry: {:?}", mock.events());
    // Once the kernel takes it again, the node catches up.
    kernel.state().fail_next = 0;
    let (doc, _) = status_when(&mock, |d| d.error.is_none() && d.policies.iter().any(|p| p.generation == Some(3)));
    assert_eq!((doc.policies[0].state.as_str(), doc.pods_waiting), ("programmed", 0));
    agent.stop();
    runtime.block_on(mock.shutdown());
}
