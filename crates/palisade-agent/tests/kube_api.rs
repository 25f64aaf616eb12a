//! The Kubernetes path against a mock API server, through kube-rs's own
//! client and watchers, into a kernel: the fake one (no root; the whole
//! table compared exactly), and the real one in a network namespace (root;
//! `scripts/test` runs it).
//!
//! The mock serves what an API server serves, in its wire format: lists
//! (`{"kind":"PodList","metadata":{"resourceVersion":…},"items":[…]}`, items
//! without kind and apiVersion), chunked watch streams of `ADDED`,
//! `MODIFIED`, `DELETED`, `BOOKMARK` and `ERROR` events, a `410 Expired`
//! status that forces a relist, dropped connections, and malformed objects.

#![allow(clippy::needless_pass_by_value, reason = "the object builders take json! values")]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use palisade_agent::fake::FakeKernel;
use palisade_agent::kube::KubeApi;
use palisade_agent::{DriverConfig, Kernel, Metrics, NetlinkKernel, Running};
use palisade_dataplane::json::TableSummary;
use palisade_dataplane::nft::{Nft as _, NftCli};
use palisade_dataplane::render::render;
use palisade_dataplane::ruleset::{Datum, Key, KeyType, Part};
use palisade_dataplane::ruleset::{Statement, Table};
use palisade_dataplane::{NodeScope, compile};
use palisade_lab::netns::{NetNs, unique_prefix};
use palisade_manifests::{ApiObject, convert_api_object};
use palisade_policy::ClusterIndex;
use palisade_testkit::kube_mock::{Mock, Resource};
use serde_json::{Value, json};

fn namespace(name: &str, labels: Value) -> Value {
    json!({"metadata": {"name": name, "uid": format!("uid-ns-{name}"), "labels": labels}, "spec": {}, "status": {"phase": "Active"}})
}

fn pod(ns: &str, name: &str, labels: Value, ip: &str) -> Value {
    json!({
        "metadata": {"name": name, "namespace": ns, "uid": format!("uid-{ns}-{name}"), "labels": labels},
        "spec": {"nodeName": "node-1", "containers": [{"name": "app", "image": "nginx", "ports": [{"name": "http", "containerPort": 80, "protocol": "TCP"}]}]},
        "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]}
    })
}

fn policy(ns: &str, name: &str, spec: Value) -> Value {
    json!({"metadata": {"name": name, "namespace": ns, "uid": format!("uid-np-{ns}-{name}")}, "spec": spec})
}

/// The table a full compile and render of the mock's current valid objects gives.
fn expected(mock: &Mock) -> Table {
    let mut index = ClusterIndex::new();
    for resource in [
        Resource::Namespaces,
        Resource::Nodes,
        Resource::Pods,
        Resource::NetworkPolicies,
        Resource::ClusterNetworkPolicies,
        Resource::AdminNetworkPolicies,
        Resource::BaselineAdminNetworkPolicies,
    ] {
        for mut object in mock.objects(resource) {
            object["kind"] = json!(resource.kind());
            object["apiVersion"] = json!(resource.api_version());
            match convert_api_object("expected", &object) {
                Ok(ApiObject::Namespace(n)) => {
                    index.apply_namespace(n);
                }
                Ok(ApiObject::Pod(p)) => {
                    index.apply_pod(p);
                }
                Ok(ApiObject::NetworkPolicy(p)) => {
                    index.apply_policy(p);
                }
                Ok(ApiObject::ClusterPolicy(p)) => {
                    index.apply_cluster_policy(p);
                }
                Ok(ApiObject::Node(n)) => {
                    index.apply_node(n);
                }
                Err(_) => {}
            }
        }
    }
    render(&compile(&index, &NodeScope::Node("node-1".into()), &BTreeMap::new()))
}

