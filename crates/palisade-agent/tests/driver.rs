//! The driver and the manifests source against the fake kernel, without
//! root: what is programmed and when (not before the source is synced, one
//! transaction for the batches waiting), drift repair, retries after a
//! refused apply, the status file, and cleanup on stop.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::mpsc::{self, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use palisade_agent::fake::FakeKernel;
use palisade_agent::manifests::{ManifestsDir, dir_digest, hex};
use palisade_agent::{Batch, Change, Driver, DriverConfig, Message, Metrics, apply_changes, take_loaded};
use palisade_dataplane::render::render;
use palisade_dataplane::ruleset::{Element, Key, KeyType, Statement, Table, Verdict};
use palisade_dataplane::{NodeScope, compile};
use palisade_manifests::load_str;
use palisade_policy::ClusterIndex;
use palisade_testkit::temp::TempDir;

const CLUSTER: &str = "
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {team: shop}}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: shop, labels: {app: web}}
spec: {nodeName: n1, containers: [{name: c, image: i}]}
status: {phase: Running, podIP: 10.1.0.1}
---
apiVersion: v1
kind: Pod
metadata: {name: db, namespace: shop, labels: {app: db}}
spec: {nodeName: n1, containers: [{name: c, image: i, ports: [{name: pg, containerPort: 5432}]}]}
status: {phase: Running, podIP: 10.1.0.2}
";

fn policy(port: u16) -> String {
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: db, namespace: shop}}\n\
         spec: {{podSelector: {{matchLabels: {{app: db}}}}, ingress: [{{from: [{{podSelector: {{matchLabels: {{app: web}}}}}}], ports: [{{port: {port}}}]}}]}}\n"
    )
}

/// The objects of `yaml` as changes.
fn changes(yaml: &str) -> Vec<Change> {
    let mut loaded = load_str("test.yaml", yaml, "default");
    assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
    take_loaded(&mut loaded).map(Change::Apply).collect()
}

fn ifaces() -> BTreeMap<IpAddr, String> {
    BTreeMap::from([
        ("10.1.0.1".parse().expect("ip"), "veth-web".into()),
        ("10.1.0.2".parse().expect("ip"), "veth-db".into()),
    ])
}

/// The table a full compile of `changes` gives.
fn expected(changes: Vec<Change>) -> Table {
    let mut index = ClusterIndex::new();
    apply_changes(&mut index, changes);
    render(&compile(&index, &NodeScope::Node("n1".into()), &ifaces()))
}

fn config(resync: Duration) -> DriverConfig {
    DriverConfig {
        scope: NodeScope::Node("n1".into()),
        resync,
        status_file: None,
        cleanup_on_exit: false,
        gate: palisade_dataplane::PodGate::default(),
        flow_log: None,
        realization: None,
    }
}

fn kernel() -> FakeKernel {
    let kernel = FakeKernel::new();
    kernel.state().interfaces = ifaces();
    kernel
}

