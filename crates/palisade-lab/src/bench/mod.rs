//! `palisade lab bench`: the dataplane measured with real packets.
//!
//! A synthetic cluster S (10,000 pods, 500 namespaces, 5,000 policies) plus a
//! `bench` namespace whose client and server pods are the only ones with
//! network namespaces; 100 pods of the cluster are local to the lab node.
//! The server admits the client through rules whose peer sets hold
//! thousands of remote pod addresses. Measured in rounds that run no table,
//! a conntrack-only table and Palisade's program back to back: new TCP
//! connections per second and single-stream throughput, each with the
//! machine's busy CPU time per connection or gigabyte; then program
//! build-and-apply time, the latency of incremental updates, and rule
//! versus element counts.

#![allow(
    clippy::cast_precision_loss,
    clippy::cast_sign_loss,
    clippy::cast_possible_wrap,
    reason = "benchmark arithmetic on counts and durations far below 2^52"
)]

mod agent;
mod attribution;

use std::fmt::Write as _;
use std::io::{Read as _, Write as _};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use crate::error::{Context as _, Result};
use crate::netns::{self, unique_prefix};
use crate::topology::Topology;
use palisade_dataplane::nft::{Nft, NftCli};
use palisade_dataplane::render::render;
use palisade_dataplane::ruleset::Table as Rendered;
use palisade_dataplane::transaction::{cleanup, full};
use palisade_dataplane::{NodeScope, compile};
use palisade_manifests::load_str;
use palisade_policy::synth::{Size, generate};
use palisade_policy::{ClusterIndex, Labels, Namespace, Pod, PodState};

const PORT: u16 = 5001;
/// The configurations each round runs: no table, a conntrack-only table,
/// Palisade's table (what a node running the agent pays per connection:
/// by default it revokes with dumps, nothing per connection), and
/// Palisade's table with `--conntrack-events` (the agent's conntrack
/// tracker listening to ctnetlink's events, which makes the kernel send
/// one per connection opened and ended).
const CONFIGS: usize = 4;
/// Alternating rounds of each rate and throughput measurement.
const ROUNDS: usize = 15;

const BENCH_POLICIES: &str = "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: server, namespace: bench}
spec:
  podSelector: {matchLabels: {app: server}}
  ingress:
  - from:
    - namespaceSelector: {}
      podSelector: {matchLabels: {role: web}}
    - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: bench}}
    ports: [{port: 5001}, {port: 9090}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: client, namespace: bench}
spec:
  podSelector: {matchLabels: {app: client}}
  policyTypes: [Egress]
  egress:
  - to: [{namespaceSelector: {}}]
    ports: [{port: 5001}, {port: 53, protocol: UDP}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-all, namespace: bench}
spec: {podSelector: {}, policyTypes: [Ingress, Egress]}
";

fn bench_pod(name: &str, ip: &str) -> Pod {
    Pod {
        namespace: "bench".into(),
        name: name.into(),
        labels: Labels::from([("app".to_string(), name.to_string())]),
        ips: vec![ip.parse().expect("literal address")],
        ports: Vec::new(),
        node_name: Some("lab".into()),
        state: PodState::Active,
        workload: None,
    }
}

fn cluster(local_every: usize, tiers: usize) -> ClusterIndex {
    let c = cluster_objects(local_every);
    let mut index = ClusterIndex::from_objects(c.namespaces, c.pods, c.policies);
    for policy in palisade_policy::synth::cluster_policies(tiers, 1) {
        index.apply_cluster_policy(policy);
    }
    index
}

/// The benchmark's cluster as objects: S with every `local_every`-th pod on
/// the lab node, plus the `bench` namespace, its client and server, and
/// their policies.
pub(super) fn cluster_objects(local_every: usize) -> palisade_policy::synth::Cluster {
    let mut c = generate(Size::S, 1);
    for (i, pod) in c.pods.iter_mut().enumerate() {
        if i % local_every == 0 {
            pod.node_name = Some("lab".into());
        }
    }
    c.namespaces.push(Namespace { name: "bench".into(), labels: Labels::new() });
    c.pods.push(bench_pod("client", "10.250.0.1"));
    c.pods.push(bench_pod("server", "10.250.0.2"));
    let loaded = load_str("bench.yaml", BENCH_POLICIES, "default");
    assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
    c.policies.extend(loaded.policies);
    c
}