/// Addresses in the plain address sets (peer pods), per set: the part of
/// the table a pod change moves, compared element by element.
fn address_sets_rendered(r: &palisade_dataplane::ruleset::Table) -> BTreeMap<String, BTreeSet<String>> {
    r.sets
        .iter()
        .filter(|(_, d)| {
            !d.decl.verdict_map && !d.decl.interval && matches!(d.decl.key[..], [KeyType::Ipv4Addr | KeyType::Ipv6Addr])
        })
        .map(|(n, d)| {
            let addrs = d.elements.iter().filter_map(|e| match &e.key {
                Key::One(Part::One(Datum::Addr(a))) => Some(a.to_string()),
                _ => None,
            });
            (n.clone(), addrs.collect())
        })
        .collect()
}

fn address_sets_listed(
    listing: &palisade_dataplane::json::Listing,
    names: &BTreeMap<String, BTreeSet<String>>,
) -> BTreeMap<String, BTreeSet<String>> {
    let mut out = BTreeMap::new();
    for item in listing.json()["nftables"].as_array().into_iter().flatten() {
        let Some(set) = item.get("set") else { continue };
        let name = set["name"].as_str().unwrap_or_default();
        if names.contains_key(name) {
            let elems = set.get("elem").and_then(Value::as_array).into_iter().flatten();
            out.insert(name.to_string(), elems.filter_map(|v| v.as_str().map(String::from)).collect());
        }
    }
    out
}

/// The kernel a scenario runs against, as the assertions read it.
trait View {
    /// A kernel for a new agent.
    fn kernel(&self) -> Box<dyn Kernel>;
    /// Whether the table, as read, is what `expected` renders (`Err`: what was read).
    fn matches(&self, expected: &Table) -> Result<(), String>;
    /// The table as read, as typed objects.
    fn table(&self) -> Option<Table>;
    /// Whether the IPv4 pod-peer set of the first rule of policy chain
    /// `chain` holds `element`.
    fn has_peer(&self, chain: &str, element: &str) -> bool {
        let Some(table) = self.table() else { return false };
        let Some(rules) = table.chains.get(chain).map(|c| &c.rules) else { return false };
        let set = rules.iter().flat_map(|r| &r.0).find_map(|s| match s {
            Statement::Lookup { set, .. } if set.contains("/pods4/") => Some(set.clone()),
            _ => None,
        });
        set.and_then(|set| table.sets.get(&set).cloned())
            .is_some_and(|s| s.elements.iter().any(|e| e.to_string() == element))
    }
    /// Whether Palisade's table exists.
    fn has_table(&self) -> bool;
}

/// The kernel of the calling thread's namespace, read through `nft -j`.
struct Netlink;

impl View for Netlink {
    fn kernel(&self) -> Box<dyn Kernel> {
        Box::new(NetlinkKernel::default())
    }

    /// The same chains, rule counts, sets and element counts, and the same
    /// addresses in every peer set.
    fn matches(&self, expected: &Table) -> Result<(), String> {
        let want = (TableSummary::of(expected), address_sets_rendered(expected));
        let Ok(Some(listing)) = NftCli::default().list_table() else { return Err("no table".into()) };
        let got = (listing.summary(), address_sets_listed(&listing, &want.1));
        if got == want { Ok(()) } else { Err(format!("want {want:#?}\ngot {got:#?}")) }
    }

    fn table(&self) -> Option<Table> {
        NftCli::default().list_table().ok().flatten().map(|l| l.table().table)
    }

    fn has_table(&self) -> bool {
        NftCli::default().list_table().expect("list").is_some()
    }
}

/// The fake kernel: the whole table is compared.
struct Fake(FakeKernel);

impl View for Fake {
    fn kernel(&self) -> Box<dyn Kernel> {
        Box::new(self.0.clone())
    }

    fn matches(&self, expected: &Table) -> Result<(), String> {
        match self.0.table() {
            Some(table) if table == *expected => Ok(()),
            other => Err(format!("{:?}", other.map(|t| TableSummary::of(&t)))),
        }
    }

