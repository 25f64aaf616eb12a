//! The one reconcile loop, whatever feeds it.
//!
//! ```text
//! source thread (manifests dir | Kubernetes API) --Batch--> driver thread
//!   driver: changes --apply--> ClusterIndex --journal--> Reconciler --one transaction--> Kernel
//!           every `resync`: read the kernel's table, repair drift, copy counters to metrics
//! ```
//!
//! The driver owns the index, the incremental program, the reconciler and
//! the kernel, on a thread of its own: compiling and every kernel call
//! block, and never on an async runtime's worker. Batches waiting in the
//! channel are applied together, so one sync (one transaction) covers every
//! change that arrived while the previous one was being applied.
//!
//! Fail closed: nothing is programmed before the source says its view is
//! complete ([`Batch::synced`]), so rules of a previous run stay in force
//! until then; a failed apply leaves the kernel as it was (transactions are
//! atomic) and the next sync, 200 ms later, replaces the whole table.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use palisade_dataplane::nflog::Logged;
use palisade_dataplane::ruleset::Table;
use palisade_dataplane::transaction::cleanup;
use palisade_dataplane::{NodeOptions, NodeScope, PodGate};
use palisade_policy::{ClusterIndex, ObjectKind};
use serde::Serialize;
use tracing::{error, info, warn};

use crate::change::{Change, apply_changes};
use crate::flows::{FlowLogConfig, FlowWriter};
use crate::kernel::Kernel;
use crate::metrics::{KindLabel, Metrics, PodDirection, gauge};
use crate::realization::{Board, Realization, applying, local_pods};
use crate::reconcile::{Outcome, Reconciler};
use crate::revoke::{Affected, Revoker};

/// How the driver runs.
#[derive(Clone, Debug)]
pub struct DriverConfig {
    /// Which pods are local.
    pub scope: NodeScope,
    /// How often to compare the kernel with the applied state.
    pub resync: Duration,
    /// Where to write the status after each sync.
    pub status_file: Option<PathBuf>,
    /// Remove the table when stopping.
    pub cleanup_on_exit: bool,
    /// The new-pod gate (`--new-pods`): what becomes of traffic of pods
    /// not programmed yet.
    pub gate: PodGate,
    /// Flow logs (`None`: denials go to the kernel log, rate-limited).
    pub flow_log: Option<FlowLogConfig>,
    /// Where each sync's realization status is published for a reporter
    /// (the Kubernetes source writes it to the API); the metrics get it
    /// either way.
    pub realization: Option<Arc<Board>>,
}

impl DriverConfig {
    /// A driver for `scope` with the defaults: resync every minute, no
    /// status file, the table kept on exit, no gate, no flow log, no
    /// realization board.
    #[must_use]
    pub fn new(scope: NodeScope) -> Self {
        DriverConfig {
            scope,
            resync: Duration::from_secs(60),
            status_file: None,
            cleanup_on_exit: false,
            gate: PodGate::default(),
            flow_log: None,
            realization: None,
        }
    }
}

/// What a source sends the driver.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Batch {
    /// Object changes, converted and validated.
    pub changes: Vec<Change>,
    /// Whether the source's view is complete (every kind listed): only
    /// then may the driver program the kernel. Once true, it stays true.
    pub synced: bool,
    /// The source's revision (the manifests directory's digest), written to
    /// the status file once the kernel enforces it.
    pub revision: Option<String>,
    /// The source's current problems (what it could not use; its last
    /// good state stays), replacing the previous list; `None`: unchanged.
    /// The Kubernetes source gives one line per rejected object, the
    /// manifests source one per error in its files.
    pub problems: Option<Vec<String>>,
}

/// A message to the driver.
#[derive(Debug)]
pub enum Message {
    /// Changes from the source.
    Batch(Batch),
    /// The node's links or routes changed: pod interfaces are read again.
    Interfaces,
    /// Packets the dataplane logged, from the flow log reader.
    Flows(Vec<Logged>),
    /// Stop (after removing the table when so configured).
    Stop,
}

/// What the status file holds.
#[derive(Debug, Serialize)]
struct Status<'a> {
    /// The agent's process id: whoever waits on the status can tell this
    /// agent's word from a previous one's.
    pid: u32,
    /// The source's revision the kernel now enforces.
    digest: &'a str,
    /// Unix time of the sync, in microseconds.
    applied_at_us: u128,
    /// Syncs so far.
    generation: u64,
    /// The source's problems (last good state kept for those objects).
    errors: &'a [String],
}

fn write_status(path: &Path, status: &Status<'_>) {
    let tmp = path.with_extension("tmp");
    let text = serde_json::to_string(status).unwrap_or_default();
    if std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, path)).is_err() {
        warn!(path = %path.display(), "cannot write the status file");
    }
}