/// Waits (bounded) until `what` holds.
fn eventually(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn spawn(driver: Driver) -> (Sender<Message>, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel();
    (tx, std::thread::spawn(move || driver.run(&rx)))
}

fn batch(changes: Vec<Change>, synced: bool) -> Message {
    Message::Batch(Batch { changes, synced, ..Batch::default() })
}

#[test]
fn nothing_is_programmed_before_the_source_is_synced_and_waiting_batches_make_one_transaction() {
    let kernel = kernel();
    let metrics = Arc::new(Metrics::new());
    let driver = Driver::new(config(Duration::from_secs(60)), Box::new(kernel.clone()), metrics.clone());
    let (tx, rx) = mpsc::channel();
    // A partial view: nothing may be programmed from it.
    tx.send(batch(changes(CLUSTER), false)).expect("send");
    let handle = std::thread::spawn(move || driver.run(&rx));
    std::thread::sleep(Duration::from_millis(300));
    assert!(kernel.table().is_none() && kernel.state().applied.is_empty(), "nothing before the source is synced");
    assert!(!metrics.ready.load(std::sync::atomic::Ordering::Relaxed));
    // The rest arrives while the driver waits: one transaction for all of it.
    tx.send(batch(changes(&policy(5432)), false)).expect("send");
    tx.send(batch(Vec::new(), true)).expect("send");
    let want = expected([changes(CLUSTER), changes(&policy(5432))].concat());
    eventually("the first sync", || kernel.table().as_ref() == Some(&want));
    assert_eq!(kernel.state().applied.len(), 1, "one transaction for the batches that were waiting");
    assert!(metrics.ready.load(std::sync::atomic::Ordering::Relaxed));
    // A change: one more transaction, and only what changed.
    tx.send(batch(changes(&policy(5433)), true)).expect("send");
    let want = expected([changes(CLUSTER), changes(&policy(5433))].concat());
    eventually("the policy change", || kernel.table().as_ref() == Some(&want));
    let state = kernel.state();
    assert_eq!(state.applied.len(), 2);
    assert!(state.applied[1].len() < state.applied[0].len() / 2, "an incremental transaction, not a full one");
    drop(state);
    tx.send(Message::Stop).expect("send");
    handle.join().expect("driver");
    assert_eq!(kernel.table(), Some(want), "rules stay in place on stop");
}

#[test]
fn drift_and_refused_applies_are_repaired() {
    let kernel = kernel();
    let metrics = Arc::new(Metrics::new());
    let driver = Driver::new(config(Duration::from_millis(100)), Box::new(kernel.clone()), metrics.clone());
    let (tx, handle) = spawn(driver);
    let all = [changes(CLUSTER), changes(&policy(5432))].concat();
    let want = expected(all.clone());
    tx.send(batch(all, true)).expect("send");
    eventually("the first sync", || kernel.table().as_ref() == Some(&want));

    // While nothing else commits, the checks read only the counters: the
    // ruleset generation shows the table is as applied.
    std::thread::sleep(Duration::from_millis(350));
    assert_eq!(kernel.state().reads, 0, "no listing while the generation stands still");

    // The table deleted behind the agent's back is replaced whole.
    kernel.tamper(|t| *t = None);
    eventually("the deleted table replaced", || kernel.table().as_ref() == Some(&want));
    // A rule removed from a pod chain (the counts differ) is repaired.
    kernel.tamper(|t| {
        t.as_mut().expect("table").chains.get_mut("pod/shop/db/ingress").expect("chain").rules.pop();
    });
    eventually("the chain repaired", || kernel.table().as_ref() == Some(&want));
    // Edits that keep every count: a pod chain's drop turned into accept,
    // and a set element swapped for another address.
    kernel.tamper(|t| {
        let rules = &mut t.as_mut().expect("table").chains.get_mut("pod/shop/db/ingress").expect("chain").rules;
        let last = rules.last_mut().expect("the drop rule");
        *last.0.last_mut().expect("verdict") = Statement::Verdict(Verdict::Accept);
    });
    eventually("the verdict repaired", || kernel.table().as_ref() == Some(&want));
    kernel.tamper(|t| {
        let set = t
            .as_mut()
            .expect("table")
            .sets
            .values_mut()
            .find(|s| !s.decl.verdict_map && s.decl.key == [KeyType::Ipv4Addr] && !s.elements.is_empty())
            .expect("an address set with elements");
        let first = set.elements.iter().next().expect("element").clone();
        set.elements.remove(&first);
        set.elements.insert(Element::key(Key::addr("192.0.2.99".parse().expect("ip"))));
    });
    eventually("the element repaired", || kernel.table().as_ref() == Some(&want));
    let text = metrics.encode();
    assert!(text.contains("palisade_drift_repairs_total 4"), "{text}");
    assert!(text.contains("palisade_drift_differences_total{kind=\"set\"} 1"), "{text}");

    // A refused apply leaves the kernel as it was and is retried with a full replace.
    let applied = kernel.state().applied.len();
    kernel.state().fail_next = 2;
    let changed = expected([changes(CLUSTER), changes(&policy(6000))].concat());
    tx.send(batch(changes(&policy(6000)), true)).expect("send");
    eventually("the retried change", || kernel.table().as_ref() == Some(&changed));
    let state = kernel.state();
    assert_eq!(state.refused, 2);
    assert_eq!(state.applied.len(), applied + 1, "one transaction once the kernel accepts again");
    assert!(state.applied.last().expect("applied").commands.len() > 10, "a full replace after a failure");
    drop(state);
    assert!(metrics.encode().contains("palisade_apply_errors_total 2"), "{}", metrics.encode());
    tx.send(Message::Stop).expect("send");
    handle.join().expect("driver");
}

#[test]
fn stop_with_cleanup_removes_the_table() {
    let kernel = kernel();
    let config = DriverConfig { cleanup_on_exit: true, ..config(Duration::from_secs(60)) };
    let (tx, handle) = spawn(Driver::new(config, Box::new(kernel.clone()), Arc::new(Metrics::new())));
    tx.send(batch(changes(CLUSTER), true)).expect("send");
    eventually("the first sync", || kernel.table().is_some());
    tx.send(Message::Stop).expect("send");
    handle.join().expect("driver");
    assert_eq!(kernel.table(), None);
}

/// Writes `text` to `dir/name` as writers should: a temporary file renamed
/// into place.
fn write(dir: &std::path::Path, name: &str, text: &str) {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, dir.join(name)).expect("rename");
}

