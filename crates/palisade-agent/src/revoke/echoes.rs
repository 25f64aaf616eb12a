//! Echoes of revoked UDP flows. When a UDP flow is revoked, a datagram
//! its peer sent just before (an answer already in flight) reaches the
//! node after the entry is gone; if the policies allow the peer to open a
//! flow to the pod (a pod whose own egress was forbidden, say), conntrack
//! takes that datagram for a new flow in the reverse direction, and the
//! pod's next datagrams ride on it as replies: the revoked flow is back.
//! A TCP connection cannot come back this way (the mid-stream rule drops a
//! new connection without SYN), and an SCTP chunk without INIT opens
//! nothing. So after a revocation the agent looks again, twice (100 ms
//! and 600 ms later, when every datagram in flight has landed), and
//! deletes an entry that is exactly the reverse of a revoked flow the
//! current state still denies: the same five-tuple is the same flow.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use palisade_dataplane::conntrack::{Entry, Sides, UDP};
use palisade_policy::ClusterIndex;

use super::{LocalAddrs, denied};
use crate::kernel::Kernel;
use crate::metrics::{Metrics, RevokeLabel};

/// When the looks happen, after a revocation.
const LOOKS: [Duration; 2] = [Duration::from_millis(100), Duration::from_millis(600)];
/// Revoked flows remembered at most (one change revoking more is looked
/// at for its first flows only; the rest end on their own timeouts).
const REMEMBERED: usize = 100_000;

/// The UDP flows one revocation step deleted, and how many of their looks
/// are done (the next is due `LOOKS[done]` after `at`).
#[derive(Debug)]
struct Step {
    at: Instant,
    done: usize,
    flows: Vec<Entry>,
}

impl Step {
    fn due(&self) -> Instant {
        self.at + LOOKS[self.done]
    }
}

/// Revoked UDP flows, and when to look for their echoes.
#[derive(Debug, Default)]
pub struct Echoes {
    /// One entry per revocation step with UDP flows still to look at.
    pending: Vec<Step>,
}

impl Echoes {
    /// Remembers the UDP flows among `revoked`.
    pub fn revoked(&mut self, revoked: &[Entry], now: Instant) {
        let remembered: usize = self.pending.iter().map(|step| step.flows.len()).sum();
        let room = REMEMBERED.saturating_sub(remembered);
        let flows: Vec<Entry> = revoked.iter().filter(|e| e.orig.protocol == UDP).take(room).copied().collect();
        if !flows.is_empty() {
            self.pending.push(Step { at: now, done: 0, flows });
        }
    }

    /// When the next look is due, if any.
    #[must_use]
    pub fn next(&self) -> Option<Instant> {
        self.pending.iter().map(Step::due).min()
    }

    /// Looks for echoes of the flows whose look is due at `now`: deletes
    /// the entries that reverse a revoked flow the current state (`index`,
    /// the local pods' addresses `local`) still denies. Returns how many
    /// were deleted.
    pub fn look(
        &mut self,
        now: Instant,
        (index, local, node_addrs): (&ClusterIndex, &LocalAddrs, &BTreeSet<IpAddr>),
        kernel: &mut dyn Kernel,
        metrics: &Metrics,
    ) -> usize {
        let mut due = Vec::new();
        for step in &mut self.pending {
            if step.due() <= now {
                step.done += 1;
                due.extend_from_slice(&step.flows);
            }
        }
        self.pending.retain(|step| step.done < LOOKS.len());
        if due.is_empty() {
            return 0;
        }
        let still: Vec<Entry> = denied(index, local, node_addrs, &due).into_iter().map(|(e, _)| e).collect();
        let reversed: BTreeSet<_> = still.iter().map(|e| (e.reply, e.zone)).collect();
        let addrs: BTreeMap<IpAddr, Sides> =
            still.iter().flat_map(|e| [e.orig.src, e.reply.src]).map(|a| (a, Sides::BOTH)).collect();
        if addrs.is_empty() {
            return 0;
        }
        let echoes: Vec<Entry> = match kernel.connections(&addrs) {
            Ok(entries) => entries.into_iter().filter(|e| reversed.contains(&(e.orig, e.zone))).collect(),
            Err(e) => {
                metrics.revoke_errors.inc();
                tracing::warn!(error = %e, "cannot look for echoes of revoked flows");
                return 0;
            }
        };
        if echoes.is_empty() {
            return 0;
        }
        match kernel.delete_connections(&echoes) {
            Ok(report) => {
                let label = RevokeLabel { reason: "network_policy".into(), trigger: "echo".into() };
                metrics.revoked.get_or_create(&label).inc_by(u64::try_from(report.deleted).unwrap_or(u64::MAX));
                tracing::info!(revoked = report.deleted, "revoked echoes of revoked flows");
                report.deleted
            }
            Err(e) => {
                metrics.revoke_errors.inc();
                tracing::warn!(error = %e, "cannot delete echoes of revoked flows");
                0
            }
        }
    }
}
