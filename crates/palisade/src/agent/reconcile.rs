//! Level-triggered reconciliation: the desired program, computed from the
//! index, against what was applied, and against what the kernel holds.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use palisade_dataplane::nft::{Nft, NftError, summarize_listing, summarize_rendered};
use palisade_dataplane::render::{Rendered, render};
use palisade_dataplane::transaction::{diff, full};
use palisade_dataplane::{NodeScope, ProgramStats, compile};
use palisade_policy::ClusterIndex;

/// What a sync did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The kernel already matched.
    Unchanged,
    /// An incremental transaction was applied.
    Incremental,
    /// The whole table was replaced.
    Full,
}

/// Report of one sync.
#[derive(Debug, Clone, Copy)]
pub struct SyncReport {
    /// What was done.
    pub outcome: Outcome,
    /// Compile and render time.
    pub compile: Duration,
    /// Time in nft.
    pub apply: Duration,
    /// Commands in the transaction.
    pub commands: usize,
    /// Program sizes.
    pub stats: ProgramStats,
}

/// Keeps one node's kernel table equal to what the index says.
pub struct Reconciler {
    nft: Box<dyn Nft>,
    scope: NodeScope,
    applied: Option<Rendered>,
}

impl std::fmt::Debug for Reconciler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reconciler")
            .field("scope", &self.scope)
            .field("applied", &self.applied.is_some())
            .finish_non_exhaustive()
    }
}

impl Reconciler {
    /// A reconciler that has applied nothing yet: its first sync replaces
    /// the table atomically (rules of a previous run stay until then).
    #[must_use]
    pub fn new(nft: Box<dyn Nft>, scope: NodeScope) -> Self {
        Reconciler { nft, scope, applied: None }
    }

    /// Brings the kernel to the program for `index`.
    pub fn sync(&mut self, index: &ClusterIndex, ifaces: &BTreeMap<IpAddr, String>) -> Result<SyncReport, NftError> {
        let start = Instant::now();
        let program = compile(index, &self.scope, ifaces);
        let stats = program.stats();
        let rendered = render(&program);
        let compiled = start.elapsed();
        let (tx, outcome) = match &self.applied {
            None => (Some(full(&rendered)), Outcome::Full),
            Some(old) => (diff(old, &rendered), Outcome::Incremental),
        };
        let Some(tx) = tx else {
            return Ok(SyncReport {
                outcome: Outcome::Unchanged,
                compile: compiled,
                apply: Duration::ZERO,
                commands: 0,
                stats,
            });
        };
        let commands = tx["nftables"].as_array().map_or(0, Vec::len);
        let t = Instant::now();
        if let Err(e) = self.nft.apply(&tx) {
            // Unknown kernel state: the next sync replaces the whole table.
            self.applied = None;
            return Err(e);
        }
        self.applied = Some(rendered);
        Ok(SyncReport { outcome, compile: compiled, apply: t.elapsed(), commands, stats })
    }

    /// Compares the kernel's table with what was applied; on any difference
    /// (a foreign `nft delete table`, edits) forgets the applied state so the
    /// next sync replaces the table. Returns whether drift was found.
    pub fn detect_drift(&mut self) -> Result<bool, NftError> {
        let Some(applied) = &self.applied else { return Ok(true) };
        let drift = match self.nft.list_table()? {
            None => true,
            Some(listing) => summarize_listing(&listing) != summarize_rendered(applied),
        };
        if drift {
            self.applied = None;
        }
        Ok(drift)
    }
}
