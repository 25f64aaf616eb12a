//! `palisade status`: is each policy in force, and on how many nodes. Read
//! from the API: the policies (their current generation) and the status
//! ConfigMap each node's agent writes (`palisade-status-<node>`).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::Context as _;
use palisade_agent::kube::status::{NodeStatus, STATUS_KEY, STATUS_LABEL};
use serde::{Deserialize, Serialize};

use super::TextOrJson;

/// One policy across the nodes.
#[derive(Debug, Default, Serialize)]
pub struct PolicyRealization {
    /// `NetworkPolicy`, ….
    pub kind: String,
    /// `namespace/name` (or the name of a cluster-scoped policy).
    pub name: String,
    /// Its current `metadata.generation` (`null` when the API does not
    /// list it any more, or did not say).
    pub generation: Option<i64>,
    /// Nodes that programmed this generation.
    pub programmed: Vec<String>,
    /// Nodes that still enforce an older generation.
    pub behind: Vec<String>,
    /// Nodes whose last sync failed (they keep their previous rules).
    pub failed: Vec<String>,
    /// Nodes where it is staged (audit): reported, not programmed.
    pub audit: Vec<String>,
    /// Pods it selects on the reporting nodes.
    pub pods: usize,
}

/// The answer.
#[derive(Debug, Default, Serialize)]
pub struct StatusReport {
    /// Policies, by kind and name.
    pub policies: Vec<PolicyRealization>,
    /// What each node reported.
    pub nodes: Vec<NodeStatus>,
}

#[derive(Deserialize)]
struct List<T> {
    items: Vec<T>,
}

#[derive(Deserialize)]
struct Item {
    metadata: Meta,
    #[serde(default)]
    data: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct Meta {
    name: String,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    generation: Option<i64>,
}

/// Joins the policies the API lists with the nodes' reports.
#[must_use]
pub fn aggregate(listed: &[(String, String, Option<i64>)], nodes: Vec<NodeStatus>) -> StatusReport {
    let mut by: BTreeMap<(String, String), PolicyRealization> = listed
        .iter()
        .map(|(kind, name, generation)| {
            let p = PolicyRealization {
                kind: kind.clone(),
                name: name.clone(),
                generation: *generation,
                ..Default::default()
            };
            ((kind.clone(), name.clone()), p)
        })
        .collect();
    for node in &nodes {
        for p in &node.policies {
            let entry = by.entry((p.kind.clone(), p.name.clone())).or_insert_with(|| PolicyRealization {
                kind: p.kind.clone(),
                name: p.name.clone(),
                ..Default::default()
            });
            entry.pods += p.pods;
            let list = match p.state.as_str() {
                "audit" => &mut entry.audit,
                "failed" => &mut entry.failed,
                _ if entry.generation.is_some() && p.generation != entry.generation => &mut entry.behind,
                _ => &mut entry.programmed,
            };
            list.push(node.node.clone());
        }
    }
    StatusReport { policies: by.into_values().collect(), nodes }
}

/// Reads and prints the status; exit 0 when every policy is programmed at
/// its current generation wherever it applies, 1 when some node is behind
/// or failed, 2 on error.
#[must_use]
pub fn run(context: Option<&str>, namespace: &str, output: TextOrJson) -> u8 {
    match read(context, namespace) {
        Ok(report) => {
            match output {
                TextOrJson::Json => {
                    println!("{}", serde_json::to_string_pretty(&report).expect("plain data serializes"));
                }
                TextOrJson::Text => print!("{}", text(&report)),
            }
            let lagging = report.policies.iter().any(|p| !p.behind.is_empty() || !p.failed.is_empty());
            u8::from(lagging)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            super::EXIT_ERROR
        }
    }
}

fn read(context: Option<&str>, namespace: &str) -> anyhow::Result<StatusReport> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let client = crate::live::client(context).await?;
        let mut pages = Vec::new();
        crate::live::list(&client, "/apis/networking.k8s.io/v1/networkpolicies", &mut pages).await?;
        let mut listed = Vec::new();
        for (_, text) in &pages {
            let list: List<Item> = serde_json::from_str(text).context("a NetworkPolicy list")?;
            for item in list.items {
                let name = format!("{}/{}", item.metadata.namespace.unwrap_or_default(), item.metadata.name);
                listed.push(("NetworkPolicy".to_string(), name, item.metadata.generation));
            }
        }
        let path = format!("/api/v1/namespaces/{namespace}/configmaps?labelSelector={STATUS_LABEL}%3Dnode");
        let request = http::Request::get(&path).body(Vec::new()).context("request")?;
        let text = client.request_text(request).await.with_context(|| format!("GET {path}"))?;
        let list: List<Item> = serde_json::from_str(&text).context("a ConfigMap list")?;
        let mut nodes = Vec::new();
        for item in list.items {
            match item.data.get(STATUS_KEY).map(|t| serde_json::from_str::<NodeStatus>(t)) {
                Some(Ok(doc)) => nodes.push(doc),
                _ => {
                    eprintln!(
                        "warning: ConfigMap {namespace}/{} holds no status Palisade can read",
                        item.metadata.name
                    );
                }
            }
        }
        nodes.sort_by(|a, b| a.node.cmp(&b.node));
        anyhow::Ok(aggregate(&listed, nodes))
    })
}

