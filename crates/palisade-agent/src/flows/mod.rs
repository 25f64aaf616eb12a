//! Flow logs: the packets the dataplane logs to its NFLOG group, read on a
//! thread of their own, attributed by the driver with the engine, and
//! written as JSON lines (stdout, the DaemonSet's log, and optionally a
//! file), with Prometheus counters.
//!
//! ```text
//! kernel: pod chain  limit N/s per pod and direction; log group G  (deny, or an observed pod's new connection)
//!   --NFLOG--> reader thread: read, drop repeats of a flow within 10 s, batch
//!   --Message::Flows--> driver: attribute (the index it compiled from), write, count
//! ```
//!
//! Bounded everywhere: the kernel's per-pod limit; the socket's buffer
//! (an overflow drops records in the kernel, counted); at most
//! [`IN_FLIGHT`] records between the reader and the driver (beyond it the
//! reader drops batches, counted); and the repeat filter's two generations
//! of at most [`REMEMBERED`] flows each. Verdicts never wait for a record.

mod reader;
pub mod record;

use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::SystemTime;

use palisade_dataplane::FlowLog;
use palisade_dataplane::nflog::Logged;
use palisade_policy::ClusterIndex;
use tracing::warn;

pub use reader::{IN_FLIGHT, REMEMBERED, Reader, start_reader};
pub use record::{FlowRecord, FlowVerdict, attribute};

use crate::metrics::{DeniedFlowLabel, Metrics, ReasonLabel, VerdictLabel};

/// The flow log's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowLogConfig {
    /// What the dataplane logs, and to which group.
    pub kernel: FlowLog,
    /// Write records to stdout.
    pub stdout: bool,
    /// Also append them to this file.
    pub file: Option<PathBuf>,
}

/// Default NFLOG group (`--flow-log-group`).
pub const DEFAULT_GROUP: u16 = 7010;

/// Where the driver writes records.
pub struct FlowWriter {
    outputs: Vec<Box<dyn std::io::Write + Send>>,
    in_flight: Arc<AtomicUsize>,
}

impl std::fmt::Debug for FlowWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowWriter").field("outputs", &self.outputs.len()).finish_non_exhaustive()
    }
}

impl FlowWriter {
    /// A writer for `config`; `in_flight` is shared with the reader.
    ///
    /// # Errors
    /// The file cannot be opened for appending.
    pub fn new(config: &FlowLogConfig, in_flight: Arc<AtomicUsize>) -> std::io::Result<FlowWriter> {
        let mut outputs: Vec<Box<dyn std::io::Write + Send>> = Vec::new();
        if config.stdout {
            outputs.push(Box::new(std::io::stdout()));
        }
        if let Some(path) = &config.file {
            let file = File::options().create(true).append(true).open(path)?;
            outputs.push(Box::new(file));
        }
        Ok(FlowWriter { outputs, in_flight })
    }

    /// A writer to `out` alone (benchmarks, tests).
    #[must_use]
    pub fn to_writer(out: Box<dyn std::io::Write + Send>, in_flight: Arc<AtomicUsize>) -> FlowWriter {
        FlowWriter { outputs: vec![out], in_flight }
    }

    /// Attributes and writes one batch from the reader.
    pub fn write(&mut self, index: &ClusterIndex, batch: &[Logged], metrics: &Metrics) {
        let now = SystemTime::now();
        let mut text = Vec::with_capacity(batch.len() * 512);
        for logged in batch {
            let Some(record) = attribute(index, logged, now) else { continue };
            count(metrics, &record);
            if serde_json::to_writer(&mut text, &record).is_ok() {
                text.push(b'\n');
            }
        }
        self.in_flight.fetch_sub(batch.len(), Ordering::Relaxed);
        for out in &mut self.outputs {
            let mut out = BufWriter::new(out);
            if out.write_all(&text).and_then(|()| out.flush()).is_err() {
                metrics.flow_records_dropped.get_or_create(&ReasonLabel { reason: "output".into() }).inc();
                warn!("cannot write flow records");
            }
        }
    }
}

/// Counts a record: per verdict, and a denial per pod and policy.
fn count(metrics: &Metrics, record: &FlowRecord) {
    metrics.flow_records.get_or_create(&VerdictLabel { verdict: record.verdict.as_str().into() }).inc();
    if record.verdict != FlowVerdict::Deny {
        return;
    }
    let (end, side) = match record.direction {
        palisade_policy::Direction::Egress => (&record.src, &record.egress),
        palisade_policy::Direction::Ingress => (&record.dst, &record.ingress),
    };
    let (namespace, pod) = end.pod.as_deref().and_then(|p| p.split_once('/')).unwrap_or(("", ""));
    let policy = match &side.decided_by {
        Some(rule) => format!("{}/{}", rule.kind, rule.policy),
        None => side.isolated_by.join(","),
    };
    let label = DeniedFlowLabel { namespace: namespace.into(), pod: pod.into(), policy };
    metrics.denied_flows.get_or_create(&label).inc();
}
