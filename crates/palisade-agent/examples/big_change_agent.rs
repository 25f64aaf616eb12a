//! One large change through the agent's driver and the real kernel, and a
//! small one that arrives while it is being applied: 5,000 NetworkPolicies
//! over 200 local pods in one batch, then, 50 ms later, a default-deny for
//! one namespace. Reports when each is in force (the revision in the
//! driver's status), so the small change's wait shows whether it queues
//! behind the large one (it goes into the same transaction when it is
//! already waiting as the sync starts, else into the next).
//! Needs root (a throwaway network namespace holds the table).
//!
//! `cargo run --release -p palisade-agent --example big_change_agent [POLICIES] [PODS]`

use std::sync::Arc;
use std::time::{Duration, Instant};

use palisade_agent::{Batch, Change, Driver, DriverConfig, Message, Metrics, NetlinkKernel, take_loaded};
use palisade_dataplane::NodeScope;

fn changes(text: &str) -> Vec<Change> {
    let mut loaded = palisade_manifests::load_str("big.yaml", text, "default");
    assert!(loaded.errors.is_empty(), "{:?}", loaded.errors.first());
    take_loaded(&mut loaded).map(Change::Apply).collect()
}

/// The revision the status says is in force, once it exists.
fn in_force(path: &std::path::Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v["digest"].as_str().map(String::from))
}

fn main() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("needs root: the table goes into a throwaway network namespace");
        return;
    }
    let mut args = std::env::args().skip(1);
    let policies: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(5_000);
    let pods: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(200);
    let big = changes(&palisade_testkit::big::manifests(policies, pods));
    let deny = changes(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: default-deny, namespace: ns1}\n\
         spec: {podSelector: {}, policyTypes: [Ingress]}\n",
    );
    let ns = palisade_lab::netns::NetNs::create(&format!("{}bigagent", palisade_lab::netns::unique_prefix()))
        .expect("netns");
    let dir = palisade_testkit::temp::TempDir::new("big-change-agent");
    let status = dir.path().join("status.json");
    let config = DriverConfig {
        scope: NodeScope::Node("lab".into()),
        resync: Duration::from_secs(60),
        status_file: Some(status.clone()),
        cleanup_on_exit: false,
        gate: palisade_dataplane::PodGate::default(),
        flow_log: None,
        realization: None,
    };
    let (tx, rx) = std::sync::mpsc::channel();
    let name = ns.name().to_string();
    let driver = std::thread::spawn(move || {
        palisade_lab::netns::enter(&name).expect("enter namespace");
        Driver::new(config, Box::new(NetlinkKernel::default()), Arc::new(Metrics::new())).run(&rx);
    });
    let start = Instant::now();
    let batch =
        |changes, revision: &str| Batch { changes, synced: true, revision: Some(revision.into()), problems: None };
    tx.send(Message::Batch(batch(big, "big"))).expect("driver");
    std::thread::sleep(Duration::from_millis(50));
    let deny_sent = start.elapsed();
    tx.send(Message::Batch(batch(deny, "deny"))).expect("driver");
    // The revision in force tells which batches the kernel holds: "big"
    // alone, or "deny" (which went in with or after it).
    let mut big_alone = None;
    while start.elapsed() < Duration::from_secs(600) {
        match in_force(&status).as_deref() {
            Some("deny") => break,
            Some("big") if big_alone.is_none() => big_alone = Some(start.elapsed()),
            _ => {}
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let done = start.elapsed();
    tx.send(Message::Stop).expect("driver");
    driver.join().expect("driver");
    match big_alone {
        Some(first) => println!("{policies} policies over {pods} local pods, one batch: in force after {first:.2?}"),
        None => println!("{policies} policies over {pods} local pods: the deny joined its transaction"),
    }
    println!(
        "default-deny sent {deny_sent:.2?} after it: in force after {:.2?} ({:.2?} after it was sent)",
        done,
        done.saturating_sub(deny_sent)
    );
    println!("peak resident memory: {} MiB", palisade_testkit::memory::peak_rss_bytes() >> 20);
}
