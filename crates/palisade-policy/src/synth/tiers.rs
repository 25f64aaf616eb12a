//! Synthetic cluster policies over the synthetic clusters' vocabulary
//! (namespaces labelled `team`/`env`, pods `app`/`role`), for benchmarks:
//! both tiers (three Admin to one Baseline), spread priorities, every
//! action, subjects by namespace and by pod, pod, namespace and network
//! peers, numbers, ranges and named ports. One in ten selects every
//! namespace, so that every pod's traffic crosses some of them.

use super::{ENVS, ROLES, Rng, TEAMS, sel};
use crate::cluster_policy::{
    Action, ClusterPeer, ClusterPolicy, ClusterPolicyKind, ClusterPort, ClusterRule, Subject, Tier,
};
use crate::model::{LabelSelector, Protocol};

fn rule(action: Action, peers: Vec<ClusterPeer>, ports: Option<Vec<ClusterPort>>) -> ClusterRule {
    ClusterRule { name: None, action, peers, ports }
}

fn team(t: usize) -> ClusterPeer {
    ClusterPeer::Namespaces(sel(&[("team", format!("team-{t}"))]))
}

fn port(protocol: Protocol, start: u16, end: u16) -> ClusterPort {
    ClusterPort::Range { protocol, start, end }
}

/// `count` cluster policies named `cnp-<k>`, from `seed`.
#[must_use]
pub fn cluster_policies(count: usize, seed: u64) -> Vec<ClusterPolicy> {
    let mut rng = Rng::new(seed ^ 0xC1A5_5E5E_7135);
    (0..count)
        .map(|k| {
            let own = k % TEAMS;
            let other = rng.below(TEAMS);
            let subject = match k % 10 {
                0 => Subject::Namespaces(LabelSelector::default()),
                1..=5 => Subject::Namespaces(sel(&[("team", format!("team-{own}"))])),
                _ => Subject::Pods {
                    namespaces: sel(&[("env", ENVS[k % ENVS.len()].to_string())]),
                    pods: sel(&[("role", ROLES[k % ROLES.len()].to_string())]),
                },
            };
            let ingress = match k % 5 {
                0 => vec![rule(Action::Deny, vec![team(other)], Some(vec![port(Protocol::Tcp, 5432, 5432)]))],
                1 => vec![rule(
                    Action::Accept,
                    vec![ClusterPeer::Pods {
                        namespaces: sel(&[("env", "prod".into())]),
                        pods: sel(&[("role", "web".into())]),
                    }],
                    Some(vec![ClusterPort::Named("http".into())]),
                )],
                2 => vec![rule(Action::Pass, vec![team(own)], None), rule(Action::Deny, vec![team(other)], None)],
                3 => vec![rule(
                    Action::Deny,
                    vec![ClusterPeer::Namespaces(sel(&[("env", "dev".into())]))],
                    Some(vec![port(Protocol::Tcp, 9000, 9100)]),
                )],
                _ => Vec::new(),
            };
            let egress = match k % 3 {
                0 => vec![rule(
                    Action::Deny,
                    vec![ClusterPeer::Networks(vec!["172.16.0.0/12".parse().expect("literal CIDR")])],
                    Some(vec![port(Protocol::Tcp, 443, 443)]),
                )],
                1 => vec![rule(
                    Action::Accept,
                    vec![ClusterPeer::Namespaces(sel(&[("env", "prod".into())]))],
                    Some(vec![port(Protocol::Udp, 53, 53)]),
                )],
                _ => Vec::new(),
            };
            ClusterPolicy {
                kind: ClusterPolicyKind::ClusterNetworkPolicy,
                name: format!("cnp-{k}"),
                tier: if k % 4 == 3 { Tier::Baseline } else { Tier::Admin },
                priority: Some(u32::try_from(k * 37 % 1001).expect("below 1001")),
                subject,
                ingress,
                egress,
            }
        })
        .collect()
}
