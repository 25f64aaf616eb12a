//! The Kubernetes API as a source: one kube-rs watcher per kind
//! (Namespaces, Pods, NetworkPolicies, all namespaces; and, when the cluster
//! serves the `policy.networking.k8s.io` API, its ClusterNetworkPolicies,
//! AdminNetworkPolicies and BaselineAdminNetworkPolicies, and Nodes)
//! feeding the driver.
//!
//! ```text
//! watcher(Namespace) \
//! watcher(Pod)        >-- converted events --> KubeState --Batch--> driver
//! watcher(Policy)    /      (relists buffered)     \--> Warning Events on rejected policies
//! ```
//!
//! Objects are read untyped and converted at the edge by the manifests
//! loader's own checks, so one malformed object is logged with its name and
//! skipped instead of failing the whole list; only the fields policy needs
//! survive conversion (the API object is dropped at once).

mod events;
pub mod state;
pub mod status;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::time::Duration;

use futures::{Stream, StreamExt as _};
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::{WatchStreamExt as _, watcher};
use palisade_manifests::{ApiObject, LoadError, convert_api_object};
use palisade_policy::{ObjectKey, ObjectKind};
use tokio::sync::mpsc;
use tracing::warn;

use events::EventReporter;
pub use events::event;
pub use events::policy_event;
use state::{KINDS, KubeState, WatchEvent};

use crate::Source;
use crate::driver::{Batch, Message};
use crate::realization::Board;
use status::Generations;

/// `(group, version, kind)` of a watched kind.
#[must_use]
pub fn gvk(kind: ObjectKind) -> (&'static str, &'static str, &'static str) {
    match kind {
        ObjectKind::Namespace => ("", "v1", "Namespace"),
        ObjectKind::Pod => ("", "v1", "Pod"),
        ObjectKind::NetworkPolicy => ("networking.k8s.io", "v1", "NetworkPolicy"),
        ObjectKind::ClusterNetworkPolicy => ("policy.networking.k8s.io", "v1alpha2", "ClusterNetworkPolicy"),
        ObjectKind::AdminNetworkPolicy => ("policy.networking.k8s.io", "v1alpha1", "AdminNetworkPolicy"),
        ObjectKind::BaselineAdminNetworkPolicy => {
            ("policy.networking.k8s.io", "v1alpha1", "BaselineAdminNetworkPolicy")
        }
        ObjectKind::Node => ("", "v1", "Node"),
    }
}

/// The path that lists every object of `kind` (all namespaces).
#[must_use]
pub fn list_path(kind: ObjectKind) -> String {
    let plural = match kind {
        ObjectKind::Namespace => "namespaces",
        ObjectKind::Pod => "pods",
        ObjectKind::NetworkPolicy => "networkpolicies",
        ObjectKind::ClusterNetworkPolicy => "clusternetworkpolicies",
        ObjectKind::AdminNetworkPolicy => "adminnetworkpolicies",
        ObjectKind::BaselineAdminNetworkPolicy => "baselineadminnetworkpolicies",
        ObjectKind::Node => "nodes",
    };
    match gvk(kind) {
        ("", version, _) => format!("/api/{version}/{plural}"),
        (group, version, _) => format!("/apis/{group}/{version}/{plural}"),
    }
}

fn api_version(kind: ObjectKind) -> String {
    match gvk(kind) {
        ("", v, _) => v.to_string(),
        (g, v, _) => format!("{g}/{v}"),
    }
}

fn key_of(kind: ObjectKind, obj: &DynamicObject) -> ObjectKey {
    let name = obj.metadata.name.as_deref().unwrap_or_default();
    ObjectKey::new(kind, obj.metadata.namespace.as_deref().unwrap_or_default(), name)
}