/// Source port of the throughput stream, outside the ephemeral range: the
/// server tells the stream from the connection-rate test by it.
const STREAM_SOURCE_PORT: u16 = 30_001;

/// Busy CPU time of the whole machine so far, in seconds: user, nice,
/// system, irq and softirq time of all CPUs from `/proc/stat` (not idle,
/// iowait or steal, so another tenant's load on the host does not count).
/// `/proc/stat` counts in USER_HZ, which is 100 on Linux.
fn busy_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<u64> =
        stat.lines().next().unwrap_or_default().split_whitespace().skip(1).map(|f| f.parse().unwrap_or(0)).collect();
    // user nice system idle iowait irq softirq steal ...
    let busy: u64 = [0, 1, 2, 5, 6].iter().filter_map(|&i| fields.get(i)).sum();
    busy as f64 / 100.0
}

/// New connections per second, how many connects failed (each costs up to
/// its timeout, so a failure shows), and the machine's busy CPU time per
/// connection in microseconds (the loop's cost, whatever the wall clock
/// of a shared machine does).
fn connections_per_second(client_ns: &str, server: SocketAddr, seconds: f64) -> (f64, u64, f64) {
    netns::run_in(client_ns, move || {
        let cpu = busy_cpu_seconds();
        let start = Instant::now();
        let (mut n, mut failed) = (0u64, 0u64);
        while start.elapsed().as_secs_f64() < seconds && n < 5_000_000 {
            let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
            // Close with a reset: no TIME_WAIT, so ports never run out.
            s.set_linger(Some(Duration::ZERO)).expect("linger");
            if s.connect_timeout(&server.into(), Duration::from_secs(1)).is_ok() {
                n += 1;
            } else {
                failed += 1;
            }
        }
        let rate = n as f64 / start.elapsed().as_secs_f64();
        (rate, failed, (busy_cpu_seconds() - cpu) * 1e6 / n.max(1) as f64)
    })
}

/// Single-stream throughput in Gbit/s, and the machine's busy CPU time per
/// gigabyte sent, in milliseconds.
fn throughput_gbps(client_ns: &str, server: SocketAddr, seconds: f64) -> (f64, f64) {
    netns::run_in(client_ns, move || {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
        s.set_reuse_address(true).expect("reuse");
        s.bind(&SocketAddr::new("0.0.0.0".parse().expect("literal"), STREAM_SOURCE_PORT).into()).expect("bind");
        s.connect_timeout(&server.into(), Duration::from_secs(1)).expect("connect");
        let mut s: TcpStream = s.into();
        let chunk = vec![0u8; 256 * 1024];
        let cpu = busy_cpu_seconds();
        let start = Instant::now();
        let mut bytes = 0u64;
        while start.elapsed().as_secs_f64() < seconds {
            s.write_all(&chunk).expect("write");
            bytes += chunk.len() as u64;
        }
        // Reset on close: the next stream reuses the source port at once.
        let s: socket2::Socket = s.into();
        let _ = s.set_linger(Some(Duration::ZERO));
        let gbps = bytes as f64 * 8.0 / start.elapsed().as_secs_f64() / 1e9;
        (gbps, (busy_cpu_seconds() - cpu) * 1e3 / (bytes.max(1) as f64 / 1e9))
    })
}

/// The server: connections of the rate test are dropped as soon as they
/// are accepted (the client resets them anyway); the throughput stream is
/// read to the end in its own thread. A deep accept queue keeps a busy
/// moment of the accepting thread from dropping SYNs (which would cost the
/// client a one-second retransmission).
fn start_server(ns: &str, addr: SocketAddr) {
    let ns = ns.to_string();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        netns::enter(&ns).expect("enter server namespace");
        let listener = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
        listener.set_reuse_address(true).expect("reuse");
        listener.bind(&addr.into()).expect("bind");
        listener.listen(4096).expect("listen");
        let listener: TcpListener = listener.into();
        tx.send(()).expect("ready");
        for conn in listener.incoming().flatten() {
            if conn.peer_addr().is_ok_and(|a| a.port() == STREAM_SOURCE_PORT) {
                let mut conn = conn;
                std::thread::spawn(move || {
                    let mut buf = vec![0u8; 256 * 1024];
                    while conn.read(&mut buf).is_ok_and(|n| n > 0) {}
                });
            }
        }
    });
    rx.recv().expect("server ready");
}