    fn table(&self) -> Option<Table> {
        self.0.table()
    }

    fn has_table(&self) -> bool {
        self.0.table().is_some()
    }
}

/// Waits (bounded) until the kernel's table matches what the mock holds.
fn converge(view: &dyn View, mock: &Mock, what: &str) {
    let expected = expected(mock);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = String::new();
    while Instant::now() < deadline {
        match view.matches(&expected) {
            Ok(()) => return,
            Err(got) => last = got,
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("{what}: the kernel did not converge\n{last}");
}

/// An agent on the mock's API and `view`'s kernel, its endpoints served.
fn start_agent(runtime: &tokio::runtime::Runtime, mock: &Mock, view: &dyn View) -> (Running, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::new());
    let config = DriverConfig {
        scope: NodeScope::Node("node-1".into()),
        resync: Duration::from_secs(1),
        status_file: None,
        cleanup_on_exit: false,
        gate: palisade_dataplane::PodGate::default(),
        flow_log: None,
        realization: None,
    };
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).expect("listen");
    let _ = metrics.listening.set(listener.local_addr().expect("address"));
    runtime.spawn(palisade_agent::metrics::serve(listener, metrics.clone(), Duration::from_secs(30)));
    let client = runtime.block_on(mock.client());
    let source = KubeApi::new(client, runtime.handle().clone(), "node-1");
    let running = palisade_agent::start(config, Box::new(source), view.kernel(), metrics.clone()).expect("start");
    (running, metrics)
}

/// One HTTP GET to the agent's endpoints; the whole answer.
fn http(metrics: &Metrics, path: &str) -> String {
    use std::io::{Read as _, Write as _};
    let addr = metrics.listening.get().expect("endpoints bound");
    let mut conn = std::net::TcpStream::connect(addr).expect("connect");
    conn.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    conn.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes()).expect("request");
    let mut answer = String::new();
    conn.read_to_string(&mut answer).expect("answer");
    answer
}

/// After the first sync: ready, endpoints, metrics, and the Event for the invalid policy.
fn check_reporting(mock: &Mock, metrics: &Metrics) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !metrics.ready.load(std::sync::atomic::Ordering::Relaxed) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(metrics.ready.load(std::sync::atomic::Ordering::Relaxed), "ready after the first sync");
    assert!(http(metrics, "/healthz").starts_with("HTTP/1.1 200"), "healthz");
    assert!(http(metrics, "/readyz").starts_with("HTTP/1.1 200"), "readyz");
    let scraped = http(metrics, "/metrics");
    for name in [
        "palisade_sync_seconds_bucket",
        "palisade_apply_seconds_count",
        "palisade_ruleset_sets",
        "palisade_apply_errors_total 0",
    ] {
        assert!(scraped.contains(name), "{name} in /metrics:\n{scraped}");
    }
    let exposition = metrics.encode();
    assert!(exposition.contains("palisade_objects{kind=\"Pod\"} 3"), "{exposition}");
    assert!(exposition.contains("palisade_objects{kind=\"Namespace\"} 2"), "declared namespaces only: {exposition}");
    assert!(exposition.contains("palisade_rejected_objects 2"), "{exposition}");
    // The invalid policy gets a Warning Event naming the field.
    let deadline = Instant::now() + Duration::from_secs(5);
    while mock.events().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let events = mock.events();
    assert_eq!(events.len(), 1, "one Event for the one invalid policy: {events:#?}");
    assert_eq!(events[0]["involvedObject"]["name"], "broken");
    assert_eq!(events[0]["type"], "Warning");
    let message = events[0]["message"].as_str().unwrap_or_default();
    assert!(message.contains("spec.ingress[0].from[0].ipBlock.cidr"), "{message}");
}

