//! `/healthz`, `/readyz` and `/metrics` (Prometheus text format, via
//! prometheus-client) on a small HTTP/1.1 listener.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;
use tracing::warn;

/// Label of per-kind gauges.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    /// `Namespace`, `Pod` or `NetworkPolicy`; for drift, the kind of
    /// table object.
    pub kind: String,
}

/// Label of per-pod counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct PodDirection {
    /// `namespace/name`.
    pub pod: String,
    /// `ingress` or `egress`.
    pub direction: String,
}

/// Label of the base chains' drop counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// `spoofed`, `unprogrammed` or `midstream`.
    pub reason: String,
}

/// Label of revoked connections.
/// A flow record's verdict.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VerdictLabel {
    /// `deny`, `would-deny` or `allow`.
    pub verdict: String,
}

/// A denied flow's pod and the policy that denied it.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeniedFlowLabel {
    /// The denying side's pod's namespace.
    pub namespace: String,
    /// The pod.
    pub pod: String,
    /// The isolating NetworkPolicies (`ns/name`, comma-separated) or the
    /// cluster policy (`Kind/name`) that denied it.
    pub policy: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RevokeLabel {
    /// What denies them now: `network_policy`, `admin_tier`, `baseline_tier`.
    pub reason: String,
    /// What made the agent look: `change`, `restart` (the first sync of a
    /// run looks at every local pod) or `recovery` (so does the sync after
    /// a failed apply or revocation).
    pub trigger: String,
}

/// Everything the agent reports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Objects held, per kind.
    pub objects: Family<KindLabel, Gauge>,
    /// Seconds to compile, render and diff one sync.
    pub sync_seconds: Histogram,
    /// Seconds to apply one transaction to the kernel.
    pub apply_seconds: Histogram,
    /// Rules, sets and set elements in the table.
    pub rules: Gauge,
    /// Sets and maps in the table.
    pub sets: Gauge,
    /// Set elements in the table.
    pub elements: Gauge,
    /// Failed applies.
    pub apply_errors: Counter,
    /// Objects rejected as invalid.
    pub rejected: Gauge,
    /// Packets dropped per pod and direction (the kernel's counters).
    pub denied_packets: Family<PodDirection, Gauge>,
    /// Differences found between the kernel's table and the applied one,
    /// per kind of object (`chain`, `set`, `counter`, `table`, `unreadable`).
    pub drift: Family<KindLabel, Counter>,
    /// Drift checks that found a difference (each repaired by one full
    /// replace).
    pub drift_repairs: Counter,
    /// Seconds to read the kernel's table and compare it.
    pub drift_check_seconds: Histogram,
    /// Packets the base chains dropped, per reason (`spoofed`: a forged
    /// source; `unprogrammed`: a pod not programmed yet; `midstream`: a
    /// TCP packet opening a connection without SYN): the kernel's counters.
    pub dropped_packets: Family<ReasonLabel, Gauge>,
    /// Established connections found denied by the current state and
    /// deleted from conntrack (or found already ended).
    pub revoked: Family<RevokeLabel, Counter>,
    /// Revocation steps that failed (retried at the next sync).
    pub revoke_errors: Counter,
    /// Seconds per revocation step (find, judge, delete).
    pub revoke_seconds: Histogram,
    /// Policies (NetworkPolicies and cluster policies) that select a pod of
    /// this node, as of the last sync the kernel accepted.
    pub policies_programmed: Gauge,
    /// Pods of this node in the applied program.
    pub pods_programmed: Gauge,
    /// Running pods of this node not programmed yet.
    pub pods_waiting: Gauge,
    /// Flow records written, per verdict.
    pub flow_records: Family<VerdictLabel, Counter>,
    /// Denied flows, per pod and policy.
    pub denied_flows: Family<DeniedFlowLabel, Counter>,
    /// Flow records lost, per reason: `kernel` (the socket overflowed; one
    /// per overflow, the kernel does not say how many), `queue` (the
    /// driver was behind), `output` (a write failed).
    pub flow_records_dropped: Family<ReasonLabel, Counter>,
    /// Whether the first sync has been programmed.
    pub ready: Arc<AtomicBool>,
    /// Unix seconds of the last loop iteration (liveness).
    pub heartbeat: Arc<AtomicU64>,
    /// Where the endpoints listen, once bound.
    pub listening: std::sync::OnceLock<std::net::SocketAddr>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every metric registered.
    #[must_use]
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("palisade");
        let m = Metrics {
            objects: Family::default(),
            sync_seconds: Histogram::new(exponential_buckets(0.0001, 2.0, 18)),
            apply_seconds: Histogram::new(exponential_buckets(0.0001, 2.0, 18)),
            rules: Gauge::default(),
            sets: Gauge::default(),
            elements: Gauge::default(),
            apply_errors: Counter::default(),
            rejected: Gauge::default(),
            denied_packets: Family::default(),
            drift: Family::default(),
            drift_repairs: Counter::default(),
            drift_check_seconds: Histogram::new(exponential_buckets(0.0001, 2.0, 18)),
            dropped_packets: Family::default(),
            revoked: Family::default(),
            revoke_errors: Counter::default(),
            revoke_seconds: Histogram::new(exponential_buckets(0.0001, 2.0, 18)),
            policies_programmed: Gauge::default(),
            pods_programmed: Gauge::default(),
            pods_waiting: Gauge::default(),
            flow_records: Family::default(),
            denied_flows: Family::default(),
            flow_records_dropped: Family::default(),
            ready: Arc::new(AtomicBool::new(false)),
            heartbeat: Arc::new(AtomicU64::new(0)),
            listening: std::sync::OnceLock::new(),
            registry: Registry::default(),
        };
        registry.register("objects", "Objects watched, per kind", m.objects.clone());
        registry.register("sync_seconds", "Compile, render and diff time per sync", m.sync_seconds.clone());
        registry.register("apply_seconds", "Kernel apply time per transaction", m.apply_seconds.clone());
        registry.register("ruleset_rules", "Policy rules in the node's program", m.rules.clone());
        registry.register("ruleset_sets", "Sets and maps in the table", m.sets.clone());
        registry.register("ruleset_elements", "Set elements in the node's program", m.elements.clone());
        registry.register("apply_errors", "Transactions the kernel refused", m.apply_errors.clone());
        registry.register("rejected_objects", "Objects rejected as invalid", m.rejected.clone());
        registry.register("denied_packets", "Packets dropped per pod and direction", m.denied_packets.clone());
        registry.register(
            "drift_differences",
            "Differences found in the kernel's table, per object kind",
            m.drift.clone(),
        );
        registry.register(
            "drift_repairs",
            "Drift checks that found the table changed (repaired)",
            m.drift_repairs.clone(),
        );
        registry.register(
            "drift_check_seconds",
            "Time to read and compare the kernel's table",
            m.drift_check_seconds.clone(),
        );
        registry.register(
            "dropped_packets",
            "Packets the base chains dropped, per reason (spoofed, unprogrammed, midstream)",
            m.dropped_packets.clone(),
        );
        registry.register(
            "connections_revoked",
            "Established connections deleted because the current state denies them",
            m.revoked.clone(),
        );
        registry.register("revoke_errors", "Revocation steps that failed", m.revoke_errors.clone());
        registry.register("revoke_seconds", "Time per revocation step", m.revoke_seconds.clone());
        registry.register(
            "policies_programmed",
            "Policies selecting a pod of this node, programmed",
            m.policies_programmed.clone(),
        );
        registry.register("pods_programmed", "Pods of this node in the applied program", m.pods_programmed.clone());
        registry.register("pods_waiting", "Running pods of this node not programmed yet", m.pods_waiting.clone());
        registry.register("flow_records", "Flow records written, per verdict", m.flow_records.clone());
        registry.register("denied_flows", "Denied flows, per pod and policy", m.denied_flows.clone());
        registry.register(
            "flow_records_dropped",
            "Flow records lost (kernel: socket overflows; queue: records; output: failed writes)",
            m.flow_records_dropped.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Marks the loop alive now.
    pub fn beat(&self) {
        self.heartbeat.store(unix_seconds(), Ordering::Relaxed);
    }

    /// The Prometheus text exposition.
    #[must_use]
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }

    fn alive(&self, stale_after: Duration) -> bool {
        unix_seconds().saturating_sub(self.heartbeat.load(Ordering::Relaxed)) <= stale_after.as_secs()
    }
}

