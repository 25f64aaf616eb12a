//! Dataplane updates in-process on the synthetic cluster S with 100 local
//! pods: the full build, and one change through the incremental compiler
//! (recompile, re-render and diff only what the change affects) versus the
//! full path (compile, render and diff everything), measured in one run;
//! and the agent's whole CPU path: the update (or the full program) and the
//! nfnetlink batch encoded from its transaction.
//!
//! The `tiers_` benches run the same on S with 1,000 ClusterNetworkPolicies
//! of both tiers on top (`palisade_policy::synth::cluster_policies`): the
//! full build, a remote pod relabel, and one cluster policy edited.
//!
//! `cargo bench -p palisade-dataplane --bench update`

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::LazyLock;

use divan::{Bencher, black_box};
use palisade_dataplane::netlink::Batch;
use palisade_dataplane::render::render;
use palisade_dataplane::transaction::{Transaction, diff, full};
use palisade_dataplane::{Incremental, NodeScope, compile};
use palisade_policy::synth::{Cluster, Size, generate};
use palisade_policy::{ClusterIndex, Labels, Pod, PortTarget, Protocol, RulePort};

fn main() {
    divan::main();
}

const NODE: &str = "lab";

fn scope() -> NodeScope {
    NodeScope::Node(NODE.into())
}

static CLUSTER: LazyLock<Cluster> = LazyLock::new(|| {
    let mut c = generate(Size::S, 1);
    for (i, pod) in c.pods.iter_mut().enumerate() {
        if i % 100 == 0 {
            pod.node_name = Some(NODE.into());
        }
    }
    c
});

fn index() -> ClusterIndex {
    let c = &*CLUSTER;
    let mut index = ClusterIndex::from_objects(c.namespaces.clone(), c.pods.clone(), c.policies.clone());
    index.track_changes();
    index
}

/// Cluster policies on top of S.
const TIERS: usize = 1_000;

/// [`index`] with [`TIERS`] cluster policies.
fn index_with_tiers() -> ClusterIndex {
    let mut index = index();
    for policy in palisade_policy::synth::cluster_policies(TIERS, 1) {
        index.apply_cluster_policy(policy);
    }
    let _ = index.take_changes();
    index
}

fn ifaces(index: &ClusterIndex) -> BTreeMap<IpAddr, String> {
    let mut out = BTreeMap::new();
    for (i, id) in index.pods_sorted().into_iter().enumerate() {
        if index.pod(id).pod().node_name.as_deref() == Some(NODE) {
            for ip in &index.pod(id).pod().ips {
                out.insert(*ip, format!("pv{i}"));
            }
        }
    }
    out
}

/// A remote pod whose relabel touches many compiled policies, and two
/// label sets (its own and another pod's) the benches toggle between.
fn relabel_target(index: &ClusterIndex, incremental: &Incremental) -> (Pod, [Labels; 2]) {
    let needed: Vec<_> = incremental.program().policies.keys().filter_map(|k| index.policy_id_of(k)).collect();
    let pods = index.pods_sorted();
    let best = pods
        .iter()
        .take(2_000)
        .filter(|p| index.pod(**p).pod().node_name.as_deref() != Some(NODE))
        .max_by_key(|p| needed.iter().filter(|n| index.pod_may_affect(**n, **p)).count())
        .copied()
        .expect("remote pods");
    let pod = index.pod_object(best);
    let other = pods.iter().map(|p| index.pod_labels(*p)).find(|l| *l != pod.labels).expect("two label sets");
    let labels = [pod.labels.clone(), other];
    (pod, labels)
}

#[divan::bench(sample_count = 10)]
fn full_build(bencher: Bencher) {
    let index = index();
    let links = ifaces(&index);
    bencher.bench_local(|| Incremental::new(black_box(&index), scope(), &links));
}

#[divan::bench(sample_count = 10)]
fn tiers_full_build(bencher: Bencher) {
    let index = index_with_tiers();
    let links = ifaces(&index);
    bencher.bench_local(|| Incremental::new(black_box(&index), scope(), &links));
}

#[divan::bench(sample_count = 20, sample_size = 5)]
fn tiers_remote_pod_relabel_incremental(bencher: Bencher) {
    relabels_in(index_with_tiers(), bencher, |_, tx| tx.is_some());
}

