//! `palisade agent --kubernetes`: watchers → index → reconcile, with
//! health and metrics.
//!
//! ```text
//! watcher(Namespace) \
//! watcher(Pod)        >-- converted events --> KubeState --> ClusterIndex --sync--> kernel
//! watcher(Policy)    /      (relists buffered)       (journal of changes)   (one transaction per batch)
//! ```
//!
//! Fail closed: nothing is programmed before every kind has completed its
//! first list, so rules of a previous run stay in force until then; a failed
//! apply leaves the kernel as it was (transactions are atomic) and the next
//! sync replaces the whole table; on stop the rules stay unless `--cleanup`.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use kube::Client;
use palisade_dataplane::NodeScope;
use palisade_dataplane::json::Listing;
use palisade_dataplane::nft::{Nft as _, NftCli};
use palisade_policy::ClusterIndex;
use tokio::sync::mpsc;
use tracing::{error, info, warn};

use super::kube_source::{Kind, KubeState, WatchEvent, watch};
use super::metrics::{KindLabel, Metrics, PodDirection};
use super::reconcile::{Outcome, Reconciler};
use super::routes;

/// How the Kubernetes agent runs.
#[derive(Clone, Debug)]
pub struct KubeAgentConfig {
    /// Which pods are local.
    pub scope: NodeScope,
    /// How often to compare the kernel with the applied state.
    pub resync: Duration,
    /// Where `/healthz`, `/readyz` and `/metrics` listen (`None`: nowhere).
    pub listen: Option<SocketAddr>,
    /// Remove the table when stopping.
    pub cleanup_on_exit: bool,
}

/// Events waiting in the channel are applied together (one sync per batch).
const CHANNEL: usize = 4096;

/// Runs until `shutdown` completes. The watchers use `client`.
pub async fn run(
    client: Client,
    config: KubeAgentConfig,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    if let Some(addr) = config.listen {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let _ = metrics.listening.set(addr);
        info!(%addr, "serving /healthz, /readyz and /metrics");
        tokio::spawn(super::metrics::serve(listener, metrics.clone(), config.resync * 3 + Duration::from_secs(30)));
    }
    let (mut rx, watchers) = spawn_watchers(&client);
    let mut index = ClusterIndex::new();
    index.track_changes();
    let mut events = EventReporter::new(client.clone(), &config.scope);
    let mut state = KubeState::default();
    let mut reconciler = Reconciler::new(Box::new(NftCli::default()), config.scope.clone());
    let mut ifaces = routes::pod_interfaces();
    let mut resync = tokio::time::interval(config.resync);
    let mut dirty = false;
    let mut pods_changed = false;
    let mut batch_started: Option<Instant> = None;
    info!(scope = ?config.scope, "agent starting; existing rules stay until every kind is listed and programmed");
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        metrics.beat();
        tokio::select! {
            () = &mut shutdown => break,
            event = rx.recv() => {
                let Some(event) = event else { break };
                batch_started.get_or_insert_with(Instant::now);
                let mut next = Some(event);
                // Everything already waiting joins this batch.
                while let Some(event) = next {
                    pods_changed |= matches!(&event, WatchEvent::Apply(Kind::Pod, ..) | WatchEvent::Delete(Kind::Pod, _) | WatchEvent::InitDone(Kind::Pod));
                    for (kind, key, errors) in state.handle(&mut index, event) {
                        if kind == Kind::NetworkPolicy {
                            events.rejected_policy(&key, &errors);
                        }
                    }
                    next = rx.try_recv().ok();
                }
                // A policy fixed since its Event gets a new one if it breaks again.
                events.forget_unless(|key| state.rejected.contains_key(&format!("{} {key}", Kind::NetworkPolicy.as_str())));
                for (kind, n) in KubeState::counts(&index) {
                    metrics.objects.get_or_create(&KindLabel { kind: kind.as_str().into() }).set(gauge(n));
                }
                metrics.rejected.set(gauge(state.rejected.len()));
                dirty = true;
            }
            _ = resync.tick() => {
                if state.ready() {
                    // One listing serves the drift check and the counters.
                    match tokio::task::block_in_place(|| NftCli::default().list_table()) {
                        Ok(listing) => {
                            if reconciler.drifted(listing.as_ref()) {
                                warn!("kernel table differs from the applied program (or is gone); replacing it");
                                dirty = true;
                            }
                            if let Some(listing) = &listing {
                                read_counters(&metrics, listing);
                            }
                        }
                        Err(e) => error!(error = %e, "cannot read the kernel table"),
                    }
                }
            }
        }
        if !(dirty && state.ready()) {
            continue;
        }
        if pods_changed {
            ifaces = routes::pod_interfaces();
            pods_changed = false;
        }
        let seen = batch_started.take().unwrap_or_else(Instant::now);
        dirty = !program(&mut reconciler, &mut index, &ifaces, &metrics, seen);
    }
    for w in watchers {
        w.abort();
    }
    info!(cleanup = config.cleanup_on_exit, "stopping; rules stay in place unless --cleanup");
    if config.cleanup_on_exit {
        super::remove_table()?;
    }
    Ok(())
}

