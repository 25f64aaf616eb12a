//! Palisade's own nf_tables netlink path: every transaction the renderer
//! produces, encoded as one nfnetlink batch and sent on a socket kept open
//! between transactions.
//!
//! Why not the `nft` tool for every change: each `nft` run costs a process
//! spawn, a read-back of the table before it changes anything (with tens of
//! thousands of interval elements, tens of milliseconds), and, when the
//! transaction deleted anything, a wait of one RCU grace period when it
//! closes its socket (see [`Socket`]). Together that put 20-40 ms on every
//! policy change. The kernel needs none of it: it resolves tables, chains
//! and sets by name, and a batch is committed whole or not at all.
//!
//! It encodes the typed [`Transaction`] directly (tables, chains, counters,
//! hash and interval sets and verdict maps with their elements, and the rule
//! statements listed in `netlink/rules.rs`): the same commands the `nft -j`
//! serializer (`json`) writes, with no JSON in between. The kernel tests
//! apply transactions both ways, through this module and through `nft -j`,
//! and require identical listings. What cannot be encoded (an element that
//! does not fit its set, a lookup of a set the table lacks) is an
//! [`EncodeError`], never a silent fallback.

mod elements;
mod objects;
mod rules;

use std::os::fd::{AsRawFd as _, OwnedFd};
use std::sync::Mutex;
use std::time::Duration;

use nix::sys::socket::{
    AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, recv, sendto, setsockopt, socket, sockopt,
};
use nix::sys::time::TimeVal;

use crate::nft::{EncodeError, NftError};
use crate::ruleset::{Table, Verdict};
use crate::transaction::Transaction;

const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLA_F_NESTED: u16 = 0x8000;
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 16;
const NFNL_MSG_BATCH_END: u16 = 17;
const NFPROTO_INET: u8 = 1;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_DATA_VALUE: u16 = 1;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;
const NFTA_VERDICT_CHAIN: u16 = 2;
const NFT_JUMP: i32 = -3;
const NFT_RETURN: i32 = -5;
const NF_DROP: i32 = 0;
const NF_ACCEPT: i32 = 1;
/// How long to wait for the kernel's answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// An nfnetlink batch: messages between a begin and an end marker.
#[derive(Debug, Default)]
pub struct Batch {
    bytes: Vec<u8>,
    seq: u32,
    /// Start of the last message, which asks for the acknowledgement.
    last: Option<usize>,
    /// Ids for sets created in this batch.
    set_ids: u32,
    /// For each message (by sequence number - 1), the index of the command
    /// it encodes; `None` for the batch markers.
    origins: Vec<Option<usize>>,
    /// The command being encoded.
    command: Option<usize>,
}

/// Appends a netlink attribute; `body` writes its payload.
pub(crate) fn attr(out: &mut Vec<u8>, kind: u16, body: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    body(out);
    let len = u16::try_from(out.len() - start).expect("attribute under 64 KiB");
    out[start..start + 2].copy_from_slice(&len.to_ne_bytes());
    out[start + 2..start + 4].copy_from_slice(&kind.to_ne_bytes());
    out.resize(out.len().next_multiple_of(4), 0);
}

pub(crate) fn nested(out: &mut Vec<u8>, kind: u16, body: impl FnOnce(&mut Vec<u8>)) {
    attr(out, kind | NLA_F_NESTED, body);
}

fn attr_str(out: &mut Vec<u8>, kind: u16, s: &str) {
    attr(out, kind, |o| {
        o.extend_from_slice(s.as_bytes());
        o.push(0);
    });
}

fn attr_u32(out: &mut Vec<u8>, kind: u16, value: u32) {
    attr(out, kind, |o| o.extend_from_slice(&value.to_be_bytes()));
}

fn attr_u64(out: &mut Vec<u8>, kind: u16, value: u64) {
    attr(out, kind, |o| o.extend_from_slice(&value.to_be_bytes()));
}