/// Converts a watched object; items of a list carry no `kind`/`apiVersion`,
/// so they are set from the watcher's kind.
pub fn convert(kind: ObjectKind, obj: &DynamicObject) -> (ObjectKey, Result<ApiObject, Vec<LoadError>>) {
    let key = key_of(kind, obj);
    let mut value = match serde_json::to_value(obj) {
        Ok(v) => v,
        Err(e) => {
            let error = LoadError::Read { file: "api".into(), message: format!("{key}: {e}") };
            return (key, Err(vec![error]));
        }
    };
    if let Some(map) = value.as_object_mut() {
        map.insert("kind".into(), kind.as_str().into());
        map.insert("apiVersion".into(), api_version(kind).into());
    }
    (key, convert_api_object("api", &value))
}

/// The watcher of one kind, as a stream of converted events; connection
/// errors are logged and the watcher retries with backoff.
pub fn watch(client: Client, kind: ObjectKind, generations: Generations) -> impl Stream<Item = WatchEvent> + Send {
    let (group, version, k) = gvk(kind);
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, k));
    let api: Api<DynamicObject> = Api::all_with(client, &resource);
    let policy = !matches!(kind, ObjectKind::Namespace | ObjectKind::Pod | ObjectKind::Node);
    watcher(api, watcher::Config::default()).default_backoff().filter_map(move |event| {
        // Policies' generations, for the realization status.
        if policy {
            let mut known = generations.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            match &event {
                Ok(watcher::Event::InitApply(obj) | watcher::Event::Apply(obj)) => {
                    if let Some(g) = obj.metadata.generation {
                        known.insert(key_of(kind, obj), g);
                    }
                }
                Ok(watcher::Event::Delete(obj)) => {
                    known.remove(&key_of(kind, obj));
                }
                _ => {}
            }
        }
        async move {
            match event {
                Ok(watcher::Event::Init) => Some(WatchEvent::InitStart(kind)),
                Ok(watcher::Event::InitDone) => Some(WatchEvent::InitDone(kind)),
                Ok(watcher::Event::InitApply(obj)) => {
                    let (key, converted) = convert(kind, &obj);
                    Some(WatchEvent::InitApply(key, converted))
                }
                Ok(watcher::Event::Apply(obj)) => {
                    let (key, converted) = convert(kind, &obj);
                    Some(WatchEvent::Apply(key, converted))
                }
                Ok(watcher::Event::Delete(obj)) => Some(WatchEvent::Delete(key_of(kind, &obj))),
                Err(e) => {
                    warn!(kind = kind.as_str(), error = %e, "watch failed; retrying with backoff");
                    None
                }
            }
        }
    })
}

/// How often the source looks again for the cluster policy API.
const REDISCOVER: Duration = Duration::from_secs(60);

/// The cluster policy kinds the cluster serves (their CRDs installed), and
/// Node when it serves any: `nodes` peers select Nodes, and watching them
/// from the start means a Deny to nodes never starts out matching none.
/// `None` when the API server could not say (an error other than 404).
pub async fn served_policy_kinds(client: &Client) -> Option<Vec<ObjectKind>> {
    let mut kinds = Vec::new();
    let mut known = true;
    for kind in state::POLICY_API_KINDS {
        let (group, version, name) = gvk(kind);
        match client.list_api_group_resources(&format!("{group}/{version}")).await {
            Ok(list) => {
                if list.resources.iter().any(|r| r.kind == name) {
                    kinds.push(kind);
                }
            }
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => {
                warn!(kind = name, error = %e, "cannot tell whether the cluster serves this kind; asking again later");
                known = false;
            }
        }
    }
    if !kinds.is_empty() {
        kinds.push(ObjectKind::Node);
    }
    (known || !kinds.is_empty()).then_some(kinds)
}

/// Watch events waiting in the channel are handled together (one batch).
const CHANNEL: usize = 4096;
/// How often a quiet source looks at its stop flag.
const STOP_CHECK: Duration = Duration::from_millis(200);