#[test]
fn the_manifests_directory_drives_the_kernel() {
    let dir = TempDir::new("manifests-source");
    let status = dir.path().join(".status.json");
    write(dir.path(), "cluster.yaml", CLUSTER);
    write(dir.path(), "policy.yaml", &policy(5432));
    let kernel = kernel();
    let config = DriverConfig { status_file: Some(status.clone()), ..config(Duration::from_millis(200)) };
    let source = ManifestsDir::new(dir.path(), "default", Duration::from_millis(200)).expect("watch");
    let agent = palisade_agent::start(config, Box::new(source), Box::new(kernel.clone()), Arc::new(Metrics::new()))
        .expect("start");
    let status_digest = || {
        let text = std::fs::read_to_string(&status).unwrap_or_default();
        serde_json::from_str::<serde_json::Value>(&text).ok().map(|v| (v["digest"].clone(), v["errors"].clone()))
    };
    let want = expected([changes(CLUSTER), changes(&policy(5432))].concat());
    eventually("the directory programmed", || kernel.table().as_ref() == Some(&want));
    eventually("the status names the directory's digest", || {
        status_digest().is_some_and(|(d, _)| d == hex(&dir_digest(dir.path())).as_str())
    });

    write(dir.path(), "policy.yaml", &policy(5433));
    let want = expected([changes(CLUSTER), changes(&policy(5433))].concat());
    eventually("an edit applied", || kernel.table().as_ref() == Some(&want));

    // An invalid edit keeps the last good state, and the status says why.
    write(dir.path(), "policy.yaml", &policy(0));
    eventually("the error in the status", || {
        status_digest().is_some_and(|(_, errors)| errors.to_string().contains("NetworkPolicy shop/db"))
    });
    assert_eq!(kernel.table().as_ref(), Some(&want), "the last good state stays");

    std::fs::remove_file(dir.path().join("policy.yaml")).expect("remove");
    let want = expected(changes(CLUSTER));
    eventually("a deletion applied", || kernel.table().as_ref() == Some(&want));
    agent.stop();
}

