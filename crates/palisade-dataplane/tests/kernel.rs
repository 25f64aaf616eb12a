//! The rendered program in the kernel: nft accepts it, the listing matches
//! the golden file, and applying a diff leaves exactly the state a fresh
//! full render leaves. Runs in throwaway network namespaces; needs root and
//! the nft tool, so the tests are `#[ignore]`d and `scripts/test` runs them
//! as root (`--include-ignored`); run without root they fail, never skip.

mod changes;

use std::collections::BTreeMap;

use palisade_dataplane::json::TableSummary;
use palisade_dataplane::nft::{Nft, NftCli};
use palisade_dataplane::render::render;
use palisade_dataplane::ruleset::{Datum, Element, Key, KeyType, Part, SetDecl, Table as Rendered};
use palisade_dataplane::transaction::{Command, Transaction, cleanup, diff, full};
use palisade_dataplane::{Incremental, NodeScope, compile};
use palisade_lab::netns::{NetNs, unique_prefix};
use palisade_manifests::load_str;
use palisade_policy::ClusterIndex;
use palisade_policy::synth::Rng;
use palisade_policy::synth::e2e::{model, random_cluster_policies, random_policies};
use serde_json::Value;

fn ifaces() -> BTreeMap<std::net::IpAddr, String> {
    let (_, pods) = model();
    pods.iter().enumerate().flat_map(|(i, p)| p.ips.iter().map(move |ip| (*ip, format!("pv{i}")))).collect()
}

fn rendered(policies: Vec<palisade_policy::NetworkPolicy>) -> Rendered {
    rendered_with_tiers(policies, Vec::new())
}

fn rendered_with_tiers(
    policies: Vec<palisade_policy::NetworkPolicy>,
    cluster: Vec<palisade_policy::ClusterPolicy>,
) -> Rendered {
    let (namespaces, pods) = model();
    let mut index = ClusterIndex::from_objects(namespaces, pods, policies);
    for policy in cluster {
        index.apply_cluster_policy(policy);
    }
    render(&compile(&index, &NodeScope::All, &ifaces()))
}

/// The kernel's table as comparable data: objects without handles, sorted
/// by kind and name; set elements sorted; rules in chain order.
fn normalized(nft: &NftCli) -> Vec<String> {
    let listing = nft.list_table().expect("list").expect("table exists");
    let mut out = Vec::new();
    for item in listing.json()["nftables"].as_array().expect("array") {
        let mut item = item.clone();
        strip_handles(&mut item);
        if let Some(obj) = item.as_object_mut() {
            for kind in ["set", "map"] {
                if let Some(elems) = obj.get_mut(kind).and_then(|s| s.get_mut("elem")).and_then(Value::as_array_mut) {
                    elems.sort_by_key(ToString::to_string);
                }
            }
        }
        if item.get("metainfo").is_none() {
            out.push(item.to_string());
        }
    }
    // Rules keep their order within a chain; everything else is sorted.
    let (mut rules, mut rest): (Vec<String>, Vec<String>) = out.into_iter().partition(|s| s.starts_with("{\"rule\""));
    rest.sort();
    rules.sort_by_key(|r| serde_json::from_str::<Value>(r).expect("json")["rule"]["chain"].to_string());
    rest.extend(rules);
    rest
}

fn strip_handles(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.remove("handle");
            m.values_mut().for_each(strip_handles);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_handles),
        _ => {}
    }
}

