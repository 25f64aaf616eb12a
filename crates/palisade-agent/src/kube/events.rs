//! Kubernetes Events on NetworkPolicies rejected as invalid, one per
//! distinct message (relists do not repeat them).

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
        let event = policy_event(&key.namespace, &key.name, &message, &self.host);
        let api: kube::Api<Event> = kube::Api::namespaced(self.client.clone(), &key.namespace);
        let object = key.to_string();
        tokio::spawn(async move {
            if let Err(e) = api.create(&kube::api::PostParams::default(), &event).await {
                warn!(policy = %object, error = %e, "cannot record the rejection as an Event");
            }
        });
    }
}

/// A Warning Event on a NetworkPolicy that was rejected, naming the fields.
#[must_use]
pub fn policy_event(namespace: &str, name: &str, message: &str, host: &str) -> Event {
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    Event {
        metadata: ObjectMeta {
            generate_name: Some(format!("{name}.")),
            namespace: Some(namespace.into()),
            ..ObjectMeta::default()
        },
        involved_object: ObjectReference {
            api_version: Some("networking.k8s.io/v1".into()),
            kind: Some("NetworkPolicy".into()),
            name: Some(name.into()),
            namespace: Some(namespace.into()),
            ..ObjectReference::default()
        },
        reason: Some("InvalidNetworkPolicy".into()),
        message: Some(format!("rejected by Palisade, not enforced as written: {message}")),
        type_: Some("Warning".into()),
        source: Some(EventSource { component: Some("palisade".into()), host: Some(host.into()) }),
        reporting_component: Some("palisade".into()),
        reporting_instance: Some(host.into()),
        first_timestamp: Some(now.clone()),
        last_timestamp: Some(now),
        count: Some(1),
        ..Event::default()
    }
}