fn attr_bytes(out: &mut Vec<u8>, kind: u16, value: &[u8]) {
    attr(out, kind, |o| o.extend_from_slice(value));
}

/// `NFTA_DATA_VALUE` holding `bytes`, nested in attribute `kind`.
fn value(out: &mut Vec<u8>, kind: u16, bytes: &[u8]) {
    nested(out, kind, |o| attr_bytes(o, NFTA_DATA_VALUE, bytes));
}

/// `NFTA_DATA_VERDICT`, nested in attribute `kind`: a verdict code and, for
/// a jump, the chain.
fn verdict(out: &mut Vec<u8>, kind: u16, verdict: &Verdict) {
    let (code, chain) = match verdict {
        Verdict::Accept => (NF_ACCEPT, None),
        Verdict::Drop => (NF_DROP, None),
        Verdict::Jump(chain) => (NFT_JUMP, Some(chain.as_str())),
        Verdict::Return => (NFT_RETURN, None),
    };
    nested(out, kind, |o| {
        nested(o, NFTA_DATA_VERDICT, |o| {
            attr_u32(o, NFTA_VERDICT_CODE, code.cast_unsigned());
            if let Some(chain) = chain {
                attr_str(o, NFTA_VERDICT_CHAIN, chain);
            }
        });
    });
}

impl Batch {
    /// Appends one message; nf_tables messages carry the inet family.
    fn message(&mut self, kind: u16, flags: u16, body: impl FnOnce(&mut Vec<u8>)) {
        let (family, res_id) = if kind == NFNL_MSG_BATCH_BEGIN || kind == NFNL_MSG_BATCH_END {
            (0, NFNL_SUBSYS_NFTABLES)
        } else {
            self.last = Some(self.bytes.len());
            (NFPROTO_INET, 0)
        };
        let start = self.bytes.len();
        self.seq += 1;
        self.origins.push(if family == 0 { None } else { self.command });
        self.bytes.extend_from_slice(&[0; 4]); // length, set below
        self.bytes.extend_from_slice(&kind.to_ne_bytes());
        self.bytes.extend_from_slice(&(flags | NLM_F_REQUEST).to_ne_bytes());
        self.bytes.extend_from_slice(&self.seq.to_ne_bytes());
        self.bytes.extend_from_slice(&0u32.to_ne_bytes());
        self.bytes.extend_from_slice(&[family, 0]);
        self.bytes.extend_from_slice(&res_id.to_be_bytes());
        body(&mut self.bytes);
        let len = u32::try_from(self.bytes.len() - start).expect("message under 4 GiB");
        self.bytes[start..start + 4].copy_from_slice(&len.to_ne_bytes());
    }

    /// An nf_tables message (`NFT_MSG_*`).
    fn nft(&mut self, msg: u16, flags: u16, body: impl FnOnce(&mut Vec<u8>)) {
        self.message((NFNL_SUBSYS_NFTABLES << 8) | msg, flags, body);
    }

    /// The batch for `transaction`, which brings the table to `table` (whose
    /// sets the rules' lookups refer to), or why it cannot be encoded.
    pub fn encode(transaction: &Transaction, table: &Table) -> Result<Batch, NftError> {
        let mut batch = Batch::default();
        batch.message(NFNL_MSG_BATCH_BEGIN, 0, |_| {});
        for (i, command) in transaction.commands.iter().enumerate() {
            batch.command = Some(i);
            objects::command(&mut batch, command, table).map_err(|reason| NftError::Encode {
                index: i,
                command: command.to_string(),
                reason,
            })?;
        }
        batch.command = None;
        let Some(last) = batch.last else {
            return Err(NftError::Encode { index: 0, command: String::new(), reason: EncodeError::Empty });
        };
        // Only the last message asks for an acknowledgement: the kernel
        // reports every failed message whatever its flags, and sends all
        // answers after the commit (or the abort), so this one answer says
        // the whole batch is in force.
        let flags = u16::from_ne_bytes(batch.bytes[last + 6..last + 8].try_into().expect("2 bytes")) | NLM_F_ACK;
        batch.bytes[last + 6..last + 8].copy_from_slice(&flags.to_ne_bytes());
        batch.message(NFNL_MSG_BATCH_END, 0, |_| {});
        Ok(batch)
    }

