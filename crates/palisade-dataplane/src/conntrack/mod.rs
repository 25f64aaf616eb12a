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

use std::collections::{BTreeMap, BTreeSet};
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

/// Which of an address's connections to look for: those it opened (it is
/// their original source: its egress judged them), those it answers (it
/// is their reply source, also behind DNAT: its ingress judged them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sides {
    /// Connections the address opened.
    pub opened: bool,
    /// Connections the address answers.
    pub answered: bool,
}

impl Sides {
    /// Both.
    pub const BOTH: Sides = Sides { opened: true, answered: true };

    /// Both `self`'s and `other`'s.
    #[must_use]
    pub fn and(self, other: Sides) -> Sides {
        Sides { opened: self.opened || other.opened, answered: self.answered || other.answered }
    }

    /// Whether `entry` is one of `addr`'s connections of these sides.
    #[must_use]
    pub fn selects(self, addr: IpAddr, entry: &Entry) -> bool {
        (self.opened && entry.orig.src == addr) || (self.answered && entry.reply.src == addr)
    }

    fn walks(self) -> usize {
        usize::from(self.opened) + usize::from(self.answered)
    }
}

/// One dump of a plan (see [`plan`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dump {
    /// Every entry, both families, copied out: one walk.
    All,
    /// A walk per IPv4 address and side, filtered in the kernel (by
    /// original source, by reply source): only the matches are copied.
    FilteredV4,
    /// Every IPv4 entry, copied out: one walk.
    FamilyV4,
    /// Every IPv6 entry, copied out (the kernel's IPv6 address filter is
    /// not used, see `wire::dump`): one walk.
    FamilyV6,
}

impl Dump {
    fn filters(self, v4: &[(IpAddr, Sides)]) -> Vec<Filter> {
        match self {
            Dump::All => vec![Filter::All],
            Dump::FamilyV4 => vec![Filter::Family(false)],
            Dump::FamilyV6 => vec![Filter::Family(true)],
            Dump::FilteredV4 => v4
                .iter()
                .flat_map(|(a, sides)| {
                    [sides.opened.then_some(Filter::OrigSrc(*a)), sides.answered.then_some(Filter::ReplySrc(*a))]
                })
                .flatten()
                .collect(),
        }
    }
}

/// Copying an entry out costs about this many times walking past one
/// (measured on this project's test machine: a whole dump of 250,000
/// entries 330 ms, a walk that copies nothing 27 ms).
pub const COPY_PER_WALK: usize = 10;

/// The cheapest dumps to find the connections asked for: `v4_walks`
/// kernel-filtered walks would find the IPv4 ones (one per address and
/// side), and (`v6`) some IPv6 ones are asked for, in a table of `entries`
/// entries and `buckets` hash buckets, where a walk costs about `buckets +
/// entries` and a copied entry [`COPY_PER_WALK`] times a walked one. A
/// table whose copy costs no more than a walk is copied whole in one walk.
/// Otherwise IPv4 takes its filtered walks, or the family copied out when
/// that is cheaper; IPv6 takes its family copied out (of unknown size,
/// and usually the smaller part of a node's table).
#[must_use]
pub fn plan(v4_walks: usize, v6: bool, entries: usize, buckets: usize) -> Vec<Dump> {
    if v4_walks == 0 && !v6 {
        return Vec::new();
    }
    let walk = buckets.saturating_add(entries);
    let copied = entries.saturating_mul(COPY_PER_WALK);
    if copied <= walk {
        return vec![Dump::All];
    }
    let mut out = Vec::new();
    if v4_walks > 0 {
        let filtered = walk.saturating_mul(v4_walks);
        out.push(if filtered <= walk.saturating_add(copied) { Dump::FilteredV4 } else { Dump::FamilyV4 });
    }
    if v6 {
        out.push(Dump::FamilyV6);
    }
    out
}

/// Which entries a dump returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Filter {
    /// Every entry, of both families.
    All,
    /// Every entry of one family (`true`: IPv6).
    Family(bool),
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

    /// The entries one of whose endpoints (who opened the connection, who
    /// answers it) is in `addrs`, found by dumps, the cheapest plan by
    /// [`plan`] for the table's size (`nf_conntrack_count`) and its hash
    /// buckets (`nf_conntrack_buckets`): every dump walks every bucket of
    /// the kernel's table, which is shared by all network namespaces.
    ///
    /// # Errors
    /// As [`Conntrack::dump`].
    pub fn involving(&mut self, addrs: &BTreeMap<IpAddr, Sides>) -> Result<Vec<Entry>, ConntrackError> {
        let read = |name: &str| {
            std::fs::read_to_string(format!("/proc/sys/net/netfilter/{name}"))
                .ok()
                .and_then(|t| t.trim().parse::<usize>().ok())
        };
        let v4: Vec<(IpAddr, Sides)> = addrs.iter().filter(|(a, _)| a.is_ipv4()).map(|(a, s)| (*a, *s)).collect();
        let v6 = addrs.keys().any(IpAddr::is_ipv6);
        let walks = v4.iter().map(|(_, s)| s.walks()).sum();
        let entries = read("nf_conntrack_count").unwrap_or(usize::MAX);
        let dumps = plan(walks, v6, entries, read("nf_conntrack_buckets").unwrap_or(0));
        let mut found = BTreeSet::new();
        for filter in dumps.iter().flat_map(|d| d.filters(&v4)) {
            self.dump(filter, |e| {
                let mine = |a: &IpAddr| addrs.get(a).is_some_and(|s| s.selects(*a, &e));
                if mine(&e.orig.src) || mine(&e.reply.src) {
                    found.insert(e);
                }
            })?;
        }
        Ok(found.into_iter().collect())
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

#[cfg(test)]
mod tests {
    use super::{Dump, plan};

    #[test]
    fn small_tables_are_copied_whole_and_large_ones_walked_with_the_filter() {
        const BUCKETS: usize = 262_144;
        // The lab: a handful of entries; one walk instead of three.
        assert_eq!(plan(2, true, 20, BUCKETS), [Dump::All]);
        assert_eq!(plan(2, false, 20, BUCKETS), [Dump::All]);
        // 250,000 entries: the kernel-filtered walks (one per address and side).
        assert_eq!(plan(2, false, 250_000, BUCKETS), [Dump::FilteredV4]);
        assert_eq!(plan(1, true, 250_000, BUCKETS), [Dump::FilteredV4, Dump::FamilyV6]);
        // Many addresses: the family copied once is cheaper than their walks.
        assert_eq!(plan(80, false, 250_000, BUCKETS), [Dump::FamilyV4]);
        assert_eq!(plan(80, true, 250_000, BUCKETS), [Dump::FamilyV4, Dump::FamilyV6]);
        assert!(plan(0, false, 250_000, BUCKETS).is_empty());
    }
}
