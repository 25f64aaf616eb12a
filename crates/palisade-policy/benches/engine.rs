//! Engine benchmarks on deterministic synthetic clusters (see `synth`).
//!
//! `cargo bench -p palisade-policy --bench engine`

use std::sync::LazyLock;

use divan::counter::ItemsCount;
use divan::{Bencher, black_box};
use palisade_policy::matrix::Case;
use palisade_policy::synth::{Cluster, Rng, Size, generate};
use palisade_policy::{ClusterIndex, Endpoint, Flow, Namespace, Protocol};

fn main() {
    divan::main();
}

static S: LazyLock<Cluster> = LazyLock::new(|| generate(Size::S, 1));
static L: LazyLock<Cluster> = LazyLock::new(|| generate(Size::L, 1));

fn build(c: &Cluster) -> ClusterIndex {
    ClusterIndex::from_objects(c.namespaces.clone(), c.pods.clone(), c.policies.clone())
}

#[divan::bench(sample_count = 5, sample_size = 1)]
fn build_index_s(bencher: Bencher) {
    bencher.with_inputs(|| S.clone()).bench_values(|c| ClusterIndex::from_objects(c.namespaces, c.pods, c.policies));
}

#[divan::bench(sample_count = 3, sample_size = 1)]
fn build_index_l(bencher: Bencher) {
    bencher.with_inputs(|| L.clone()).bench_values(|c| ClusterIndex::from_objects(c.namespaces, c.pods, c.policies));
}

/// Random pod-to-pod and pod-to-external flows over `index`.
fn flows(index: &ClusterIndex, n: usize) -> Vec<Flow> {
    let pods = index.pods_sorted();
    let mut rng = Rng::new(7);
    let cases = [
        (8080, Protocol::Tcp),
        (9090, Protocol::Tcp),
        (5432, Protocol::Tcp),
        (53, Protocol::Udp),
        (443, Protocol::Tcp),
    ];
    (0..n)
        .map(|i| {
            let (port, protocol) = cases[rng.below(cases.len())];
            let src = index.pod_endpoint(pods[rng.below(pods.len())], None);
            let dst = if i % 10 == 9 {
                Endpoint::External("172.20.1.1".parse().expect("literal address"))
            } else {
                index.pod_endpoint(pods[rng.below(pods.len())], None)
            };
            Flow { src, dst, port, protocol }
        })
        .collect()
}

#[divan::bench(sample_count = 20)]
fn query_s(bencher: Bencher) {
    let index = build(&S);
    let flows = flows(&index, 100_000);
    bencher.counter(ItemsCount::new(flows.len())).bench_local(|| {
        let mut allowed = 0usize;
        for flow in &flows {
            allowed += usize::from(index.evaluate(black_box(flow)).allowed);
        }
        allowed
    });
}

#[divan::bench(sample_count = 10)]
fn matrix_1000_pods(bencher: Bencher) {
    let index = build(&S);
    let pods: Vec<_> = index.pods_sorted().into_iter().take(1000).collect();
    bencher.bench_local(|| index.matrix(pods.clone(), vec![Case { port: 8080, protocol: Protocol::Tcp }]));
}

/// Every lint check over S (each ipBlock checked against the sorted pod
/// addresses, rules compared only among policies for the same pods).
#[divan::bench(sample_count = 5, sample_size = 1)]
fn lint_s(bencher: Bencher) {
    let index = build(&S);
    bencher.bench_local(|| palisade_policy::lint::lint(&index).len());
}

/// `diff` at S for one changed policy (its first rule's ports replaced):
/// only the rows and columns of the pods it selects are evaluated.
#[divan::bench(sample_count = 5, sample_size = 1)]
fn diff_one_policy_s(bencher: Bencher) {
    let before = build(&S);
    let mut policies = S.policies.clone();
    let changed = policies.iter_mut().find(|p| !p.ingress.is_empty()).expect("a policy with ingress rules");
    changed.ingress[0].ports.clear();
    let after = ClusterIndex::from_objects(S.namespaces.clone(), S.pods.clone(), policies);
    let cases = palisade_policy::diff::interesting_cases(&[&before, &after]);
    bencher.bench_local(|| palisade_policy::diff::diff(&before, &after, &cases).opened.len());
}

#[divan::bench(sample_count = 200)]
fn pod_relabel_l(bencher: Bencher) {
    let mut index = build(&L);
    let mut pod = L.pods[12_345].clone();
    let mut flip = false;
    bencher.bench_local(|| {
        flip = !flip;
        pod.labels.insert("app".into(), if flip { "app-1".into() } else { "app-2".into() });
        index.apply_pod(pod.clone())
    });
}

#[divan::bench(sample_count = 200)]
fn namespace_relabel_l(bencher: Bencher) {
    let mut index = build(&L);
    let mut flip = false;
    bencher.bench_local(|| {
        flip = !flip;
        let env = if flip { "prod" } else { "dev" };
        index.apply_namespace(Namespace {
            name: "ns-77".into(),
            labels: [("env".to_string(), env.to_string()), ("team".to_string(), "team-1".to_string())].into(),
        })
    });
}

#[divan::bench(sample_count = 200)]
fn policy_change_l(bencher: Bencher) {
    let mut index = build(&L);
    let mut policy = L.policies[4_321].clone();
    let mut flip = false;
    bencher.bench_local(|| {
        flip = !flip;
        policy.pod_selector.match_labels.insert("app".into(), if flip { "app-3".into() } else { "app-4".into() });
        index.apply_policy(policy.clone())
    });
}
