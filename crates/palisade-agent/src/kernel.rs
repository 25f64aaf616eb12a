//! The kernel, behind a small trait: the agent's only way to change or read
//! the node's packet filter and its pod interfaces. [`NetlinkKernel`] is the
//! real one; [`crate::fake::FakeKernel`] keeps the table in memory, so the
//! reconciler, the drift repair and both sources are tested without root.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use palisade_dataplane::conntrack::{Conntrack, ConntrackError, Deleted, Entry, Sides, Tracker};

use palisade_dataplane::json::ListedTable;
use palisade_dataplane::nft::{Nft as _, NftCli, NftError};
use palisade_dataplane::ruleset::Table;
use palisade_dataplane::transaction::Transaction;

/// What the kernel holds of Palisade's table, as the agent compares and
/// reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KernelTable {
    /// Its objects as typed data (rules, elements), and what could not be
    /// read as anything Palisade writes.
    pub listed: ListedTable,
    /// Packets counted by each named counter.
    pub counters: Vec<(String, u64)>,
}

/// The node's packet filter and interfaces. Everything here blocks: the
/// driver calls it from its own thread, never from an async runtime's.
pub trait Kernel: Send {
    /// Applies `transaction`, which brings the table to `table`, atomically.
    fn apply(&mut self, transaction: &Transaction, table: &Table) -> Result<(), NftError>;
    /// Palisade's table as the kernel holds it; `None` when there is none.
    fn read(&mut self) -> Result<Option<KernelTable>, NftError>;
    /// Packet counts of Palisade's named counters (a cheap read: no sets).
    fn read_counters(&mut self) -> Result<Vec<(String, u64)>, NftError>;
    /// The ruleset generation, which every committed change (by anyone, to
    /// any table) moves on; `None` when it cannot be told.
    fn generation(&mut self) -> Option<u32>;
    /// The node-side interface of each local pod address.
    fn pod_interfaces(&mut self) -> BTreeMap<IpAddr, String>;
    /// The node's own addresses (traffic to and from them is not forwarded).
    fn node_addresses(&mut self) -> BTreeSet<IpAddr>;
    /// The tracked connections of `addrs`, as of now: for each address,
    /// those it opened and/or those it answers, as its [`Sides`] say (more
    /// may come back; each is judged anyway).
    fn connections(&mut self, addrs: &BTreeMap<IpAddr, Sides>) -> Result<Vec<Entry>, ConntrackError>;
    /// Deletes exactly `entries` from the connection tracking table.
    fn delete_connections(&mut self, entries: &[Entry]) -> Result<Deleted, ConntrackError>;
}

/// The real kernel of the calling thread's network namespace: transactions
/// over Palisade's netlink socket, listings through `nft -j`, interfaces
/// from the routing table, and connections from ctnetlink: by default with
/// dumps filtered by address (nothing per connection; each dump walks the
/// kernel's table), or, with [`NetlinkKernel::following_events`], from a
/// conntrack [`Tracker`] (started on first use, in the namespace of the
/// thread that uses it; the kernel then sends an event per connection
/// opened and ended).
#[derive(Debug, Default)]
pub struct NetlinkKernel {
    nft: NftCli,
    follow_events: bool,
    tracker: Option<Tracker>,
    conntrack: Option<Conntrack>,
}

impl NetlinkKernel {
    /// A kernel whose connections come from a conntrack [`Tracker`].
    #[must_use]
    pub fn following_events() -> Self {
        NetlinkKernel { follow_events: true, ..Self::default() }
    }

    /// Runs `f` on the ctnetlink socket (opened if need be). After an
    /// error, answers may still be queued on it: it is closed, and the next
    /// call opens a fresh one.
    fn with_conntrack<T>(
        &mut self,
        f: impl FnOnce(&mut Conntrack) -> Result<T, ConntrackError>,
    ) -> Result<T, ConntrackError> {
        if self.conntrack.is_none() {
            self.conntrack = Some(Conntrack::new()?);
        }
        let result = f(self.conntrack.as_mut().expect("opened above"));
        if result.is_err() {
            self.conntrack = None;
        }
        result
    }
}

impl Kernel for NetlinkKernel {
    fn apply(&mut self, transaction: &Transaction, table: &Table) -> Result<(), NftError> {
        self.nft.apply(transaction, table)
    }

    fn read(&mut self) -> Result<Option<KernelTable>, NftError> {
        Ok(self.nft.list_table()?.map(|l| KernelTable { listed: l.table(), counters: l.counters() }))
    }

    fn read_counters(&mut self) -> Result<Vec<(String, u64)>, NftError> {
        self.nft.list_counters()
    }

    fn generation(&mut self) -> Option<u32> {
        self.nft.generation().and_then(Result::ok)
    }

    fn pod_interfaces(&mut self) -> BTreeMap<IpAddr, String> {
        crate::routes::pod_interfaces()
    }

    fn node_addresses(&mut self) -> BTreeSet<IpAddr> {
        crate::routes::node_addresses()
    }

    fn connections(&mut self, addrs: &BTreeMap<IpAddr, Sides>) -> Result<Vec<Entry>, ConntrackError> {
        if !self.follow_events {
            return self.with_conntrack(|ct| ct.involving(addrs));
        }
        if self.tracker.is_none() {
            self.tracker = Some(Tracker::start()?);
        }
        self.tracker.as_ref().expect("started above").involving(addrs.keys().copied().collect())
    }

    fn delete_connections(&mut self, entries: &[Entry]) -> Result<Deleted, ConntrackError> {
        let result = self.with_conntrack(|ct| ct.delete(entries));
        if let Some(tracker) = &self.tracker {
            tracker.forget(entries.to_vec());
        }
        result
    }
}
