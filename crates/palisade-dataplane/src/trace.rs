//! Following one packet through Palisade's chains: a marker table sets
//! `meta nftrace` on the packets of one flow before Palisade's chains see
//! them, and nf_tables reports, over netlink (`NFNLGRP_NFTRACE`), every
//! rule the marked packet matched and every chain it returned from, with
//! the verdicts. `palisade trace` and `palisade lab trace` map them back to
//! policies and rules.

use std::net::IpAddr;
use std::os::fd::{AsRawFd as _, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{MsgFlags, NetlinkAddr, bind, recv};
use palisade_policy::Protocol;

use crate::netlink::{attributes, messages, netfilter_socket};
use crate::nft::{NftCli, NftError};

/// The marker table's name (Palisade's own, apart from its ruleset).
pub const TRACE_TABLE: &str = "palisade-trace";
/// The marker chain's priority: before Palisade's egress chain (-5).
pub const TRACE_PRIORITY: i32 = -10;

const NFNLGRP_NFTRACE: u32 = 9;
/// Palisade's last base chain of the forward hook.
const INGRESS_BASE: &str = "ingress";
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFT_MSG_TRACE: u16 = 17;
const NFTA_TRACE_TABLE: u16 = 1;
const NFTA_TRACE_CHAIN: u16 = 2;
const NFTA_TRACE_RULE_HANDLE: u16 = 3;
const NFTA_TRACE_TYPE: u16 = 4;
const NFTA_TRACE_VERDICT: u16 = 5;
const NFTA_TRACE_ID: u16 = 6;
const NFTA_VERDICT_CODE: u16 = 1;
const NFTA_VERDICT_CHAIN: u16 = 2;

/// What a trace event reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TraceKind {
    /// The base chain's policy applied (no rule decided).
    Policy,
    /// The packet returned from a chain (its end reached).
    Return,
    /// A rule matched.
    Rule,
}

/// A verdict in a trace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TraceVerdict {
    /// `accept`.
    Accept,
    /// `drop`.
    Drop,
    /// `continue` (a rule without a verdict matched: a counter, a log).
    Continue,
    /// `return`.
    Return,
    /// `jump CHAIN`.
    Jump(String),
    /// `goto CHAIN`.
    Goto(String),
    /// Another code.
    Other(i32),
}

impl std::fmt::Display for TraceVerdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TraceVerdict::Accept => f.write_str("accept"),
            TraceVerdict::Drop => f.write_str("drop"),
            TraceVerdict::Continue => f.write_str("continue"),
            TraceVerdict::Return => f.write_str("return"),
            TraceVerdict::Jump(c) => write!(f, "jump {c}"),
            TraceVerdict::Goto(c) => write!(f, "goto {c}"),
            TraceVerdict::Other(code) => write!(f, "verdict {code}"),
        }
    }
}

/// One trace event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceEvent {
    /// The packet's trace id.
    pub id: u32,
    /// The table.
    pub table: String,
    /// The chain.
    pub chain: String,
    /// The rule's handle (for [`TraceKind::Rule`]).
    pub handle: Option<u64>,
    /// What it reports.
    pub kind: TraceKind,
    /// The verdict, if any.
    pub verdict: Option<TraceVerdict>,
}