    /// The encoded messages.
    #[must_use]
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Sequence number of the message that asks for the acknowledgement.
    fn acked_seq(&self) -> u32 {
        let last = self.last.expect("a batch has messages");
        u32::from_ne_bytes(self.bytes[last + 8..last + 12].try_into().expect("4 bytes"))
    }

    /// Sends the batch for `transaction` on `socket` and waits for the
    /// kernel's answer; any error aborts the whole batch in the kernel, and
    /// names the command it rejected.
    pub fn apply(&self, socket: &Socket, transaction: &Transaction) -> Result<(), NftError> {
        socket.exchange(|fd| {
            self.exchange(fd).map_err(|e| match e {
                Answer::Rejected { seq, errno } => {
                    let index = self.origins.get((seq as usize).wrapping_sub(1)).copied().flatten();
                    let command = index.and_then(|i| transaction.commands.get(i)).map(ToString::to_string);
                    NftError::Kernel { errno, seq, index, command: command.unwrap_or_default() }
                }
                Answer::Failed(e) => e,
            })
        })
    }

    fn exchange(&self, fd: &OwnedFd) -> Result<(), Answer> {
        // A batch is one datagram: the send buffer must hold all of it (what
        // `nft` does too). Forcing the size needs CAP_NET_ADMIN, which
        // programming nf_tables needs anyway.
        let size = self.bytes.len().saturating_add(4096).max(256 * 1024);
        setsockopt(fd, sockopt::SndBufForce, &size).map_err(|e| io("send buffer", e))?;
        sendto(fd.as_raw_fd(), &self.bytes, &NetlinkAddr::new(0, 0), MsgFlags::empty()).map_err(|e| io("send", e))?;
        let want = self.acked_seq();
        let mut buf = vec![0u8; 1 << 16];
        // Every read brings at least one answer; the kernel sends at most one
        // per message of the batch, so this loop ends within that many reads
        // (or at the first error, or at the receive timeout).
        for _ in 0..=self.seq {
            let n = recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty()).map_err(|e| io("receive", e))?;
            let mut at = 0;
            while at + 16 <= n {
                let len = u32::from_ne_bytes(buf[at..at + 4].try_into().expect("4 bytes")) as usize;
                let kind = u16::from_ne_bytes(buf[at + 4..at + 6].try_into().expect("2 bytes"));
                if len < 16 || at + len > n {
                    return Err(Answer::Failed(NftError::Protocol(format!("malformed answer of {len} bytes"))));
                }
                if kind == NLMSG_ERROR && len >= 36 {
                    let code = i32::from_ne_bytes(buf[at + 16..at + 20].try_into().expect("4 bytes"));
                    // The answer quotes the header of the message it answers.
                    let seq = u32::from_ne_bytes(buf[at + 28..at + 32].try_into().expect("4 bytes"));
                    if code != 0 {
                        return Err(Answer::Rejected { seq, errno: nix::errno::Errno::from_raw(-code) });
                    }
                    if seq == want {
                        return Ok(());
                    }
                }
                at += len.next_multiple_of(4);
            }
        }
        Err(Answer::Failed(NftError::Protocol("no acknowledgement for the batch".into())))
    }
}

/// Why an exchange failed: the kernel rejected a message, or the socket did.
enum Answer {
    Rejected { seq: u32, errno: nix::errno::Errno },
    Failed(NftError),
}

impl From<NftError> for Answer {
    fn from(e: NftError) -> Self {
        Answer::Failed(e)
    }
}

fn io(what: &'static str, errno: nix::Error) -> NftError {
    NftError::Io { what, errno }
}

