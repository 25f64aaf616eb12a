//! Palisade's node agent: keeps the kernel enforcing the policies of the
//! node's pods, fed by the Kubernetes API or by a directory of manifests.
//!
//! ```text
//!  Source (thread)                      Driver (thread)
//!  ManifestsDir: inotify + scan    \     ClusterIndex --journal--> Reconciler --> Kernel
//!  KubeApi: kube-rs watchers        >--Batch-->  (one transaction per sync;   (NetlinkKernel, or
//!          (on a tokio runtime)    /             drift repair every resync)    FakeKernel in tests)
//! ```
//!
//! Each source converts and validates objects at the edge and sends
//! [`Batch`]es of [`Change`]s; the [`Driver`] is the one reconcile loop
//! (index, incremental program, reconciler, metrics, status, resync timer),
//! and the [`Kernel`] trait is its only way to the packet filter.

mod change;
pub mod driver;
pub mod fake;
pub mod flows;
pub mod gate;
pub mod kernel;
pub mod kube;
pub mod manifests;
pub mod memory;
pub mod metrics;
pub mod realization;
pub mod reconcile;
pub mod revoke;
mod routes;
mod run;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Sender};
use std::thread::JoinHandle;

pub use change::{Change, Object, apply_changes, take_loaded};
pub use driver::{Batch, Driver, DriverConfig, Message};
pub use kernel::{Kernel, KernelTable, NetlinkKernel};
pub use metrics::Metrics;
pub use run::{AgentError, AgentOptions, SourceKind, remove_table, run};

/// What feeds the driver: converted, validated objects as [`Batch`]es.
pub trait Source: Send + 'static {
    /// Sends batches to `driver` until `stop` is raised or the driver is
    /// gone; runs on a thread of its own.
    fn run(self: Box<Self>, driver: Sender<Message>, stop: Arc<AtomicBool>);
}

/// A running agent: its source and driver threads.
#[derive(Debug)]
pub struct Running {
    to_driver: Sender<Message>,
    stop: Arc<AtomicBool>,
    driver: JoinHandle<()>,
    source: JoinHandle<()>,
    flows: Option<flows::Reader>,
}

/// Starts `source` and a driver over `kernel`, each on its own thread.
pub fn start(
    config: DriverConfig,
    source: Box<dyn Source>,
    kernel: Box<dyn Kernel>,
    metrics: Arc<Metrics>,
) -> std::io::Result<Running> {
    let (to_driver, messages) = mpsc::channel();
    let stop = Arc::new(AtomicBool::new(false));
    let flow_log = config.flow_log.clone();
    let mut driver = Driver::new(config, kernel, metrics.clone());
    // Flow logs serve the operator, not enforcement: when they cannot
    // start, the agent says so and enforces without them.
    let mut reader = None;
    if let Some(flow_log) = flow_log {
        match flows::start_reader(flow_log.kernel.group, to_driver.clone(), metrics) {
            Ok(r) => match flows::FlowWriter::new(&flow_log, r.in_flight.clone()) {
                Ok(writer) => {
                    driver = driver.with_flow_writer(writer);
                    reader = Some(r);
                }
                Err(e) => {
                    r.stop();
                    tracing::error!(error = %e, "cannot open the flow log file; flow logs are off");
                }
            },
            Err(e) => tracing::error!(error = %e, "cannot read the flow log group; flow logs are off"),
        }
    }
    let driver = std::thread::Builder::new().name("driver".into()).spawn(move || driver.run(&messages))?;
    let (tx, flag) = (to_driver.clone(), stop.clone());
    let source = std::thread::Builder::new().name("source".into()).spawn(move || source.run(tx, flag))?;
    Ok(Running { to_driver, stop, driver, source, flows: reader })
}

impl Running {
    /// A sender to the driver (for the route watch).
    #[must_use]
    pub fn driver(&self) -> Sender<Message> {
        self.to_driver.clone()
    }

    /// Stops the source, then the driver (which removes the table when so
    /// configured), and waits for both.
    pub fn stop(self) {
        if let Some(flows) = self.flows {
            flows.stop();
        }
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.source.join();
        let _ = self.to_driver.send(Message::Stop);
        let _ = self.driver.join();
    }

    /// Whether either thread has ended (a source that failed, a driver
    /// whose channel closed).
    #[must_use]
    pub fn finished(&self) -> bool {
        self.driver.is_finished() || self.source.is_finished()
    }
}
