//! The analyzer without `-f`: the cluster read through the Kubernetes API
//! (here the mock API server of `palisade_testkit::kube_mock`, in the API
//! server's wire format: lists whose items carry no kind), with the same
//! loader and validation as files; and as a kubectl plugin.

use palisade_testkit::command::run_with_env;
use palisade_testkit::kube_mock::{Mock, Resource};
use palisade_testkit::temp::TempDir;
use serde_json::json;

fn kubeconfig(dir: &std::path::Path, addr: std::net::SocketAddr) -> std::path::PathBuf {
    let path = dir.join("kubeconfig");
    let text = format!(
        "apiVersion: v1
kind: Config
clusters:
- {{name: mock, cluster: {{server: 'http://{addr}'}}}}
- {{name: nowhere, cluster: {{server: 'http://127.0.0.1:9'}}}}
users: [{{name: u, user: {{}}}}]
contexts:
- {{name: mock, context: {{cluster: mock, user: u}}}}
- {{name: down, context: {{cluster: nowhere, user: u}}}}
current-context: down
"
    );
    std::fs::write(&path, text).expect("kubeconfig");
    path
}

fn palisade(dir: &std::path::Path, config: &std::path::Path, args: &[&str]) -> (String, String, i32) {
    let config = config.to_str().expect("utf-8");
    run_with_env(env!("CARGO_BIN_EXE_palisade"), dir, args, "", &[("KUBECONFIG", config)])
}

