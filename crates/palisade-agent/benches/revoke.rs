//! Revocation at scale, in a throwaway network namespace (root only):
//! 250,000 tracked connections, of which a NetworkPolicy change forbids
//! 100. The node has 100 local pods in one namespace and talks to 10,000
//! remote pods; the policy added isolates one local pod (`victim`, which
//! holds 1,100 of the connections) and admits only the remote pods
//! labelled `friend`, so the 100 connections from `stranger` pods must go
//! and the 1,000 from friends stay.
//!
//! - `revoke_step_by_dumps`: what the agent runs after applying the
//!   change, by default: the affected endpoints (the victim, for the
//!   connections it answers: the policy isolates ingress), their
//!   connections from one ctnetlink dump filtered in the kernel by the
//!   victim's address as reply source, the engine's verdicts, and the 100
//!   deletes.
//! - `revoke_step_by_events`: the same with `--conntrack-events`, the
//!   connections coming from the conntrack tracker.
//! - `whole_table_dump`: one unfiltered dump (the tracker's seeding, and
//!   what any dump costs the kernel to walk).
//!
//! After the benches, the CPU time of the whole process (every thread,
//! user and system) per revocation step is printed for both, and the
//! tracker's resident memory.
//!
//! `sudo cargo bench -p palisade-agent --bench revoke`

#![allow(clippy::cast_precision_loss, reason = "reporting durations and sizes far below 2^52")]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::{LazyLock, Mutex};

use divan::Bencher;
use palisade_agent::kernel::{Kernel as _, NetlinkKernel};
use palisade_agent::metrics::Metrics;
use palisade_agent::revoke::{LocalView, Revoker, affected};
use palisade_dataplane::conntrack::{Conntrack, Entry, Filter, TCP, Tuple};
use palisade_dataplane::{NodeScope, compile};
use palisade_lab::netns::{NetNs, unique_prefix};
use palisade_policy::{Changes, ClusterIndex, ObjectKey, ObjectKind};

const REMOTE: u32 = 10_000;
const LOCAL: u32 = 100;
const STRANGERS: u32 = 100;
const FROM_FRIENDS_TO_VICTIM: u32 = 1_000;
const TOTAL: u32 = 250_000;

fn remote_addr(i: u32) -> IpAddr {
    IpAddr::from([10, 2, u8::try_from(i / 250).expect("small"), u8::try_from(i % 250 + 1).expect("small")])
}

fn local_addr(i: u32) -> IpAddr {
    IpAddr::from([10, 1, 0, u8::try_from(i + 1).expect("small")])
}

/// The cluster as manifests: the victim is local pod 0; remote pods below
/// `STRANGERS` are strangers.
fn cluster(with_policy: bool) -> String {
    let mut out = String::from("apiVersion: v1\nkind: Namespace\nmetadata: {name: bench}\n");
    let pod = |out: &mut String, name: String, node: &str, role: &str, ip: IpAddr| {
        let _ = write!(
            out,
            "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: bench, labels: {{role: {role}}}}}\n\
             spec: {{nodeName: {node}, containers: [{{name: c}}]}}\nstatus: {{phase: Running, podIP: {ip}}}\n"
        );
    };
    for i in 0..LOCAL {
        pod(&mut out, format!("local-{i}"), "n1", if i == 0 { "victim" } else { "local" }, local_addr(i));
    }
    for i in 0..REMOTE {
        pod(&mut out, format!("remote-{i}"), "n2", if i < STRANGERS { "stranger" } else { "friend" }, remote_addr(i));
    }
    if with_policy {
        out.push_str(
            "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: victim-ingress, namespace: bench}\n\
             spec: {podSelector: {matchLabels: {role: victim}}, ingress: [{from: [{podSelector: {matchLabels: {role: friend}}}]}]}\n",
        );
    }
    out
}

fn entry(src: IpAddr, dst: IpAddr, sport: u16, dport: u16) -> Entry {
    let orig = Tuple { src, dst, protocol: TCP, sport, dport };
    Entry { orig, reply: orig.reversed(), zone: 0, id: 0 }
}

/// The 100 connections the change forbids: strangers to the victim.
fn doomed() -> Vec<Entry> {
    (0..STRANGERS).map(|i| entry(remote_addr(i), local_addr(0), 40_000, 80)).collect()
}

struct Fixture {
    /// Resident memory the tracker's copy of the table added.
    tracker_kib: u64,
    index: ClusterIndex,
    changes: Changes,
    before: LocalView,
    after: LocalView,
    dumps: Mutex<NetlinkKernel>,
    events: Mutex<NetlinkKernel>,
    conntrack: Mutex<Conntrack>,
}

