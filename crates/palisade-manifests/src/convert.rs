//! One object (a slice of JSON and its head) converted by its API group,
//! version and kind, into an [`Outcome`] that needs nothing else of the
//! load: objects convert independently, in parallel, and are then taken in
//! file order ([`crate::Loaded`] keeps the first of duplicates).

use k8s_openapi::api::{apps::v1 as apps, batch::v1 as batch, core::v1 as core, networking::v1 as net};
use palisade_policy::validation::{check_dns_label, check_dns_subdomain};
use palisade_policy::{ClusterPolicy, ClusterPolicyKind, Enforcement, Namespace, NetworkPolicy, Node, ObjectKey, Pod};
use serde::de::DeserializeOwned;

use crate::error::{FieldError, FieldErrors};
use crate::kinds::{Group, IgnoredPolicy, ignored_policy_kind};
use crate::pieces::Head;
use crate::{cluster_policy, lean, pod, policy};

/// What an object became.
#[derive(Debug)]
pub(crate) enum Kept {
    Namespace(Namespace),
    /// A pod and the `(kind, name)` of its owners.
    Pod(Pod, Vec<(String, String)>),
    Policy(NetworkPolicy),
    /// A workload's pod template, standing for its pods.
    Template(Pod),
    /// A ClusterNetworkPolicy, AdminNetworkPolicy or BaselineAdminNetworkPolicy.
    ClusterPolicy(ClusterPolicy),
    /// A Node.
    Node(Node),
}

/// The API group of ClusterNetworkPolicy and its v1alpha1 predecessors.
pub(crate) const POLICY_GROUP: &str = "policy.networking.k8s.io";

/// The cluster policy kind `kind` of `group` is, with the one version
/// Palisade reads it at.
fn cluster_policy_kind(group: &str, kind: &str) -> Option<(ClusterPolicyKind, &'static str)> {
    if group != POLICY_GROUP {
        return None;
    }
    match kind {
        "ClusterNetworkPolicy" => Some((ClusterPolicyKind::ClusterNetworkPolicy, "v1alpha2")),
        "AdminNetworkPolicy" => Some((ClusterPolicyKind::AdminNetworkPolicy, "v1alpha1")),
        "BaselineAdminNetworkPolicy" => Some((ClusterPolicyKind::BaselineAdminNetworkPolicy, "v1alpha1")),
        _ => None,
    }
}

/// An object converted (or not), with what was found on the way.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    /// `Kind namespace/name` of an object without a key (a workload); see
    /// [`Outcome::object`].
    pub object: String,
    /// Its key, for the kinds Palisade holds.
    pub key: Option<ObjectKey>,
    pub kept: Option<Kept>,
    /// Why it was rejected.
    pub errors: Vec<FieldError>,
    /// Fields the API does not define (paths), which a typo makes.
    pub unknown: Vec<String>,
    /// A kind Palisade does not read.
    pub skipped: Option<String>,
    /// That kind may create pods the input does not show (it holds a pod
    /// template, or is a known operator's workload).
    pub creates_pods: bool,
    /// Lint codes the object's `palisade.dev/lint-ignore` annotation names.
    pub lint_ignore: Vec<String>,
    /// A policy of a kind Palisade does not evaluate.
    pub ignored_policy: Option<IgnoredPolicy>,
}

impl Outcome {
    /// `Kind namespace/name`, for messages (written only when one needs it).
    pub(crate) fn object(&self) -> String {
        self.key.as_ref().map_or_else(|| self.object.clone(), ToString::to_string)
    }
}

