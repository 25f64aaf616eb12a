//! A live copy of the conntrack table's connections, indexed by endpoint
//! address, so that revocation costs what the affected flows cost.
//!
//! Why: the kernel walks its whole table for every dump, filtered or not.
//! Measured on this project's 2-core test machine with 250,000 entries: a
//! dump filtered by one address took 40 ms of kernel time, a whole dump
//! 335 ms. A change affecting one pod needs two (the connections it opens
//! and the ones it answers). The tracker instead follows ctnetlink's event
//! groups (new and destroyed connections) on a thread of its own, seeded by
//! one whole dump, and answers "the connections of these addresses" from
//! its index.
//!
//! Exactness: before answering, the thread reads every event the kernel
//! has queued (to `EAGAIN`), so a connection confirmed before the question
//! is in the answer. When the kernel drops events (`ENOBUFS`: the socket
//! buffer overflowed), the copy is rebuilt from a whole dump, and until
//! then questions are answered from dumps. Entries are keyed by their
//! original tuple and zone (the kernel's own identity of a connection);
//! the maps use std's keyed SipHash, since tenants choose the ports and
//! addresses of their connections.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::os::fd::{AsFd as _, AsRawFd as _, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread::JoinHandle;
use std::time::Duration;

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{
    AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, bind, recv, setsockopt, socket, sockopt,
};

use super::wire::{event, parse_entry};
use super::{Conntrack, ConntrackError, Entry, Filter, Tuple};

/// `NFNLGRP_CONNTRACK_NEW` and `NFNLGRP_CONNTRACK_DESTROY`, as bind groups.
const GROUPS: u32 = (1 << 0) | (1 << 2);
/// The event socket's receive buffer (set with `SO_RCVBUFFORCE`, which
/// needs `CAP_NET_ADMIN`, as the agent has): room for bursts of tens of
/// thousands of events between two reads.
const EVENT_BUFFER: usize = 32 << 20;

/// How often queued events are read when no question comes (the event
/// buffer holds seconds of a busy node's events).
const DRAIN_EVERY_MS: u16 = 50;

/// Connections by original tuple and zone, and by endpoint address.
#[derive(Debug, Default)]
pub struct Mirror {
    entries: HashMap<(Tuple, u16), (Tuple, u32)>,
    by_addr: HashMap<IpAddr, HashSet<(Tuple, u16)>>,
}

impl Mirror {
    /// The two endpoint addresses of a connection, as Palisade's rules saw
    /// them: who opened it and who answers it.
    fn endpoints(orig: &Tuple, reply: &Tuple) -> [IpAddr; 2] {
        [orig.src, reply.src]
    }

    /// Adds (or refreshes) a connection.
    pub fn insert(&mut self, e: Entry) {
        let key = (e.orig, e.zone);
        if let Some((old_reply, _)) = self.entries.insert(key, (e.reply, e.id)) {
            self.unindex(&key, &old_reply);
        }
        for addr in Self::endpoints(&e.orig, &e.reply) {
            self.by_addr.entry(addr).or_default().insert(key);
        }
    }

    fn unindex(&mut self, key: &(Tuple, u16), reply: &Tuple) {
        for addr in Self::endpoints(&key.0, reply) {
            if let Some(set) = self.by_addr.get_mut(&addr) {
                set.remove(key);
                if set.is_empty() {
                    self.by_addr.remove(&addr);
                }
            }
        }
    }

    /// Forgets a connection, unless the entry held under its tuple is
    /// another one (by id): a destroy event can arrive after the event of
    /// a new connection with the same tuple.
    pub fn remove(&mut self, e: &Entry) {
        let key = (e.orig, e.zone);
        if self.entries.get(&key).is_some_and(|(_, id)| *id == e.id)
            && let Some((reply, _)) = self.entries.remove(&key)
        {
            self.unindex(&key, &reply);
        }
    }

    /// Connections one of whose endpoints is in `addrs`.
    #[must_use]
    pub fn involving(&self, addrs: &[IpAddr]) -> Vec<Entry> {
        let mut keys: HashSet<&(Tuple, u16)> = HashSet::new();
        for addr in addrs {
            keys.extend(self.by_addr.get(addr).into_iter().flatten());
        }
        let mut out: Vec<Entry> = keys
            .into_iter()
            .filter_map(|k| {
                self.entries.get(k).map(|(reply, id)| Entry { orig: k.0, reply: *reply, zone: k.1, id: *id })
            })
            .collect();
        out.sort_unstable();
        out
    }

    /// Every connection held, in order.
    #[must_use]
    pub fn all(&self) -> Vec<Entry> {
        let mut out: Vec<Entry> = self
            .entries
            .iter()
            .map(|(k, (reply, id))| Entry { orig: k.0, reply: *reply, zone: k.1, id: *id })
            .collect();
        out.sort_unstable();
        out
    }

    /// Connections held.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether none are held.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.by_addr.clear();
    }
}