/// Encodes `transaction` and applies it on `socket` as one batch.
pub fn apply(transaction: &Transaction, table: &Table, socket: &Socket) -> Result<(), NftError> {
    Batch::encode(transaction, table)?.apply(socket, transaction)
}

const NFT_MSG_NEWGEN: u16 = 15;
const NFT_MSG_GETGEN: u16 = 16;
const NFTA_GEN_ID: u16 = 1;
const NLMSG_DONE: u16 = 3;
const NLM_F_DUMP: u16 = 0x300;
const NFT_MSG_NEWOBJ: u16 = 18;
const NFT_MSG_GETOBJ: u16 = 19;
const NFTA_OBJ_TABLE: u16 = 1;
const NFTA_OBJ_NAME: u16 = 2;
const NFTA_OBJ_TYPE: u16 = 3;
const NFTA_OBJ_DATA: u16 = 4;
const NFTA_COUNTER_PACKETS: u16 = 2;
const NFT_OBJECT_COUNTER: u32 = 1;

/// The attributes of one netlink message body: `(kind, payload)`.
pub(crate) fn attributes(body: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    let mut at = 0;
    std::iter::from_fn(move || {
        if at + 4 > body.len() {
            return None;
        }
        let len = usize::from(u16::from_ne_bytes([body[at], body[at + 1]]));
        let kind = u16::from_ne_bytes([body[at + 2], body[at + 3]]) & !NLA_F_NESTED;
        if len < 4 || at + len > body.len() {
            return None;
        }
        let payload = &body[at + 4..at + len];
        at += len.next_multiple_of(4);
        Some((kind, payload))
    })
}

/// Sends one nf_tables request (not a batch): message `msg` with `flags`
/// and `seq`, the nfgenmsg for `family`, then the attributes `body` writes.
fn send_request(
    fd: &OwnedFd,
    (msg, flags, seq, family): (u16, u16, u32, u8),
    body: impl FnOnce(&mut Vec<u8>),
) -> Result<(), NftError> {
    let mut request = Vec::with_capacity(64);
    request.extend_from_slice(&[0; 4]); // length, set below
    request.extend_from_slice(&((NFNL_SUBSYS_NFTABLES << 8) | msg).to_ne_bytes());
    request.extend_from_slice(&(NLM_F_REQUEST | flags).to_ne_bytes());
    request.extend_from_slice(&seq.to_ne_bytes());
    request.extend_from_slice(&0u32.to_ne_bytes());
    request.extend_from_slice(&[family, 0, 0, 0]); // nfgenmsg: family, version 0, res_id 0
    body(&mut request);
    let len = u32::try_from(request.len()).expect("a request under 4 GiB");
    request[..4].copy_from_slice(&len.to_ne_bytes());
    sendto(fd.as_raw_fd(), &request, &NetlinkAddr::new(0, 0), MsgFlags::empty()).map_err(|e| io("send", e))?;
    Ok(())
}

/// Reads the answers to request `seq`, at most `reads` reads, handing each
/// message's type and body (after its 16-byte header) to `on` until it
/// returns a result; messages of other requests are skipped.
fn read_answers<T>(
    fd: &OwnedFd,
    seq: u32,
    reads: usize,
    mut on: impl FnMut(u16, &[u8]) -> Option<Result<T, NftError>>,
) -> Result<T, NftError> {
    let mut buf = vec![0u8; 1 << 16];
    for _ in 0..reads {
        let n = recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty()).map_err(|e| io("receive", e))?;
        for message in messages(&buf[..n]) {
            let message = message.map_err(|len| NftError::Protocol(format!("malformed answer of {len} bytes")))?;
            if message.seq == seq
                && let Some(result) = on(message.kind, message.body)
            {
                return result;
            }
        }
    }
    Err(NftError::Protocol(format!("no complete answer to request {seq:#x}")))
}