fn unix_seconds() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}

/// Answers one request line: status, content type, body.
fn answer(metrics: &Metrics, path: &str, stale_after: Duration) -> (&'static str, &'static str, String) {
    match path {
        "/healthz" if metrics.alive(stale_after) => ("200 OK", "text/plain", "ok\n".into()),
        "/healthz" => ("503 Service Unavailable", "text/plain", "reconcile loop stalled\n".into()),
        "/readyz" if metrics.ready.load(Ordering::Relaxed) => ("200 OK", "text/plain", "ok\n".into()),
        "/readyz" => ("503 Service Unavailable", "text/plain", "not synced yet\n".into()),
        "/metrics" => ("200 OK", "text/plain; version=0.0.4; charset=utf-8", metrics.encode()),
        _ => ("404 Not Found", "text/plain", "not found\n".into()),
    }
}

/// Serves the endpoints until the listener fails; each connection gets one
/// answer (bounded read, bounded time).
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>, stale_after: Duration) {
    loop {
        let (mut conn, _) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                warn!(error = %e, "health listener failed");
                return;
            }
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 2048];
            let read = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut buf)).await;
            let Ok(Ok(n)) = read else { return };
            let request = String::from_utf8_lossy(&buf[..n]);
            let path = request.split_whitespace().nth(1).unwrap_or("/");
            let path = path.split('?').next().unwrap_or(path);
            let (status, content_type, body) = answer(&metrics, path, stale_after);
            let response = format!(
                "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = tokio::time::timeout(Duration::from_secs(5), conn.write_all(response.as_bytes())).await;
        });
    }
}

/// A count as a gauge value.
#[must_use]
pub fn gauge(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
