//! Kubernetes Events on policies (NetworkPolicies and cluster policies)
//! rejected as invalid, one per distinct message (relists do not repeat
//! them). Events about a cluster-scoped policy go to the `default`
//! namespace, as Kubernetes does for cluster-scoped objects.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::Client;
use palisade_manifests::LoadError;
use palisade_policy::ObjectKey;
use tracing::warn;

/// Records a Warning Event per rejected policy and message.
pub(super) struct EventReporter {
    client: Client,
    host: String,
    reported: BTreeMap<ObjectKey, String>,
}

impl EventReporter {
    pub(super) fn new(client: Client, host: &str) -> Self {
        EventReporter { client, host: host.to_string(), reported: BTreeMap::new() }
    }

    pub(super) fn forget_unless(&mut self, still_rejected: impl Fn(&ObjectKey) -> bool) {
        self.reported.retain(|key, _| still_rejected(key));
    }

    pub(super) fn rejected_policy(&mut self, key: &ObjectKey, errors: &[LoadError]) {
        let message = errors
            .iter()
            .map(|e| match e {
                LoadError::Invalid { field, message, .. } => format!("{field}: {message}"),
                other => other.to_string(),
            })
            .collect::<Vec<_>>()
            .join("; ");
        if self.reported.get(key) == Some(&message) {
            return;
        }
        self.reported.insert(key.clone(), message.clone());
        let event = policy_event(key, &message, &self.host);
        let namespace = event.metadata.namespace.clone().unwrap_or_else(|| "default".into());
        let api: kube::Api<Event> = kube::Api::namespaced(self.client.clone(), &namespace);
        let object = key.to_string();
        tokio::spawn(async move {
            if let Err(e) = api.create(&kube::api::PostParams::default(), &event).await {
                warn!(policy = %object, error = %e, "cannot record the rejection as an Event");
            }
        });
    }
}

/// A Warning Event on a policy that was rejected, naming the fields (in
/// `default` for a cluster-scoped policy).
#[must_use]
pub fn policy_event(key: &ObjectKey, message: &str, host: &str) -> Event {
    let kind = super::gvk(key.kind).2;
    event(
        key,
        ("Warning", &format!("Invalid{kind}")),
        &format!("rejected by Palisade, not enforced as written: {message}"),
        host,
    )
}

/// An Event of `(type, reason)` on a policy, from `host` (in `default` for
/// a cluster-scoped policy, as Kubernetes does).
#[must_use]
pub fn event(key: &ObjectKey, (type_, reason): (&str, &str), message: &str, host: &str) -> Event {
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let (group, version, kind) = super::gvk(key.kind);
    let api_version = if group.is_empty() { version.to_string() } else { format!("{group}/{version}") };
    let namespaced = key.kind.namespaced();
    let event_namespace = if namespaced { key.namespace.as_str() } else { "default" };
    Event {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}.", key.name)),
            namespace: Some(event_namespace.into()),
            ..ObjectMeta::default()
        },
        involved_object: ObjectReference {
            api_version: Some(api_version),
            kind: Some(kind.into()),
            name: Some(key.name.clone()),
            namespace: namespaced.then(|| key.namespace.clone()),
            ..ObjectReference::default()
        },
        reason: Some(reason.into()),
        message: Some(message.into()),
        type_: Some(type_.into()),
        source: Some(EventSource { component: Some("palisade".into()), host: Some(host.into()) }),
        reporting_component: Some("palisade".into()),
        reporting_instance: Some(host.into()),
        first_timestamp: Some(now.clone()),
        last_timestamp: Some(now),
        count: Some(1),
        ..Event::default()
    }
}