/// The report in words.
#[must_use]
pub fn text(report: &StatusReport) -> String {
    let mut out = String::new();
    if report.nodes.is_empty() {
        out.push_str("no node has reported (is the agent running, with --kubernetes?)\n");
    }
    for p in &report.policies {
        let generation = p.generation.map_or_else(|| "?".to_string(), |g| g.to_string());
        let _ = write!(out, "{} {} (generation {generation}): ", p.kind, p.name);
        let mut parts = Vec::new();
        let nodes =
            |list: &[String]| if list.len() == 1 { "1 node".to_string() } else { format!("{} nodes", list.len()) };
        if !p.programmed.is_empty() {
            parts.push(format!("programmed on {} ({} pods)", nodes(&p.programmed), p.pods));
        }
        if !p.behind.is_empty() {
            parts.push(format!("an older generation on {}: {}", nodes(&p.behind), p.behind.join(", ")));
        }
        if !p.failed.is_empty() {
            parts.push(format!("FAILED on {}: {}", nodes(&p.failed), p.failed.join(", ")));
        }
        if !p.audit.is_empty() {
            parts.push(format!("audit (staged, not enforced) on {}", nodes(&p.audit)));
        }
        if parts.is_empty() {
            parts.push("selects no pod on a reporting node".into());
        }
        let _ = writeln!(out, "{}", parts.join("; "));
    }
    for n in &report.nodes {
        let _ = write!(
            out,
            "node {}: {} pods programmed, {} waiting, updated {}",
            n.node, n.pods_programmed, n.pods_waiting, n.updated
        );
        match &n.error {
            Some(e) => {
                let _ = writeln!(out, "; last sync FAILED: {e}");
            }
            None => out.push('\n'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_agent::kube::status::PolicyStatus;

    fn node(name: &str, policies: Vec<(&str, Option<i64>, &str)>) -> NodeStatus {
        NodeStatus {
            node: name.into(),
            policies: policies
                .into_iter()
                .map(|(n, generation, state)| PolicyStatus {
                    kind: "NetworkPolicy".into(),
                    name: n.into(),
                    generation,
                    state: state.into(),
                    since: String::new(),
                    pods: 1,
                })
                .collect(),
            ..NodeStatus::default()
        }
    }

    #[test]
    fn nodes_are_counted_per_policy_and_generation() {
        let listed = vec![
            ("NetworkPolicy".to_string(), "shop/db".to_string(), Some(2)),
            ("NetworkPolicy".to_string(), "shop/idle".to_string(), Some(1)),
        ];
        let nodes = vec![
            node("a", vec![("shop/db", Some(2), "programmed")]),
            node("b", vec![("shop/db", Some(1), "programmed")]),
            node("c", vec![("shop/db", Some(2), "failed")]),
        ];
        let report = aggregate(&listed, nodes);
        let db = &report.policies[0];
        assert_eq!(
            (db.programmed.clone(), db.behind.clone(), db.failed.clone()),
            (vec!["a".into()], vec!["b".into()], vec!["c".into()])
        );
        assert_eq!(db.pods, 3);
        let idle = &report.policies[1];
        assert!(idle.programmed.is_empty() && idle.behind.is_empty());
        let words = text(&report);
        assert!(words.contains("NetworkPolicy shop/db (generation 2): programmed on 1 node (3 pods); an older generation on 1 node: b; FAILED on 1 node: c"), "{words}");
        assert!(words.contains("shop/idle (generation 1): selects no pod on a reporting node"), "{words}");
    }
}
