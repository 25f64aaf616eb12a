//! `deploy/` renders, and every rendered object parses into its k8s-openapi
//! type with no unknown field (a typo cannot ship); the DaemonSet and RBAC
//! grant what the issue allows and nothing more.
//!
//! Rendering uses `kubectl kustomize deploy/` when kubectl is installed;
//! otherwise the kustomization's `resources` are read in order (the
//! kustomization has no patches, so both give the same objects).

use std::path::{Path, PathBuf};
use std::process::Command;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use serde::de::DeserializeOwned;
use serde_json::Value;

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

fn rendered() -> String {
    let dir = deploy_dir();
    if let Ok(out) = Command::new("kubectl").arg("kustomize").arg(&dir).output() {
        assert!(out.status.success(), "kubectl kustomize deploy/ failed: {}", String::from_utf8_lossy(&out.stderr));
        return String::from_utf8(out.stdout).expect("utf-8");
    }
    let kustomization: Value =
        serde_norway::from_str(&std::fs::read_to_string(dir.join("kustomization.yaml")).expect("kustomization"))
            .expect("kustomization YAML");
    kustomization["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .map(|r| std::fs::read_to_string(dir.join(r.as_str().expect("path"))).expect("resource file"))
        .collect::<Vec<_>>()
        .join("\n---\n")
}

/// Parses one document as `T`, failing on any field `T` does not know.
fn strict<T: DeserializeOwned>(doc: &Value, what: &str) -> T {
    let mut unknown = Vec::new();
    let parsed: T = serde_ignored::deserialize(doc.clone(), |path| unknown.push(path.to_string()))
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(unknown.is_empty(), "{what}: unknown fields {unknown:?}");
    parsed
}

/// What `kubectl kustomize deploy/` renders, in order.
const KINDS: [&str; 7] =
    ["Namespace", "ServiceAccount", "Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding", "DaemonSet"];

#[test]
fn deploy_renders_into_known_types_only() {
    let text = rendered();
    let docs: Vec<Value> = serde_norway::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).expect("YAML document"))
        .filter(|v: &Value| !v.is_null())
        .collect();
    let mut kinds = Vec::new();
    let mut daemonset = None;
    let mut role = None;
    let mut status_role = None;
    for doc in &docs {
        let kind = doc["kind"].as_str().expect("kind").to_string();
        let what = format!("{kind} {}", doc["metadata"]["name"].as_str().unwrap_or("?"));
        match kind.as_str() {
            "Namespace" => drop(strict::<Namespace>(doc, &what)),
            "ServiceAccount" => drop(strict::<ServiceAccount>(doc, &what)),
            "ClusterRole" => role = Some(strict::<ClusterRole>(doc, &what)),
            "ClusterRoleBinding" => drop(strict::<ClusterRoleBinding>(doc, &what)),
            "Role" => status_role = Some(strict::<Role>(doc, &what)),
            "RoleBinding" => drop(strict::<RoleBinding>(doc, &what)),
            "DaemonSet" => daemonset = Some(strict::<DaemonSet>(doc, &what)),
            other => panic!("unexpected kind {other} in deploy/"),
        }
        kinds.push(kind);
    }
    assert_eq!(kinds, KINDS);
    status_role_grants_configmaps_only(status_role.expect("Role"));
    let role = role.expect("ClusterRole");
    let mut grants: Vec<String> = Vec::new();
    for rule in role.rules.iter().flatten() {
        for group in rule.api_groups.iter().flatten() {
            for resource in rule.resources.iter().flatten() {
                for verb in &rule.verbs {
                    grants.push(format!("{group}/{resource}:{verb}"));
                }
            }
        }
    }
    grants.sort();
    assert_eq!(
        grants,
        [
            "/events:create",
            "/events:patch",
            "/namespaces:get",
            "/namespaces:list",
            "/namespaces:watch",
            "/nodes:get",
            "/nodes:list",
            "/nodes:watch",
            "/pods:get",
            "/pods:list",
            "/pods:watch",
            "networking.k8s.io/networkpolicies:get",
            "networking.k8s.io/networkpolicies:list",
            "networking.k8s.io/networkpolicies:watch",
            "policy.networking.k8s.io/adminnetworkpolicies:get",
            "policy.networking.k8s.io/adminnetworkpolicies:list",
            "policy.networking.k8s.io/adminnetworkpolicies:watch",
            "policy.networking.k8s.io/baselineadminnetworkpolicies:get",
            "policy.networking.k8s.io/baselineadminnetworkpolicies:list",
            "policy.networking.k8s.io/baselineadminnetworkpolicies:watch",
            "policy.networking.k8s.io/clusternetworkpolicies:get",
            "policy.networking.k8s.io/clusternetworkpolicies:list",
            "policy.networking.k8s.io/clusternetworkpolicies:watch",
        ],
        "RBAC grants exactly what the agent needs"
    );

    let ds = daemonset.expect("DaemonSet");
    let pod = ds.spec.expect("spec").template.spec.expect("pod spec");
    assert_eq!(pod.host_network, Some(true));
    assert!(pod.tolerations.iter().flatten().any(|t| t.operator.as_deref() == Some("Exists") && t.key.is_none()));
    let agent = &pod.containers[0];
    let security = agent.security_context.as_ref().expect("securityContext");
    assert_eq!(security.privileged, Some(false));
    assert_eq!(security.allow_privilege_escalation, Some(false));
    assert_eq!(security.read_only_root_filesystem, Some(true));
    let caps = security.capabilities.as_ref().expect("capabilities");
    assert_eq!(caps.add.as_deref(), Some(&["NET_ADMIN".to_string(), "NET_RAW".to_string()][..]));
    assert_eq!(caps.drop.as_deref(), Some(&["ALL".to_string()][..]));
    let resources = agent.resources.as_ref().expect("resources");
    assert!(resources.requests.is_some() && resources.limits.is_some());
    assert!(
        agent
            .liveness_probe
            .as_ref()
            .and_then(|p| p.http_get.as_ref())
            .is_some_and(|h| h.path.as_deref() == Some("/healthz"))
    );
    assert!(
        agent
            .readiness_probe
            .as_ref()
            .and_then(|p| p.http_get.as_ref())
            .is_some_and(|h| h.path.as_deref() == Some("/readyz"))
    );
    assert!(agent.args.iter().flatten().any(|a| a == "--kubernetes"));
    assert!(agent.env.iter().flatten().any(|e| e.name == "NODE_NAME" && e.value_from.is_some()));
    assert!(agent.env.iter().flatten().any(|e| e.name == "POD_NAMESPACE" && e.value_from.is_some()));
}

/// The status ConfigMaps: created and patched in the agent's namespace only.
fn status_role_grants_configmaps_only(role: Role) {
    assert_eq!(role.metadata.namespace.as_deref(), Some("palisade-system"));
    let rules = role.rules.expect("rules");
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0].resources.as_deref(), Some(&["configmaps".to_string()][..]));
    assert_eq!(rules[0].verbs, ["create", "patch"]);
}

#[test]
fn a_typo_is_caught() {
    let doc: Value = serde_norway::from_str(
        "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: x}\nspec:\n  selector: {}\n  template:\n    spec:\n      hostNetwrok: true\n      containers: []\n",
    )
    .expect("YAML");
    let result = std::panic::catch_unwind(|| strict::<DaemonSet>(&doc, "typo"));
    assert!(result.is_err(), "hostNetwrok must be reported as unknown");
}