/// A cluster with the `policy.networking.k8s.io` CRDs: the agent lists and
/// watches ClusterNetworkPolicies, the v1alpha1 kinds and Nodes, enforces
/// them, reports an invalid one with an Event (in `default`, the object
/// being cluster-scoped), and follows changes and deletions.
#[test]
fn agent_enforces_cluster_policies_from_the_api() {
    let view = Fake(FakeKernel::new());
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let mock = runtime.block_on(Mock::start_serving(true));
    mock.put(Resource::Namespaces, namespace("shop", json!({"team": "shop"})));
    mock.put(Resource::Namespaces, namespace("ops", json!({"team": "ops"})));
    mock.put(Resource::Pods, pod("shop", "web", json!({"app": "web"}), "10.1.0.1"));
    mock.put(Resource::Pods, pod("ops", "probe", json!({"app": "probe"}), "10.1.0.3"));
    mock.put(
        Resource::Nodes,
        json!({"metadata": {"name": "node-1", "uid": "uid-node-1", "labels": {"role": "worker"}},
               "status": {"addresses": [{"type": "InternalIP", "address": "192.168.1.1"}, {"type": "Hostname", "address": "node-1"}]}}),
    );
    let cnp =
        |name: &str, spec: Value| json!({"metadata": {"name": name, "uid": format!("uid-cnp-{name}")}, "spec": spec});
    mock.put(
        Resource::ClusterNetworkPolicies,
        cnp(
            "ops-only",
            json!({"tier": "Admin", "priority": 10, "subject": {"namespaces": {"matchLabels": {"team": "shop"}}},
            "ingress": [{"action": "Accept", "from": [{"namespaces": {"matchLabels": {"team": "ops"}}}]},
                        {"action": "Deny", "from": [{"namespaces": {}}]}],
            "egress": [{"action": "Deny", "to": [{"nodes": {"matchLabels": {"role": "worker"}}}]}]}),
        ),
    );
    mock.put(
        Resource::BaselineAdminNetworkPolicies,
        json!({"metadata": {"name": "default", "uid": "uid-banp"}, "spec": {"subject": {"namespaces": {}},
               "egress": [{"action": "Deny", "to": [{"networks": ["0.0.0.0/0"]}]}]}}),
    );
    mock.put(
        Resource::ClusterNetworkPolicies,
        cnp("broken", json!({"tier": "Middle", "priority": 1, "subject": {"namespaces": {}}})),
    );
    let (agent, metrics) = start_agent(&runtime, &mock, &view);
    converge(&view, &mock, "cluster policies listed");
    let table = view.table().expect("table");
    // The policies' Deny counters, and their rules in the pods' list chains.
    assert!(table.counters.contains("tier/ClusterNetworkPolicy/ops-only/ingress/denied"), "{:?}", table.counters);
    assert!(table.counters.contains("tier/BaselineAdminNetworkPolicy/default/egress/denied"));
    let lists = |prefix: &str| -> Vec<String> {
        let chains = table.chains.iter().filter(|(n, _)| n.starts_with(prefix));
        chains
            .flat_map(|(_, c)| {
                c.rules.iter().map(|r| r.0.iter().map(ToString::to_string).collect::<Vec<_>>().join(" "))
            })
            .collect()
    };
    let admin_egress = lists("shared/admin-egress/");
    assert!(admin_egress.iter().any(|r| r.contains("192.168.1.1")), "the node's address: {admin_egress:?}");
    // The invalid one: an Event in `default` naming the field.
    let deadline = Instant::now() + Duration::from_secs(5);
    while mock.events().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let events = mock.events();
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0]["metadata"]["namespace"], "default");
    assert_eq!(events[0]["involvedObject"]["kind"], "ClusterNetworkPolicy");
    assert_eq!(events[0]["involvedObject"]["apiVersion"], "policy.networking.k8s.io/v1alpha2");
    assert!(events[0]["message"].as_str().unwrap_or_default().contains("spec.tier"), "{events:#?}");
    assert!(metrics.encode().contains("palisade_rejected_objects 1"));
    // A Node's new address, a cluster policy changed and one deleted.
    mock.put(
        Resource::Nodes,
        json!({"metadata": {"name": "node-1", "uid": "uid-node-1", "labels": {"role": "worker"}},
               "status": {"addresses": [{"type": "InternalIP", "address": "192.168.1.2"}]}}),
    );
    converge(&view, &mock, "node readdressed");
    mock.put(
        Resource::ClusterNetworkPolicies,
        cnp(
            "ops-only",
            json!({"tier": "Admin", "priority": 10, "subject": {"namespaces": {"matchLabels": {"team": "shop"}}},
            "ingress": [{"action": "Pass", "from": [{"namespaces": {"matchLabels": {"team": "ops"}}}]}]}),
        ),
    );
    converge(&view, &mock, "cluster policy changed");
    mock.delete(Resource::BaselineAdminNetworkPolicies, "default");
    converge(&view, &mock, "baseline deleted");
    let table = view.table().expect("table");
    assert!(!table.counters.contains("tier/BaselineAdminNetworkPolicy/default/egress/denied"));
    assert!(!table.chains.keys().any(|c| c.starts_with("shared/baseline-")), "no Baseline list left");
    agent.stop();
    runtime.block_on(mock.shutdown());
}

