//! Where the time of one large change goes: 5,000 NetworkPolicies over
//! 200 local pods, from manifests to the kernel, stage by stage: load the
//! manifests, build the index, compile and render the node's program,
//! make the transaction, encode the nfnetlink batch, and (as root, in a
//! throwaway network namespace) the kernel's commit.
//!
//! `cargo run --release -p palisade-dataplane --example big_change [POLICIES] [PODS]`

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Instant;

use palisade_dataplane::netlink::Batch;
use palisade_dataplane::nft::{Nft as _, NftCli};
use palisade_dataplane::transaction::full;
use palisade_dataplane::{Incremental, NodeScope};

fn main() {
    let mut args = std::env::args().skip(1);
    let policies: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(5_000);
    let pods: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(200);
    let text = palisade_testkit::big::manifests(policies, pods);
    let t = Instant::now();
    let loaded = palisade_manifests::load_str("big.yaml", &text, "default");
    assert!(loaded.errors.is_empty(), "{:?}", loaded.errors.first());
    let load = t.elapsed();
    let t = Instant::now();
    let index = loaded.index();
    let build = t.elapsed();
    let ifaces: BTreeMap<IpAddr, String> = (0..pods)
        .map(|i| (format!("10.1.{}.{}", i / 250, i % 250 + 1).parse().expect("ip"), format!("pv{i}")))
        .collect();
    let t = Instant::now();
    let incremental = Incremental::new(&index, NodeScope::Node("lab".into()), &ifaces);
    let compile = t.elapsed();
    let table = incremental.rendered();
    let t = Instant::now();
    let tx = full(table);
    let transaction = t.elapsed();
    let t = Instant::now();
    let batch = Batch::encode(&tx, table).expect("encodes");
    let encode = t.elapsed();
    println!(
        "{policies} policies, {pods} local pods: {} chains, {} sets, {} elements; {} commands, batch {} bytes",
        table.chains.len(),
        table.sets.len(),
        table.sets.values().map(|s| s.elements.len()).sum::<usize>(),
        tx.len(),
        batch.bytes().len()
    );
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for c in &tx.commands {
        let text = c.to_string();
        let kind: String = text.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
        *kinds.entry(kind).or_default() += 1;
    }
    println!("commands by kind: {kinds:?}");
    println!(
        "load {load:.2?}, index {build:.2?}, compile+render {compile:.2?}, transaction {transaction:.2?}, encode {encode:.2?}"
    );
    if nix::unistd::geteuid().is_root() {
        let ns =
            palisade_lab::netns::NetNs::create(&format!("{}big", palisade_lab::netns::unique_prefix())).expect("netns");
        let name = ns.name().to_string();
        let kernel = std::thread::spawn(move || {
            palisade_lab::netns::enter(&name).expect("enter");
            let nft = NftCli::default();
            let t = Instant::now();
            nft.apply(&tx, incremental.rendered()).expect("apply");
            t.elapsed()
        })
        .join()
        .expect("thread");
        println!("kernel apply (encode + commit) {kernel:.2?}");
    }
}