/// How long to wait before retrying a failed sync.
const RETRY: Duration = Duration::from_millis(200);

/// The reconcile loop's state.
pub struct Driver {
    config: DriverConfig,
    index: ClusterIndex,
    reconciler: Reconciler,
    metrics: Arc<Metrics>,
    ifaces: std::collections::BTreeMap<std::net::IpAddr, String>,
    revoker: Revoker,
    synced: bool,
    /// The index or the kernel differs from what was last programmed.
    dirty: bool,
    pods_changed: bool,
    /// Object changes taken since the last sync (a large batch is trimmed
    /// after, see [`crate::memory`]).
    changes_taken: usize,
    revision: Option<String>,
    problems: Vec<String>,
    generation: u64,
    batch_started: Option<Instant>,
    flows: Option<FlowWriter>,
    /// Logged packets that came before the first sync: the index is not
    /// whole yet, so they wait to be attributed (bounded by the reader's
    /// in-flight limit).
    early_flows: Vec<Logged>,
    /// The pods of the last program the kernel took (a failed apply leaves
    /// them in force).
    programmed: std::collections::BTreeSet<palisade_policy::ObjectKey>,
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver")
            .field("scope", &self.config.scope)
            .field("synced", &self.synced)
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

impl Driver {
    /// A driver that has programmed nothing yet: its first sync replaces the
    /// table atomically (rules of a previous run stay until then).
    #[must_use]
    pub fn new(config: DriverConfig, mut kernel: Box<dyn Kernel>, metrics: Arc<Metrics>) -> Self {
        let mut index = ClusterIndex::new();
        index.track_changes();
        let ifaces = kernel.pod_interfaces();
        let revoker = Revoker::new(kernel.node_addresses());
        let options = NodeOptions { gate: config.gate.clone(), flow_log: config.flow_log.as_ref().map(|f| f.kernel) };
        let reconciler = Reconciler::with_options(kernel, config.scope.clone(), options);
        Driver {
            config,
            index,
            reconciler,
            metrics,
            ifaces,
            revoker,
            synced: false,
            dirty: false,
            pods_changed: false,
            changes_taken: 0,
            revision: None,
            problems: Vec::new(),
            generation: 0,
            batch_started: None,
            flows: None,
            early_flows: Vec::new(),
            programmed: std::collections::BTreeSet::new(),
        }
    }

    /// Writes the flow log reader's batches with `writer`.
    #[must_use]
    pub fn with_flow_writer(mut self, writer: FlowWriter) -> Self {
        self.flows = Some(writer);
        self
    }

    /// Attributes and writes logged packets (dropped when no writer is
    /// set); before the first sync they wait for the whole index.
    fn flows(&mut self, batch: Vec<Logged>) {
        if self.flows.is_none() {
            return;
        }
        if !self.metrics.ready.load(Ordering::Relaxed) {
            self.early_flows.extend(batch);
            return;
        }
        if let Some(writer) = &mut self.flows {
            writer.write(&self.index, &batch, &self.metrics);
        }
    }

