//! ctnetlink messages: encoding requests, reading dumps and answers.

use std::net::IpAddr;
use std::os::fd::{AsRawFd as _, OwnedFd};

use nix::errno::Errno;
use nix::sys::socket::{MsgFlags, NetlinkAddr, recv, sendto};

use super::{Deleted, Entry, Filter, TCP, Tuple};
use crate::netlink::{attr, attributes, error_number, messages, nested};

const NFNL_SUBSYS_CTNETLINK: u16 = 1;
const IPCTNL_MSG_CT_NEW: u16 = 0;
const IPCTNL_MSG_CT_GET: u16 = 1;
const IPCTNL_MSG_CT_DELETE: u16 = 2;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_DUMP: u16 = 0x300;
const NLM_F_CREATE: u16 = 0x400;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;

const CTA_TUPLE_ORIG: u16 = 1;
const CTA_TUPLE_REPLY: u16 = 2;
const CTA_PROTOINFO: u16 = 4;
const CTA_TIMEOUT: u16 = 7;
const CTA_ID: u16 = 12;
const CTA_ZONE: u16 = 18;
const CTA_FILTER: u16 = 25;
const CTA_TUPLE_IP: u16 = 1;
const CTA_TUPLE_PROTO: u16 = 2;
const CTA_IP_V4_SRC: u16 = 1;
const CTA_IP_V4_DST: u16 = 2;
const CTA_IP_V6_SRC: u16 = 3;
const CTA_IP_V6_DST: u16 = 4;
const CTA_PROTO_NUM: u16 = 1;
const CTA_PROTO_SRC_PORT: u16 = 2;
const CTA_PROTO_DST_PORT: u16 = 3;
const CTA_PROTOINFO_TCP: u16 = 1;
const CTA_PROTOINFO_TCP_STATE: u16 = 1;
const TCP_CONNTRACK_ESTABLISHED: u8 = 3;
const CTA_FILTER_ORIG_FLAGS: u16 = 1;
const CTA_FILTER_REPLY_FLAGS: u16 = 2;
/// `CTA_FILTER_FLAG(CTA_IP_SRC)`.
const FILTER_IP_SRC: u32 = 1;

/// Messages sent in one write (each asks for its acknowledgement).
const CHUNK: usize = 256;
/// Reads of one dump: each read holds at least one entry, and the table at
/// most `nf_conntrack_max` (262,144 by default) of them.
const MAX_DUMP_READS: usize = 4_000_000;

/// What went wrong talking to ctnetlink.
#[derive(Debug, thiserror::Error)]
pub enum ConntrackError {
    /// A socket call failed.
    #[error("conntrack netlink: cannot {what}: {errno}")]
    Io {
        /// The call.
        what: &'static str,
        /// Its error.
        errno: Errno,
    },
    /// The kernel refused a request.
    #[error("conntrack netlink: the kernel refused to {what}: {errno}")]
    Refused {
        /// The request.
        what: &'static str,
        /// The kernel's error.
        errno: Errno,
    },
    /// An answer did not parse.
    #[error("conntrack netlink: malformed answer: {0}")]
    Protocol(String),
}

fn io(what: &'static str) -> impl FnOnce(Errno) -> ConntrackError {
    move |errno| ConntrackError::Io { what, errno }
}

/// A new ctnetlink socket in the calling thread's network namespace.
///
/// # Errors
/// When the socket cannot be opened.
pub fn open() -> Result<OwnedFd, ConntrackError> {
    crate::netlink::netfilter_socket().map_err(|(what, errno)| ConntrackError::Io { what, errno })
}

fn family_of(addr: IpAddr) -> u8 {
    if addr.is_ipv6() { AF_INET6 } else { AF_INET }
}