/// One measurement taken under the three tables (no table, conntrack only,
/// Palisade), one value per round each: the medians, and the ratios taken
/// within each round (the three runs of a round are seconds apart, so a
/// slow minute of this shared machine weighs on all three alike) with
/// their median and quartiles.
/// The new-pod gate as the lab's agent runs it (its pod interfaces are pvN).
fn lab_gate() -> palisade_dataplane::PodGate {
    palisade_dataplane::PodGate { interface_prefixes: vec!["pv".into()], ..Default::default() }
}

/// Quartiles of the ratios `values[a] / values[b]` taken within each round.
fn per_round(values: &[Vec<f64>; CONFIGS], a: usize, b: usize) -> [f64; 3] {
    quartiles(values[a].iter().zip(&values[b]).map(|(x, y)| x / y).collect())
}

fn report_ratios(what: &str, values: &[Vec<f64>; CONFIGS]) {
    let [none, conntrack, table, events] = values.clone().map(|v| quartiles(v)[1]);
    let precision = if none < 1_000.0 { 2 } else { 0 };
    println!(
        "{what}, median of {} alternating rounds: conntrack only {conntrack:.precision$}, Palisade {table:.precision$} \
         (with --conntrack-events {events:.precision$}), no table {none:.precision$}",
        values[0].len()
    );
    for (name, a, b) in [
        ("Palisade / conntrack only", 2, 1),
        ("Palisade with --conntrack-events / conntrack only", 3, 1),
        ("Palisade / no table", 2, 0),
        ("conntrack only / no table", 1, 0),
    ] {
        let [q1, q2, q3] = per_round(values, a, b);
        println!("  {name}: per-round ratio median {q2:.3} (quartiles {q1:.3}-{q3:.3})");
    }
}

/// First quartile, median and third quartile of `values` (nearest rank);
/// the benchmarks report ratios taken within rounds this way.
///
/// # Panics
/// If `values` is empty.
#[must_use]
pub fn quartiles(mut values: Vec<f64>) -> [f64; 3] {
    values.sort_by(f64::total_cmp);
    let at = |quarters: usize| values[(values.len() - 1) * quarters / 4];
    [at(1), at(2), at(3)]
}

