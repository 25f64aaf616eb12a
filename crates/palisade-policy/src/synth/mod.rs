//! Deterministic synthetic clusters for benchmarks and scale tests.
//!
//! Each namespace gets the same share of pods and policies. Policies mix
//! default-deny, same-namespace podSelectors, namespaceSelectors combined with
//! matchExpressions, endPort ranges, named ports and ipBlocks with `except`,
//! in both directions, so every evaluation path is exercised.

pub mod e2e;
mod tiers;

pub use tiers::cluster_policies;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::model::{
    ContainerPort, Enforcement, IpBlock, LabelSelector, Labels, Namespace, NetworkPolicy, Operator, Peer, Pod,
    PodState, PortTarget, Protocol, Requirement, Rule, RulePort,
};

/// How big a synthetic cluster is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Size {
    /// Namespace count.
    pub namespaces: usize,
    /// Pod count.
    pub pods: usize,
    /// Policy count.
    pub policies: usize,
}

impl Size {
    /// S: 10,000 pods, 500 namespaces, 5,000 policies.
    pub const S: Size = Size { namespaces: 500, pods: 10_000, policies: 5_000 };
    /// L: 100,000 pods, 25,000 namespaces, 75,000 policies.
    pub const L: Size = Size { namespaces: 25_000, pods: 100_000, policies: 75_000 };
}

/// A generated cluster.
#[derive(Clone, Debug)]
pub struct Cluster {
    /// Namespaces `ns-0` … .
    pub namespaces: Vec<Namespace>,
    /// Pods `ns-i/pod-j`.
    pub pods: Vec<Pod>,
    /// Policies `ns-i/policy-k`.
    pub policies: Vec<NetworkPolicy>,
}

/// A small deterministic PRNG (splitmix64).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    #[must_use]
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

const APPS: usize = 5;
const ROLES: [&str; 4] = ["web", "api", "db", "cache"];
const ENVS: [&str; 3] = ["prod", "staging", "dev"];
const TEAMS: usize = 20;

fn labels(pairs: &[(&str, String)]) -> Labels {
    pairs.iter().map(|(k, v)| ((*k).to_string(), v.clone())).collect()
}

fn sel(pairs: &[(&str, String)]) -> LabelSelector {
    LabelSelector { match_labels: labels(pairs), match_expressions: Vec::new() }
}

fn expr(key: &str, operator: Operator, values: &[&str]) -> Requirement {
    Requirement { key: key.into(), operator, values: values.iter().map(|v| (*v).to_string()).collect() }
}

fn tcp(start: u16, end: u16) -> RulePort {
    RulePort { protocol: Protocol::Tcp, target: PortTarget::Range { start, end } }
}

/// The IPv4 address of pod number `n`: 10.0.0.0/8 from 10.0.0.1 up.
#[must_use]
pub fn pod_ipv4(n: usize) -> Ipv4Addr {
    Ipv4Addr::from(0x0A00_0001_u32 + n as u32)
}

/// Generates a cluster of `size` from `seed`.
#[must_use]
pub fn generate(size: Size, seed: u64) -> Cluster {
    let mut rng = Rng::new(seed);
    let namespaces: Vec<Namespace> = (0..size.namespaces)
        .map(|i| Namespace {
            name: format!("ns-{i}"),
            labels: labels(&[("team", format!("team-{}", i % TEAMS)), ("env", ENVS[i % ENVS.len()].to_string())]),
        })
        .collect();
    let mut pods = Vec::with_capacity(size.pods);
    for n in 0..size.pods {
        let ns = n % size.namespaces;
        let j = n / size.namespaces;
        let role = ROLES[j % ROLES.len()];
        let mut ips = vec![IpAddr::V4(pod_ipv4(n))];
        if n % 10 == 0 {
            ips.push(IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, (n >> 16) as u16, n as u16)));
        }
        let mut ports = vec![
            ContainerPort { name: Some("http".into()), port: 8080, protocol: Protocol::Tcp },
            ContainerPort { name: Some("metrics".into()), port: 9090, protocol: Protocol::Tcp },
        ];
        if role == "db" {
            ports.push(ContainerPort { name: Some("db".into()), port: 5432, protocol: Protocol::Tcp });
        }
        pods.push(Pod {
            namespace: format!("ns-{ns}"),
            name: format!("pod-{j}"),
            labels: labels(&[
                ("app", format!("app-{}", j % APPS)),
                ("role", role.to_string()),
                ("version", format!("v{}", rng.below(3))),
            ]),
            ips,
            ports,
            node_name: Some(format!("node-{}", n % 50)),
            state: PodState::Active,
            workload: None,
        });
    }
    // Policies draw from their own stream, so they do not depend on the pod count.
    let mut rng = Rng::new(seed ^ 0x5EED_0F00_11C1);
    let mut policies = Vec::with_capacity(size.policies);
    for k in 0..size.policies {
        let ns = k % size.namespaces;
        let j = k / size.namespaces;
        policies.push(policy(ns, j, &mut rng));
    }
    Cluster { namespaces, pods, policies }
}