/// Appends one ctnetlink message.
fn message(out: &mut Vec<u8>, (msg, flags, seq, family): (u16, u16, u32, u8), body: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&((NFNL_SUBSYS_CTNETLINK << 8) | msg).to_ne_bytes());
    out.extend_from_slice(&(NLM_F_REQUEST | flags).to_ne_bytes());
    out.extend_from_slice(&seq.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes());
    out.extend_from_slice(&[family, 0, 0, 0]);
    body(out);
    let len = u32::try_from(out.len() - start).expect("a message under 4 GiB");
    out[start..start + 4].copy_from_slice(&len.to_ne_bytes());
}

fn send(fd: &OwnedFd, bytes: &[u8]) -> Result<(), ConntrackError> {
    sendto(fd.as_raw_fd(), bytes, &NetlinkAddr::new(0, 0), MsgFlags::empty()).map_err(io("send"))?;
    Ok(())
}

fn addr_attrs(out: &mut Vec<u8>, src: Option<IpAddr>, dst: Option<IpAddr>) {
    nested(out, CTA_TUPLE_IP, |o| {
        for (addr, v4, v6) in [(src, CTA_IP_V4_SRC, CTA_IP_V6_SRC), (dst, CTA_IP_V4_DST, CTA_IP_V6_DST)] {
            match addr {
                Some(IpAddr::V4(a)) => attr(o, v4, |o| o.extend_from_slice(&a.octets())),
                Some(IpAddr::V6(a)) => attr(o, v6, |o| o.extend_from_slice(&a.octets())),
                None => {}
            }
        }
    });
}

fn tuple_attrs(out: &mut Vec<u8>, kind: u16, t: &Tuple) {
    nested(out, kind, |o| {
        addr_attrs(o, Some(t.src), Some(t.dst));
        nested(o, CTA_TUPLE_PROTO, |o| {
            attr(o, CTA_PROTO_NUM, |o| o.push(t.protocol));
            if t.sport != 0 || t.dport != 0 {
                attr(o, CTA_PROTO_SRC_PORT, |o| o.extend_from_slice(&t.sport.to_be_bytes()));
                attr(o, CTA_PROTO_DST_PORT, |o| o.extend_from_slice(&t.dport.to_be_bytes()));
            }
        });
    });
}

/// Reads netlink answers, handing each message's type, sequence number and
/// body to `on` until it says the exchange is over (`Some`).
fn read(
    fd: &OwnedFd,
    reads: usize,
    mut on: impl FnMut(u16, u32, &[u8]) -> Option<Result<(), ConntrackError>>,
) -> Result<(), ConntrackError> {
    let mut buf = vec![0u8; 1 << 16];
    for _ in 0..reads {
        let n = recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty()).map_err(io("receive"))?;
        for message in messages(&buf[..n]) {
            let m = message.map_err(|len| ConntrackError::Protocol(format!("a message of {len} bytes")))?;
            if let Some(result) = on(m.kind, m.seq, m.body) {
                return result;
            }
        }
    }
    Err(ConntrackError::Protocol("no end of the answer".into()))
}

fn error_code(body: &[u8]) -> Result<i32, ConntrackError> {
    error_number(body).ok_or_else(|| ConntrackError::Protocol("a short error answer".into()))
}