/// The error code of an `NLMSG_ERROR` body (0: an acknowledgement).
fn error_code(body: &[u8]) -> Result<i32, NftError> {
    error_number(body).ok_or_else(|| NftError::Protocol("a short error answer".into()))
}

/// The error code of an `NLMSG_ERROR` body (0: an acknowledgement);
/// `None` when the body is too short to hold one.
pub(crate) fn error_number(body: &[u8]) -> Option<i32> {
    body.get(..4).map(|b| i32::from_ne_bytes(b.try_into().expect("4 bytes")))
}

/// One netlink message of a read: its type, sequence number and body (what
/// follows its 16-byte header).
pub(crate) struct Message<'a> {
    /// `nlmsg_type`.
    pub kind: u16,
    /// `nlmsg_seq`.
    pub seq: u32,
    /// The payload.
    pub body: &'a [u8],
}

/// The messages of one read of a netlink socket, in order; a header whose
/// length does not fit the read ends it with `Err(length)`.
pub(crate) fn messages(buf: &[u8]) -> impl Iterator<Item = Result<Message<'_>, usize>> {
    let mut at = 0;
    std::iter::from_fn(move || {
        if at + 16 > buf.len() {
            return None;
        }
        let len = u32::from_ne_bytes(buf[at..at + 4].try_into().expect("4 bytes")) as usize;
        if len < 16 || at + len > buf.len() {
            at = buf.len();
            return Some(Err(len));
        }
        let kind = u16::from_ne_bytes(buf[at + 4..at + 6].try_into().expect("2 bytes"));
        let seq = u32::from_ne_bytes(buf[at + 8..at + 12].try_into().expect("4 bytes"));
        let body = &buf[at + 16..at + len];
        at += len.next_multiple_of(4);
        Some(Ok(Message { kind, seq, body }))
    })
}

/// The nf_tables ruleset generation of the calling thread's network
/// namespace: the kernel adds one with every committed transaction, from
/// any process and to any table, so an unchanged generation proves that
/// nothing was changed since it was read.
pub fn generation(socket: &Socket) -> Result<u32, NftError> {
    socket.exchange(ask_generation)
}