/// The `p` quantile (0 to 1) of sorted durations, nearest rank.
#[must_use]
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Runs the benchmark and prints a report; with `attribution`, the
/// attribution of Palisade's cost per new connection instead (see
/// `attribution.rs`). `tiers` cluster policies of both tiers
/// (`palisade_policy::synth::cluster_policies`) go on top of the cluster;
/// a tenth of them select every namespace, so the benchmark's connections
/// cross their rules (none matches them: the NetworkPolicies still decide).
pub fn run(seconds: f64, attribution: bool, tiers: usize) -> Result<()> {
    let prefix = unique_prefix();
    let mut topo = Topology::new(&prefix).context("node namespace")?;
    let client_ip: IpAddr = "10.250.0.1".parse()?;
    let server_ip: IpAddr = "10.250.0.2".parse()?;
    topo.add_pod("bench/client", &[client_ip])?;
    topo.add_pod("bench/server", &[server_ip])?;
    let (client_ns, server_ns) =
        (topo.pods["bench/client"].ns.name().to_string(), topo.pods["bench/server"].ns.name().to_string());
    let server = SocketAddr::new(server_ip, PORT);
    start_server(&server_ns, SocketAddr::new("0.0.0.0".parse()?, PORT));
    let nft = NftCli::in_netns(topo.node.name());

    let t = Instant::now();
    let index = cluster(100, tiers);
    let built_index = t.elapsed();
    let t = Instant::now();
    let mut program = compile(&index, &NodeScope::Node("lab".into()), &topo.pod_ifaces());
    program.gate = lab_gate();
    let rendered = render(&program);
    let tx = full(&rendered);
    let compiled = t.elapsed();
    let t = Instant::now();
    nft.apply_json(&tx)?;
    let applied = t.elapsed();
    let stats = program.stats();
    println!(
        "cluster: 10,000 pods + 2, 501 namespaces, 5,003 policies, {tiers} cluster policies; index built in {:.0} ms",
        built_index.as_secs_f64() * 1e3
    );
    println!(
        "program for {} local pods: {} isolated pod directions, {} policies, {} rules, {} set elements",
        stats.local_pods, stats.isolated, stats.policies, stats.rules, stats.elements
    );
    println!(
        "full program: compiled and rendered in {:.0} ms, applied in {:.0} ms (total {:.0} ms)",
        compiled.as_secs_f64() * 1e3,
        applied.as_secs_f64() * 1e3,
        (compiled + applied).as_secs_f64() * 1e3
    );
    if attribution {
        attribute(&nft, topo.node.name(), &client_ns, server, seconds, &rendered)?;
        nft.apply_json(&cleanup())?;
        return Ok(());
    }

    // Alternate: no table, a conntrack-only table (what any stateful firewall
    // on a Kubernetes node costs: the realistic baseline), and Palisade's
    // program; each once in each of ROUNDS rounds, in an order that rotates
    // from round to round, each starting from an empty conntrack table, so
    // that neither its place in the round nor the entries a previous
    // configuration left favours one.
    let conntrack_only = full(&attribution::conntrack_only());
    let programs = [cleanup(), conntrack_only, tx.clone(), tx.clone()];
    let mut rates: [Vec<f64>; CONFIGS] = Default::default();
    let mut cpu_per_conn: [Vec<f64>; CONFIGS] = Default::default();
    let mut streams: [Vec<f64>; CONFIGS] = Default::default();
    let mut cpu_per_gb: [Vec<f64>; CONFIGS] = Default::default();
    let (mut failed, mut denied) = (0, 0);
    for round in 0..ROUNDS {
        for i in (0..CONFIGS).map(|k| (round + k) % CONFIGS) {
            nft.apply_json(&programs[i])?;
            flush_conntrack(topo.node.name());
            // Dropped (its thread joined) at the end of this configuration.
            let _tracker = if i == 3 {
                Some(
                    netns::run_in(topo.node.name(), palisade_dataplane::conntrack::Tracker::start)
                        .context("conntrack tracker")?,
                )
            } else {
                None
            };
            let (rate, failures, cpu) = connections_per_second(&client_ns, server, seconds);
            rates[i].push(rate);
            cpu_per_conn[i].push(cpu);
            failed += failures;
            flush_conntrack(topo.node.name());
            let (gbps, cpu) = throughput_gbps(&client_ns, server, seconds);
            streams[i].push(gbps);
            cpu_per_gb[i].push(cpu);
            if i >= 2 {
                let counters = nft.list_table()?.map(|l| l.counters()).unwrap_or_default();
                denied += counters.iter().map(|(_, n)| n).sum::<u64>();
            }
        }
    }
    let [q1, q2, q3] = per_round(&rates, 2, 1);
    println!(
        "headline: new TCP connections/s, Palisade / conntrack only (the baseline of every Kubernetes node): \
         per-round median {q2:.3} (quartiles {q1:.3}-{q3:.3}; target >= 0.98)"
    );
    report_ratios("new TCP connections/s", &rates);
    report_ratios("busy CPU time per new connection (µs, whole machine)", &cpu_per_conn);
    println!("connects failed during the rate rounds: {failed}");
    report_ratios("single-stream throughput (Gbit/s)", &streams);
    report_ratios("busy CPU time per gigabyte streamed (ms, whole machine)", &cpu_per_gb);
    println!("denied packets counted during the runs: {denied} (the benchmark's connections are all allowed)");

    updates(index, &topo, rendered)?;
    nft.apply_json(&cleanup())?;
    agent::write_to_probe(&topo, &client_ns, server)?;
    rule_growth(&topo);
    drop(topo);
    Ok(())
}