/// Dumps entries; see [`super::Conntrack::dump`].
pub(super) fn dump(fd: &OwnedFd, seq: u32, filter: Filter, mut each: impl FnMut(Entry)) -> Result<(), ConntrackError> {
    let mut request = Vec::with_capacity(96);
    let (family, by) = match filter {
        Filter::All => (0, None),
        Filter::Family(v6) => (if v6 { AF_INET6 } else { AF_INET }, None),
        Filter::OrigSrc(a) => (family_of(a), Some((CTA_TUPLE_ORIG, CTA_FILTER_ORIG_FLAGS, a))),
        Filter::ReplySrc(a) => (family_of(a), Some((CTA_TUPLE_REPLY, CTA_FILTER_REPLY_FLAGS, a))),
    };
    // The kernel filters IPv4 addresses; its IPv6 address filter is not
    // used: on this project's test kernel (6.18) it returned the entries
    // whose address differs (the comparison is inverted). Every entry is
    // checked here too, so a kernel filter can only save work.
    let kernel_filter = by.filter(|(_, _, addr)| addr.is_ipv4());
    message(&mut request, (IPCTNL_MSG_CT_GET, NLM_F_DUMP, seq, family), |o| {
        if let Some((tuple, flags, addr)) = kernel_filter {
            nested(o, tuple, |o| addr_attrs(o, Some(addr), None));
            // The filter's flags are host-order u32s (nla_get_u32).
            nested(o, CTA_FILTER, |o| attr(o, flags, |o| o.extend_from_slice(&FILTER_IP_SRC.to_ne_bytes())));
        }
    });
    send(fd, &request)?;
    let mut bad = None;
    read(fd, MAX_DUMP_READS, |kind, answer_seq, body| {
        if answer_seq != seq {
            return None;
        }
        match kind {
            NLMSG_DONE => Some(Ok(())),
            NLMSG_ERROR => Some(error_code(body).and_then(|code| {
                if code == 0 {
                    Ok(())
                } else {
                    Err(ConntrackError::Refused { what: "dump", errno: Errno::from_raw(-code) })
                }
            })),
            k if k == (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_NEW => {
                match parse_entry(body) {
                    Ok(Some(entry)) if selects(filter, &entry) => each(entry),
                    Ok(_) => {}
                    Err(e) => bad = Some(e),
                }
                None
            }
            _ => None,
        }
    })?;
    bad.map_or(Ok(()), Err)
}

/// The conntrack events in one read of the event socket: whether each
/// destroys its connection (else it is new), and its body.
pub(super) fn event(buf: &[u8]) -> Vec<(bool, &[u8])> {
    let new = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_NEW;
    let destroyed = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_DELETE;
    messages(buf)
        .map_while(Result::ok)
        .filter(|m| m.kind == new || m.kind == destroyed)
        .map(|m| (m.kind == destroyed, m.body))
        .collect()
}

/// Whether `filter` selects `entry`.
fn selects(filter: Filter, entry: &Entry) -> bool {
    match filter {
        Filter::All => true,
        Filter::Family(v6) => entry.orig.src.is_ipv6() == v6,
        Filter::OrigSrc(a) => entry.orig.src == a,
        Filter::ReplySrc(a) => entry.reply.src == a,
    }
}

/// One entry of a dump; `None` for an entry of another family than IP.
pub(super) fn parse_entry(body: &[u8]) -> Result<Option<Entry>, ConntrackError> {
    let attrs = body.get(4..).ok_or_else(|| ConntrackError::Protocol("an entry without its header".into()))?;
    let (mut orig, mut reply, mut zone, mut id) = (None, None, 0, 0);
    for (kind, payload) in attributes(attrs) {
        match kind {
            CTA_TUPLE_ORIG => orig = parse_tuple(payload)?,
            CTA_TUPLE_REPLY => reply = parse_tuple(payload)?,
            CTA_ZONE if payload.len() == 2 => zone = u16::from_be_bytes([payload[0], payload[1]]),
            CTA_ID if payload.len() == 4 => id = u32::from_be_bytes(payload.try_into().expect("4 bytes")),
            _ => {}
        }
    }
    Ok(orig.zip(reply).map(|(orig, reply)| Entry { orig, reply, zone, id }))
}

fn parse_tuple(payload: &[u8]) -> Result<Option<Tuple>, ConntrackError> {
    let (mut src, mut dst, mut protocol, mut sport, mut dport) = (None, None, None, 0, 0);
    for (kind, value) in attributes(payload) {
        match kind {
            CTA_TUPLE_IP => {
                for (k, v) in attributes(value) {
                    let addr = match (k, v.len()) {
                        (CTA_IP_V4_SRC | CTA_IP_V4_DST, 4) => IpAddr::from(<[u8; 4]>::try_from(v).expect("4 bytes")),
                        (CTA_IP_V6_SRC | CTA_IP_V6_DST, 16) => IpAddr::from(<[u8; 16]>::try_from(v).expect("16 bytes")),
                        _ => continue,
                    };
                    if matches!(k, CTA_IP_V4_SRC | CTA_IP_V6_SRC) {
                        src = Some(addr);
                    } else {
                        dst = Some(addr);
                    }
                }
            }
            CTA_TUPLE_PROTO => {
                for (k, v) in attributes(value) {
                    match (k, v.len()) {
                        (CTA_PROTO_NUM, 1) => protocol = Some(v[0]),
                        (CTA_PROTO_SRC_PORT, 2) => sport = u16::from_be_bytes([v[0], v[1]]),
                        (CTA_PROTO_DST_PORT, 2) => dport = u16::from_be_bytes([v[0], v[1]]),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    match (src, dst, protocol) {
        (Some(src), Some(dst), Some(protocol)) => Ok(Some(Tuple { src, dst, protocol, sport, dport })),
        (None, None, _) => Ok(None),
        _ => Err(ConntrackError::Protocol("a tuple without its addresses or protocol".into())),
    }
}

/// Sends one acknowledged message per item, `CHUNK` to a write, and reads
/// every answer: `on_error` judges a refusal (`Ok(true)`: counted as gone).
fn acknowledged<T>(
    fd: &OwnedFd,
    first_seq: u32,
    items: &[T],
    encode: impl Fn(&mut Vec<u8>, u32, &T),
    on_error: impl Fn(Errno) -> Result<(), ConntrackError>,
) -> Result<usize, ConntrackError> {
    let mut refused_ok = 0;
    let mut seq = first_seq;
    for chunk in items.chunks(CHUNK) {
        let mut bytes = Vec::with_capacity(chunk.len() * 128);
        let start = seq;
        for item in chunk {
            encode(&mut bytes, seq, item);
            seq = seq.wrapping_add(1);
        }
        send(fd, &bytes)?;
        let mut waiting = chunk.len();
        let mut failure = None;
        read(fd, chunk.len() * 4 + 16, |kind, answer_seq, body| {
            if kind != NLMSG_ERROR || answer_seq.wrapping_sub(start) as usize >= chunk.len() {
                return None;
            }
            match error_code(body) {
                Ok(0) => {}
                Ok(code) => match on_error(Errno::from_raw(-code)) {
                    Ok(()) => refused_ok += 1,
                    Err(e) => failure = failure.take().or(Some(e)),
                },
                Err(e) => return Some(Err(e)),
            }
            waiting -= 1;
            (waiting == 0).then_some(Ok(()))
        })?;
        if let Some(e) = failure {
            return Err(e);
        }
    }
    Ok(refused_ok)
}

/// Deletes entries; see [`super::Conntrack::delete`].
pub(super) fn delete(fd: &OwnedFd, first_seq: u32, entries: &[Entry]) -> Result<Deleted, ConntrackError> {
    let gone = acknowledged(
        fd,
        first_seq,
        entries,
        |out, seq, e| {
            message(out, (IPCTNL_MSG_CT_DELETE, NLM_F_ACK, seq, family_of(e.orig.src)), |o| {
                tuple_attrs(o, CTA_TUPLE_ORIG, &e.orig);
                if e.zone != 0 {
                    attr(o, CTA_ZONE, |o| o.extend_from_slice(&e.zone.to_be_bytes()));
                }
                attr(o, CTA_ID, |o| o.extend_from_slice(&e.id.to_be_bytes()));
            });
        },
        |errno| {
            if errno == Errno::ENOENT {
                Ok(())
            } else {
                Err(ConntrackError::Refused { what: "delete an entry", errno })
            }
        },
    )?;
    Ok(Deleted { deleted: entries.len() - gone, gone })
}

/// Creates entries; see [`super::Conntrack::create`].
pub(super) fn create(fd: &OwnedFd, first_seq: u32, entries: &[Entry], timeout_s: u32) -> Result<(), ConntrackError> {
    acknowledged(
        fd,
        first_seq,
        entries,
        |out, seq, e| {
            let flags = NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
            message(out, (IPCTNL_MSG_CT_NEW, flags, seq, family_of(e.orig.src)), |o| {
                tuple_attrs(o, CTA_TUPLE_ORIG, &e.orig);
                tuple_attrs(o, CTA_TUPLE_REPLY, &e.reply);
                attr(o, CTA_TIMEOUT, |o| o.extend_from_slice(&timeout_s.to_be_bytes()));
                if e.zone != 0 {
                    attr(o, CTA_ZONE, |o| o.extend_from_slice(&e.zone.to_be_bytes()));
                }
                if e.orig.protocol == TCP {
                    nested(o, CTA_PROTOINFO, |o| {
                        nested(o, CTA_PROTOINFO_TCP, |o| {
                            attr(o, CTA_PROTOINFO_TCP_STATE, |o| o.push(TCP_CONNTRACK_ESTABLISHED));
                        });
                    });
                }
            });
        },
        |errno| Err(ConntrackError::Refused { what: "create an entry", errno }),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry {
        let t = Tuple {
            src: "10.0.0.1".parse().unwrap(),
            dst: "10.0.0.2".parse().unwrap(),
            protocol: TCP,
            sport: 40000,
            dport: 80,
        };
        Entry { orig: t, reply: t.reversed(), zone: 3, id: 7 }
    }

    /// An entry as the kernel sends it: nfgenmsg, then the attributes.
    fn dumped(e: &Entry) -> Vec<u8> {
        let mut out = vec![AF_INET, 0, 0, 0];
        tuple_attrs(&mut out, CTA_TUPLE_ORIG, &e.orig);
        tuple_attrs(&mut out, CTA_TUPLE_REPLY, &e.reply);
        attr(&mut out, CTA_ZONE, |o| o.extend_from_slice(&e.zone.to_be_bytes()));
        attr(&mut out, CTA_ID, |o| o.extend_from_slice(&e.id.to_be_bytes()));
        out
    }

    #[test]
    fn an_entry_reads_back_with_both_tuples_zone_and_id() {
        let e = entry();
        assert_eq!(parse_entry(&dumped(&e)).unwrap(), Some(e));
    }

    #[test]
    fn a_truncated_tuple_is_an_error_not_a_guess() {
        let mut body = vec![AF_INET, 0, 0, 0];
        nested(&mut body, CTA_TUPLE_ORIG, |o| {
            nested(o, CTA_TUPLE_IP, |o| attr(o, CTA_IP_V4_SRC, |o| o.extend_from_slice(&[10, 0, 0, 1])));
        });
        assert!(parse_entry(&body).is_err());
    }

    #[test]
    fn a_filtered_dump_asks_for_the_address_with_host_order_flags() {
        let mut out = Vec::new();
        message(&mut out, (IPCTNL_MSG_CT_GET, NLM_F_DUMP, 1, AF_INET), |o| {
            nested(o, CTA_TUPLE_REPLY, |o| addr_attrs(o, Some("10.0.0.2".parse().unwrap()), None));
            nested(o, CTA_FILTER, |o| {
                attr(o, CTA_FILTER_REPLY_FLAGS, |o| o.extend_from_slice(&FILTER_IP_SRC.to_ne_bytes()));
            });
        });
        let attrs: Vec<(u16, Vec<u8>)> = attributes(&out[20..]).map(|(k, v)| (k, v.to_vec())).collect();
        assert_eq!(attrs.iter().map(|a| a.0).collect::<Vec<_>>(), [CTA_TUPLE_REPLY, CTA_FILTER]);
        let flags: Vec<(u16, Vec<u8>)> = attributes(&attrs[1].1).map(|(k, v)| (k, v.to_vec())).collect();
        assert_eq!(flags, [(CTA_FILTER_REPLY_FLAGS, 1u32.to_ne_bytes().to_vec())]);
    }
}
