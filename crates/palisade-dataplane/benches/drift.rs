//! The agent's drift check on the synthetic cluster S (10,000 pods, 100 of
//! them local): the whole check as the agent runs it every `--resync`
//! (`nft -j list table` of the kernel's table, read back into the typed
//! table, compared object by object with what was applied), and its
//! in-process part alone (parse, read back, compare); and what a check
//! costs while the ruleset generation stands still (the generation and
//! the counters, no listing). Needs root (a
//! throwaway network namespace holds the table); without root it says so
//! and measures nothing.
//!
//! `cargo bench -p palisade-dataplane --bench drift`

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::LazyLock;

use divan::{Bencher, black_box};
use palisade_dataplane::drift::differences;
use palisade_dataplane::json::Listing;
use palisade_dataplane::nft::{Nft as _, NftCli};
use palisade_dataplane::render::render;
use palisade_dataplane::ruleset::Table;
use palisade_dataplane::transaction::full;
use palisade_dataplane::{NodeScope, compile};
use palisade_lab::netns::{NetNs, unique_prefix};
use palisade_policy::ClusterIndex;
use palisade_policy::synth::{Size, generate};

const NODE: &str = "lab";

/// The namespace holding S's table, and the table.
static KERNEL: LazyLock<Option<(NetNs, Table)>> = LazyLock::new(|| {
    if !nix::unistd::geteuid().is_root() {
        return None;
    }
    let mut c = generate(Size::S, 1);
    let mut ifaces: BTreeMap<IpAddr, String> = BTreeMap::new();
    for (i, pod) in c.pods.iter_mut().enumerate() {
        if i % 100 == 0 {
            pod.node_name = Some(NODE.into());
            ifaces.extend(pod.ips.iter().map(|ip| (*ip, format!("pv{i}"))));
        }
    }
    let index = ClusterIndex::from_objects(c.namespaces, c.pods, c.policies);
    let table = render(&compile(&index, &NodeScope::Node(NODE.into()), &ifaces));
    let ns = NetNs::create(&format!("{}drift-bench", unique_prefix())).expect("netns");
    NftCli::in_netns(ns.name()).apply(&full(&table), &table).expect("the table applies");
    Some((ns, table))
});

fn main() {
    if KERNEL.is_none() {
        eprintln!("the drift benches need root (a network namespace holds the table); nothing measured");
        return;
    }
    divan::main();
    // Statics are never dropped: remove the namespace here.
    if let Some((ns, _)) = KERNEL.as_ref() {
        let _ = palisade_lab::netns::run("ip", &["netns", "del", ns.name()]);
    }
}

/// The whole check: list, read back, compare.
#[divan::bench(sample_count = 10, sample_size = 1)]
fn list_read_compare(bencher: Bencher) {
    let Some((ns, table)) = KERNEL.as_ref() else { return };
    let nft = NftCli::in_netns(ns.name());
    bencher.bench_local(|| {
        let listed = nft.list_table().expect("list").expect("table").table();
        assert!(differences(table, &listed).is_empty());
    });
}

/// The agent's own CPU: parse the listing's text, read it back, compare.
#[divan::bench(sample_count = 10, sample_size = 1)]
fn parse_read_compare(bencher: Bencher) {
    let Some((ns, table)) = KERNEL.as_ref() else { return };
    let text = String::from_utf8(ns.exec("nft", &["-j", "list", "table", "inet", "palisade"]).expect("list").stdout)
        .expect("utf-8");
    eprintln!(
        "S: {} chains, {} sets, {} elements; listing {} bytes",
        table.chains.len(),
        table.sets.len(),
        table.sets.values().map(|s| s.elements.len()).sum::<usize>(),
        text.len()
    );
    bencher.bench_local(|| {
        let listed = Listing::parse(black_box(&text)).expect("json").table();
        differences(table, &listed).len()
    });
}

/// Runs `f` with an in-process writer inside the namespace holding the
/// table (these benches run on the calling thread), then comes back.
fn inside<R>(ns: &NetNs, f: impl FnOnce(&NftCli) -> R) -> R {
    let home = std::fs::File::open("/proc/thread-self/ns/net").expect("this namespace");
    palisade_lab::netns::enter(ns.name()).expect("enter namespace");
    let result = f(&NftCli::default());
    nix::sched::setns(home, nix::sched::CloneFlags::CLONE_NEWNET).expect("back home");
    result
}

/// What a check costs while nothing was committed: the generation alone
/// (one netlink request), then the counters.
#[divan::bench(sample_count = 20, sample_size = 10)]
fn generation_unchanged(bencher: Bencher) {
    let Some((ns, _)) = KERNEL.as_ref() else { return };
    inside(ns, |nft| bencher.bench_local(|| nft.generation().expect("here").expect("generation")));
}

/// The counters, read on every check: Palisade's netlink dump, and `nft
/// -j list counters` (which lists the whole ruleset first) beside it.
#[divan::bench(sample_count = 20, sample_size = 10)]
fn counters_netlink(bencher: Bencher) {
    let Some((ns, table)) = KERNEL.as_ref() else { return };
    inside(ns, |nft| {
        assert_eq!(nft.list_counters().expect("counters").len(), table.counters.len());
        bencher.bench_local(|| nft.list_counters().expect("counters").len());
    });
}

#[divan::bench(sample_count = 10, sample_size = 1)]
fn counters_nft(bencher: Bencher) {
    let Some((ns, _)) = KERNEL.as_ref() else { return };
    let nft = NftCli::in_netns(ns.name());
    bencher.bench_local(|| nft.list_counters().expect("counters").len());
}