/// A question to the tracker's thread.
enum Question {
    /// Connections involving these addresses (`None`: every connection).
    Involving(Option<Vec<IpAddr>>, Sender<Result<Vec<Entry>, ConntrackError>>),
    /// Forget these (deleted, or found gone).
    Forget(Vec<Entry>),
}

/// The tracker: a thread following conntrack events; dropped, it stops.
#[derive(Debug)]
pub struct Tracker {
    questions: Option<Sender<Question>>,
    wake: OwnedFd,
    thread: Option<JoinHandle<()>>,
    rebuilds: Arc<AtomicUsize>,
}

impl Tracker {
    /// Subscribes to conntrack events in the calling thread's network
    /// namespace, seeds the copy with a whole dump and starts following.
    ///
    /// # Errors
    /// When the event socket cannot be opened or bound.
    pub fn start() -> Result<Self, ConntrackError> {
        Self::start_with_buffer(EVENT_BUFFER)
    }

    /// [`Tracker::start`] with an event socket buffer of `bytes` (tests
    /// make it small to force overflows).
    ///
    /// # Errors
    /// As [`Tracker::start`].
    pub fn start_with_buffer(bytes: usize) -> Result<Self, ConntrackError> {
        let events =
            socket(AddressFamily::Netlink, SockType::Raw, SockFlag::SOCK_CLOEXEC, SockProtocol::NetlinkNetFilter)
                .map_err(|errno| ConntrackError::Io { what: "open the event socket", errno })?;
        // Without CAP_NET_ADMIN the default buffer stays; overflows then
        // cost a rebuild, never a wrong answer.
        let _ = setsockopt(&events, sockopt::RcvBufForce, &bytes);
        bind(events.as_raw_fd(), &NetlinkAddr::new(0, GROUPS))
            .map_err(|errno| ConntrackError::Io { what: "join the conntrack event groups", errno })?;
        let (wake_read, wake) =
            nix::unistd::pipe().map_err(|errno| ConntrackError::Io { what: "make a pipe", errno })?;
        let (questions, asked) = channel();
        let dumps = Conntrack::new()?;
        let rebuilds = Arc::new(AtomicUsize::new(0));
        let counted = rebuilds.clone();
        let thread = std::thread::Builder::new()
            .name("conntrack".into())
            .spawn(move || {
                let mut state = State { mirror: Mirror::default(), synced: false, events, dumps, rebuilds: counted };
                state.run(&asked, &wake_read);
            })
            .map_err(|e| ConntrackError::Protocol(format!("cannot start the tracker thread: {e}")))?;
        Ok(Tracker { questions: Some(questions), wake, thread: Some(thread), rebuilds })
    }

    fn ask(&self, addrs: Option<Vec<IpAddr>>) -> Result<Vec<Entry>, ConntrackError> {
        let (answer, answered) = channel();
        let stopped = || ConntrackError::Protocol("the tracker thread stopped".into());
        self.questions.as_ref().ok_or_else(stopped)?.send(Question::Involving(addrs, answer)).map_err(|_| stopped())?;
        nix::unistd::write(&self.wake, &[1]).map_err(|errno| ConntrackError::Io { what: "wake the tracker", errno })?;
        answered.recv_timeout(Duration::from_secs(30)).map_err(|_| stopped())?
    }

    /// Connections one of whose endpoints (who opened it, who answers it)
    /// is in `addrs`, as of now.
    ///
    /// # Errors
    /// When the copy is being rebuilt and the dump fails, or the thread stopped.
    pub fn involving(&self, addrs: Vec<IpAddr>) -> Result<Vec<Entry>, ConntrackError> {
        self.ask(Some(addrs))
    }

    /// Forgets connections that were deleted or found gone. (A connection
    /// the kernel tracked before anyone listened has no event slot, so its
    /// end is never announced.)
    pub fn forget(&self, entries: Vec<Entry>) {
        if let Some(q) = &self.questions
            && q.send(Question::Forget(entries)).is_ok()
        {
            let _ = nix::unistd::write(&self.wake, &[1]);
        }
    }

    /// How many times the copy was rebuilt from a dump after the kernel
    /// dropped events (its socket buffer overflowed).
    #[must_use]
    pub fn rebuilds(&self) -> usize {
        self.rebuilds.load(Ordering::Relaxed)
    }