/// Parses one `NFT_MSG_TRACE` body (after its nfgenmsg).
fn parse_event(body: &[u8]) -> Option<TraceEvent> {
    let be32 = |v: &[u8]| v.get(..4).map(|b| u32::from_be_bytes(b.try_into().expect("4 bytes")));
    let text = |v: &[u8]| String::from_utf8_lossy(v).trim_end_matches('\0').to_string();
    let mut e = TraceEvent {
        id: 0,
        table: String::new(),
        chain: String::new(),
        handle: None,
        kind: TraceKind::Rule,
        verdict: None,
    };
    for (kind, value) in attributes(body) {
        match kind {
            NFTA_TRACE_TABLE => e.table = text(value),
            NFTA_TRACE_CHAIN => e.chain = text(value),
            NFTA_TRACE_RULE_HANDLE => {
                e.handle = value.get(..8).map(|b| u64::from_be_bytes(b.try_into().expect("8 bytes")));
            }
            NFTA_TRACE_TYPE => {
                e.kind = match be32(value)? {
                    1 => TraceKind::Policy,
                    2 => TraceKind::Return,
                    _ => TraceKind::Rule,
                };
            }
            NFTA_TRACE_ID => e.id = be32(value)?,
            NFTA_TRACE_VERDICT => {
                let (mut code, mut chain) = (None, None);
                for (k, v) in attributes(value) {
                    match k {
                        NFTA_VERDICT_CODE => code = be32(v).map(u32::cast_signed),
                        NFTA_VERDICT_CHAIN => chain = Some(text(v)),
                        _ => {}
                    }
                }
                e.verdict = code.map(|c| match (c, chain) {
                    (1, _) => TraceVerdict::Accept,
                    (0, _) => TraceVerdict::Drop,
                    (-1, _) => TraceVerdict::Continue,
                    (-5, _) => TraceVerdict::Return,
                    (-3, Some(chain)) => TraceVerdict::Jump(chain),
                    (-4, Some(chain)) => TraceVerdict::Goto(chain),
                    (other, _) => TraceVerdict::Other(other),
                });
            }
            _ => {}
        }
    }
    Some(e)
}

/// Why tracing failed.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// The trace socket.
    #[error("trace {what}: {errno}")]
    Io {
        /// The step.
        what: &'static str,
        /// The error.
        errno: Errno,
    },
    /// The marker table.
    #[error("trace marker table: {0}")]
    Nft(#[from] NftError),
}

/// A socket receiving nf_tables trace events of the namespace of the
/// thread that opened it.
#[derive(Debug)]
pub struct Tracer {
    fd: OwnedFd,
}

impl Tracer {
    /// Subscribes to trace events.
    ///
    /// # Errors
    /// The socket cannot be made or bound (needs `CAP_NET_ADMIN`).
    pub fn open() -> Result<Tracer, TraceError> {
        let fd = netfilter_socket().map_err(|(what, errno)| TraceError::Io { what, errno })?;
        bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 1 << (NFNLGRP_NFTRACE - 1)))
            .map_err(|errno| TraceError::Io { what: "bind", errno })?;
        Ok(Tracer { fd })
    }

    /// The events of the first traced packet (its trace id), read until it
    /// is dropped, or accepted at Palisade's ingress hook (its last), or
    /// `settle` after its last event, or until `timeout`; an empty list
    /// when no packet was traced.
    ///
    /// # Errors
    /// The socket failed.
    pub fn first_packet(&self, timeout: Duration, settle: Duration) -> Result<Vec<TraceEvent>, TraceError> {
        let deadline = Instant::now() + timeout;
        let mut buf = vec![0u8; 1 << 16];
        let mut out: Vec<TraceEvent> = Vec::new();
        let mut last = None::<Instant>;
        let mut at_ingress = false;
        loop {
            let now = Instant::now();
            let until = last.map_or(deadline, |l| (l + settle).min(deadline));
            if now >= until {
                return Ok(out);
            }
            let wait = u16::try_from((until - now).as_millis()).unwrap_or(u16::MAX);
            let mut fds = [PollFd::new(std::os::fd::AsFd::as_fd(&self.fd), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::from(wait)) {
                Ok(0) | Err(Errno::EINTR) => continue,
                Ok(_) => {}
                Err(errno) => return Err(TraceError::Io { what: "poll", errno }),
            }
            let n = match recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::MSG_DONTWAIT) {
                Ok(n) => n,
                Err(Errno::EAGAIN | Errno::EINTR | Errno::ENOBUFS) => continue,
                Err(errno) => return Err(TraceError::Io { what: "receive", errno }),
            };
            for m in messages(&buf[..n]).flatten() {
                if m.kind != (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_TRACE {
                    continue;
                }
                let Some(e) = m.body.get(4..).and_then(parse_event) else { continue };
                if out.first().is_some_and(|f| f.id != e.id) {
                    continue;
                }
                let ours = e.table == crate::ruleset::TABLE;
                at_ingress |= ours && e.chain == INGRESS_BASE;
                let done = e.verdict == Some(TraceVerdict::Drop)
                    || (ours && at_ingress && (e.verdict == Some(TraceVerdict::Accept) || e.kind == TraceKind::Policy));
                out.push(e);
                last = Some(Instant::now());
                if done {
                    return Ok(out);
                }
            }
        }
    }
}

