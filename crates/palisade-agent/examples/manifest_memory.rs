//! Agent memory around a large manifests file: a 50 MB file of
//! NetworkPolicies goes through the manifests source and into the index
//! (the agent's path), then the file is removed. Resident memory is read
//! before, with the file loaded, and after it is gone: the source keeps
//! each file's digest and converted objects, never its text, and the
//! agent gives freed pages back after a large input (`memory::trim`, as
//! the source and the driver do).
//!
//! `cargo run --release -p palisade-agent --example manifest_memory [MB]`

#![allow(clippy::cast_precision_loss, reason = "reporting ratios of byte counts")]

use std::fmt::Write as _;

use palisade_agent::apply_changes;
use palisade_agent::manifests::ManifestSource;
use palisade_policy::ClusterIndex;
use palisade_testkit::memory::rss_bytes;
use palisade_testkit::temp::TempDir;

/// One policy of about 2.5 KB: ingress and egress rules with pod,
/// namespace and ipBlock peers, ports, and a large annotation.
fn policy(i: usize, out: &mut String) {
    let _ = write!(
        out,
        "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: policy-{i}\n  namespace: team-{}\n  \
         annotations:\n    note: \"{}\"\nspec:\n  podSelector:\n    matchLabels: {{app: app-{}}}\n  policyTypes: [Ingress, Egress]\n  \
         ingress:\n  - from:\n    - podSelector: {{matchLabels: {{app: client-{}}}}}\n    - namespaceSelector: {{matchLabels: {{team: t{}}}}}\n    \
         - ipBlock: {{cidr: 10.{}.0.0/16, except: [10.{}.1.0/24]}}\n    ports:\n    - {{protocol: TCP, port: 8080}}\n    - {{protocol: TCP, port: 9000, endPort: 9100}}\n  \
         egress:\n  - to:\n    - podSelector: {{matchLabels: {{app: db-{}}}}}\n    ports:\n    - {{protocol: TCP, port: 5432}}\n",
        i % 500,
        "x".repeat(1800),
        i % 97,
        i % 13,
        i % 7,
        i % 250,
        i % 250,
        i % 11
    );
}

fn main() {
    let mb: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(50);
    // Removed on drop, also on panic.
    let temp = TempDir::new("manifest-memory");
    let dir = temp.path();
    let mut text = String::new();
    let mut i = 0;
    while text.len() < mb << 20 {
        policy(i, &mut text);
        i += 1;
    }
    let file = dir.join("big.yaml");
    std::fs::write(&file, &text).expect("write");
    let bytes = text.len();
    drop(text);

    let mut source = ManifestSource::new(dir, "default");
    let mut index = ClusterIndex::default();
    let before = rss_bytes();
    let scan = source.scan();
    assert!(scan.errors.is_empty(), "{:?}", scan.errors.first());
    apply_changes(&mut index, scan.changes);
    palisade_agent::memory::trim();
    let loaded = rss_bytes();
    std::fs::remove_file(&file).expect("remove");
    let scan = source.scan();
    apply_changes(&mut index, scan.changes);
    // What the driver does after a batch this large.
    palisade_agent::memory::trim();
    let after = rss_bytes();
    let mib = |b: u64| b as f64 / f64::from(1 << 20);
    println!("file: {:.1} MiB, {i} policies", bytes as f64 / f64::from(1 << 20));
    println!(
        "resident: before {:.1} MiB, loaded {:.1} MiB, after removal {:.1} MiB",
        mib(before),
        mib(loaded),
        mib(after)
    );
    println!("policies held: {}", index.counts().2);
}