/// Cluster policies and Nodes in the directory are enforced like the rest;
/// an invalid one keeps its last good state.
#[test]
fn the_manifests_directory_carries_cluster_policies() {
    let dir = TempDir::new("manifests-cnp");
    let status = dir.path().join(".status.json");
    let cnp = |action: &str| {
        format!(
            "apiVersion: policy.networking.k8s.io/v1alpha2\nkind: ClusterNetworkPolicy\nmetadata: {{name: guard}}\n\
             spec: {{tier: Admin, priority: 1, subject: {{namespaces: {{}}}}, \
             egress: [{{action: {action}, to: [{{nodes: {{matchLabels: {{role: infra}}}}}}]}}]}}\n"
        )
    };
    let node = "apiVersion: v1\nkind: Node\nmetadata: {name: infra-1, labels: {role: infra}}\n\
                status: {addresses: [{type: InternalIP, address: 192.168.5.5}]}\n";
    write(dir.path(), "cluster.yaml", CLUSTER);
    write(dir.path(), "node.yaml", node);
    write(dir.path(), "cnp.yaml", &cnp("Deny"));
    let kernel = kernel();
    let config = DriverConfig { status_file: Some(status.clone()), ..config(Duration::from_millis(200)) };
    let source = ManifestsDir::new(dir.path(), "default", Duration::from_millis(200)).expect("watch");
    let agent = palisade_agent::start(config, Box::new(source), Box::new(kernel.clone()), Arc::new(Metrics::new()))
        .expect("start");
    let want = expected([changes(CLUSTER), changes(node), changes(&cnp("Deny"))].concat());
    assert!(want.counters.contains("tier/ClusterNetworkPolicy/guard/egress/denied"), "the Deny rule's counter");
    assert!(want.chains.keys().any(|c| c.starts_with("shared/admin-egress/")), "the pods' Admin list");
    eventually("the cluster policy programmed", || kernel.table().as_ref() == Some(&want));
    write(dir.path(), "cnp.yaml", &cnp("Drop"));
    eventually("the error in the status", || {
        let text = std::fs::read_to_string(&status).unwrap_or_default();
        text.contains("ClusterNetworkPolicy guard") && text.contains("spec.egress[0].action")
    });
    assert_eq!(kernel.table().as_ref(), Some(&want), "the last good state stays");
    std::fs::remove_file(dir.path().join("cnp.yaml")).expect("remove");
    let want = expected([changes(CLUSTER), changes(node)].concat());
    eventually("the cluster policy removed", || kernel.table().as_ref() == Some(&want));
    agent.stop();
}

/// A tracked connection without NAT.
fn connection(src: &str, dst: &str, dport: u16) -> palisade_dataplane::conntrack::Entry {
    use palisade_dataplane::conntrack::{Entry, TCP, Tuple};
    let orig =
        Tuple { src: src.parse().expect("ip"), dst: dst.parse().expect("ip"), protocol: TCP, sport: 40000, dport };
    Entry { orig, reply: orig.reversed(), zone: 0, id: u32::from(dport) }
}