/// Kubernetes Events on NetworkPolicies rejected as invalid, one per
/// distinct message (relists do not repeat them).
struct EventReporter {
    client: Client,
    host: String,
    reported: BTreeMap<String, String>,
}

impl EventReporter {
    fn new(client: Client, scope: &NodeScope) -> Self {
        let host = match scope {
            NodeScope::Node(name) => name.clone(),
            NodeScope::All => "all-pods".into(),
        };
        EventReporter { client, host, reported: BTreeMap::new() }
    }

    fn forget_unless(&mut self, still_rejected: impl Fn(&str) -> bool) {
        self.reported.retain(|key, _| still_rejected(key));
    }

    fn rejected_policy(&mut self, key: &str, errors: &[palisade_manifests::LoadError]) {
        let Some((namespace, name)) = key.split_once('/') else { return };
        let message = errors
            .iter()
            .map(|e| match e {
                palisade_manifests::LoadError::Invalid { field, message, .. } => format!("{field}: {message}"),
                other => other.to_string(),
            })
            .collect::<Vec<_>>()
            .join("; ");
        if self.reported.get(key) == Some(&message) {
            return;
        }
        self.reported.insert(key.to_string(), message.clone());
        let event = policy_event(namespace, name, &message, &self.host);
        let api: kube::Api<k8s_openapi::api::core::v1::Event> = kube::Api::namespaced(self.client.clone(), namespace);
        let object = format!("{namespace}/{name}");
        tokio::spawn(async move {
            if let Err(e) = api.create(&kube::api::PostParams::default(), &event).await {
                warn!(policy = %object, error = %e, "cannot record the rejection as an Event");
            }
        });
    }
}

/// A Warning Event on a NetworkPolicy that was rejected, naming the fields.
#[must_use]
pub fn policy_event(namespace: &str, name: &str, message: &str, host: &str) -> k8s_openapi::api::core::v1::Event {
    use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
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

/// One watcher task per kind, all sending into one channel.
fn spawn_watchers(client: &Client) -> (mpsc::Receiver<WatchEvent>, Vec<tokio::task::JoinHandle<()>>) {
    let (tx, rx) = mpsc::channel::<WatchEvent>(CHANNEL);
    let watchers = Kind::ALL
        .map(|kind| {
            let (tx, client) = (tx.clone(), client.clone());
            tokio::spawn(async move {
                let mut events = std::pin::pin!(watch(client, kind));
                while let Some(event) = events.next().await {
                    if tx.send(event).await.is_err() {
                        return;
                    }
                }
            })
        })
        .into();
    (rx, watchers)
}

fn gauge(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Syncs the kernel with the index; returns whether it succeeded.
fn program(
    reconciler: &mut Reconciler,
    index: &mut ClusterIndex,
    ifaces: &BTreeMap<std::net::IpAddr, String>,
    metrics: &Metrics,
    seen: Instant,
) -> bool {
    let journal = index.take_changes();
    match tokio::task::block_in_place(|| reconciler.sync(index, journal.as_ref(), ifaces)) {
        Ok(report) => {
            metrics.sync_seconds.observe(report.compile.as_secs_f64());
            metrics.rules.set(gauge(report.stats.rules));
            metrics.elements.set(gauge(report.stats.elements));
            metrics.sets.set(gauge(report.sets));
            if report.outcome != Outcome::Unchanged {
                metrics.apply_seconds.observe(report.apply.as_secs_f64());
                info!(
                    outcome = ?report.outcome,
                    commands = report.commands,
                    compile_us = report.compile.as_micros(),
                    apply_us = report.apply.as_micros(),
                    latency_us = seen.elapsed().as_micros(),
                    policies_compiled = report.update.policies_compiled,
                    local_pods = report.stats.local_pods,
                    rules = report.stats.rules,
                    elements = report.stats.elements,
                    "applied"
                );
            }
            if !metrics.ready.swap(true, Ordering::Relaxed) {
                info!("first sync programmed; ready");
            }
            true
        }
        Err(e) => {
            metrics.apply_errors.inc();
            error!(error = %e, "apply failed; the next sync replaces the whole table");
            false
        }
    }
}

/// Copies the kernel's per-pod denied counters (from a `nft -j list table`
/// listing) into the metrics.
fn read_counters(metrics: &Metrics, listing: &Listing) {
    let mut seen = BTreeMap::new();
    for (name, packets) in listing.counters() {
        // Counter names: pod/<ns>/<pod>/<direction>/denied.
        let parts: Vec<&str> = name.split('/').collect();
        if let ["pod", ns, pod, direction, "denied"] = parts.as_slice() {
            seen.insert(PodDirection { pod: format!("{ns}/{pod}"), direction: (*direction).to_string() }, packets);
        }
    }
    metrics.denied_packets.clear();
    for (labels, packets) in seen {
        metrics.denied_packets.get_or_create(&labels).set(i64::try_from(packets).unwrap_or(i64::MAX));
    }
}