    /// Runs until a [`Message::Stop`] or until every sender is gone.
    pub fn run(mut self, messages: &Receiver<Message>) {
        info!(scope = ?self.config.scope, "agent starting; existing rules stay until the source is synced and programmed");
        let mut last_resync = Instant::now();
        loop {
            self.metrics.beat();
            let until_resync = self.config.resync.saturating_sub(last_resync.elapsed());
            let mut wait = if self.dirty && self.synced { until_resync.min(RETRY) } else { until_resync };
            if let Some(look) = self.revoker.next_look() {
                wait = wait.min(look.saturating_duration_since(Instant::now()));
            }
            match messages.recv_timeout(wait) {
                Ok(Message::Stop) | Err(RecvTimeoutError::Disconnected) => break,
                Ok(Message::Interfaces) => self.interfaces_changed(),
                Ok(Message::Flows(batch)) => self.flows(batch),
                Ok(Message::Batch(batch)) => {
                    self.take(batch);
                    // Everything already waiting joins this sync.
                    loop {
                        match messages.try_recv() {
                            Ok(Message::Batch(batch)) => self.take(batch),
                            Ok(Message::Interfaces) => self.interfaces_changed(),
                            Ok(Message::Flows(batch)) => self.flows(batch),
                            Ok(Message::Stop) => return self.stop(),
                            Err(_) => break,
                        }
                    }
                    self.count_objects();
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
            if self.revoker.next_look().is_some_and(|at| at <= Instant::now()) {
                let local = self.reconciler.local_view().addrs;
                self.revoker.look(&self.index, self.reconciler.kernel(), &self.metrics, &local);
            }
            if last_resync.elapsed() >= self.config.resync {
                last_resync = Instant::now();
                self.resync();
            }
            if self.dirty && self.synced {
                self.sync();
            }
        }
        self.stop();
    }

    /// Links or routes changed: the next sync reads the pod interfaces.
    fn interfaces_changed(&mut self) {
        self.pods_changed = true;
        self.dirty = true;
    }

    /// Applies one batch to the index.
    fn take(&mut self, batch: Batch) {
        self.batch_started.get_or_insert_with(Instant::now);
        self.pods_changed |= batch.changes.iter().any(|c| c.kind() == ObjectKind::Pod);
        self.changes_taken += batch.changes.len();
        let changed = apply_changes(&mut self.index, batch.changes);
        if let Some(problems) = batch.problems {
            self.metrics.rejected.set(gauge(problems.len()));
            self.problems = problems;
        }
        let new_revision = batch.revision.is_some() && batch.revision != self.revision;
        if batch.revision.is_some() {
            self.revision = batch.revision;
        }
        if batch.synced && !self.synced {
            self.synced = true;
            self.dirty = true;
        }
        self.dirty |= changed || new_revision;
    }

    /// The objects held, per kind (declared namespaces only), to the metrics.
    fn count_objects(&self) {
        let (_, pods, policies) = self.index.counts();
        let namespaces = self.index.namespace_ids().filter(|id| self.index.namespace(*id).declared()).count();
        let cluster = |kind: ObjectKind| {
            let keys = self.index.cluster_policies().iter().map(|id| self.index.cluster_policy_key(*id));
            keys.filter(|k| k.kind == kind).count()
        };
        for (kind, n) in [
            (ObjectKind::Namespace, namespaces),
            (ObjectKind::Pod, pods),
            (ObjectKind::NetworkPolicy, policies),
            (ObjectKind::ClusterNetworkPolicy, cluster(ObjectKind::ClusterNetworkPolicy)),
            (ObjectKind::AdminNetworkPolicy, cluster(ObjectKind::AdminNetworkPolicy)),
            (ObjectKind::BaselineAdminNetworkPolicy, cluster(ObjectKind::BaselineAdminNetworkPolicy)),
            (ObjectKind::Node, self.index.nodes().count()),
        ] {
            self.metrics.objects.get_or_create(&KindLabel { kind: kind.as_str().into() }).set(gauge(n));
        }
    }

    /// Brings the kernel to the index; on failure stays dirty (retried).
    fn sync(&mut self) {
        if std::mem::take(&mut self.pods_changed) {
            self.ifaces = self.reconciler.kernel().pod_interfaces();
            self.revoker.node_addrs = self.reconciler.kernel().node_addresses();
        }
        let seen = self.batch_started.take().unwrap_or_else(Instant::now);
        let journal = self.index.take_changes();
        let before = self.reconciler.local_view();
        let result = self.reconciler.sync(&self.index, journal.as_ref(), &self.ifaces);
        let after = self.reconciler.local_view();
        let affected = match (&journal, self.revoker.all_next) {
            (Some(changes), false) => crate::revoke::affected(&self.index, changes, &before, &after),
            _ => Affected::AllLocal,
        };
        drop(journal);
        if std::mem::take(&mut self.changes_taken) >= crate::memory::LARGE_CHANGES {
            crate::memory::trim();
        }
        match result {
            Ok(report) => {
                self.generation += 1;
                self.dirty = false;
                let revoked =
                    self.revoker.revoke(&self.index, self.reconciler.kernel(), &self.metrics, affected, &after.addrs);
                let m = &self.metrics;
                m.sync_seconds.observe(report.compile.as_secs_f64());
                m.rules.set(gauge(report.stats.rules));
                m.elements.set(gauge(report.stats.elements));
                m.sets.set(gauge(report.sets));
                if report.outcome != Outcome::Unchanged {
                    m.apply_seconds.observe(report.apply.as_secs_f64());
                    info!(
                        outcome = ?report.outcome,
                        commands = report.commands,
                        compile_us = report.compile.as_micros(),
                        apply_us = report.apply.as_micros(),
                        latency_us = seen.elapsed().as_micros(),
                        policies_compiled = report.update.policies_compiled,
                        parts_rendered = report.update.parts_rendered,
                        local_pods = report.stats.local_pods,
                        rules = report.stats.rules,
                        elements = report.stats.elements,
                        revoked = revoked.unwrap_or(0),
                        "applied"
                    );
                } else if let Some(n) = revoked.filter(|n| *n > 0) {
                    info!(revoked = n, latency_us = seen.elapsed().as_micros(), "revoked connections");
                }
                if !m.ready.swap(true, Ordering::Relaxed) {
                    info!("first sync programmed; ready");
                    let early = std::mem::take(&mut self.early_flows);
                    if !early.is_empty() {
                        self.flows(early);
                    }
                }
                if let Some(path) = &self.config.status_file {
                    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros());
                    let digest = self.revision.as_deref().unwrap_or_default();
                    let status = Status {
                        pid: std::process::id(),
                        digest,
                        applied_at_us: now,
                        generation: self.generation,
                        errors: &self.problems,
                    };
                    write_status(path, &status);
                }
                // After the status file: whoever waits on it is not held up
                // by the walk over the node's pods.
                self.realize(None);
            }
            Err(e) => {
                // The journal was taken: the next sync recompiles everything,
                // and the revocation after it looks at every local pod.
                self.revoker.all_next = true;
                self.metrics.apply_errors.inc();
                self.realize(Some(e.to_string()));
                error!(error = %e, "apply failed; retrying with a full replace");
            }
        }
    }

    /// Publishes what this node enforces after a sync (`error`: it failed,
    /// and the kernel kept the previous rules) to the metrics and the board.
    fn realize(&mut self, error: Option<String>) {
        let local = local_pods(&self.index, &self.config.scope);
        let (policies, audit) = applying(&self.index, &local);
        if error.is_none() {
            self.programmed = self.reconciler.programmed_pods();
        }
        let programmed = &self.programmed;
        let waiting = local.iter().filter(|p| !programmed.contains(&self.index.pod_key(**p))).count();
        let m = &self.metrics;
        if error.is_none() {
            m.policies_programmed.set(gauge(policies.len()));
        }
        m.pods_programmed.set(gauge(programmed.len()));
        m.pods_waiting.set(gauge(waiting));
        if let Some(board) = &self.config.realization {
            board.publish(Realization {
                sync: self.generation,
                at: Some(SystemTime::now()),
                policies,
                audit,
                error,
                pods_programmed: programmed.len(),
                pods_waiting: waiting,
            });
        }
    }

    /// Reads the kernel's table: drift makes the next sync replace it; the
    /// per-pod drop counters go to the metrics.
    fn resync(&mut self) {
        if !self.synced {
            return;
        }
        let start = std::time::Instant::now();
        match self.reconciler.check_drift() {
            Ok(check) => {
                if check.compared {
                    self.metrics.drift_check_seconds.observe(start.elapsed().as_secs_f64());
                }
                if !check.differences.is_empty() {
                    self.report_drift(&check.differences);
                    self.dirty = true;
                }
                read_counters(&self.metrics, &check.counters);
            }
            Err(e) => error!(error = %e, "cannot read the kernel table"),
        }
    }

    /// Logs and counts what differed; the next sync replaces the table.
    fn report_drift(&self, drift: &[String]) {
        const LOGGED: usize = 20;
        self.metrics.drift_repairs.inc();
        for line in drift {
            let kind = line.split([' ', ':']).next().unwrap_or("table");
            self.metrics.drift.get_or_create(&KindLabel { kind: kind.to_string() }).inc();
        }
        warn!(
            differences = drift.len(),
            "kernel table differs from the applied program; replacing it in one transaction"
        );
        for line in drift.iter().take(LOGGED) {
            warn!(difference = %line, "drift");
        }
        if drift.len() > LOGGED {
            warn!(more = drift.len() - LOGGED, "drift: more differences not logged");
        }
    }

    fn stop(mut self) {
        info!(cleanup = self.config.cleanup_on_exit, "stopping; rules stay in place unless --cleanup");
        if self.config.cleanup_on_exit
            && let Err(e) = self.reconciler.kernel().apply(&cleanup(), &Table::default())
        {
            error!(error = %e, "cannot remove the table");
        }
    }
}

/// Copies the kernel's per-pod denied counters into the metrics.
fn read_counters(metrics: &Metrics, counters: &[(String, u64)]) {
    let mut seen = std::collections::BTreeMap::new();
    for (name, packets) in counters {
        // Counter names: pod/<ns>/<pod>/<direction>/denied.
        let parts: Vec<&str> = name.split('/').collect();
        if let ["pod", ns, pod, direction, "denied"] = parts.as_slice() {
            seen.insert(PodDirection { pod: format!("{ns}/{pod}"), direction: (*direction).to_string() }, *packets);
        } else if let [reason @ ("spoofed" | "unprogrammed" | "midstream")] = parts.as_slice() {
            let label = crate::metrics::ReasonLabel { reason: (*reason).to_string() };
            metrics.dropped_packets.get_or_create(&label).set(i64::try_from(*packets).unwrap_or(i64::MAX));
        }
    }
    metrics.denied_packets.clear();
    for (labels, packets) in seen {
        metrics.denied_packets.get_or_create(&labels).set(i64::try_from(packets).unwrap_or(i64::MAX));
    }
}