/// The kinds of change the update measurement alternates.
const CHANGES: [&str; 3] = ["remote pod relabel", "policy change", "cluster policy change"];

/// Incremental updates through the agent's path: index change, the
/// incremental compiler (recompile and re-render what the change affects,
/// diff those parts), one netlink batch sent from inside the node's
/// namespace as the agent runs it. The kinds of change alternate: a remote
/// pod relabelled in and out of the server's peer set, the server's
/// policy edited, and, when the cluster has cluster policies, one that
/// selects every namespace edited.
fn updates(index: ClusterIndex, topo: &Topology, applied: Rendered) -> Result<()> {
    let ifaces = topo.pod_ifaces();
    let node = topo.node.name().to_string();
    let (latencies, phases, compiled, full_netlink) =
        netns::run_in(&node, move || update_loop(index, &ifaces, &applied))?;
    println!(
        "full program over the agent's netlink path (same table, replaced in one batch): applied in {:.0} ms",
        full_netlink.as_secs_f64() * 1e3
    );
    let per = |d: Duration| d.as_secs_f64() * 1e3 / 100.0;
    let kinds = latencies.len();
    let mut line = String::from("update phases, mean (incremental compile + render + diff, then kernel):");
    for (name, phase) in CHANGES.iter().zip(&phases).take(kinds) {
        let _ = write!(line, " {name}: {:.2} ms and {:.2} ms;", per(phase[0]), per(phase[1]));
    }
    println!(
        "{line} {:.1} policies recompiled per change; every transaction one netlink batch on the agent's socket",
        compiled as f64 / (100 * kinds) as f64
    );
    for (name, mut v) in CHANGES.iter().zip(latencies) {
        v.sort();
        println!(
            "{name}: change to kernel updated p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} changes)",
            percentile(&v, 0.5).as_secs_f64() * 1e3,
            percentile(&v, 0.99).as_secs_f64() * 1e3,
            v.last().map_or(0.0, |d| d.as_secs_f64() * 1e3),
            v.len()
        );
    }
    Ok(())
}

type UpdateTimes = (Vec<Vec<Duration>>, [[Duration; 2]; 3], usize, Duration);

/// A cluster policy over every namespace with a ported ingress rule (its
/// port is what the measurement toggles).
fn cluster_policy_to_edit(index: &ClusterIndex) -> Option<palisade_policy::ClusterPolicy> {
    index.cluster_policies().iter().map(|id| index.cluster_policy(*id).policy().clone()).find(|p| {
        p.subject == palisade_policy::Subject::Namespaces(palisade_policy::LabelSelector::default())
            && p.ingress.first().is_some_and(|r| r.ports.is_some())
    })
}