/// The flow to mark: source and destination address, protocol and
/// destination port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceMatch {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Protocol.
    pub protocol: Protocol,
    /// Destination port.
    pub port: u16,
}

/// The marker table, removed on drop (also on panic).
#[derive(Debug)]
pub struct Marker {
    nft: NftCli,
}

impl Marker {
    /// Creates the marker table for `flow` through `nft` (replacing a
    /// marker left by an earlier trace).
    ///
    /// # Errors
    /// `nft` refused the table.
    pub fn install(nft: NftCli, flow: &TraceMatch) -> Result<Marker, TraceError> {
        let family = if flow.src.is_ipv6() { "ip6" } else { "ip" };
        let protocol = flow.protocol.to_string().to_lowercase();
        let script = format!(
            "table inet {TRACE_TABLE}\ndelete table inet {TRACE_TABLE}\ntable inet {TRACE_TABLE} {{\n  chain select_flow {{\n    \
             type filter hook forward priority {TRACE_PRIORITY}; policy accept;\n    \
             {family} saddr {} {family} daddr {} meta l4proto {protocol} th dport {} meta nftrace set 1\n  }}\n}}\n",
            flow.src, flow.dst, flow.port
        );
        nft.script(&script)?;
        Ok(Marker { nft })
    }
}

impl Drop for Marker {
    fn drop(&mut self) {
        let _ = self.nft.script(&format!("delete table inet {TRACE_TABLE}\n"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nflog::attr;

    #[test]
    fn events_carry_chain_rule_and_verdict() {
        let mut body = Vec::new();
        attr(&mut body, NFTA_TRACE_TABLE, b"palisade\0");
        attr(&mut body, NFTA_TRACE_CHAIN, b"pod/x/a/ingress\0");
        attr(&mut body, NFTA_TRACE_RULE_HANDLE, &42u64.to_be_bytes());
        attr(&mut body, NFTA_TRACE_TYPE, &3u32.to_be_bytes());
        attr(&mut body, NFTA_TRACE_ID, &7u32.to_be_bytes());
        let mut verdict = Vec::new();
        attr(&mut verdict, NFTA_VERDICT_CODE, &(-3i32).to_be_bytes());
        attr(&mut verdict, NFTA_VERDICT_CHAIN, b"policy/x/p/ingress\0");
        attr(&mut body, NFTA_TRACE_VERDICT | 0x8000, &verdict);
        let e = parse_event(&body).unwrap();
        assert_eq!((e.id, e.table.as_str(), e.chain.as_str(), e.handle), (7, "palisade", "pod/x/a/ingress", Some(42)));
        assert_eq!(e.kind, TraceKind::Rule);
        assert_eq!(e.verdict, Some(TraceVerdict::Jump("policy/x/p/ingress".into())));
        assert_eq!(e.verdict.unwrap().to_string(), "jump policy/x/p/ingress");
    }
}

/// What one trace saw: the first marked packet's events, and the table's
/// rules by handle (read after the packet, while the marker still stands).
#[derive(Clone, Debug, Default)]
pub struct Traced {
    /// The packet's events.
    pub events: Vec<TraceEvent>,
    /// Palisade's rules by handle: chain and position.
    pub positions: std::collections::BTreeMap<u64, (String, usize)>,
}

/// Traces the next packet of `flow` in the calling thread's namespace:
/// subscribes, marks the flow, calls `send` (which makes a packet, or
/// does nothing on a node where a real one will come), and waits up to
/// `timeout` for it. The marker is removed before this returns.
///
/// # Errors
/// Tracing could not start (needs `CAP_NET_ADMIN` and `nft`).
pub fn trace_once(flow: &TraceMatch, send: impl FnOnce(), timeout: Duration) -> Result<Traced, TraceError> {
    let tracer = Tracer::open()?;
    let marker = Marker::install(NftCli::default(), flow)?;
    send();
    let events = tracer.first_packet(timeout, Duration::from_millis(300))?;
    let positions = NftCli::default().rule_positions().unwrap_or_default();
    drop(marker);
    Ok(Traced { events, positions })
}
