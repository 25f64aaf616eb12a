//! The rendered program in the kernel: nft accepts it, the listing matches
//! the golden file, and applying a diff leaves exactly the state a fresh
//! full render leaves. Runs in throwaway network namespaces; needs root and
//! the nft tool (CI has both; `scripts/test` sets PALISADE_ROOT_TESTS=1 so
//! these fail rather than skip there).

mod changes;

use std::collections::BTreeMap;

use palisade_dataplane::nft::{Nft, NftCli, summarize_listing, summarize_rendered};
use palisade_dataplane::render::{Rendered, render};
use palisade_dataplane::transaction::{cleanup, diff, full};
use palisade_dataplane::{Incremental, NodeScope, compile};
use palisade_lab::netns::{NetNs, unique_prefix};
use palisade_manifests::load_str;
use palisade_policy::ClusterIndex;
use palisade_policy::synth::Rng;
use palisade_policy::synth::e2e::{model, random_policies};
use serde_json::Value;

fn ifaces() -> BTreeMap<std::net::IpAddr, String> {
    let (_, pods) = model();
    pods.iter().enumerate().flat_map(|(i, p)| p.ips.iter().map(move |ip| (*ip, format!("pv{i}")))).collect()
}

fn rendered(policies: Vec<palisade_policy::NetworkPolicy>) -> Rendered {
    let (namespaces, pods) = model();
    render(&compile(&ClusterIndex::from_objects(namespaces, pods, policies), &NodeScope::All, &ifaces()))
}

/// The kernel's table as comparable data: objects without handles, sorted
/// by kind and name; set elements sorted; rules in chain order.
fn normalized(nft: &NftCli) -> Vec<String> {
    let listing = nft.list_table().expect("list").expect("table exists");
    let mut out = Vec::new();
    for item in listing["nftables"].as_array().expect("array") {
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

#[test]
fn golden_listing() {
    if !palisade_lab::netns::kernel_tests_enabled(&["nft"]) {
        return;
    }
    let ns = NetNs::create(&format!("{}golden", unique_prefix())).expect("netns");
    let nft = NftCli { netns: Some(ns.name().to_string()) };
    let loaded = load_str("policies.yaml", include_str!("golden/policies.yaml"), "default");
    nft.apply(&full(&rendered(loaded.policies))).expect("nft accepts the full transaction");
    let text =
        String::from_utf8(ns.exec("nft", &["list", "table", "inet", "palisade"]).expect("list").stdout).expect("utf-8");
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/full.nft");
    if std::env::var_os("BLESS").is_some() {
        std::fs::write(path, &text).expect("write golden");
    } else {
        let expected = std::fs::read_to_string(path).expect("golden file; run with BLESS=1");
        assert!(expected == text, "kernel listing differs from tests/golden/full.nft\n{text}");
    }
    nft.apply(&cleanup()).expect("cleanup");
    assert!(nft.list_table().expect("list").is_none(), "cleanup removes the table");
}

#[test]
fn diffs_reach_the_same_state_as_full_renders() {
    if !palisade_lab::netns::kernel_tests_enabled(&["nft"]) {
        return;
    }
    let prefix = unique_prefix();
    let a_ns = NetNs::create(&format!("{prefix}diff")).expect("netns");
    let b_ns = NetNs::create(&format!("{prefix}full")).expect("netns");
    let incremental = NftCli { netns: Some(a_ns.name().to_string()) };
    let fresh = NftCli { netns: Some(b_ns.name().to_string()) };
    let mut rng = Rng::new(11);
    let mut current = rendered(Vec::new());
    incremental.apply(&full(&current)).expect("initial");
    for step in 0..12 {
        let n = rng.below(7);
        let next = rendered(random_policies(&mut rng, n));
        if let Some(tx) = diff(&current, &next) {
            incremental.apply(&tx).unwrap_or_else(|e| panic!("step {step}: diff rejected: {e}\n{tx:#}"));
        }
        fresh.apply(&full(&next)).expect("full");
        let listing = incremental.list_table().expect("list").expect("table");
        assert_eq!(summarize_listing(&listing), summarize_rendered(&next), "step {step}: summary");
        assert_eq!(
            normalized(&incremental),
            normalized(&fresh),
            "step {step}: diff and full renders differ in the kernel"
        );
        current = next;
    }
}

#[test]
fn incremental_updates_reach_the_same_state_as_full_renders() {
    if !palisade_lab::netns::kernel_tests_enabled(&["nft"]) {
        return;
    }
    let prefix = unique_prefix();
    let a_ns = NetNs::create(&format!("{prefix}inc")).expect("netns");
    let b_ns = NetNs::create(&format!("{prefix}full")).expect("netns");
    let listing_a = NftCli { netns: Some(a_ns.name().to_string()) };
    let fresh = NftCli { netns: Some(b_ns.name().to_string()) };
    // The incremental side runs as the agent does: in the namespace itself,
    // so element-only transactions take the netlink path.
    let (to_agent, agent_rx) = std::sync::mpsc::channel::<(serde_json::Value, Rendered)>();
    let (to_test, test_rx) = std::sync::mpsc::channel::<Result<bool, String>>();
    let ns_name = a_ns.name().to_string();
    let agent = std::thread::spawn(move || {
        palisade_lab::netns::enter(&ns_name).expect("enter namespace");
        let nft = NftCli::default();
        for (tx, table) in agent_rx {
            let netlink = palisade_dataplane::netlink::Batch::for_elements(&tx, &table).is_some();
            let r = nft.apply_to(&tx, &table);
            let _ = to_test.send(r.map(|()| netlink).map_err(|e| format!("{e}\n{tx:#}")));
        }
    });
    let mut rng = Rng::new(29);
    let (namespaces, mut pods) = model();
    let mut index = ClusterIndex::from_objects(namespaces, pods.clone(), random_policies(&mut rng, 4));
    index.track_changes();
    let scope = NodeScope::All;
    let mut incremental = Incremental::new(&index, scope.clone(), &changes::ifaces(&index, 0));
    to_agent.send((full(incremental.rendered()), incremental.rendered().clone())).expect("agent thread");
    test_rx.recv().expect("answer").expect("initial");
    let (mut applied, mut over_netlink) = (0, 0);
    for step in 0..60 {
        let what = changes::mutate(&mut rng, &mut index, &mut pods, step);
        let links = changes::ifaces(&index, 0);
        let changes = index.take_changes().expect("tracking");
        let (tx, _) = incremental.update(&index, &changes, &links);
        let Some(tx) = tx else { continue };
        applied += 1;
        to_agent.send((tx, incremental.rendered().clone())).expect("agent thread");
        let netlink = test_rx.recv().expect("answer").unwrap_or_else(|e| panic!("step {step} ({what}): rejected: {e}"));
        over_netlink += usize::from(netlink);
        fresh.apply(&full(&render(&compile(&index, &scope, &links)))).expect("full");
        assert_eq!(
            normalized(&listing_a),
            normalized(&fresh),
            "step {step} ({what}, netlink: {netlink}): incremental and full differ in the kernel"
        );
    }
    drop(to_agent);
    agent.join().expect("agent thread");
    assert!(applied >= 10, "the sequence exercised incremental transactions ({applied})");
    assert!(over_netlink >= 3, "some transactions took the netlink path ({over_netlink} of {applied})");
}
