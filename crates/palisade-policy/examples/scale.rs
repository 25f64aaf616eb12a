//! Builds the index for a synthetic cluster and reports time and memory.
//!
//! `cargo run --release -p palisade-policy --example scale -- L`
//!
//! Prints the build time, the process's resident memory before and after,
//! and its peak (VmHWM), read from /proc/self/status.

use std::time::Instant;

use palisade_policy::ClusterIndex;
use palisade_policy::synth::{Size, generate};

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn main() {
    let arg = std::env::args().nth(1).unwrap_or_else(|| "L".into());
    let size = match arg.as_str() {
        "S" => Size::S,
        "L" => Size::L,
        other => {
            eprintln!("usage: scale S|L (got {other})");
            std::process::exit(2);
        }
    };
    let cluster = generate(size, 1);
    let before = status_kib("VmRSS:");
    let start = Instant::now();
    let index = ClusterIndex::from_objects(cluster.namespaces, cluster.pods, cluster.policies);
    let elapsed = start.elapsed();
    let after = status_kib("VmRSS:");
    let peak = status_kib("VmHWM:");
    let (ns, pods, policies) = index.counts();
    println!("size {arg}: {ns} namespaces, {pods} pods, {policies} policies");
    println!("index build: {:.3} s", elapsed.as_secs_f64());
    println!("resident before build (parsed objects): {} MiB", before / 1024);
    println!("resident after build: {} MiB", after / 1024);
    println!("peak resident (VmHWM): {} MiB", peak / 1024);
}