fn policy(ns: usize, j: usize, rng: &mut Rng) -> NetworkPolicy {
    let app = format!("app-{}", j % APPS);
    let mut p = NetworkPolicy {
        namespace: format!("ns-{ns}"),
        name: format!("policy-{j}"),
        pod_selector: sel(&[("app", app.clone())]),
        isolates_ingress: true,
        isolates_egress: false,
        ingress: Vec::new(),
        egress: Vec::new(),
        enforcement: Enforcement::Enforce,
        log_allowed: false,
    };
    let team = format!("team-{}", rng.below(TEAMS));
    match j % 6 {
        0 => {
            // Default deny ingress for the namespace.
            p.pod_selector = LabelSelector::default();
        }
        1 => p.ingress.push(Rule {
            peers: vec![Peer::Pods { namespace_selector: None, pod_selector: Some(sel(&[("role", "web".into())])) }],
            ports: vec![RulePort { protocol: Protocol::Tcp, target: PortTarget::Named("http".into()) }],
        }),
        2 => p.ingress.push(Rule {
            peers: vec![Peer::Pods {
                namespace_selector: Some(sel(&[("team", team)])),
                pod_selector: Some(LabelSelector {
                    match_labels: Labels::new(),
                    match_expressions: vec![expr("role", Operator::In, &["api", "web"])],
                }),
            }],
            ports: vec![tcp(8080, 8090)],
        }),
        3 => {
            p.isolates_egress = true;
            p.egress.push(Rule {
                peers: vec![Peer::IpBlock(IpBlock {
                    cidr: "172.16.0.0/12".parse().expect("literal CIDR"),
                    except: vec!["172.16.1.0/24".parse().expect("literal CIDR")],
                })],
                ports: vec![tcp(443, 443)],
            });
            p.egress.push(Rule {
                peers: vec![Peer::Pods {
                    namespace_selector: Some(sel(&[("env", "prod".into())])),
                    pod_selector: None,
                }],
                ports: vec![RulePort { protocol: Protocol::Udp, target: PortTarget::Range { start: 53, end: 53 } }],
            });
        }
        4 => {
            p.pod_selector.match_expressions.push(expr("version", Operator::NotIn, &["v0"]));
            p.ingress.push(Rule {
                peers: vec![
                    Peer::Pods {
                        namespace_selector: Some(LabelSelector {
                            match_labels: Labels::new(),
                            match_expressions: vec![expr("env", Operator::In, &["prod", "staging"])],
                        }),
                        pod_selector: Some(LabelSelector {
                            match_labels: Labels::new(),
                            match_expressions: vec![expr("version", Operator::Exists, &[])],
                        }),
                    },
                    Peer::IpBlock(IpBlock {
                        cidr: "192.168.0.0/16".parse().expect("literal CIDR"),
                        except: Vec::new(),
                    }),
                ],
                ports: vec![tcp(9090, 9090), RulePort { protocol: Protocol::Udp, target: PortTarget::Any }],
            });
        }
        _ => {
            p.isolates_egress = true;
            p.egress.push(Rule {
                peers: vec![Peer::Pods { namespace_selector: None, pod_selector: Some(sel(&[("role", "db".into())])) }],
                ports: vec![RulePort { protocol: Protocol::Tcp, target: PortTarget::Named("db".into()) }],
            });
        }
    }
    p
}