/// The Kubernetes API source: watchers on `runtime`, Warning Events on
/// NetworkPolicies it rejects (reported as coming from `host`).
pub struct KubeApi {
    client: Client,
    runtime: tokio::runtime::Handle,
    host: String,
    /// Realization status to write (with the agent's namespace).
    status: Option<(Arc<Board>, String)>,
}

impl std::fmt::Debug for KubeApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeApi").field("host", &self.host).finish_non_exhaustive()
    }
}

impl KubeApi {
    /// A source over `client`'s cluster, its tasks on `runtime`.
    #[must_use]
    pub fn new(client: Client, runtime: tokio::runtime::Handle, host: &str) -> Self {
        KubeApi { client, runtime, host: host.to_string(), status: None }
    }

    /// Also writes the realizations `board` receives to a status ConfigMap
    /// in `namespace` and as Events on the policies.
    #[must_use]
    pub fn with_status(mut self, board: Arc<Board>, namespace: &str) -> Self {
        self.status = Some((board, namespace.to_string()));
        self
    }
}

impl Source for KubeApi {
    fn run(self: Box<Self>, driver: Sender<Message>, stop: Arc<AtomicBool>) {
        let KubeApi { client, runtime, host, status } = *self;
        runtime.clone().block_on(async move {
            let (tx, mut rx) = mpsc::channel::<WatchEvent>(CHANNEL);
            let generations = Generations::default();
            let reporter_task = status.map(|(board, namespace)| {
                runtime.spawn(status::report(client.clone(), board, host.clone(), namespace, generations.clone()))
            });
            let mut kinds: Vec<ObjectKind> = KINDS.to_vec();
            kinds.extend(served_policy_kinds(&client).await.unwrap_or_default());
            let spawn = |kind: ObjectKind| {
                let (tx, client, generations) = (tx.clone(), client.clone(), generations.clone());
                runtime.spawn(async move {
                    let mut events = std::pin::pin!(watch(client, kind, generations));
                    while let Some(event) = events.next().await {
                        if tx.send(event).await.is_err() {
                            return;
                        }
                    }
                })
            };
            let mut watchers: Vec<_> = kinds.iter().map(|kind| spawn(*kind)).collect();
            let mut state = KubeState::watching(&kinds);
            let mut reporter = EventReporter::new(client.clone(), &host);
            let mut tick = tokio::time::interval(STOP_CHECK);
            let mut rediscover = tokio::time::interval(REDISCOVER);
            rediscover.tick().await;
            while !stop.load(Ordering::Relaxed) {
                let first = tokio::select! {
                    event = rx.recv() => event,
                    _ = tick.tick() => continue,
                    _ = rediscover.tick() => {
                        // A cluster policy API installed since the start is
                        // watched from now on (its kinds do not hold back
                        // readiness: their first list arrives as changes).
                        for kind in served_policy_kinds(&client).await.unwrap_or_default() {
                            if !kinds.contains(&kind) {
                                tracing::info!(kind = kind.as_str(), "the cluster now serves this kind: watching it");
                                kinds.push(kind);
                                watchers.push(spawn(kind));
                            }
                        }
                        continue;
                    }
                };
                let Some(first) = first else { break };
                let mut batch = Batch::default();
                let mut next = Some(first);
                // Everything already waiting joins this batch.
                while let Some(event) = next {
                    let handled = state.handle(event);
                    batch.changes.extend(handled.changes);
                    for (key, errors) in handled.rejected {
                        if !matches!(key.kind, ObjectKind::Namespace | ObjectKind::Pod | ObjectKind::Node) {
                            reporter.rejected_policy(&key, &errors);
                        }
                    }
                    next = rx.try_recv().ok();
                }
                // A policy fixed since its Event gets a new one if it breaks again.
                reporter.forget_unless(|key| state.rejected.contains_key(key));
                batch.synced = state.ready();
                batch.problems = Some(state.problems());
                if driver.send(Message::Batch(batch)).is_err() {
                    break;
                }
            }
            for w in watchers.into_iter().chain(reporter_task) {
                w.abort();
            }
        });
    }
}