fn ask_generation(fd: &OwnedFd) -> Result<u32, NftError> {
    const SEQ: u32 = 0x6765_6e00;
    send_request(fd, (NFT_MSG_GETGEN, 0, SEQ, 0), |_| {})?;
    // The answer is one message; anything else queued (nothing, on a socket
    // whose last batch was acknowledged) is skipped, within a bound.
    read_answers(fd, SEQ, 8, |kind, body| match kind {
        NLMSG_ERROR => Some(
            error_code(body)
                .and_then(|code| Err(NftError::Io { what: "generation", errno: nix::errno::Errno::from_raw(-code) })),
        ),
        k if k == (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWGEN => {
            // Attributes follow the 4-byte nfgenmsg.
            let id = attributes(body.get(4..).unwrap_or_default())
                .find(|(k, v)| *k == NFTA_GEN_ID && v.len() == 4)
                .map(|(_, v)| u32::from_be_bytes(v.try_into().expect("4 bytes")));
            Some(id.ok_or_else(|| NftError::Protocol("a generation answer without its id".into())))
        }
        _ => None,
    })
}

/// Packet counts of the named counters of Palisade's table, in the calling
/// thread's namespace, sorted by name (empty when there is no table): one
/// netlink dump of counter objects, which costs microseconds where
/// `nft list counters` first reads the whole ruleset, sets included.
pub fn counters(socket: &Socket) -> Result<Vec<(String, u64)>, NftError> {
    socket.exchange(dump_counters)
}

fn dump_counters(fd: &OwnedFd) -> Result<Vec<(String, u64)>, NftError> {
    const SEQ: u32 = 0x636e_7400;
    send_request(fd, (NFT_MSG_GETOBJ, NLM_F_DUMP, SEQ, NFPROTO_INET), |r| {
        attr_str(r, NFTA_OBJ_TABLE, crate::ruleset::TABLE);
        attr(r, NFTA_OBJ_TYPE, |o| o.extend_from_slice(&NFT_OBJECT_COUNTER.to_be_bytes()));
    })?;
    let mut out = Vec::new();
    // A dump answers in parts until NLMSG_DONE; each part holds at least
    // one counter, and a table holds at most a few per local pod.
    read_answers(fd, SEQ, 100_000, |kind, body| match kind {
        NLMSG_DONE => {
            out.sort();
            Some(Ok(std::mem::take(&mut out)))
        }
        NLMSG_ERROR => Some(error_code(body).and_then(|code| {
            // No table: no counters.
            if code == -(nix::errno::Errno::ENOENT as i32) {
                Ok(Vec::new())
            } else {
                Err(NftError::Io { what: "counters", errno: nix::errno::Errno::from_raw(-code) })
            }
        })),
        k if k == (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWOBJ && body.len() >= 4 => {
            let (mut name, mut packets) = (None, None);
            for (a, payload) in attributes(&body[4..]) {
                match a {
                    NFTA_OBJ_NAME => name = Some(String::from_utf8_lossy(payload).trim_end_matches('\0').to_string()),
                    NFTA_OBJ_DATA => {
                        packets = attributes(payload)
                            .find(|(k, v)| *k == NFTA_COUNTER_PACKETS && v.len() == 8)
                            .map(|(_, v)| u64::from_be_bytes(v.try_into().expect("8 bytes")));
                    }
                    _ => {}
                }
            }
            if let (Some(name), Some(packets)) = (name, packets) {
                out.push((name, packets));
            }
            None
        }
        _ => None,
    })
}

/// A new nfnetlink socket in the calling thread's network namespace.
fn open() -> Result<OwnedFd, NftError> {
    netfilter_socket().map_err(|(what, e)| io(what, e))
}

/// A new nfnetlink socket in the calling thread's network namespace whose
/// reads give up after [`ANSWER_TIMEOUT`]; on failure, the step and its error.
pub(crate) fn netfilter_socket() -> Result<OwnedFd, (&'static str, nix::Error)> {
    let fd = socket(AddressFamily::Netlink, SockType::Raw, SockFlag::SOCK_CLOEXEC, SockProtocol::NetlinkNetFilter)
        .map_err(|e| ("socket", e))?;
    let timeout = TimeVal::new(ANSWER_TIMEOUT.as_secs().cast_signed(), 0);
    setsockopt(&fd, sockopt::ReceiveTimeout, &timeout).map_err(|e| ("timeout", e))?;
    Ok(fd)
}

/// An nfnetlink socket kept open from one batch to the next, opened on
/// first use in the namespace of the thread that uses it.
///
/// Why not a socket per batch: when an nfnetlink socket is closed, the
/// kernel first waits for the release of everything earlier transactions
/// removed (nf_tables flushes its destroy work, which waits for an RCU
/// grace period, on `NETLINK_URELEASE`). Measured on this machine's
/// kernel: the close after a batch that deleted one element took 10-15 ms,
/// while the commit itself, acknowledged before that, took about 0.1 ms.
/// The change is in force at the acknowledgement; the wait only delayed
/// the caller, and with it every following change.
#[derive(Debug, Default)]
pub struct Socket {
    fd: Mutex<Option<OwnedFd>>,
}

impl Socket {
    /// Runs `f` on the socket (opened if need be). After an error, answers
    /// may still be queued: such a socket is closed, not reused.
    fn exchange<T>(&self, f: impl FnOnce(&OwnedFd) -> Result<T, NftError>) -> Result<T, NftError> {
        let mut guard = self.fd.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let fd = match guard.take() {
            Some(fd) => fd,
            None => open()?,
        };
        let result = f(&fd);
        if result.is_ok() {
            *guard = Some(fd);
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ruleset::{Element, Key, KeyType, Rule, Set, SetDecl, Statement, Verdict};
    use crate::transaction::Command;

    fn messages(bytes: &[u8]) -> Vec<(u16, u16, usize)> {
        let mut out = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            let len = u32::from_ne_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize;
            let kind = u16::from_ne_bytes(bytes[at + 4..at + 6].try_into().expect("2 bytes"));
            let flags = u16::from_ne_bytes(bytes[at + 6..at + 8].try_into().expect("2 bytes"));
            assert!((20..65_536).contains(&len), "message of {len} bytes");
            out.push((kind, flags, len));
            at += len;
        }
        assert_eq!(at, bytes.len());
        out
    }

    fn ingress4() -> (Table, SetDecl) {
        let decl = SetDecl::verdict_map(KeyType::Ipv4Addr);
        let mut table = Table::default();
        table.sets.insert("ingress4".into(), Set { decl: decl.clone(), elements: std::collections::BTreeSet::new() });
        (table, decl)
    }

    #[test]
    fn many_long_map_elements_split_into_messages_under_the_attribute_limit() {
        let chain = format!("pod/{}/{}/ingress", "n".repeat(63), "p".repeat(253));
        let (table, decl) = ingress4();
        let elements: Vec<Element> = (0..2000u32)
            .map(|i| {
                Element::mapping(
                    Key::addr(std::net::Ipv4Addr::from(0x0a00_0000 + i).into()),
                    Verdict::Jump(chain.clone()),
                )
            })
            .collect();
        let tx = Transaction { commands: vec![Command::AddElements { set: "ingress4".into(), decl, elements }] };
        let batch = Batch::encode(&tx, &table).expect("encodable");
        let messages = messages(batch.bytes());
        assert!(messages.len() > 5, "split into several messages ({}) between batch begin and end", messages.len());
        // Only the last nf_tables message asks for the acknowledgement.
        let acked: Vec<usize> =
            messages.iter().enumerate().filter(|(_, (_, flags, _))| flags & NLM_F_ACK != 0).map(|(i, _)| i).collect();
        assert_eq!(acked, vec![messages.len() - 2]);
        // Every message between the markers came from the one command.
        assert!(batch.origins[1..batch.origins.len() - 1].iter().all(|o| *o == Some(0)));
        assert_eq!((batch.origins[0], batch.origins.last().copied().flatten()), (None, None));
    }

    #[test]
    fn what_cannot_be_encoded_is_refused_with_the_command() {
        let (table, decl) = ingress4();
        let v6 = Element::mapping(Key::addr("fd00::1".parse().expect("ip")), Verdict::Accept);
        let no_verdict = Element::key(Key::addr("10.0.0.1".parse().expect("ip")));
        let long_log = Rule(vec![Statement::Log { prefix: "x".repeat(128), group: None }]);
        let missing = Rule(vec![Statement::lookup(vec![crate::ruleset::Expr::Iifname], "no-such-set")]);
        let map_as_set = Rule(vec![Statement::lookup(vec![crate::ruleset::Expr::Iifname], "ingress4")]);
        for (command, why) in [
            (Command::AddElements { set: "ingress4".into(), decl: decl.clone(), elements: vec![v6] }, "does not fit"),
            (Command::AddElements { set: "ingress4".into(), decl, elements: vec![no_verdict] }, "does not fit"),
            (Command::AddRule { chain: "c".into(), rule: long_log }, "prefix"),
            (Command::AddRule { chain: "c".into(), rule: missing }, "not in the table"),
            (Command::AddRule { chain: "c".into(), rule: map_as_set }, "verdict map"),
            (Command::AddChain { name: "x".repeat(300), base: None }, "too long"),
        ] {
            let tx = Transaction { commands: vec![Command::AddTable, command] };
            let err = Batch::encode(&tx, &table).expect_err("refused").to_string();
            assert!(err.contains("command 1") && err.contains(why), "{err}");
        }
        assert!(Batch::encode(&Transaction::default(), &table).is_err(), "an empty batch");
    }
}