/// Built on first use, on the calling thread, which it moves into the namespace.
static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    palisade_lab::netns::enter(&NAMESPACE).expect("enter");
    let load = |with_policy| palisade_manifests::load_str("c.yaml", &cluster(with_policy), "default").index();
    let view = |index: &ClusterIndex| LocalView::of(&compile(index, &NodeScope::Node("n1".into()), &BTreeMap::new()));
    let (old, index) = (load(false), load(true));
    let (before, after) = (view(&old), view(&index));
    let mut changes = Changes::default();
    changes.policies.insert(ObjectKey::new(ObjectKind::NetworkPolicy, "bench", "victim-ingress"));
    let mut conntrack = Conntrack::new().expect("conntrack");
    // The doomed ones are put in by `restore`, before each step.
    let mut entries = Vec::new();
    for i in 0..FROM_FRIENDS_TO_VICTIM {
        entries.push(entry(
            remote_addr(STRANGERS + i % (REMOTE - STRANGERS)),
            local_addr(0),
            20_000 + u16::try_from(i).expect("small"),
            80,
        ));
    }
    let mut i = 0u32;
    while u32::try_from(entries.len()).expect("small") < TOTAL - STRANGERS {
        let remote = remote_addr(STRANGERS + i % (REMOTE - STRANGERS));
        let local = local_addr(1 + (i / (REMOTE - STRANGERS)) % (LOCAL - 1));
        entries.push(entry(remote, local, 10_000 + u16::try_from(i % 50_000).expect("small"), 8080));
        i += 1;
    }
    conntrack.create(&entries, 3600).expect("250,000 entries");
    let mut events = NetlinkKernel::following_events();
    // Starts the tracker (seeded by one whole dump), as the agent's first sync does.
    let addrs = after.addrs.keys().map(|a| (*a, palisade_dataplane::conntrack::Sides::BOTH)).collect();
    let rss_before = rss_kib();
    assert_eq!(events.connections(&addrs).expect("tracker").len(), usize::try_from(TOTAL - STRANGERS).expect("small"));
    let tracker_kib = rss_kib().saturating_sub(rss_before);
    let dumps = Mutex::new(NetlinkKernel::default());
    Fixture {
        tracker_kib,
        dumps,
        events: Mutex::new(events),
        index,
        changes,
        before,
        after,
        conntrack: Mutex::new(conntrack),
    }
});

/// The namespace the benchmark runs in (removed by [`main`]'s guard, also
/// when a benchmark panics: statics are never dropped).
static NAMESPACE: LazyLock<String> = LazyLock::new(|| format!("{}revoke", unique_prefix()));

fn main() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("the revoke benchmark needs root (a network namespace and its conntrack table); run it with sudo");
        return;
    }
    let _ns = NetNs::create(&NAMESPACE).expect("namespace");
    LazyLock::force(&FIXTURE);
    divan::main();
    println!(
        "tracker holding {} connections: {:.1} MiB resident",
        TOTAL - STRANGERS,
        FIXTURE.tracker_kib as f64 / 1024.0
    );
    cpu_per_step();
}

/// The process's resident memory (`VmRSS`), in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Puts the 100 doomed connections back (they are deleted by each step).
fn restore() {
    FIXTURE.conntrack.lock().expect("lock").create(&doomed(), 3600).expect("restore");
}

fn step(kernel: &Mutex<NetlinkKernel>) -> usize {
    let f = &*FIXTURE;
    let metrics = Metrics::new();
    let mut revoker = Revoker::new(std::collections::BTreeSet::new());
    revoker.all_next = false;
    let affected = affected(&f.index, &f.changes, &f.before, &f.after);
    let mut kernel = kernel.lock().expect("lock");
    revoker.revoke(&f.index, &mut *kernel, &metrics, affected, &f.after.addrs).expect("revoked")
}

#[divan::bench(sample_count = 10, sample_size = 1)]
fn revoke_step_by_dumps(bencher: Bencher) {
    bencher.with_inputs(restore).bench_local_values(|()| assert_eq!(step(&FIXTURE.dumps), 100));
}

#[divan::bench(sample_count = 30, sample_size = 1)]
fn revoke_step_by_events(bencher: Bencher) {
    bencher.with_inputs(restore).bench_local_values(|()| assert_eq!(step(&FIXTURE.events), 100));
}

#[divan::bench(sample_count = 5, sample_size = 1)]
fn whole_table_dump(bencher: Bencher) {
    let f = &*FIXTURE;
    bencher.bench_local(|| f.conntrack.lock().expect("lock").entries(Filter::All).expect("dump").len());
}

/// CPU time (user and system, every thread of the process) per step.
fn cpu_per_step() {
    use nix::sys::resource::{UsageWho, getrusage};
    const STEPS: u32 = 20;
    let cpu = || {
        let u = getrusage(UsageWho::RUSAGE_SELF).expect("getrusage");
        let t = |tv: nix::sys::time::TimeVal| tv.tv_sec() as f64 + tv.tv_usec() as f64 / 1e6;
        t(u.user_time()) + t(u.system_time())
    };
    for (name, kernel) in [("by dumps", &FIXTURE.dumps), ("by events", &FIXTURE.events)] {
        let mut total = 0.0;
        for _ in 0..STEPS {
            restore();
            let start = cpu();
            assert_eq!(step(kernel), 100);
            total += cpu() - start;
        }
        println!(
            "revoke step {name}: CPU (user + system, all threads) {:.2} ms per step over {STEPS} steps",
            total * 1000.0 / f64::from(STEPS)
        );
    }
}