/// Converts one object.
pub(crate) fn convert(raw: &str, head: &Head<'_>, default_namespace: &str) -> Outcome {
    let kind = head.kind();
    let name = head.name();
    let group = Group::of(head.api_version());
    let cluster_kind = cluster_policy_kind(group.name, kind);
    let node = kind == "Node" && group.name.is_empty();
    let namespaced = kind != "Namespace" && !node && cluster_kind.is_none();
    let namespace = if namespaced { head.namespace().unwrap_or(default_namespace) } else { "" };
    let mut out = Outcome::default();
    let core_kind = matches!(kind, "Namespace" | "Pod");
    let old = group.name == "extensions";
    let workload = matches!(kind, "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet")
        && (group.name == "apps" || old)
        || matches!(kind, "Job" | "CronJob") && group.name == "batch";
    let known = (core_kind && group.name.is_empty())
        || (kind == "NetworkPolicy" && (group.name == "networking.k8s.io" || old))
        || workload
        || node
        || cluster_kind.is_some();
    if !known {
        if ignored_policy_kind(group.name, kind) {
            out.ignored_policy = Some(IgnoredPolicy::new(group.name, kind, head.namespace(), name));
        } else {
            out.skipped = Some(kind.to_string());
            out.creates_pods = creates_pods(group.name, kind, raw);
        }
        return out;
    }
    let mut errors = FieldErrors::default();
    if name.is_empty() {
        errors.push("metadata.name", "required");
    } else if namespaced || node || cluster_kind.is_some() {
        errors.check(|| "metadata.name".into(), check_dns_subdomain(name));
    } else {
        errors.check(|| "metadata.name".into(), check_dns_label(name));
    }
    if namespaced {
        errors.check(|| "metadata.namespace".into(), check_dns_label(namespace));
    }
    out.key = match kind {
        "Namespace" => Some(ObjectKey::namespace(name)),
        "Pod" => Some(ObjectKey::pod(namespace, name)),
        "NetworkPolicy" => Some(ObjectKey::policy(namespace, name)),
        "Node" => Some(ObjectKey::node(name)),
        _ => cluster_kind.map(|(k, _)| ObjectKey::cluster_policy(k, name)),
    };
    if out.key.is_none() {
        out.object = format!("{kind} {namespace}/{name}");
    }
    out.errors = errors.0;
    if let Some(found) = cluster_kind {
        cluster_policy_at_version(raw, head, &mut out, found, name);
        return out;
    }
    // Every kind Palisade reads is at v1 (`extensions/v1beta1` and the
    // older versions of the others are refused, not skipped).
    if group.version != "v1" || group.name == "extensions" {
        let version = head.api_version();
        out.errors.push(FieldError::new("apiVersion", format!("{version:?} is not a supported version of {kind}")));
        return out;
    }
    let mut errors = FieldErrors::default();
    let kept = match kind {
        "Namespace" => fast(raw, &mut out, |ns: lean::Namespace| Ok(ns.into_api())).map(|ns| {
            let labels = pod::namespace_labels(ns, &mut errors);
            Kept::Namespace(Namespace { name: name.to_string(), labels })
        }),
        "Pod" => {
            let fast = lean::read::<lean::Pod>(raw).and_then(|p| p.into_parts().ok());
            fast.or_else(|| typed::<core::Pod>(raw, &mut out).map(pod::PodParts::of_api)).map(|mut p| {
                let owners = std::mem::take(&mut p.owners);
                Kept::Pod(pod::pod(p, namespace, name, &mut errors), owners)
            })
        }
        "NetworkPolicy" => network_policy(raw, &mut out, &mut errors, namespace, name),
        "Node" => typed::<core::Node>(raw, &mut out).map(|n| Kept::Node(cluster_policy::node(&n, name, &mut errors))),
        "Deployment" => template::<apps::Deployment>(raw, &mut out, &mut errors, (kind, name, namespace), |d| {
            d.spec.as_ref().map(|s| (&s.template, "spec.template"))
        }),
        "StatefulSet" => template::<apps::StatefulSet>(raw, &mut out, &mut errors, (kind, name, namespace), |d| {
            d.spec.as_ref().map(|s| (&s.template, "spec.template"))
        }),
        "DaemonSet" => template::<apps::DaemonSet>(raw, &mut out, &mut errors, (kind, name, namespace), |d| {
            d.spec.as_ref().map(|s| (&s.template, "spec.template"))
        }),
        "ReplicaSet" => template::<apps::ReplicaSet>(raw, &mut out, &mut errors, (kind, name, namespace), |d| {
            d.spec.as_ref().and_then(|s| s.template.as_ref()).map(|t| (t, "spec.template"))
        }),
        "Job" => template::<batch::Job>(raw, &mut out, &mut errors, (kind, name, namespace), |d| {
            d.spec.as_ref().map(|s| (&s.template, "spec.template"))
        }),
        _ => template::<batch::CronJob>(raw, &mut out, &mut errors, (kind, name, namespace), |d| {
            d.spec
                .as_ref()
                .and_then(|s| s.job_template.spec.as_ref())
                .map(|s| (&s.template, "spec.jobTemplate.spec.template"))
        }),
    };
    out.errors.extend(errors.0);
    if out.errors.is_empty() {
        out.kept = kept;
    }
    out
}