#[test]
fn established_connections_the_state_denies_are_revoked_at_start_and_after_each_change() {
    let kernel = kernel();
    // web -> db on 5432 and 5433; an outside client -> db on 5432; web ->
    // outside on 443. By the spec: the policy admits web on its one port
    // only, outsiders never, and web's egress is never isolated.
    let (pg, alt, outside, out) = (
        connection("10.1.0.1", "10.1.0.2", 5432),
        connection("10.1.0.1", "10.1.0.2", 5433),
        connection("192.0.2.7", "10.1.0.2", 5432),
        connection("10.1.0.1", "192.0.2.7", 443),
    );
    kernel.state().connections = vec![pg, alt, outside, out];
    let metrics = Arc::new(Metrics::new());
    let driver = Driver::new(config(Duration::from_secs(60)), Box::new(kernel.clone()), metrics.clone());
    let (tx, handle) = spawn(driver);
    // The first sync (as after a restart) judges every local pod's connections.
    tx.send(batch([changes(CLUSTER), changes(&policy(5432))].concat(), true)).expect("send");
    eventually("revoked at start", || kernel.state().revoked.len() == 2);
    assert_eq!(kernel.state().revoked, [alt, outside]);
    assert_eq!(kernel.state().connections, [pg, out]);
    // The policy moves to 5433: web's 5432 connection is now denied.
    let fresh_alt = connection("10.1.0.1", "10.1.0.2", 5433);
    kernel.state().connections.push(fresh_alt);
    tx.send(batch(changes(&policy(5433)), true)).expect("send");
    eventually("revoked after the change", || kernel.state().revoked.len() == 3);
    assert_eq!(kernel.state().connections, [out, fresh_alt], "what the new state allows is never touched");
    let text = metrics.encode();
    assert!(
        text.contains(r#"palisade_connections_revoked_total{reason="network_policy",trigger="restart"} 2"#),
        "{text}"
    );
    assert!(
        text.contains(r#"palisade_connections_revoked_total{reason="network_policy",trigger="change"} 1"#),
        "{text}"
    );
    // A change that touches neither pod looks at nothing of theirs: a
    // denied connection put behind the agent's back stays.
    let sneaked = connection("192.0.2.8", "10.1.0.2", 5433);
    kernel.state().connections.push(sneaked);
    tx.send(batch(changes("apiVersion: v1\nkind: Namespace\nmetadata: {name: other}\n"), true)).expect("send");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(kernel.state().revoked.len(), 3);
    // After a refused apply the agent does not know what changed: its next
    // sync looks at every local pod's connections (trigger `recovery`).
    kernel.state().fail_next = 1;
    let new_pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: other}\n\
                   spec: {nodeName: n1, containers: [{name: c, image: i}]}\nstatus: {phase: Running, podIP: 10.1.0.9}\n";
    tx.send(batch(changes(new_pod), true)).expect("send");
    eventually("revoked after the recovery", || kernel.state().revoked.len() == 4);
    assert_eq!(kernel.state().revoked[3], sneaked);
    let text = metrics.encode();
    assert!(
        text.contains(r#"palisade_connections_revoked_total{reason="network_policy",trigger="recovery"} 1"#),
        "{text}"
    );
    tx.send(Message::Stop).expect("send");
    handle.join().expect("driver");
}

/// A shared buffer the flow writer writes to.
#[derive(Clone, Default)]
struct Shared(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Packets logged before the first sync (a previous run's table still
/// drops them) wait for the whole index: attributed on a partial one, a
/// denial would name no policy. After the sync they are written with the
/// policy that isolates the pod (NetworkPolicy spec: `db` admits web on
/// 5432 only, so web -> db:80 is denied by it).
#[test]
fn flow_records_wait_for_the_first_sync() {
    use palisade_agent::flows::FlowWriter;
    use palisade_dataplane::nflog::{Logged, PacketHead};
    let kernel = kernel();
    let metrics = Arc::new(Metrics::new());
    let out = Shared::default();
    let writer = FlowWriter::to_writer(Box::new(out.clone()), Arc::new(std::sync::atomic::AtomicUsize::new(1)));
    let driver = Driver::new(config(Duration::from_secs(60)), Box::new(kernel.clone()), metrics.clone())
        .with_flow_writer(writer);
    let (tx, handle) = spawn(driver);
    tx.send(batch(changes(CLUSTER), false)).expect("send");
    let head = PacketHead {
        src: "10.1.0.1".parse().unwrap(),
        dst: "10.1.0.2".parse().unwrap(),
        protocol: 6,
        sport: Some(40_000),
        dport: Some(80),
    };
    let logged = Logged {
        prefix: "palisade deny ingress shop/db: ".into(),
        time: None,
        interfaces: (None, None),
        head: Some(head),
    };
    tx.send(Message::Flows(vec![logged])).expect("send");
    std::thread::sleep(Duration::from_millis(300));
    assert!(out.0.lock().unwrap().is_empty(), "nothing written from a partial index");
    tx.send(batch(changes(&policy(5432)), true)).expect("send");
    eventually("the record after the first sync", || !out.0.lock().unwrap().is_empty());
    let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    let record: serde_json::Value = serde_json::from_str(text.trim()).expect("one JSON line");
    assert_eq!(record["verdict"], "deny");
    assert_eq!(record["ingress"]["isolated_by"], serde_json::json!(["shop/db"]));
    tx.send(Message::Stop).expect("send");
    handle.join().expect("driver");
}