    /// Every connection, as of now.
    ///
    /// # Errors
    /// As [`Tracker::involving`].
    pub fn all(&self) -> Result<Vec<Entry>, ConntrackError> {
        self.ask(None)
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        drop(self.questions.take());
        let _ = nix::unistd::write(&self.wake, &[0]);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The tracker thread's state.
struct State {
    mirror: Mirror,
    /// Whether `mirror` holds every connection (seeded and no event lost).
    synced: bool,
    events: OwnedFd,
    dumps: Conntrack,
    rebuilds: Arc<AtomicUsize>,
}

impl State {
    fn run(&mut self, asked: &Receiver<Question>, wake: &OwnedFd) {
        self.resync();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            // Woken by questions only: events are read in batches every
            // DRAIN_EVERY_MS (and before each answer), not with one wake-up
            // per connection, which cost a busy node several microseconds
            // of CPU per connection.
            let mut fds = [PollFd::new(wake.as_fd(), PollFlags::POLLIN)];
            if poll(&mut fds, PollTimeout::from(DRAIN_EVERY_MS)).is_err() {
                continue;
            }
            let woken = fds[0].revents().is_some_and(|r| !r.is_empty());
            self.drain(&mut buf);
            if woken {
                let mut byte = [0u8; 64];
                let _ = nix::unistd::read(wake, &mut byte);
                loop {
                    match asked.try_recv() {
                        Ok(Question::Involving(addrs, answer)) => {
                            self.drain(&mut buf);
                            let _ = answer.send(self.answer(addrs));
                        }
                        Ok(Question::Forget(entries)) => entries.iter().for_each(|e| self.mirror.remove(e)),
                        Err(std::sync::mpsc::TryRecvError::Empty) => break,
                        Err(std::sync::mpsc::TryRecvError::Disconnected) => return,
                    }
                }
            }
        }
    }

    /// Applies every queued event; after an overflow, rebuilds the copy.
    fn drain(&mut self, buf: &mut [u8]) {
        loop {
            match recv(self.events.as_raw_fd(), buf, MsgFlags::MSG_DONTWAIT) {
                Ok(n) => {
                    for (removed, body) in event(&buf[..n]) {
                        if let Ok(Some(entry)) = parse_entry(body) {
                            if removed {
                                self.mirror.remove(&entry);
                            } else {
                                self.mirror.insert(entry);
                            }
                        }
                    }
                }
                Err(Errno::ENOBUFS) => {
                    self.synced = false;
                    self.rebuilds.fetch_add(1, Ordering::Relaxed);
                    // The kernel reports one overflow until the queue has
                    // emptied: empty it before the dump, so that an event
                    // lost during the dump is reported (and rebuilt) too.
                    while matches!(
                        recv(self.events.as_raw_fd(), buf, MsgFlags::MSG_DONTWAIT),
                        Ok(_) | Err(Errno::ENOBUFS)
                    ) {}
                }
                // EAGAIN: nothing more queued.
                Err(_) => return,
            }
            if !self.synced {
                self.resync();
            }
        }
    }

    /// Rebuilds the copy from a whole dump (events keep queueing meanwhile
    /// and are applied after it).
    fn resync(&mut self) {
        self.mirror.clear();
        let mirror = &mut self.mirror;
        self.synced = self.dumps.dump(Filter::All, |e| mirror.insert(e)).is_ok();
    }

    fn answer(&mut self, addrs: Option<Vec<IpAddr>>) -> Result<Vec<Entry>, ConntrackError> {
        if !self.synced {
            self.resync();
        }
        if !self.synced {
            return Err(ConntrackError::Protocol("the conntrack copy cannot be rebuilt".into()));
        }
        Ok(match addrs {
            Some(addrs) => self.mirror.involving(&addrs),
            None => self.mirror.all(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conntrack::{TCP, UDP};

    fn entry(src: &str, dst: &str, real_dst: &str, protocol: u8, sport: u16) -> Entry {
        let orig = Tuple { src: src.parse().unwrap(), dst: dst.parse().unwrap(), protocol, sport, dport: 80 };
        let reply = Tuple { src: real_dst.parse().unwrap(), dst: orig.src, protocol, sport: 8080, dport: sport };
        Entry { orig, reply, zone: 0, id: u32::from(sport) }
    }

    #[test]
    fn connections_are_found_by_either_endpoint_and_forgotten_on_destroy() {
        let mut m = Mirror::default();
        let a = entry("10.0.0.1", "10.96.0.1", "10.0.0.3", TCP, 1);
        let b = entry("10.0.0.2", "10.0.0.3", "10.0.0.3", UDP, 2);
        m.insert(a);
        m.insert(b);
        let addr = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(m.involving(&[addr("10.0.0.3")]), {
            let mut v = vec![a, b];
            v.sort_unstable();
            v
        });
        assert_eq!(m.involving(&[addr("10.0.0.1")]), [a]);
        assert!(m.involving(&[addr("10.96.0.1")]).is_empty(), "a Service address is not an endpoint");
        m.remove(&a);
        assert_eq!(m.involving(&[addr("10.0.0.3"), addr("10.0.0.1")]), [b]);
        assert!(!m.by_addr.contains_key(&addr("10.0.0.1")), "no empty index entries left");
        // The same tuple again (a new connection): refreshed, not doubled;
        // the old one's late destroy event leaves the new one in place.
        let mut b2 = b;
        b2.id = 99;
        m.insert(b2);
        assert_eq!(m.len(), 1);
        m.remove(&b);
        assert_eq!(m.involving(&[addr("10.0.0.2")]), [b2]);
    }
}
