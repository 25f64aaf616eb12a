//! The agent as a process: the runtime, the endpoints, the source chosen,
//! the driver on the node's kernel, and the wait for SIGTERM or SIGINT.
//! The binary only turns its arguments into [`AgentOptions`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use palisade_dataplane::NodeScope;
use palisade_dataplane::nft::NftError;
use palisade_dataplane::ruleset::Table;
use palisade_dataplane::transaction::cleanup;
use tracing::info;

use crate::Source;
use crate::driver::DriverConfig;
use crate::kernel::{Kernel as _, NetlinkKernel};
use crate::kube::KubeApi;
use crate::manifests::ManifestsDir;
use crate::metrics::{Metrics, serve};

/// Where the agent reads objects from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceKind {
    /// A directory of manifests, watched with inotify.
    Manifests(PathBuf),
    /// The Kubernetes API (in-cluster configuration or `KUBECONFIG`).
    Kubernetes,
}

/// How the agent runs.
#[derive(Clone, Debug)]
pub struct AgentOptions {
    /// Where objects come from.
    pub source: SourceKind,
    /// The driver's settings.
    pub driver: DriverConfig,
    /// Where `/healthz`, `/readyz` and `/metrics` listen, if anywhere.
    pub listen: Option<SocketAddr>,
    /// Find the connections to revoke by following conntrack's events
    /// (else by dumps filtered by address).
    pub conntrack_events: bool,
}

/// Why the agent could not run; each message includes its cause.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// A thread, the runtime or the endpoints' listener could not start.
    #[error("{what}: {error}")]
    Io {
        /// What was being started.
        what: String,
        /// The error.
        error: std::io::Error,
    },
    /// No Kubernetes client could be configured.
    #[error("Kubernetes client (in-cluster config or KUBECONFIG): {0}")]
    Kube(kube::Error),
    /// Removing the table failed.
    #[error("removing table inet palisade: {0}")]
    Cleanup(NftError),
    /// The source or the driver ended without being asked to.
    #[error("the agent's source or driver stopped unexpectedly")]
    Stopped,
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> AgentError {
    let what = what.into();
    move |error| AgentError::Io { what, error }
}

/// Removes Palisade's table from this network namespace.
pub fn remove_table() -> Result<(), AgentError> {
    NetlinkKernel::default().apply(&cleanup(), &Table::default()).map_err(AgentError::Cleanup)
}

/// Runs the agent until SIGTERM or SIGINT (or until its source or driver
/// ends on its own, which is an error).
pub fn run(mut options: AgentOptions) -> Result<(), AgentError> {
    // The runtime serves the endpoints and runs the Kubernetes watchers;
    // the driver and the manifests source run on threads of their own.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(io("starting the runtime"))?;
    let metrics = Arc::new(Metrics::new());
    if let Some(addr) = options.listen {
        let listener =
            runtime.block_on(tokio::net::TcpListener::bind(addr)).map_err(io(format!("listening on {addr}")))?;
        let addr = listener.local_addr().map_err(io("listening"))?;
        let _ = metrics.listening.set(addr);
        info!(%addr, "serving /healthz, /readyz and /metrics");
        let stale_after = options.driver.resync * 3 + Duration::from_secs(30);
        runtime.spawn(serve(listener, metrics.clone(), stale_after));
    }
    let source: Box<dyn Source> = match &options.source {
        SourceKind::Kubernetes => {
            let client = runtime.block_on(kube::Client::try_default()).map_err(AgentError::Kube)?;
            let host = match &options.driver.scope {
                NodeScope::Node(name) => name.clone(),
                NodeScope::All => "all-pods".into(),
            };
            // Realization status: a ConfigMap per node in the agent's
            // namespace, and Events on the policies.
            let board = Arc::new(crate::realization::Board::default());
            options.driver.realization = Some(board.clone());
            let namespace =
                std::env::var("POD_NAMESPACE").unwrap_or_else(|_| crate::kube::status::DEFAULT_NAMESPACE.to_string());
            Box::new(KubeApi::new(client, runtime.handle().clone(), &host).with_status(board, &namespace))
        }
        SourceKind::Manifests(dir) => Box::new(
            ManifestsDir::new(dir, "default", options.driver.resync)
                .map_err(io(format!("watching {}", dir.display())))?,
        ),
    };
    let kernel = if options.conntrack_events { NetlinkKernel::following_events() } else { NetlinkKernel::default() };
    let agent =
        crate::start(options.driver, source, Box::new(kernel), metrics).map_err(io("starting the agent's threads"))?;
    // A new pod's route is learnt when it appears, not at the next pod
    // change: with --new-pods=deny the pod waits for it.
    let driver = agent.driver();
    crate::routes::watch(move || driver.send(crate::driver::Message::Interfaces).is_ok())
        .map_err(io("watching the routing table"))?;
    runtime.block_on(async {
        let mut signal = std::pin::pin!(shutdown_signal());
        while !agent.finished() {
            tokio::select! {
                () = &mut signal => break,
                () = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
    });
    let failed = agent.finished();
    agent.stop();
    if failed { Err(AgentError::Stopped) } else { Ok(()) }
}

/// Completes on SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => std::future::pending().await,
    }
}
