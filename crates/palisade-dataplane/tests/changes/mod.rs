//! Random changes to an index over the e2e model, shared by the
//! incremental tests (pure and in the kernel).

use std::collections::BTreeMap;
use std::net::IpAddr;

use palisade_policy::synth::Rng;
use palisade_policy::synth::e2e::{NAMESPACES, PODS, random_cluster_policies, random_policies};
use palisade_policy::{ClusterIndex, Namespace, Pod, PodState};

/// Interfaces of the index's pods (`pv<i>`), leaving out every
/// `drop_every`-th pod (none when 0).
pub fn ifaces(index: &ClusterIndex, drop_every: usize) -> BTreeMap<IpAddr, String> {
    let mut out = BTreeMap::new();
    for (i, id) in index.pods_sorted().into_iter().enumerate() {
        if drop_every > 0 && i % drop_every == 0 {
            continue;
        }
        for ip in &index.pod(id).pod().ips {
            out.insert(*ip, format!("pv{i}"));
        }
    }
    out
}

fn pick<T: Clone>(rng: &mut Rng, items: &[T]) -> T {
    items[rng.below(items.len())].clone()
}

/// One random change to the index (and to `pods`, the objects as last
/// applied); returns what it did.
pub fn mutate(rng: &mut Rng, index: &mut ClusterIndex, pods: &mut [Pod], step: usize) -> String {
    let i = rng.below(pods.len());
    match rng.below(14) {
        0 | 1 => {
            pods[i].labels.insert("pod".into(), pick(rng, &PODS).into());
            index.apply_pod(pods[i].clone());
            format!("relabel pod {}", pods[i].name)
        }
        2 => {
            let v4: IpAddr = format!("10.9.{}.{}", step % 200, i + 1).parse().expect("address");
            pods[i].ips =
                if rng.below(3) == 0 { vec![v4] } else { vec![v4, pods[i].ips.last().copied().unwrap_or(v4)] };
            index.apply_pod(pods[i].clone());
            format!("readdress {}/{}", pods[i].namespace, pods[i].name)
        }
        3 => {
            pods[i].node_name = Some(pick(rng, &["n1", "n2"]).into());
            index.apply_pod(pods[i].clone());
            "move pod".into()
        }
        4 => {
            pods[i].state = if pods[i].state == PodState::Active {
                PodState::Excluded("phase Succeeded".into())
            } else {
                PodState::Active
            };
            index.apply_pod(pods[i].clone());
            "stop or start pod".into()
        }
        5 => {
            if index.delete_pod(&pods[i].namespace, &pods[i].name) {
                "delete pod".into()
            } else {
                index.apply_pod(pods[i].clone());
                "re-add pod".into()
            }
        }
        6 => {
            let keep = rng.below(pods[i].ports.len() + 1);
            pods[i].ports.truncate(keep);
            index.apply_pod(pods[i].clone());
            "drop named ports".into()
        }
        7 => {
            let ns = pick(rng, &NAMESPACES);
            if rng.below(4) == 0 {
                index.delete_namespace(ns);
                format!("delete namespace {ns}")
            } else {
                let value = pick(rng, &NAMESPACES);
                index.apply_namespace(Namespace { name: ns.into(), labels: [("ns".into(), value.into())].into() });
                format!("relabel namespace {ns} ns={value}")
            }
        }
        8 | 9 => {
            let policy = random_policies(rng, 1).pop().expect("one policy");
            let name = format!("{}/{}", policy.namespace, policy.name);
            index.apply_policy(policy);
            format!("apply policy {name}")
        }
        11 | 12 => {
            let mut policy = random_cluster_policies(rng, 1).pop().expect("one cluster policy");
            policy.name = format!("c{}", rng.below(4));
            let name = policy.name.clone();
            index.apply_cluster_policy(policy);
            format!("apply cluster policy {name}")
        }
        13 => {
            let ids = index.cluster_policies().to_vec();
            if ids.is_empty() {
                return "nothing".into();
            }
            let key = index.cluster_policy_key(pick(rng, &ids));
            index.delete_cluster_policy(&key);
            format!("delete {key}")
        }
        _ => {
            let ids = index.policies_sorted();
            if ids.is_empty() {
                return "nothing".into();
            }
            let id = pick(rng, &ids);
            let (ns, name) = (index.policy(id).policy().namespace.clone(), index.policy(id).policy().name.clone());
            index.delete_policy(&ns, &name);
            format!("delete policy {ns}/{name}")
        }
    }
}
