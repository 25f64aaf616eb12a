//! The cluster read through the Kubernetes API, when a command is given no
//! `-f`: Namespaces, Pods and NetworkPolicies listed page by page (the
//! kubeconfig's current context, `--context`, or the in-cluster service
//! account); ClusterNetworkPolicies, AdminNetworkPolicies,
//! BaselineAdminNetworkPolicies and Nodes when the API serves the
//! `policy.networking.k8s.io` kinds; and the policies of other projects'
//! kinds that the API serves. Each page is loaded by the same loader and validation as a
//! file, named `api <path>` in messages.

use std::fmt::Write as _;

use anyhow::Context as _;
use kube::config::KubeConfigOptions;
use palisade_manifests::{IGNORED_POLICY_KINDS, LoadOptions, Loaded, load_texts};
use serde::Deserialize;

/// Objects per page.
const PAGE: usize = 500;
/// Pages per resource at most (5 million objects).
const MAX_PAGES: usize = 10_000;

/// The kinds every analysis reads.
const RESOURCES: [&str; 3] = ["/api/v1/namespaces", "/api/v1/pods", "/apis/networking.k8s.io/v1/networkpolicies"];

/// Reads the cluster of `context` (or the default) through its API.
///
/// # Errors
/// No kubeconfig or service account, an unreachable API server, or a list
/// the server refuses.
pub fn read(context: Option<&str>, options: &LoadOptions) -> anyhow::Result<Loaded> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let pages = runtime.block_on(async {
        let client = client(context).await?;
        let mut pages = Vec::new();
        for path in RESOURCES {
            list(&client, path, &mut pages).await?;
        }
        for path in cluster_policy_kinds(&client).await {
            list(&client, &path, &mut pages).await?;
        }
        for path in other_policy_kinds(&client).await {
            list(&client, &path, &mut pages).await?;
        }
        anyhow::Ok(pages)
    })?;
    let texts: Vec<(&str, &str)> = pages.iter().map(|(n, t)| (n.as_str(), t.as_str())).collect();
    Ok(load_texts(&texts, options))
}

/// A client for `context` (or the kubeconfig's current one, or the
/// in-cluster service account).
///
/// # Errors
/// No such context, no kubeconfig or in-cluster configuration.
pub async fn client(context: Option<&str>) -> anyhow::Result<kube::Client> {
    let config = match context {
        Some(context) => {
            let options = KubeConfigOptions { context: Some(context.to_string()), ..KubeConfigOptions::default() };
            kube::Config::from_kubeconfig(&options).await.with_context(|| format!("kubeconfig context {context}"))?
        }
        None => kube::Config::infer().await.context("no -f given, and no kubeconfig or in-cluster config")?,
    };
    kube::Client::try_from(config).context("Kubernetes client")
}

/// The `metadata.continue` of a list page.
#[derive(Deserialize)]
struct ListMeta {
    #[serde(default)]
    metadata: Continue,
}

#[derive(Default, Deserialize)]
struct Continue {
    #[serde(default, rename = "continue")]
    token: Option<String>,
}

/// Appends every page of the list at `path` to `pages`.
pub(crate) async fn list(client: &kube::Client, path: &str, pages: &mut Vec<(String, String)>) -> anyhow::Result<()> {
    let mut token = String::new();
    for _ in 0..MAX_PAGES {
        let mut uri = format!("{path}?limit={PAGE}");
        if !token.is_empty() {
            let _ = write!(uri, "&continue={}", percent_encoded(&token));
        }
        let request = http::Request::get(&uri).body(Vec::new()).context("request")?;
        let text = client.request_text(request).await.with_context(|| format!("GET {uri}"))?;
        let next = serde_json::from_str::<ListMeta>(&text).ok().and_then(|l| l.metadata.token).unwrap_or_default();
        pages.push((format!("api {path}"), text));
        if next.is_empty() {
            return Ok(());
        }
        token = next;
    }
    anyhow::bail!("{path}: more than {MAX_PAGES} pages")
}

/// The list paths of the `policy.networking.k8s.io` kinds this API server
/// serves (ClusterNetworkPolicy, AdminNetworkPolicy,
/// BaselineAdminNetworkPolicy), and of Nodes when it serves any. When the
/// server cannot say, stderr says so: policies of those kinds may then be
/// missing from the answer.
async fn cluster_policy_kinds(client: &kube::Client) -> Vec<String> {
    let Some(kinds) = palisade_agent::kube::served_policy_kinds(client).await else {
        eprintln!(
            "warning: cannot tell whether the cluster serves ClusterNetworkPolicy, AdminNetworkPolicy or \
             BaselineAdminNetworkPolicy; they are not read"
        );
        return Vec::new();
    };
    kinds.into_iter().map(palisade_agent::kube::list_path).collect()
}

/// The list paths of the policy kinds of other projects that this API
/// server serves (AdminNetworkPolicy, Calico's, Cilium's, ...), found by
/// API discovery of their groups only. A discovery that fails is said on
/// stderr: the answer then cannot tell whether such policies exist.
async fn other_policy_kinds(client: &kube::Client) -> Vec<String> {
    let groups: Vec<&str> = IGNORED_POLICY_KINDS.iter().map(|(g, _)| *g).collect();
    let discovery = kube::Discovery::new(client.clone()).filter(&groups);
    let discovery = match discovery.run().await {
        Ok(d) => d,
        Err(e) => {
            eprintln!(
                "warning: API discovery failed ({e}); policies of kinds Palisade does not evaluate \
                 (AdminNetworkPolicy, Calico, Cilium, ...) could not be looked for"
            );
            return Vec::new();
        }
    };
    let mut paths = Vec::new();
    for group in discovery.groups() {
        let Some((_, kinds)) = IGNORED_POLICY_KINDS.iter().find(|(g, _)| *g == group.name()) else { continue };
        for (resource, _) in group.recommended_resources() {
            if kinds.contains(&resource.kind.as_str()) {
                paths.push(format!("/apis/{}/{}/{}", resource.group, resource.version, resource.plural));
            }
        }
    }
    paths
}

/// `s` with every byte but unreserved ones percent-encoded (a continue
/// token is opaque and may hold `=`, `+` and `/`).
fn percent_encoded(s: &str) -> String {
    s.bytes().fold(String::new(), |mut out, b| {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
        out
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn continue_tokens_are_encoded() {
        assert_eq!(super::percent_encoded("eyJ2/a+b=="), "eyJ2%2Fa%2Bb%3D%3D");
    }
}