/// Applies transactions as the agent does: from a thread inside the
/// namespace, over the netlink path, one socket for all of them.
struct NetlinkAgent {
    to_agent: Option<std::sync::mpsc::Sender<(Transaction, Rendered)>>,
    answers: std::sync::mpsc::Receiver<Result<(), String>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl NetlinkAgent {
    fn start(ns: &str) -> Self {
        let (to_agent, agent_rx) = std::sync::mpsc::channel::<(Transaction, Rendered)>();
        let (to_test, answers) = std::sync::mpsc::channel();
        let ns = ns.to_string();
        let thread = std::thread::spawn(move || {
            palisade_lab::netns::enter(&ns).expect("enter namespace");
            let nft = NftCli::default();
            for (tx, table) in agent_rx {
                let _ = to_test.send(nft.apply(&tx, &table).map_err(|e| e.to_string()));
            }
        });
        Self { to_agent: Some(to_agent), answers, thread: Some(thread) }
    }

    fn apply(&self, tx: Transaction, table: &Rendered) -> Result<(), String> {
        self.to_agent.as_ref().expect("running").send((tx, table.clone())).expect("agent thread");
        self.answers.recv().expect("answer")
    }
}

impl Drop for NetlinkAgent {
    fn drop(&mut self) {
        drop(self.to_agent.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
#[ignore = "root: network namespaces and nftables (scripts/test runs it as root)"]
fn a_rejected_batch_changes_nothing_and_the_next_one_applies() {
    palisade_lab::netns::require_root(&["nft"]);
    let ns = NetNs::create(&format!("{}reject", unique_prefix())).expect("netns");
    let listing = NftCli::in_netns(ns.name());
    let agent = NetlinkAgent::start(ns.name());
    let table = rendered(random_policies(&mut Rng::new(5), 3));
    agent.apply(full(&table), &table).expect("initial");
    let before = normalized(&listing);
    // Adds an interface, and deletes a dispatch element for `addr`.
    let delete = |addr: &str| {
        let ifaces = SetDecl::set(vec![KeyType::Ifname], false);
        let fresh = Element::key(Key::One(Part::One(Datum::Ifname("fresh0".into()))));
        let map = SetDecl::verdict_map(KeyType::Ipv4Addr);
        let dispatch =
            Element::mapping(Key::addr(addr.parse().expect("ip")), palisade_dataplane::ruleset::Verdict::Drop);
        let (set, elements) = ("ingress4".to_string(), vec![dispatch]);
        Transaction {
            commands: vec![
                Command::AddElements { set: "pod-ifaces".into(), decl: ifaces, elements: vec![fresh] },
                Command::DeleteElements { set, decl: map, elements },
            ],
        }
    };
    // The second command deletes an element that is not there: the kernel
    // refuses the batch, so the first command does not happen either.
    let err = agent.apply(delete("192.0.2.1"), &table).expect_err("missing element");
    assert!(
        err.contains("No such file or directory")
            && err.contains("command 1 (delete element inet palisade ingress4 { 192.0.2.1 : drop })"),
        "the error names the rejected command: {err}"
    );
    assert_eq!(normalized(&listing), before, "nothing of the rejected batch was applied");
    // The same agent (a fresh socket after the error) applies the next batch.
    agent.apply(full(&table), &table).expect("the next batch applies");
    assert_eq!(normalized(&listing), before);
}

/// Interval edges: ranges from the first address and to the last one (no
/// end element), single addresses, IPv6, port ranges up to 65535; added by
/// a full transaction and removed by a diff, over netlink and through nft.
#[test]
#[ignore = "root: network namespaces and nftables (scripts/test runs it as root)"]
fn interval_edges_over_netlink_equal_nft() {
    palisade_lab::netns::require_root(&["nft"]);
    let edges = "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: edges, namespace: x}
spec:
  podSelector: {}
  policyTypes: [Ingress, Egress]
  ingress:
  - from:
    - ipBlock: {cidr: 0.0.0.0/0, except: [10.0.0.0/8, 192.168.1.1/32]}
    - ipBlock: {cidr: '::/0', except: ['fd00::/8']}
    - ipBlock: {cidr: 10.1.2.3/32}
    ports: [{port: 65000, endPort: 65535}, {port: 1, protocol: UDP}, {port: 53, protocol: SCTP}]
  egress:
  - to:
    - ipBlock: {cidr: 255.255.255.0/24}
    - ipBlock: {cidr: 'ffff::/16', except: ['ffff::1/128']}
    ports: [{port: 1, endPort: 65535}]
";
    let with_edges = rendered(load_str("edges.yaml", edges, "default").policies);
    let without = rendered(Vec::new());
    let prefix = unique_prefix();
    let (nl_ns, cli_ns) = (
        NetNs::create(&format!("{prefix}edge-nl")).expect("netns"),
        NetNs::create(&format!("{prefix}edge-nft")).expect("netns"),
    );
    let agent = NetlinkAgent::start(nl_ns.name());
    let (listing, cli) = (NftCli::in_netns(nl_ns.name()), NftCli::in_netns(cli_ns.name()));
    agent.apply(full(&with_edges), &with_edges).expect("full over netlink");
    cli.apply_json(&full(&with_edges)).expect("full through nft");
    assert_eq!(normalized(&listing), normalized(&cli), "edges added");
    let tx = diff(&with_edges, &without).expect("a change");
    agent.apply(tx.clone(), &without).expect("diff over netlink");
    cli.apply_json(&tx).expect("diff through nft");
    assert_eq!(normalized(&listing), normalized(&cli), "edges removed");
    let back = diff(&without, &with_edges).expect("a change");
    agent.apply(back, &with_edges).expect("re-added over netlink");
    cli.apply_json(&full(&with_edges)).expect("full through nft");
    assert_eq!(normalized(&listing), normalized(&cli), "edges re-added");
}

#[test]
#[ignore = "root: network namespaces and nftables (scripts/test runs it as root)"]
fn golden_listing() {
    palisade_lab::netns::require_root(&["nft"]);
    let ns = NetNs::create(&format!("{}golden", unique_prefix())).expect("netns");
    let nft = NftCli::in_netns(ns.name());
    let loaded = load_str("policies.yaml", include_str!("golden/policies.yaml"), "default");
    nft.apply_json(&full(&rendered(loaded.policies))).expect("nft accepts the full transaction");
    let text =
        String::from_utf8(ns.exec("nft", &["list", "table", "inet", "palisade"]).expect("list").stdout).expect("utf-8");
    palisade_testkit::golden::golden(
        std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/full.nft")),
        &text,
    );
    // The same transaction over Palisade's netlink path lists identically.
    let via_netlink = NetNs::create(&format!("{}golden-nl", unique_prefix())).expect("netns");
    let table = rendered(load_str("policies.yaml", include_str!("golden/policies.yaml"), "default").policies);
    NetlinkAgent::start(via_netlink.name()).apply(full(&table), &table).expect("netlink accepts the full transaction");
    let listed = via_netlink.exec("nft", &["list", "table", "inet", "palisade"]).expect("list").stdout;
    assert!(listed == text.as_bytes(), "over netlink:\n{}", String::from_utf8_lossy(&listed));
    nft.apply_json(&cleanup()).expect("cleanup");
    assert!(nft.list_table().expect("list").is_none(), "cleanup removes the table");
}

/// The new-pod gate's golden (interface prefixes and pod ranges of both
/// families): what the kernel lists after the full transaction through
/// nft; the same over netlink; and the listing reads back as the table
/// (the drift check understands every rule the gate adds).
#[test]
#[ignore = "root: network namespaces and nftables (scripts/test runs it as root)"]
fn golden_listing_with_the_gate() {
    use palisade_dataplane::ranges::AddrSet;
    use palisade_dataplane::{Incremental, PodGate};
    palisade_lab::netns::require_root(&["nft"]);
    let (namespaces, pods) = model();
    let index = ClusterIndex::from_objects(
        namespaces,
        pods,
        load_str("policies.yaml", include_str!("golden/policies.yaml"), "default").policies,
    );
    let mut cidrs = AddrSet::default();
    cidrs
        .v4
        .push((u32::from(std::net::Ipv4Addr::new(10, 0, 0, 0)), u32::from(std::net::Ipv4Addr::new(10, 0, 255, 255))));
    cidrs.v6.push((
        u128::from("fd00::".parse::<std::net::Ipv6Addr>().unwrap()),
        u128::from("fd00::ffff".parse::<std::net::Ipv6Addr>().unwrap()),
    ));
    let gate = PodGate { interface_prefixes: vec!["pv".into(), "cali".into()], cidrs };
    let table = Incremental::with_gate(&index, NodeScope::All, &ifaces(), gate).rendered().clone();
    golden_both_ways("gate", &table);
}

/// Applies `table` whole through nft and compares the listing with
/// `golden/<name>.nft`; applies it over netlink in another namespace and
/// requires the same listing, and that the listing reads back as `table`
/// (the drift check understands every rule).
fn golden_both_ways(name: &str, table: &palisade_dataplane::ruleset::Table) {
    let ns = NetNs::create(&format!("{}{name}", unique_prefix())).expect("netns");
    let nft = NftCli::in_netns(ns.name());
    nft.apply_json(&full(table)).expect("nft accepts the table");
    let text =
        String::from_utf8(ns.exec("nft", &["list", "table", "inet", "palisade"]).expect("list").stdout).expect("utf-8");
    let golden = format!("{}/tests/golden/{name}.nft", env!("CARGO_MANIFEST_DIR"));
    palisade_testkit::golden::golden(std::path::Path::new(&golden), &text);
    let via_netlink = NetNs::create(&format!("{}{name}-nl", unique_prefix())).expect("netns");
    NetlinkAgent::start(via_netlink.name()).apply(full(table), table).expect("netlink accepts the table");
    let listed = via_netlink.exec("nft", &["list", "table", "inet", "palisade"]).expect("list").stdout;
    assert!(listed == text.as_bytes(), "over netlink:\n{}", String::from_utf8_lossy(&listed));
    let read = NftCli::in_netns(via_netlink.name()).list_table().expect("list").expect("table").table();
    assert!(read.unreadable.is_empty(), "{:?}", read.unreadable);
    assert!(read.table == *table, "{:?}", palisade_dataplane::drift::differences(table, &read));
}

/// Flow logs' golden: denials logged to an NFLOG group, observed pods
/// (audit policies, `palisade.dev/log: allowed`) logging their new
/// connections, and the audit policy isolating nothing; the same over
/// netlink, and the listing reads back as the table.
#[test]
#[ignore = "root: network namespaces and nftables (scripts/test runs it as root)"]
fn golden_listing_with_flow_logs() {
    use palisade_dataplane::{FlowLog, Incremental, NodeOptions};
    palisade_lab::netns::require_root(&["nft"]);
    let (namespaces, pods) = model();
    let mut loaded = load_str("flow-logs.yaml", include_str!("golden/flow-logs.yaml"), "default");
    assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
    (loaded.namespaces, loaded.pods) = (namespaces, pods);
    let index = loaded.take_index();
    let options =
        NodeOptions { flow_log: Some(FlowLog { group: 7, per_second: 100, burst: 50 }), ..Default::default() };
    let table = Incremental::with_options(&index, NodeScope::All, &ifaces(), options).rendered().clone();
    golden_both_ways("flow-logs", &table);
}

/// The tiers' golden: what the kernel lists after the full transaction of
/// `golden/cluster-policies.yaml` through nft, and the same over netlink.
#[test]
#[ignore = "root: network namespaces and nftables (scripts/test runs it as root)"]
fn golden_listing_of_the_tiers() {
    palisade_lab::netns::require_root(&["nft"]);
    let table = || {
        let mut loaded = load_str("cluster-policies.yaml", include_str!("golden/cluster-policies.yaml"), "default");
        assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
        let (namespaces, pods) = model();
        (loaded.namespaces, loaded.pods) = (namespaces, pods);
        render(&compile(&loaded.take_index(), &NodeScope::All, &ifaces()))
    };
    let ns = NetNs::create(&format!("{}tiers", unique_prefix())).expect("netns");
    let nft = NftCli::in_netns(ns.name());
    nft.apply_json(&full(&table())).expect("nft accepts the tiers");
    let text =
        String::from_utf8(ns.exec("nft", &["list", "table", "inet", "palisade"]).expect("list").stdout).expect("utf-8");
    palisade_testkit::golden::golden(
        std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/tiers.nft")),
        &text,
    );
    let via_netlink = NetNs::create(&format!("{}tiers-nl", unique_prefix())).expect("netns");
    let table = table();
    NetlinkAgent::start(via_netlink.name()).apply(full(&table), &table).expect("netlink accepts the tiers");
    let listed = via_netlink.exec("nft", &["list", "table", "inet", "palisade"]).expect("list").stdout;
    assert!(listed == text.as_bytes(), "over netlink:\n{}", String::from_utf8_lossy(&listed));
}

#[test]
#[ignore = "root: network namespaces and nftables (scripts/test runs it as root)"]
fn diffs_reach_the_same_state_as_full_renders() {
    palisade_lab::netns::require_root(&["nft"]);
    let prefix = unique_prefix();
    let a_ns = NetNs::create(&format!("{prefix}diff")).expect("netns");
    let b_ns = NetNs::create(&format!("{prefix}full")).expect("netns");
    let c_ns = NetNs::create(&format!("{prefix}diff-nl")).expect("netns");
    let incremental = NftCli::in_netns(a_ns.name());
    let fresh = NftCli::in_netns(b_ns.name());
    let over_netlink = NetlinkAgent::start(c_ns.name());
    let listing_c = NftCli::in_netns(c_ns.name());
    let mut rng = Rng::new(11);
    let mut current = rendered(Vec::new());
    incremental.apply_json(&full(&current)).expect("initial");
    over_netlink.apply(full(&current), &current).expect("initial over netlink");
    for step in 0..12 {
        let n = rng.below(7);
        let c = rng.below(4);
        let next = rendered_with_tiers(random_policies(&mut rng, n), random_cluster_policies(&mut rng, c));
        if let Some(tx) = diff(&current, &next) {
            incremental.apply_json(&tx).unwrap_or_else(|e| {
                panic!("step {step}: diff rejected: {e}\n{:#}", palisade_dataplane::json::transaction(&tx))
            });
            over_netlink.apply(tx, &next).unwrap_or_else(|e| panic!("step {step}: diff rejected over netlink: {e}"));
        }
        fresh.apply_json(&full(&next)).expect("full");
        let listing = incremental.list_table().expect("list").expect("table");
        assert_eq!(listing.summary(), TableSummary::of(&next), "step {step}: summary");
        let listed = listing.table();
        assert!(
            listed.table == next && listed.unreadable.is_empty(),
            "step {step}: {:?}",
            palisade_dataplane::drift::differences(&next, &listed)
        );
        assert_eq!(
            normalized(&incremental),
            normalized(&fresh),
            "step {step}: diff and full renders differ in the kernel"
        );
        assert_eq!(normalized(&listing_c), normalized(&fresh), "step {step}: the diff over netlink differs");
        current = next;
    }
}

#[test]
#[ignore = "root: network namespaces and nftables (scripts/test runs it as root)"]
fn incremental_updates_reach_the_same_state_as_full_renders() {
    palisade_lab::netns::require_root(&["nft"]);
    let prefix = unique_prefix();
    let a_ns = NetNs::create(&format!("{prefix}inc")).expect("netns");
    let b_ns = NetNs::create(&format!("{prefix}full")).expect("netns");
    let listing_a = NftCli::in_netns(a_ns.name());
    let fresh = NftCli::in_netns(b_ns.name());
    // The incremental side runs as the agent does: in the namespace itself,
    // over Palisade's netlink path.
    let agent = NetlinkAgent::start(a_ns.name());
    let mut rng = Rng::new(29);
    let (namespaces, mut pods) = model();
    let mut index = ClusterIndex::from_objects(namespaces, pods.clone(), random_policies(&mut rng, 4));
    index.track_changes();
    let scope = NodeScope::All;
    let mut incremental = Incremental::new(&index, scope.clone(), &changes::ifaces(&index, 0));
    agent.apply(full(incremental.rendered()), incremental.rendered()).expect("initial");
    let mut applied = 0;
    for step in 0..60 {
        let what = changes::mutate(&mut rng, &mut index, &mut pods, step);
        let links = changes::ifaces(&index, 0);
        let changes = index.take_changes().expect("tracking");
        let (tx, _) = incremental.update(&index, &changes, &links);
        let Some(tx) = tx else { continue };
        applied += 1;
        agent.apply(tx, incremental.rendered()).unwrap_or_else(|e| panic!("step {step} ({what}): rejected: {e}"));
        fresh.apply_json(&full(&render(&compile(&index, &scope, &links)))).expect("full");
        assert_eq!(
            normalized(&listing_a),
            normalized(&fresh),
            "step {step} ({what}): incremental over netlink and full through nft differ in the kernel"
        );
    }
    assert!(applied >= 10, "the sequence exercised incremental transactions ({applied})");
}

/// A tenant's longest names (a 63-character namespace, 253-character pod
/// and policy names) are accepted by the kernel over netlink and through
/// nft, and two such pods keep their own chains.
#[test]
#[ignore = "root: network namespaces and nftables (scripts/test runs it as root)"]
fn the_longest_names_a_tenant_may_choose_apply() {
    palisade_lab::netns::require_root(&["nft"]);
    let ns = "n".repeat(63);
    let pod = |name: String, ip: &str| {
        format!(
            "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: {ns}, labels: {{app: x}}}}\n\
             spec: {{nodeName: node, containers: [{{name: c, image: i}}]}}\nstatus: {{phase: Running, podIP: {ip}}}\n"
        )
    };
    // 253 characters, the most a name may have: labels of at most 63.
    let longest = |c: &str, last: char| {
        let label = c.repeat(63);
        format!("{label}.{label}.{label}.{}{last}", c.repeat(60))
    };
    let yaml = format!(
        "{}{}---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: {}, namespace: {ns}}}\n\
         spec: {{podSelector: {{}}, policyTypes: [Ingress, Egress], ingress: [{{from: [{{podSelector: {{}}}}], ports: [{{port: 80}}]}}]}}\n",
        pod(longest("p", 'a'), "10.7.0.1"),
        pod(longest("p", 'b'), "10.7.0.2"),
        longest("q", 'q'),
    );
    assert_eq!(longest("p", 'a').len(), 253);
    let loaded = load_str("long.yaml", &yaml, "default");
    assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
    let table = render(&compile(&loaded.index(), &NodeScope::All, &BTreeMap::new()));
    assert_eq!(table.chains.keys().filter(|c| c.starts_with("pod/")).count(), 4, "two pods, two directions each");
    let prefix = unique_prefix();
    let (nl_ns, cli_ns) = (
        NetNs::create(&format!("{prefix}long-nl")).expect("netns"),
        NetNs::create(&format!("{prefix}long-nft")).expect("netns"),
    );
    NetlinkAgent::start(nl_ns.name()).apply(full(&table), &table).expect("over netlink");
    let cli = NftCli::in_netns(cli_ns.name());
    cli.apply_json(&full(&table)).expect("through nft");
    assert_eq!(normalized(&NftCli::in_netns(nl_ns.name())), normalized(&cli));
}

/// The kernel's listing reads back as exactly the table applied, and
/// tampering that keeps every count (a `drop` turned into `accept`, a peer
/// set's element swapped for another address, a verdict-map element
/// pointed at another pod's chain) or adds what Palisade never writes is
/// found and named (issue #11, item 3: counts alone missed all three).
#[test]
#[ignore = "root: network namespaces and nftables (scripts/test runs it as root)"]
fn drift_is_found_object_by_object() {
    use palisade_dataplane::drift::differences;
    palisade_lab::netns::require_root(&["nft"]);
    let ns = NetNs::create(&format!("{}drift", unique_prefix())).expect("netns");
    let nft = NftCli::in_netns(ns.name());
    let table = rendered(load_str("policies.yaml", include_str!("golden/policies.yaml"), "default").policies);
    NetlinkAgent::start(ns.name()).apply(full(&table), &table).expect("netlink accepts the full transaction");
    let read = || nft.list_table().expect("list").expect("table exists").table();
    let listed = read();
    assert!(listed.unreadable.is_empty(), "{:?}", listed.unreadable);
    assert!(listed.table == table, "{:?}", differences(&table, &listed));
    let handle = |chain: &str, index: usize| -> u64 {
        let listing = nft.list_table().expect("list").expect("table");
        let rules: Vec<&Value> = listing.json()["nftables"]
            .as_array()
            .expect("items")
            .iter()
            .filter_map(|i| i.get("rule"))
            .filter(|r| r["chain"] == chain)
            .collect();
        rules[index]["handle"].as_u64().expect("handle")
    };
    let tamper = |script: String| {
        let file = std::env::temp_dir().join(format!("{}-tamper.nft", ns.name()));
        std::fs::write(&file, script).expect("script");
        let result = ns.exec("nft", &["-f", file.to_str().expect("path")]);
        let _ = std::fs::remove_file(&file);
        result.expect("nft applies the tampering");
    };
    let h = handle("pod/x/a/ingress", 2);
    let peers = table.chains["policy/x/a-from-y/ingress"].rules[0]
        .0
        .iter()
        .find_map(|s| match s {
            palisade_dataplane::ruleset::Statement::Lookup { set, .. } if set.contains("/pods4/") => Some(set.clone()),
            _ => None,
        })
        .expect("a pods4 lookup");
    let swapped = format!("set {peers}: elements 1 missing (`10.0.2.1`); 1 not Palisade's (`10.0.9.9`)");
    let cases: [(String, &str); 4] = [
        (
            format!(
                "replace rule inet palisade pod/x/a/ingress handle {h} counter name \"pod/x/a/ingress/denied\" accept\n"
            ),
            "chain pod/x/a/ingress: rule 2 is `counter name \"pod/x/a/ingress/denied\" accept`",
        ),
        (
            format!(
                "delete element inet palisade {peers} {{ 10.0.2.1 }}\nadd element inet palisade {peers} {{ 10.0.9.9 }}\n"
            ),
            &swapped,
        ),
        (
            "delete element inet palisade ingress4 { 10.0.1.1 }\n\
             add element inet palisade ingress4 { 10.0.1.1 : jump pod/x/b/ingress }\n"
                .to_string(),
            "set ingress4: elements 1 missing (`10.0.1.1 : jump pod/x/a/ingress`); 1 not Palisade's (`10.0.1.1 : jump pod/x/b/ingress`)",
        ),
        ("add rule inet palisade egress meta mark set 1\n".to_string(), "unreadable: chain egress: rule 7:"),
    ];
    for (script, expected) in cases {
        tamper(script);
        let listed = read();
        let found = differences(&table, &listed);
        assert!(found.iter().any(|d| d.starts_with(expected)), "expected `{expected}`, found {found:?}");
        // What repairs it: one full replace.
        nft.apply(&full(&table), &table).expect("repair");
        assert!(differences(&table, &read()).is_empty(), "repaired");
    }
}

/// The ruleset generation, which lets the drift check skip listing the
/// table: it moves on by one with each of Palisade's transactions and
/// with any other process's commit, to any table, and stands still
/// otherwise. The counters' netlink dump reads what `nft` lists.
#[test]
#[ignore = "root: network namespaces and nftables (scripts/test runs it as root)"]
fn the_generation_moves_with_every_commit_and_only_then() {
    palisade_lab::netns::require_root(&["nft"]);
    let ns = NetNs::create(&format!("{}gen", unique_prefix())).expect("netns");
    let table = rendered(load_str("policies.yaml", include_str!("golden/policies.yaml"), "default").policies);
    let name = ns.name().to_string();
    let (g0, g1) = std::thread::scope(|s| {
        s.spawn(|| {
            palisade_lab::netns::enter(&name).expect("enter namespace");
            let nft = NftCli::default();
            let generation = || nft.generation().expect("in this namespace").expect("generation");
            let g0 = generation();
            assert_eq!(nft.list_counters().expect("counters"), Vec::new(), "no table, no counters");
            nft.apply(&full(&table), &table).expect("apply");
            let g1 = generation();
            assert_eq!(generation(), g1, "no commit, no change");
            // The netlink dump reads what `nft` lists.
            let dumped = nft.list_counters().expect("counters");
            let listed = NftCli::in_netns(&name).list_counters().expect("nft lists counters");
            assert_eq!(dumped, listed);
            assert_eq!(dumped.len(), table.counters.len());
            assert_eq!(generation(), g1, "reading commits nothing");
            (g0, g1)
        })
        .join()
        .expect("thread")
    });
    assert_eq!(g1, g0 + 1, "one transaction, one generation");
    ns.exec("nft", &["add", "table", "inet", "foreign"]).expect("another table");
    let g3 = std::thread::scope(|s| {
        s.spawn(|| {
            palisade_lab::netns::enter(&name).expect("enter namespace");
            NftCli::default().generation().expect("in this namespace").expect("generation")
        })
        .join()
        .expect("thread")
    });
    assert_eq!(g3, g1 + 1, "another process's commit to another table moves it too");
}

/// Shared objects through their whole life in the kernel: x/a and x/b are
/// isolated by six policies with the same peers (a shared isolation chain
/// for the list, one shared peer set), which then go one by one, each
/// step an incremental transaction over netlink that the kernel accepts
/// and that leaves exactly what a full render does; the last leaves no
/// shared object behind.
#[test]
#[ignore = "root: network namespaces and nftables (scripts/test runs it as root)"]
fn shared_chains_and_sets_come_and_go_in_the_kernel() {
    palisade_lab::netns::require_root(&["nft"]);
    let ns = NetNs::create(&format!("{}shared", unique_prefix())).expect("netns");
    let nft = NftCli::in_netns(ns.name());
    let agent = NetlinkAgent::start(ns.name());
    let policies = (0..6).fold(String::new(), |mut out, i| {
        use std::fmt::Write as _;
        let _ = write!(
            out,
            "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: p{i}, namespace: x}}\n\
                 spec: {{podSelector: {{matchExpressions: [{{key: pod, operator: In, values: [a, b]}}]}}, \
                 ingress: [{{from: [{{namespaceSelector: {{}}}}], ports: [{{port: {}}}, {{port: 9000}}]}}]}}\n",
            80 + i
        );
        out
    });
    let loaded = load_str("p.yaml", &policies, "default");
    assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
    let (namespaces, pods) = model();
    let mut index = ClusterIndex::from_objects(namespaces, pods, loaded.policies);
    index.track_changes();
    let links = changes::ifaces(&index, 0);
    let mut incremental = Incremental::new(&index, NodeScope::All, &links);
    let shared = |t: &Rendered| -> (usize, usize) {
        let chains = t.chains.keys().filter(|n| n.starts_with("shared/isolation-")).count();
        let sets = t.sets.keys().filter(|n| n.starts_with("shared/")).count();
        (chains, sets)
    };
    assert_eq!(shared(incremental.rendered()).0, 1, "x/a and x/b share one list of six");
    agent.apply(full(incremental.rendered()), incremental.rendered()).expect("initial");
    for i in 0..6 {
        index.delete_policy("x", &format!("p{i}"));
        let changes = index.take_changes().expect("tracking");
        let (tx, _) = incremental.update(&index, &changes, &links);
        let tx = tx.expect("a change");
        agent.apply(tx, incremental.rendered()).unwrap_or_else(|e| panic!("p{i} deleted: rejected: {e}"));
        let listed = nft.list_table().expect("list").expect("table").table();
        let want = render(&compile(&index, &NodeScope::All, &links));
        assert!(
            listed.unreadable.is_empty() && listed.table == want,
            "p{i} deleted: kernel differs from a full render"
        );
    }
    assert_eq!(shared(incremental.rendered()), (0, 0), "nothing shared is left");
}