/// Runs inside the node's namespace (so `nft` needs no `ip netns exec`).
fn update_loop(
    mut index: ClusterIndex,
    ifaces: &std::collections::BTreeMap<IpAddr, String>,
    applied: &Rendered,
) -> Result<UpdateTimes> {
    let nft = NftCli::default();
    let scope = NodeScope::Node("lab".into());
    let remote =
        index.pods_sorted().into_iter().find(|p| index.pod_label(*p, "role") == Some("web")).context("a web pod")?;
    let mut pod = index.pod_object(remote);
    let policy_id = index.policy_id("bench", "server").context("bench/server")?;
    let mut policy = index.policy(policy_id).policy().clone();
    let mut tier = cluster_policy_to_edit(&index);
    index.track_changes();
    let mut incremental = palisade_dataplane::Incremental::with_gate(&index, scope, ifaces, lab_gate());
    crate::ensure!(incremental.rendered() == applied, "the incremental compiler starts from the applied table");
    let t = Instant::now();
    nft.apply(&palisade_dataplane::transaction::full(applied), applied)?;
    let full_netlink = t.elapsed();
    let kinds = if tier.is_some() { 3 } else { 2 };
    let mut latencies = vec![Vec::new(); kinds];
    let mut phases = [[Duration::ZERO; 2]; 3];
    let mut compiled = 0;
    for i in 0..100 {
        for kind in 0..kinds {
            let t = Instant::now();
            let port = 9091 - (i % 2) as u16;
            match (kind, &mut tier) {
                (0, _) => {
                    pod.labels.insert("role".into(), if i % 2 == 0 { "db".into() } else { "web".into() });
                    index.apply_pod(pod.clone());
                }
                (1, _) => {
                    policy.ingress[0].ports[1] = palisade_policy::RulePort {
                        protocol: palisade_policy::Protocol::Tcp,
                        target: palisade_policy::PortTarget::Range { start: port, end: port },
                    };
                    index.apply_policy(policy.clone());
                }
                (_, Some(tier)) => {
                    let range = palisade_policy::ClusterPort::Range {
                        protocol: palisade_policy::Protocol::Tcp,
                        start: port,
                        end: port,
                    };
                    tier.ingress[0].ports = Some(vec![range]);
                    index.apply_cluster_policy(tier.clone());
                }
                (_, None) => unreachable!("two kinds without cluster policies"),
            }
            let changes = index.take_changes().context("tracking")?;
            let t0 = Instant::now();
            let (tx, stats) = incremental.update(&index, &changes, ifaces);
            let t1 = Instant::now();
            let tx = tx.context("every change here changes the table")?;
            nft.apply(&tx, incremental.rendered())?;
            let t2 = Instant::now();
            phases[kind][0] += t1 - t0;
            phases[kind][1] += t2 - t1;
            compiled += stats.policies_compiled;
            latencies[kind].push(t.elapsed());
        }
    }
    Ok((latencies, phases, compiled, full_netlink))
}

/// Rules do not grow with remote pods; set elements do.
fn rule_growth(topo: &Topology) {
    let with_pods = |pods: usize| {
        let mut c = generate(Size { namespaces: 500, pods, policies: 5_000 }, 1);
        for (i, pod) in c.pods.iter_mut().enumerate() {
            // The same 100 local pods: the first 1,000 pods do not depend on the cluster size.
            pod.node_name = Some(if i < 1_000 && i % 10 == 0 { "lab".into() } else { "remote".into() });
        }
        let index = ClusterIndex::from_objects(c.namespaces, c.pods, c.policies);
        let r = render(&compile(&index, &NodeScope::Node("lab".into()), &topo.pod_ifaces()));
        let rules: usize = r.chains.values().map(|ch| ch.rules.len()).sum();
        let elements: usize = r.sets.values().map(|s| s.elements.len()).sum();
        (rules, elements)
    };
    let (r1, e1) = with_pods(1_000);
    let (r2, e2) = with_pods(10_000);
    println!(
        "same 100 local pods, same policies: 1,000-pod cluster -> {r1} rules, {e1} set elements; 10,000-pod cluster -> {r2} rules, {e2} set elements"
    );
}

/// New connections per second under each attribution variant, in ROUNDS
/// rounds of rotating order, each from an empty conntrack table; prints
/// each variant's per-round ratio to the conntrack-only baseline.
fn attribute(
    nft: &NftCli,
    node: &str,
    client_ns: &str,
    server: SocketAddr,
    seconds: f64,
    palisade: &Rendered,
) -> Result<()> {
    let variants = attribution::variants(palisade);
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
    for round in 0..ROUNDS {
        for k in 0..variants.len() {
            let i = (round + k) % variants.len();
            nft.apply_json(&variants[i].1)?;
            flush_conntrack(node);
            rates[i].push(connections_per_second(client_ns, server, seconds).0);
        }
    }
    println!(
        "new TCP connections/s by variant, per-round ratio to conntrack only ({ROUNDS} rounds): median (quartiles)"
    );
    for (i, (name, _)) in variants.iter().enumerate() {
        let [q1, q2, q3] = quartiles(rates[i].iter().zip(&rates[0]).map(|(x, y)| x / y).collect());
        println!("  {name:16} {:>7.0}/s  {q2:.3} ({q1:.3}-{q3:.3})", quartiles(rates[i].clone())[1]);
    }
    Ok(())
}

/// Empties the conntrack table of namespace `ns` (the lab's node).
fn flush_conntrack(ns: &str) {
    let _ = std::process::Command::new("ip")
        .args(["netns", "exec", ns, "conntrack", "-F"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
}