#[test]
fn commands_without_files_read_the_cluster_through_its_api() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let mock = runtime.block_on(Mock::start());
    mock.put(Resource::Namespaces, json!({"metadata": {"name": "shop", "labels": {"team": "shop"}}}));
    for (name, ip) in [("web", "10.0.0.1"), ("db", "10.0.0.2")] {
        mock.put(
            Resource::Pods,
            json!({"metadata": {"name": name, "namespace": "shop", "labels": {"app": name}},
                   "spec": {"containers": [{"name": "c", "image": "i"}]},
                   "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]}}),
        );
    }
    mock.put(
        Resource::NetworkPolicies,
        json!({"metadata": {"name": "db", "namespace": "shop"},
               "spec": {"podSelector": {"matchLabels": {"app": "db"}},
                        "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "web"}}}], "ports": [{"port": 5432}]}]}}),
    );
    let dir = TempDir::new("live-cluster");
    let config = kubeconfig(dir.path(), mock.addr());
    let check = |port: &str| {
        palisade(
            dir.path(),
            &config,
            &["check", "--context", "mock", "--from", "shop/web", "--to", "shop/db", "--port", port],
        )
    };
    let (out, err, code) = check("5432");
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("ALLOW shop/web (10.0.0.1) -> shop/db (10.0.0.2) TCP/5432"), "{out}");
    let (out, _, code) = check("80");
    assert_eq!(code, 1, "{out}");

    // The same validation as files: an invalid policy names its source,
    // object and field.
    mock.put(
        Resource::NetworkPolicies,
        json!({"metadata": {"name": "bad", "namespace": "shop"},
               "spec": {"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/33"}}]}]}}),
    );
    let (_, err, code) = palisade(dir.path(), &config, &["lint", "--context", "mock"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("error: api /apis/networking.k8s.io/v1/networkpolicies: NetworkPolicy shop/bad: spec.ingress[0].from[0].ipBlock.cidr"),
        "{err}"
    );

    // The current context's server is down: a clear error, exit 2.
    let (_, err, code) = palisade(dir.path(), &config, &["lint"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("error: the Kubernetes API:"), "{err}");

    // As a kubectl plugin: the same binary named kubectl-palisade.
    let plugin = dir.path().join("kubectl-palisade");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_palisade"), &plugin).expect("symlink");
    let kubeconfig = config.to_str().expect("utf-8");
    let (out, err, code) = run_with_env(
        plugin.to_str().expect("utf-8"),
        dir.path(),
        &["explain", "--context", "mock", "shop/db"],
        "",
        &[("KUBECONFIG", kubeconfig)],
    );
    assert_eq!(code, 2, "the invalid policy is still there: {out}{err}");
    assert!(out.contains("Pod shop/db"), "{out}");
    runtime.block_on(mock.shutdown());
}

/// A cluster that serves the `policy.networking.k8s.io` API: its cluster
/// policies and Nodes are read, and decide as they say.
#[test]
fn cluster_policies_and_nodes_are_read_from_the_api() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let mock = runtime.block_on(Mock::start_serving(true));
    for (ns, name, ip) in [("shop", "web", "10.0.0.1"), ("dev", "client", "10.0.1.1")] {
        mock.put(Resource::Namespaces, json!({"metadata": {"name": ns, "labels": {"team": ns}}}));
        mock.put(
            Resource::Pods,
            json!({"metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
                   "spec": {"containers": [{"name": "c", "image": "i"}]},
                   "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]}}),
        );
    }
    mock.put(
        Resource::Nodes,
        json!({"metadata": {"name": "n1", "labels": {"role": "infra"}},
               "status": {"addresses": [{"type": "InternalIP", "address": "192.168.9.1"}]}}),
    );
    mock.put(
        Resource::AdminNetworkPolicies,
        json!({"metadata": {"name": "no-dev"}, "spec": {"priority": 1, "subject": {"namespaces": {"matchLabels": {"team": "shop"}}},
               "ingress": [{"action": "Deny", "from": [{"namespaces": {"matchLabels": {"team": "dev"}}}]}],
               "egress": [{"action": "Deny", "to": [{"nodes": {"matchLabels": {"role": "infra"}}}]}]}}),
    );
    let dir = TempDir::new("live-cnp");
    let config = kubeconfig(dir.path(), mock.addr());
    let check = |from: &str, to: &str| {
        palisade(dir.path(), &config, &["check", "--context", "mock", "--from", from, "--to", to, "--port", "80"])
    };
    let (out, err, code) = check("dev/client", "shop/web");
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("denied by admin AdminNetworkPolicy/no-dev priority 1 ingress rule 0"), "{out}");
    let (out, _, code) = check("shop/web", "192.168.9.1");
    assert_eq!(code, 1, "the node's address, from the Node object: {out}");
    assert_eq!(check("shop/web", "dev/client").2, 0);
    runtime.block_on(mock.shutdown());
}

/// `palisade status` over what a running agent reported: the agent (on the
/// fake kernel) writes node-1's status to the mock API; the command reads
/// the policies and the status and says where each is programmed.
#[test]
fn status_reads_what_the_agents_reported() {
    use std::sync::Arc;
    use std::time::{Duration, Instant};
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let mock = runtime.block_on(Mock::start());
    mock.put(Resource::Namespaces, json!({"metadata": {"name": "shop"}}));
    mock.put(
        Resource::Pods,
        json!({"metadata": {"name": "db", "namespace": "shop", "labels": {"app": "db"}},
               "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "i"}]},
               "status": {"phase": "Running", "podIP": "10.0.0.2", "podIPs": [{"ip": "10.0.0.2"}]}}),
    );
    mock.put(
        Resource::NetworkPolicies,
        json!({"metadata": {"name": "db", "namespace": "shop", "generation": 3},
               "spec": {"podSelector": {"matchLabels": {"app": "db"}}}}),
    );
    mock.put(
        Resource::NetworkPolicies,
        json!({"metadata": {"name": "elsewhere", "namespace": "shop", "generation": 1},
               "spec": {"podSelector": {"matchLabels": {"app": "none"}}}}),
    );
    let board = Arc::new(palisade_agent::realization::Board::default());
    let config = palisade_agent::DriverConfig {
        realization: Some(board.clone()),
        ..palisade_agent::DriverConfig::new(palisade_dataplane::NodeScope::Node("node-1".into()))
    };
    let client = runtime.block_on(mock.client());
    let source = palisade_agent::kube::KubeApi::new(client, runtime.handle().clone(), "node-1")
        .with_status(board, "palisade-system");
    let agent = palisade_agent::start(
        config,
        Box::new(source),
        Box::new(palisade_agent::fake::FakeKernel::new()),
        Arc::new(palisade_agent::Metrics::new()),
    )
    .expect("agent");
    let deadline = Instant::now() + Duration::from_secs(10);
    while mock.configmaps().0.is_empty() {
        assert!(Instant::now() < deadline, "the agent wrote no status");
        std::thread::sleep(Duration::from_millis(50));
    }
    let dir = TempDir::new("status");
    let config = kubeconfig(dir.path(), mock.addr());
    let (out, err, code) = palisade(dir.path(), &config, &["status", "--context", "mock"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("NetworkPolicy shop/db (generation 3): programmed on 1 node (1 pods)"), "{out}");
    assert!(out.contains("NetworkPolicy shop/elsewhere (generation 1): selects no pod on a reporting node"), "{out}");
    assert!(out.contains("node node-1: 1 pods programmed, 0 waiting"), "{out}");
    let (out, _, code) = palisade(dir.path(), &config, &["status", "--context", "mock", "-o", "json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["policies"][0]["programmed"], json!(["node-1"]));
    agent.stop();
    runtime.block_on(mock.shutdown());
}
