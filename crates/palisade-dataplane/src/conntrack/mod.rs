//! The kernel's connection tracking table, over ctnetlink: dumps (whole,
//! or filtered in the kernel by one address) and targeted deletes.
//!
//! Revocation (see the agent's `revoke` module) reads the entries of the
//! flows a change may forbid and deletes exactly those it now denies. It
//! never flushes: a delete names one entry by its original tuple, its zone
//! and its id, so an entry that has been replaced by a new connection with
//! the same tuple is not touched (the kernel answers `ENOENT`, counted as
//! gone).
//!
//! Each entry is read with both tuples: behind a Service the original
//! destination is the Service's address and the reply tuple's source is
//! the pod that answers, which is what Palisade's forward-hook rules saw.

mod tracker;
mod wire;

use std::net::IpAddr;
use std::os::fd::OwnedFd;

pub use tracker::{Mirror, Tracker};
pub use wire::ConntrackError;
use wire::open;

/// IP protocol numbers Palisade's policies speak of.
pub const TCP: u8 = 6;
/// UDP.
pub const UDP: u8 = 17;
/// SCTP.
pub const SCTP: u8 = 132;

/// One direction of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tuple {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// IP protocol number.
    pub protocol: u8,
    /// Source port (0 for protocols without ports).
    pub sport: u16,
    /// Destination port (0 for protocols without ports).
    pub dport: u16,
}

impl Tuple {
    /// The same connection seen from the other end.
    #[must_use]
    pub fn reversed(self) -> Tuple {
        Tuple { src: self.dst, dst: self.src, protocol: self.protocol, sport: self.dport, dport: self.sport }
    }
}

/// One conntrack entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Entry {
    /// As its first packet went.
    pub orig: Tuple,
    /// As its answers go (after NAT: the real destination is `reply.src`).
    pub reply: Tuple,
    /// Its conntrack zone.
    pub zone: u16,
    /// Its id: a delete with it touches this entry only.
    pub id: u32,
}

/// A connection as the forward hook's rules judged its first packet:
/// source before source NAT, destination and port after destination NAT.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowView {
    /// Who opened the connection.
    pub src: IpAddr,
    /// Who answers it.
    pub dst: IpAddr,
    /// IP protocol number.
    pub protocol: u8,
    /// Destination port, after destination NAT.
    pub port: u16,
}

impl Entry {
    /// The connection as Palisade's rules saw it.
    #[must_use]
    pub fn flow(&self) -> FlowView {
        FlowView { src: self.orig.src, dst: self.reply.src, protocol: self.orig.protocol, port: self.reply.sport }
    }
}

/// Which entries a dump returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Filter {
    /// Every entry, of both families.
    All,
    /// Entries whose original source is this address (connections it opened).
    OrigSrc(IpAddr),
    /// Entries whose reply source is this address (connections it
    /// answers, also through destination NAT).
    ReplySrc(IpAddr),
}

/// What a delete did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Deleted {
    /// Entries deleted.
    pub deleted: usize,
    /// Entries already gone (ended, or replaced by a new connection).
    pub gone: usize,
}

/// A ctnetlink socket of the calling thread's network namespace.
#[derive(Debug)]
pub struct Conntrack {
    fd: OwnedFd,
    seq: u32,
}

impl Conntrack {
    /// Opens the socket.
    ///
    /// # Errors
    /// When the socket cannot be opened.
    pub fn new() -> Result<Self, ConntrackError> {
        Ok(Conntrack { fd: open()?, seq: 0x6374_0000 })
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    /// Hands every entry `filter` selects to `each`. The kernel walks the
    /// whole table for any filter; a filter saves copying and parsing what
    /// it leaves out.
    ///
    /// # Errors
    /// When the kernel refuses the dump or its answer is malformed.
    pub fn dump(&mut self, filter: Filter, each: impl FnMut(Entry)) -> Result<(), ConntrackError> {
        let seq = self.next_seq();
        wire::dump(&self.fd, seq, filter, each)
    }

    /// Every entry `filter` selects.
    ///
    /// # Errors
    /// As [`Conntrack::dump`].
    pub fn entries(&mut self, filter: Filter) -> Result<Vec<Entry>, ConntrackError> {
        let mut out = Vec::new();
        self.dump(filter, |e| out.push(e))?;
        Ok(out)
    }

    /// Deletes exactly `entries` (by tuple, zone and id).
    ///
    /// # Errors
    /// When the kernel refuses a delete for another reason than the entry
    /// being gone.
    pub fn delete(&mut self, entries: &[Entry]) -> Result<Deleted, ConntrackError> {
        let first = self.seq.wrapping_add(1);
        self.seq = self.seq.wrapping_add(u32::try_from(entries.len()).unwrap_or(u32::MAX));
        wire::delete(&self.fd, first, entries)
    }

    /// Creates entries (for tests and benchmarks): each is confirmed, lives
    /// `timeout_s` seconds and, for TCP, is established.
    ///
    /// # Errors
    /// When the kernel refuses one.
    pub fn create(&mut self, entries: &[Entry], timeout_s: u32) -> Result<(), ConntrackError> {
        let first = self.seq.wrapping_add(1);
        self.seq = self.seq.wrapping_add(u32::try_from(entries.len()).unwrap_or(u32::MAX));
        wire::create(&self.fd, first, entries, timeout_s)
    }
}