/// A NetworkPolicy, on the fast path or the precise one, with the lint
/// codes its annotation suppresses and its other Palisade annotations.
fn network_policy(raw: &str, out: &mut Outcome, errors: &mut FieldErrors, namespace: &str, name: &str) -> Option<Kept> {
    let fast =
        lean::read::<lean::NetworkPolicy>(raw).and_then(|mut p| p.take_spec().ok().map(|s| (s, p.annotations())));
    let (spec, annotations) = fast.or_else(|| {
        typed::<net::NetworkPolicy>(raw, out).map(|p| {
            let annotations = p.metadata.annotations.as_ref().map(lean::Annotations::of).unwrap_or_default();
            (p.spec, annotations)
        })
    })?;
    out.lint_ignore = lint_codes(annotations.lint_ignore.clone());
    let mut policy = policy::convert(spec.as_ref(), namespace, name, errors);
    policy_annotations(&mut policy, &annotations, errors);
    Some(Kept::Policy(policy))
}

/// Reads `palisade.dev/enforcement` and `palisade.dev/log` into `policy`.
fn policy_annotations(policy: &mut NetworkPolicy, annotations: &lean::Annotations, errors: &mut FieldErrors) {
    let field = |key: &str| format!("metadata.annotations[{key:?}]");
    match annotations.enforcement.as_deref().map(str::trim) {
        None | Some("enforce") => {}
        Some("audit") => policy.enforcement = Enforcement::Audit,
        Some(other) => errors.push(
            field(lean::ENFORCEMENT),
            format!("unsupported value {other:?}: supported values are \"enforce\", \"audit\""),
        ),
    }
    match annotations.log.as_deref().map(str::trim) {
        None | Some("" | "none") => {}
        Some("allowed") => policy.log_allowed = true,
        Some(other) => errors
            .push(field(lean::LOG), format!("unsupported value {other:?}: supported values are \"allowed\", \"none\"")),
    }
}

/// A cluster policy, if its `apiVersion` is the one Palisade reads its kind at.
fn cluster_policy_at_version(
    raw: &str,
    head: &Head<'_>,
    out: &mut Outcome,
    (kind, version): (ClusterPolicyKind, &str),
    name: &str,
) {
    if Group::of(head.api_version()).version == version {
        let kept = cluster_policy(raw, out, kind, name);
        if out.errors.is_empty() {
            out.kept = kept;
        }
    } else {
        let api_version = head.api_version();
        out.errors.push(FieldError::new(
            "apiVersion",
            format!("{api_version:?} is not a supported version of {kind} (Palisade reads {POLICY_GROUP}/{version})"),
        ));
    }
}

/// A cluster policy of any of the three kinds, with the lint codes its
/// annotation suppresses.
fn cluster_policy(raw: &str, out: &mut Outcome, kind: ClusterPolicyKind, name: &str) -> Option<Kept> {
    let mut errors = FieldErrors::default();
    let (policy, metadata) = if kind == ClusterPolicyKind::ClusterNetworkPolicy {
        let object = typed::<cluster_policy::Object<cluster_policy::CnpSpec>>(raw, out)?;
        (cluster_policy::cluster_network_policy(object.spec.as_ref(), name, &mut errors), object.metadata)
    } else {
        let object = typed::<cluster_policy::Object<cluster_policy::AnpSpec>>(raw, out)?;
        let baseline = kind == ClusterPolicyKind::BaselineAdminNetworkPolicy;
        (cluster_policy::admin_network_policy(object.spec.as_ref(), name, baseline, &mut errors), object.metadata)
    };
    let ignore = metadata.and_then(|m| m.annotations).and_then(|mut a| a.remove(lean::LINT_IGNORE));
    out.lint_ignore = lint_codes(ignore);
    out.errors.extend(errors.0);
    Some(Kept::ClusterPolicy(policy))
}

