//! `palisade agent`: keeps a node's kernel enforcing the policies of a
//! directory of manifests (the Kubernetes API source plugs into the same
//! change stream later).
//!
//! ```text
//! inotify(dir) --scan--> Changes --apply--> ClusterIndex --sync--> nft (one transaction per batch)
//!        \ periodic resync: drift check against the kernel's table, full replace on drift
//! ```
//!
//! Startup keeps whatever table a previous run left until the first full
//! program is applied atomically; stopping leaves the rules in place unless
//! `--cleanup` is given.

pub mod kube_agent;
pub mod kube_source;
pub mod metrics;
pub mod reconcile;
pub mod routes;
pub mod source;

use std::io::Read as _;
use std::os::fd::AsFd as _;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use inotify::{Inotify, WatchMask};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use palisade_dataplane::NodeScope;
use palisade_dataplane::nft::{Nft, NftCli};
use palisade_dataplane::ruleset::Table;
use palisade_dataplane::transaction::cleanup;
use palisade_policy::ClusterIndex;
use serde::Serialize;
use tracing::{error, info, warn};

use reconcile::{Outcome, Reconciler};
use source::{ManifestSource, apply_changes};

/// Agent settings.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Which pods are local.
    pub scope: NodeScope,
    /// The manifests directory.
    pub manifests: PathBuf,
    /// Where to write the status after each apply.
    pub status_file: Option<PathBuf>,
    /// How often to compare the kernel with the applied state.
    pub resync: Duration,
    /// Remove the table when stopping.
    pub cleanup_on_exit: bool,
}

/// What the status file holds.
#[derive(Debug, Serialize)]
struct Status<'a> {
    /// Digest of the manifest files the kernel now enforces.
    digest: String,
    /// Unix time of the apply, in microseconds.
    applied_at_us: u128,
    /// Applies so far.
    generation: u64,
    /// Last problems in the manifests (last good state kept for those objects).
    errors: &'a [String],
}

fn write_status(path: &Path, digest: &source::Digest, generation: u64, errors: &[String]) {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros());
    let status = Status { digest: source::hex(digest), applied_at_us: now, generation, errors };
    let tmp = path.with_extension("tmp");
    let text = serde_json::to_string(&status).unwrap_or_default();
    if std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, path)).is_err() {
        warn!(path = %path.display(), "cannot write the status file");
    }
}

/// Removes Palisade's table from the current network namespace.
pub fn remove_table() -> anyhow::Result<()> {
    NftCli::default().apply(&cleanup(), &Table::default()).context("removing table inet palisade")
}

/// Runs the agent until SIGTERM or SIGINT.
pub fn run(config: &AgentConfig) -> anyhow::Result<()> {
    let (mut wake_rx, wake_tx) = UnixStream::pair().context("signal pipe")?;
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::low_level::pipe::register(signal, wake_tx.try_clone()?).context("signal handler")?;
    }
    let mut inotify = Inotify::init().context("inotify")?;
    let mask =
        WatchMask::CLOSE_WRITE | WatchMask::MOVED_TO | WatchMask::MOVED_FROM | WatchMask::DELETE | WatchMask::CREATE;
    inotify
        .watches()
        .add(&config.manifests, mask)
        .with_context(|| format!("watching {}", config.manifests.display()))?;

    let mut source = ManifestSource::new(&config.manifests, "default");
    let mut index = ClusterIndex::new();
    index.track_changes();
    let mut reconciler = Reconciler::new(Box::new(NftCli::default()), config.scope.clone());
    let mut generation = 0u64;
    let mut errors: Vec<String> = Vec::new();
    let mut last_resync = Instant::now();
    let mut dirty = true; // the first scan is a full list of the directory
    let mut buffer = [0u8; 16 * 1024];
    // Pod interfaces come from the routing table; re-read only when pods change.
    let mut ifaces = routes::pod_interfaces();
    info!(dir = %config.manifests.display(), scope = ?config.scope, "agent starting; existing rules stay until the first program is applied");
    loop {
        if dirty {
            let seen = Instant::now();
            let scan = source.scan();
            if !scan.errors.is_empty() {
                errors = scan.errors.iter().map(ToString::to_string).collect();
                for e in &errors {
                    error!(error = %e, "invalid manifest skipped; its last good state stays enforced");
                }
            } else if scan.files_read > 0 {
                errors.clear();
            }
            let changes = scan.changes.len();
            let pods_changed = scan.changes.iter().any(|c| {
                matches!(c, source::Change::Apply(source::Object::Pod(_)) | source::Change::Delete(("Pod", ..)))
            });
            apply_changes(&mut index, scan.changes);
            if pods_changed {
                ifaces = routes::pod_interfaces();
            }
            let journal = index.take_changes();
            match reconciler.sync(&index, journal.as_ref(), &ifaces) {
                Ok(report) => {
                    generation += 1;
                    if report.outcome != Outcome::Unchanged {
                        info!(
                            outcome = ?report.outcome,
                            changes,
                            commands = report.commands,
                            compile_us = report.compile.as_micros(),
                            policies_compiled = report.update.policies_compiled,
                            parts_rendered = report.update.parts_rendered,
                            apply_us = report.apply.as_micros(),
                            latency_us = seen.elapsed().as_micros(),
                            local_pods = report.stats.local_pods,
                            rules = report.stats.rules,
                            elements = report.stats.elements,
                            "applied"
                        );
                    }
                    if let Some(path) = &config.status_file {
                        write_status(path, &source.digest(), generation, &errors);
                    }
                    dirty = false;
                }
                Err(e) => error!(error = %e, "apply failed; retrying with a full replace"),
            }
        }
        let wait = if dirty { Duration::from_millis(200) } else { config.resync.saturating_sub(last_resync.elapsed()) };
        let timeout = PollTimeout::try_from(i32::from(wait.as_millis().min(30_000) as u16)).unwrap_or(PollTimeout::MAX);
        let mut fds =
            [PollFd::new(inotify.as_fd(), PollFlags::POLLIN), PollFd::new(wake_rx.as_fd(), PollFlags::POLLIN)];
        let ready = poll(&mut fds, timeout).unwrap_or(0);
        if fds[1].revents().is_some_and(|r| r.contains(PollFlags::POLLIN)) {
            let _ = wake_rx.read(&mut [0u8; 16]);
            info!(cleanup = config.cleanup_on_exit, "stopping; rules stay in place unless --cleanup");
            if config.cleanup_on_exit {
                remove_table()?;
            }
            return Ok(());
        }
        if ready > 0 && fds[0].revents().is_some_and(|r| r.contains(PollFlags::POLLIN)) {
            // Drain this burst of events; one scan covers them all.
            while inotify.read_events(&mut buffer).is_ok_and(|mut e| e.next().is_some()) {}
            dirty = true;
        }
        if last_resync.elapsed() >= config.resync {
            last_resync = Instant::now();
            match reconciler.detect_drift() {
                Ok(true) => {
                    warn!("kernel table differs from the applied program (or is gone); replacing it");
                    dirty = true;
                }
                Ok(false) => {}
                Err(e) => error!(error = %e, "cannot read the kernel table"),
            }
            // Files edited without an event (or missed) are caught here too.
            dirty |= source::dir_digest(&config.manifests) != source.digest();
        }
    }
}
