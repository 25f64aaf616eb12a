//! Level-triggered reconciliation: the desired program, computed from the
//! index, against what was applied, and against what the kernel holds.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use palisade_dataplane::drift::differences;
use palisade_dataplane::nft::NftError;
use palisade_dataplane::transaction::{diff, full};
use palisade_dataplane::{Incremental, NodeOptions, NodeScope, PodGate, ProgramStats, UpdateStats};
use palisade_policy::{Changes, ClusterIndex};

use crate::kernel::{Kernel, KernelTable};

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
    /// Compile, render and diff time.
    pub compile: Duration,
    /// Time in the kernel.
    pub apply: Duration,
    /// Commands in the transaction.
    pub commands: usize,
    /// Program sizes.
    pub stats: ProgramStats,
    /// Policies recompiled and parts of the table re-rendered.
    pub update: UpdateStats,
    /// Sets and maps in the table.
    pub sets: usize,
}

/// Keeps one node's kernel table equal to what the index says.
pub struct Reconciler {
    kernel: Box<dyn Kernel>,
    scope: NodeScope,
    options: NodeOptions,
    /// The program and table last applied; `None` when the kernel's state is
    /// unknown (start, failed apply, drift), so the next sync replaces the
    /// whole table.
    applied: Option<Incremental>,
    /// The kernel's ruleset generation while it holds exactly `applied`
    /// (known after an apply no other commit interleaved with, or after a
    /// comparison found no drift); `None`: compare before trusting it.
    generation: Option<u32>,
}

/// What a drift check found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DriftCheck {
    /// Every difference (empty: none); the next sync replaces the table.
    pub differences: Vec<String>,
    /// Packet counts of Palisade's named counters.
    pub counters: Vec<(String, u64)>,
    /// Whether the table was listed and compared (`false`: the ruleset
    /// generation had not moved since the table was known to be right).
    pub compared: bool,
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
    pub fn new(kernel: Box<dyn Kernel>, scope: NodeScope, gate: PodGate) -> Self {
        Self::with_options(kernel, scope, NodeOptions { gate, flow_log: None })
    }

    /// [`Reconciler::new`] with the node's options (the gate and the flow log).
    #[must_use]
    pub fn with_options(kernel: Box<dyn Kernel>, scope: NodeScope, options: NodeOptions) -> Self {
        Reconciler { kernel, scope, options, applied: None, generation: None }
    }

    /// The pods of the applied program (none while nothing is applied).
    #[must_use]
    pub fn programmed_pods(&self) -> std::collections::BTreeSet<palisade_policy::ObjectKey> {
        self.applied.as_ref().map(|a| a.program().pods.keys().cloned().collect()).unwrap_or_default()
    }

    /// The kernel, for reads (interfaces, the table) and cleanup.
    pub fn kernel(&mut self) -> &mut dyn Kernel {
        self.kernel.as_mut()
    }

    /// The applied program's local pods, as revocation reads them (empty
    /// while nothing is applied).
    #[must_use]
    pub fn local_view(&self) -> crate::revoke::LocalView {
        self.applied.as_ref().map(|a| crate::revoke::LocalView::of(a.program())).unwrap_or_default()
    }

    /// Brings the kernel to the program for `index`. `changes` are the
    /// objects changed since the previous sync (the index's journal): only
    /// what they can affect is recompiled. `None` means unknown: everything
    /// is recompiled and diffed.
    pub fn sync(
        &mut self,
        index: &ClusterIndex,
        changes: Option<&Changes>,
        ifaces: &BTreeMap<IpAddr, String>,
    ) -> Result<SyncReport, NftError> {
        let start = Instant::now();
        let (tx, outcome, update) = match (&mut self.applied, changes) {
            (Some(applied), Some(changes)) => {
                let (tx, update) = applied.update(index, changes, ifaces);
                (tx, Outcome::Incremental, update)
            }
            (Some(applied), None) => {
                let fresh = Incremental::with_options(index, self.scope.clone(), ifaces, self.options.clone());
                let tx = diff(applied.rendered(), fresh.rendered());
                *applied = fresh;
                (tx, Outcome::Incremental, UpdateStats { rebuilt: true, ..UpdateStats::default() })
            }
            (None, _) => {
                let fresh = Incremental::with_options(index, self.scope.clone(), ifaces, self.options.clone());
                let tx = full(fresh.rendered());
                self.applied = Some(fresh);
                (Some(tx), Outcome::Full, UpdateStats { rebuilt: true, ..UpdateStats::default() })
            }
        };
        let compiled = start.elapsed();
        let stats = self.applied.as_ref().map(|a| a.program().stats()).unwrap_or_default();
        let sets = self.applied.as_ref().map_or(0, |a| a.rendered().sets.len());
        let Some(tx) = tx else {
            return Ok(SyncReport {
                outcome: Outcome::Unchanged,
                compile: compiled,
                apply: Duration::ZERO,
                commands: 0,
                stats,
                update,
                sets,
            });
        };
        let commands = tx.len();
        let t = Instant::now();
        let applied = self.applied.as_ref().expect("a transaction comes with the table it leads to");
        let before = self.kernel.generation();
        if let Err(e) = self.kernel.apply(&tx, applied.rendered()) {
            // Unknown kernel state: the next sync replaces the whole table.
            self.applied = None;
            self.generation = None;
            return Err(e);
        }
        // Exactly one commit since `before` was ours: the kernel holds
        // exactly the applied table at the generation after it.
        let after = self.kernel.generation();
        self.generation = before.zip(after).and_then(|(b, a)| (a == next_generation(b)).then_some(a));
        Ok(SyncReport { outcome, compile: compiled, apply: t.elapsed(), commands, stats, update, sets })
    }

    /// Compares the kernel's table with what was applied, object by object,
    /// unless the ruleset generation shows that nothing was committed since
    /// the table was known to be right (then only the counters are read).
    /// On any difference (a foreign `nft delete table`, an edited rule or
    /// element) forgets the applied state, so the next sync replaces the
    /// table in one transaction. Nothing applied yet: nothing to compare
    /// (the next sync replaces the table anyway).
    pub fn check_drift(&mut self) -> Result<DriftCheck, NftError> {
        if self.applied.is_none() {
            return Ok(DriftCheck::default());
        }
        let before = self.kernel.generation();
        if before.is_some() && before == self.generation {
            return Ok(DriftCheck { counters: self.kernel.read_counters()?, ..DriftCheck::default() });
        }
        let table = self.kernel.read()?;
        let differences = self.drifted(table.as_ref());
        // Read at a generation that had not moved by the end of the read:
        // what was compared is what the kernel holds at it.
        if differences.is_empty() && before.is_some() && self.kernel.generation() == before {
            self.generation = before;
        }
        let counters = table.map(|t| t.counters).unwrap_or_default();
        Ok(DriftCheck { differences, counters, compared: true })
    }

    /// What differs between the kernel's table (`None`: no table) and the
    /// applied one; on any difference the applied state is forgotten.
    pub fn drifted(&mut self, table: Option<&KernelTable>) -> Vec<String> {
        let drift = match (&self.applied, table) {
            (Some(applied), Some(table)) => differences(applied.rendered(), &table.listed),
            (Some(_), None) => vec!["table inet palisade: missing".into()],
            (None, _) => Vec::new(),
        };
        if !drift.is_empty() {
            self.applied = None;
            self.generation = None;
        }
        drift
    }
}

/// The generation after `g` (the kernel skips 0 when it wraps).
fn next_generation(g: u32) -> u32 {
    match g.wrapping_add(1) {
        0 => 1,
        n => n,
    }
}
