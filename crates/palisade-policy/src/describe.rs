//! Plain-words rendering of selectors, peers and ports, shared by `check`,
//! `explain` and `lint`.

use std::fmt::Write as _;

use crate::cluster_policy::{ClusterPeer, ClusterPolicy, ClusterPort, ClusterRule, Subject};
use crate::model::{IpBlock, LabelSelector, Operator, Peer, PortTarget, Rule, RulePort};

/// A selector in kubectl's `-l` syntax: `app=db,tier in (a,b),!legacy`.
#[must_use]
pub fn selector(sel: &LabelSelector) -> String {
    let mut parts: Vec<String> = sel.match_labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    for r in &sel.match_expressions {
        parts.push(match r.operator {
            Operator::In => format!("{} in ({})", r.key, r.values.join(",")),
            Operator::NotIn => format!("{} notin ({})", r.key, r.values.join(",")),
            Operator::Exists => r.key.clone(),
            Operator::DoesNotExist => format!("!{}", r.key),
        });
    }
    parts.join(",")
}

/// An ipBlock: `10.0.0.0/8 except 10.1.0.0/16, 10.2.0.0/16`.
#[must_use]
pub fn ip_block(block: &IpBlock) -> String {
    let mut s = block.cidr.to_string();
    if !block.except.is_empty() {
        let except: Vec<String> = block.except.iter().map(ToString::to_string).collect();
        let _ = write!(s, " except {}", except.join(", "));
    }
    s
}

/// A peer in words, relative to the policy's namespace.
#[must_use]
pub fn peer(p: &Peer, policy_namespace: &str) -> String {
    match p {
        Peer::IpBlock(block) => format!("addresses {}", ip_block(block)),
        Peer::Pods { namespace_selector, pod_selector } => {
            let pods = match pod_selector {
                None => "all pods".to_string(),
                Some(s) if s.is_empty() => "all pods".to_string(),
                Some(s) => format!("pods with {}", selector(s)),
            };
            let namespaces = match namespace_selector {
                None => format!("in namespace {policy_namespace}"),
                Some(s) if s.is_empty() => "in all namespaces".to_string(),
                Some(s) => format!("in namespaces with {}", selector(s)),
            };
            format!("{pods} {namespaces}")
        }
    }
}

/// A rule port in words: `TCP 80`, `TCP 8000-8080`, `TCP port named http`, `all UDP ports`.
#[must_use]
pub fn port(p: &RulePort) -> String {
    match &p.target {
        PortTarget::Any => format!("all {} ports", p.protocol),
        PortTarget::Range { start, end } if start == end => format!("{} {start}", p.protocol),
        PortTarget::Range { start, end } => format!("{} {start}-{end}", p.protocol),
        PortTarget::Named(name) => format!("{} port named {name}", p.protocol),
    }
}

/// A whole rule: `from pods with app=api in namespace prod on TCP 5432`.
#[must_use]
pub fn rule(r: &Rule, from_or_to: &str, policy_namespace: &str) -> String {
    let peers = if r.peers.is_empty() {
        "everywhere (all pods and addresses)".to_string()
    } else {
        r.peers.iter().map(|p| peer(p, policy_namespace)).collect::<Vec<_>>().join("; or ")
    };
    let ports = if r.ports.is_empty() {
        "any port and protocol".to_string()
    } else {
        r.ports.iter().map(port).collect::<Vec<_>>().join(", ")
    };
    format!("{from_or_to} {peers}, on {ports}")
}

/// Pods of namespaces in words: `all pods in all namespaces`, `pods with
/// app=db in namespaces with team=a`.
fn pods_in(namespaces: &LabelSelector, pods: Option<&LabelSelector>) -> String {
    let pods = match pods {
        Some(s) if !s.is_empty() => format!("pods with {}", selector(s)),
        _ => "all pods".to_string(),
    };
    let namespaces = if namespaces.is_empty() {
        "in all namespaces".to_string()
    } else {
        format!("in namespaces with {}", selector(namespaces))
    };
    format!("{pods} {namespaces}")
}

/// A cluster policy's subject in words.
#[must_use]
pub fn subject(s: &Subject) -> String {
    match s {
        Subject::Namespaces(ns) => pods_in(ns, None),
        Subject::Pods { namespaces, pods } => pods_in(namespaces, Some(pods)),
    }
}

/// A cluster policy peer in words.
#[must_use]
pub fn cluster_peer(p: &ClusterPeer) -> String {
    let list = |items: Vec<String>| items.join(", ");
    match p {
        ClusterPeer::Namespaces(ns) => pods_in(ns, None),
        ClusterPeer::Pods { namespaces, pods } => pods_in(namespaces, Some(pods)),
        ClusterPeer::Networks(nets) => format!("addresses in {}", list(nets.iter().map(ToString::to_string).collect())),
        ClusterPeer::Nodes(sel) if sel.is_empty() => "the addresses of all nodes".to_string(),
        ClusterPeer::Nodes(sel) => format!("the addresses of nodes with {}", selector(sel)),
        ClusterPeer::DomainNames(names) => {
            format!("domain names {} (not enforced: matches nothing)", list(names.clone()))
        }
    }
}

/// A cluster policy port in words: `TCP 80`, `UDP 1000-2000`, `port named dns`.
#[must_use]
pub fn cluster_port(p: &ClusterPort) -> String {
    match p {
        ClusterPort::Range { protocol, start, end } if start == end => format!("{protocol} {start}"),
        ClusterPort::Range { protocol, start, end } => format!("{protocol} {start}-{end}"),
        ClusterPort::Named(name) => format!("port named {name}"),
    }
}

/// A cluster policy rule in words: `Deny from all pods in namespaces with
/// team=b, on TCP 80`.
#[must_use]
pub fn cluster_rule(policy: &ClusterPolicy, r: &ClusterRule, from_or_to: &str) -> String {
    let peers = r.peers.iter().map(cluster_peer).collect::<Vec<_>>().join("; or ");
    let ports = match &r.ports {
        None => "any port and protocol".to_string(),
        Some(ports) => ports.iter().map(cluster_port).collect::<Vec<_>>().join(", "),
    };
    format!("{} {from_or_to} {peers}, on {ports}", policy.kind.action_word(r.action))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Protocol, Requirement};

    #[test]
    fn words() {
        let sel = LabelSelector {
            match_labels: [("app".to_string(), "db".to_string())].into(),
            match_expressions: vec![
                Requirement { key: "tier".into(), operator: Operator::In, values: vec!["a".into(), "b".into()] },
                Requirement { key: "legacy".into(), operator: Operator::DoesNotExist, values: vec![] },
            ],
        };
        assert_eq!(selector(&sel), "app=db,tier in (a,b),!legacy");
        let p = Peer::Pods { namespace_selector: Some(LabelSelector::default()), pod_selector: Some(sel) };
        assert_eq!(peer(&p, "prod"), "pods with app=db,tier in (a,b),!legacy in all namespaces");
        let rp = RulePort { protocol: Protocol::Udp, target: PortTarget::Range { start: 53, end: 53 } };
        assert_eq!(port(&rp), "UDP 53");
        assert_eq!(
            rule(&Rule::default(), "from", "prod"),
            "from everywhere (all pods and addresses), on any port and protocol"
        );
    }
}