fn lint_codes(annotation: Option<String>) -> Vec<String> {
    annotation
        .map(|codes| codes.split(',').map(|c| c.trim().to_string()).filter(|c| !c.is_empty()).collect())
        .unwrap_or_default()
}

/// Kinds of operators that create pods without a `containers` list of
/// their own in the object.
const POD_CREATING_KINDS: &[(&str, &str)] =
    &[("kubevirt.io", "VirtualMachine"), ("kubevirt.io", "VirtualMachineInstance")];

/// Whether an object of another kind may create pods: it holds a pod
/// template (`containers` anywhere in it), or is a known operator's kind.
fn creates_pods(group: &str, kind: &str, raw: &str) -> bool {
    POD_CREATING_KINDS.contains(&(group, kind)) || raw.contains("\"containers\"")
}

/// Reads `raw` on the fast path ([`lean`]), or, when that cannot (a field
/// the API does not define, a field that does not parse), on the precise
/// one, which records why.
fn fast<'a, L: serde::Deserialize<'a>, T: DeserializeOwned>(
    raw: &'a str,
    out: &mut Outcome,
    into_api: impl FnOnce(L) -> Result<T, lean::Missing>,
) -> Option<T> {
    lean::read::<L>(raw).and_then(|l| into_api(l).ok()).or_else(|| typed::<T>(raw, out))
}

/// Deserializes `raw` into a k8s-openapi type straight from the text (no
/// tree in between); a type error is recorded with its field path, and so
/// is every field the type does not define.
fn typed<T: DeserializeOwned>(raw: &str, out: &mut Outcome) -> Option<T> {
    let mut de = serde_json::Deserializer::from_str(raw);
    let unknown = &mut out.unknown;
    let mut report = |path: serde_ignored::Path<'_>| unknown.push(field_path(&path));
    let ignoring = serde_ignored::Deserializer::new(&mut de, &mut report);
    match serde_path_to_error::deserialize::<_, T>(ignoring) {
        Ok(v) => Some(v),
        Err(e) => {
            let path = e.path().to_string();
            let message = e.into_inner().to_string();
            let message = crate::documents::without_location(&message);
            out.errors.push(FieldError::new(if path == "." { "(root)".into() } else { path }, message));
            None
        }
    }
}

/// `spec.ingress[0].from[1].matchLabel` from serde_ignored's path.
fn field_path(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", field_path(parent)),
        Path::Map { parent, key } => {
            let parent = field_path(parent);
            if parent.is_empty() { key.clone() } else { format!("{parent}.{key}") }
        }
        Path::Some { parent } | Path::NewtypeStruct { parent } | Path::NewtypeVariant { parent } => field_path(parent),
    }
}

/// A workload's pod template as a planned pod that stands for its pods.
fn template<T: DeserializeOwned>(
    raw: &str,
    out: &mut Outcome,
    errors: &mut FieldErrors,
    (kind, name, namespace): (&str, &str, &str),
    find: impl Fn(&T) -> Option<(&core::PodTemplateSpec, &'static str)>,
) -> Option<Kept> {
    let object = typed::<T>(raw, out)?;
    let Some((spec, field)) = find(&object) else {
        errors.push("spec", "required: a workload needs a pod template");
        return None;
    };
    Some(Kept::Template(pod::template(spec, field, namespace, (kind, name), errors)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_field_paths_read_like_the_api_servers() {
        let raw = r#"{"apiVersion":"networking.k8s.io/v1","kind":"NetworkPolicy","metadata":{"name":"p","namespace":"n","labelz":{}},
            "spec":{"podSelector":{"matchLabel":{"a":"b"}},"ingress":[{"from":[{"podSelector":{},"ports":[{"port":80}]}]}]}}"#;
        let head: Head = serde_json::from_str(raw).expect("head");
        let out = convert(raw, &head, "default");
        assert_eq!(out.unknown, ["metadata.labelz", "spec.podSelector.matchLabel", "spec.ingress[0].from[0].ports"]);
        assert!(out.errors.is_empty(), "{:?}", out.errors);
        assert!(matches!(out.kept, Some(Kept::Policy(_))));
    }
}