#[test]
fn agent_follows_the_api_into_a_fake_kernel() {
    scenario(&Fake(FakeKernel::new()));
}

#[test]
#[ignore = "root: needs network namespaces and nft (scripts/test runs it as root)"]
fn agent_follows_the_api_into_the_kernel() {
    palisade_lab::netns::require_root(&["nft"]);
    let ns = NetNs::create(&format!("{}kube", unique_prefix())).expect("netns");
    let name = ns.name().to_string();
    // The agent, the mock API server and the assertions share the namespace.
    std::thread::spawn(move || {
        palisade_lab::netns::enter(&name).expect("enter namespace");
        scenario(&Netlink);
    })
    .join()
    .expect("scenario");
    drop(ns);
}

fn scenario(view: &dyn View) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let mock = runtime.block_on(Mock::start());
    mock.put(Resource::Namespaces, namespace("shop", json!({"team": "shop"})));
    mock.put(Resource::Namespaces, namespace("ops", json!({"team": "ops"})));
    mock.put(Resource::Pods, pod("shop", "web", json!({"app": "web"}), "10.1.0.1"));
    mock.put(Resource::Pods, pod("shop", "db", json!({"app": "db"}), "10.1.0.2"));
    mock.put(Resource::Pods, pod("ops", "probe", json!({"app": "probe"}), "10.1.0.3"));
    mock.put(
        Resource::NetworkPolicies,
        policy("shop", "db", json!({"podSelector": {"matchLabels": {"app": "db"}}, "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "web"}}}], "ports": [{"port": 5432}]}]})),
    );
    // Malformed objects: an invalid CIDR, and a pod whose spec is not an object.
    mock.put(
        Resource::NetworkPolicies,
        policy(
            "shop",
            "broken",
            json!({"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/33"}}]}]}),
        ),
    );
    mock.put(
        Resource::Pods,
        json!({"metadata": {"name": "odd", "namespace": "shop", "uid": "uid-odd"}, "spec": "not an object"}),
    );

    // Nothing is programmed before every kind is listed: hold the policy list.
    mock.hold(Resource::NetworkPolicies, true);
    let (agent, metrics) = start_agent(&runtime, &mock, view);
    std::thread::sleep(Duration::from_millis(600));
    assert!(!view.has_table(), "no table before every kind is listed");
    assert!(http(&metrics, "/readyz").starts_with("HTTP/1.1 503"), "not ready before the first sync");
    assert!(!metrics.ready.load(std::sync::atomic::Ordering::Relaxed), "not ready before the first sync");
    mock.hold(Resource::NetworkPolicies, false);
    converge(view, &mock, "initial sync");
    assert!(view.has_peer("policy/shop/db/ingress", "10.1.0.1"), "web may reach db");
    check_reporting(&mock, &metrics);

    // Watch events: pod added, relabelled, deleted; namespace relabelled; policy added, updated, deleted.
    mock.put(Resource::Pods, pod("shop", "web2", json!({"app": "web"}), "10.1.0.4"));
    converge(view, &mock, "pod added");
    assert!(view.has_peer("policy/shop/db/ingress", "10.1.0.4"));
    mock.put(Resource::Pods, pod("shop", "web2", json!({"app": "batch"}), "10.1.0.4"));
    converge(view, &mock, "pod relabelled");
    assert!(!view.has_peer("policy/shop/db/ingress", "10.1.0.4"));
    mock.delete(Resource::Pods, "shop/web2");
    converge(view, &mock, "pod deleted");
    mock.put(
        Resource::NetworkPolicies,
        policy("shop", "from-ops", json!({"podSelector": {"matchLabels": {"app": "db"}}, "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": "ops"}}}]}]})),
    );
    converge(view, &mock, "policy added");
    assert!(view.has_peer("policy/shop/from-ops/ingress", "10.1.0.3"));
    mock.put(Resource::Namespaces, namespace("ops", json!({"team": "retired"})));
    converge(view, &mock, "namespace relabelled");
    assert!(!view.has_peer("policy/shop/from-ops/ingress", "10.1.0.3"));
    mock.put(
        Resource::NetworkPolicies,
        policy("shop", "from-ops", json!({"podSelector": {"matchLabels": {"app": "db"}}, "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": "retired"}}}]}]})),
    );
    converge(view, &mock, "policy updated");
    mock.delete(Resource::NetworkPolicies, "shop/from-ops");
    converge(view, &mock, "policy deleted");

    // Bookmarks are harmless; a dropped connection reconnects.
    mock.bookmark(Resource::Pods);
    mock.drop_watches(Resource::Pods);
    mock.put(Resource::Pods, pod("shop", "web3", json!({"app": "web"}), "10.1.0.5"));
    converge(view, &mock, "after a dropped watch");

    // Relist during updates: changes the watch never delivers, then 410 Gone.
    mock.put_silently(Resource::Pods, pod("shop", "web4", json!({"app": "web"}), "10.1.0.6"));
    mock.delete_silently(Resource::Pods, "shop/web3");
    mock.expire(Resource::Pods);
    converge(view, &mock, "relist after 410 Gone");
    assert!(view.has_peer("policy/shop/db/ingress", "10.1.0.6"));
    assert!(!view.has_peer("policy/shop/db/ingress", "10.1.0.5"));

    // The kernel's per-pod drop counters reach /metrics (read at every resync).
    let deadline = Instant::now() + Duration::from_secs(5);
    let wanted = "palisade_denied_packets{pod=\"shop/db\",direction=\"ingress\"} 0";
    let midstream = "palisade_dropped_packets{reason=\"midstream\"} 0";
    while !(metrics.encode().contains(wanted) && metrics.encode().contains(midstream)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(metrics.encode().contains(wanted), "{}", metrics.encode());
    assert!(metrics.encode().contains(midstream), "the base chains' drops too: {}", metrics.encode());

    // Restart: the rules stay while the agent is down, and it converges again.
    agent.stop();
    assert!(view.has_peer("policy/shop/db/ingress", "10.1.0.1"), "rules stay in place on stop");
    mock.put_silently(Resource::Pods, pod("shop", "web5", json!({"app": "web"}), "10.1.0.7"));
    let (agent, _metrics) = start_agent(&runtime, &mock, view);
    converge(view, &mock, "after a restart");
    agent.stop();
    runtime.block_on(mock.shutdown());
}