/// One of the cluster policies that select every namespace (so every
/// local pod lists it) has its first rule's port toggled.
#[divan::bench(sample_count = 20, sample_size = 5)]
fn tiers_cluster_policy_change_incremental(bencher: Bencher) {
    let mut index = index_with_tiers();
    let links = ifaces(&index);
    let mut incremental = Incremental::new(&index, scope(), &links);
    let id = index
        .cluster_policies()
        .iter()
        .copied()
        .find(|id| {
            let p = index.cluster_policy(*id).policy();
            p.subject == palisade_policy::Subject::Namespaces(palisade_policy::LabelSelector::default())
                && p.ingress.first().is_some_and(|r| r.ports.is_some())
        })
        .expect("a cluster policy over every namespace");
    let mut policy = index.cluster_policy(id).policy().clone();
    let mut flip = 0u16;
    bencher.bench_local(|| {
        flip ^= 1;
        policy.ingress[0].ports = Some(vec![palisade_policy::ClusterPort::Range {
            protocol: Protocol::Tcp,
            start: 7000 + flip,
            end: 7000 + flip,
        }]);
        index.apply_cluster_policy(policy.clone());
        let changes = index.take_changes().expect("tracking");
        incremental.update(&index, &changes, &links).0.is_some()
    });
}

/// Remote pod relabels, one after another, each through the incremental
/// update; `then` gets the incremental state and the update's transaction.
fn relabels<R>(bencher: Bencher, then: impl Fn(&Incremental, Option<Transaction>) -> R) {
    relabels_in(index(), bencher, then);
}

/// [`relabels`] on `index`.
fn relabels_in<R>(mut index: ClusterIndex, bencher: Bencher, then: impl Fn(&Incremental, Option<Transaction>) -> R) {
    let links = ifaces(&index);
    let mut incremental = Incremental::new(&index, scope(), &links);
    let (mut pod, labels) = relabel_target(&index, &incremental);
    let mut flip = 0;
    bencher.bench_local(|| {
        flip ^= 1;
        pod.labels.clone_from(&labels[flip]);
        index.apply_pod(pod.clone());
        let changes = index.take_changes().expect("tracking");
        let (tx, _) = incremental.update(&index, &changes, &links);
        then(&incremental, tx)
    });
}

#[divan::bench(sample_count = 20, sample_size = 5)]
fn remote_pod_relabel_incremental(bencher: Bencher) {
    relabels(bencher, |_, tx| tx.is_some());
}

#[divan::bench(sample_count = 10, sample_size = 2)]
fn remote_pod_relabel_full(bencher: Bencher) {
    let mut index = index();
    let links = ifaces(&index);
    let incremental = Incremental::new(&index, scope(), &links);
    let (mut pod, labels) = relabel_target(&index, &incremental);
    let mut applied = incremental.rendered().clone();
    let mut flip = 0;
    bencher.bench_local(|| {
        flip ^= 1;
        pod.labels.clone_from(&labels[flip]);
        index.apply_pod(pod.clone());
        let rendered = render(&compile(&index, &scope(), &links));
        let changed = diff(&applied, &rendered).is_some();
        applied = rendered;
        changed
    });
}

#[divan::bench(sample_count = 20, sample_size = 5)]
fn policy_change_incremental(bencher: Bencher) {
    let mut index = index();
    let links = ifaces(&index);
    let mut incremental = Incremental::new(&index, scope(), &links);
    let name = incremental
        .program()
        .policies
        .iter()
        .find(|(_, p)| !p.ingress.is_empty())
        .map(|(n, _)| n.clone())
        .expect("a policy with ingress rules");
    let mut policy = index.policy(index.policy_id_of(&name).expect("policy")).policy().clone();
    let mut flip = 0u16;
    bencher.bench_local(|| {
        flip ^= 1;
        policy.ingress[0].ports = vec![RulePort {
            protocol: Protocol::Tcp,
            target: PortTarget::Range { start: 7000 + flip, end: 7000 + flip },
        }];
        index.apply_policy(policy.clone());
        let changes = index.take_changes().expect("tracking");
        incremental.update(&index, &changes, &links).0.is_some()
    });
}

/// A remote pod relabel through the agent's whole CPU path: the incremental
/// update, and the nfnetlink batch of its transaction.
#[divan::bench(sample_count = 20, sample_size = 5)]
fn remote_pod_relabel_to_batch(bencher: Bencher) {
    relabels(bencher, |incremental, tx| {
        tx.map(|tx| Batch::encode(&tx, incremental.rendered()).expect("encodable").bytes().len())
    });
}

/// The full program for the node and the nfnetlink batch that installs it.
#[divan::bench(sample_count = 10)]
fn full_program_to_batch(bencher: Bencher) {
    let index = index();
    let links = ifaces(&index);
    bencher.bench_local(|| {
        let incremental = Incremental::new(black_box(&index), scope(), &links);
        Batch::encode(&full(incremental.rendered()), incremental.rendered()).expect("encodable").bytes().len()
    });
}
