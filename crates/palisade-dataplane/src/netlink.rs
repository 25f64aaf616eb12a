//! A direct nf_tables netlink path for transactions that only add and
//! delete elements of hash sets and verdict maps: what a pod appearing,
//! leaving or being relabelled elsewhere in the cluster usually compiles to.
//!
//! Why: the `nft` tool builds a cache of the table before every command,
//! and with interval sets that cache includes their elements, so with tens
//! of thousands of elements each invocation costs tens of milliseconds
//! whatever it changes. Element messages need no cache: the kernel resolves
//! table and set by name. Everything else (chains, rules, sets, interval
//! elements, whose netlink encoding is libnftables' business) still goes
//! through `nft -j`. Both paths are one atomic transaction: here one
//! nfnetlink batch, which the kernel commits whole or not at all.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd as _;
use std::time::Duration;

use nix::sys::socket::{
    AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, recv, sendto, setsockopt, socket, sockopt,
};
use nix::sys::time::TimeVal;
use serde_json::Value;

use crate::nft::NftError;
use crate::render::{Rendered, SetDef, TABLE};

const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_CREATE: u16 = 0x400;
const NLA_F_NESTED: u16 = 0x8000;
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 16;
const NFNL_MSG_BATCH_END: u16 = 17;
const NFT_MSG_NEWSETELEM: u16 = 12;
const NFT_MSG_DELSETELEM: u16 = 14;
const NFPROTO_INET: u8 = 1;
const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_SET_ELEM_DATA: u16 = 2;
const NFTA_DATA_VALUE: u16 = 1;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;
const NFTA_VERDICT_CHAIN: u16 = 2;
const NFT_JUMP: i32 = -3;
const IFNAMSIZ: usize = 16;
/// Bytes of elements per message: a netlink attribute's length is 16 bits,
/// so the nested element list must stay well under 64 KiB.
const ELEMENT_BYTES_PER_MESSAGE: usize = 32 * 1024;
/// How long to wait for the kernel's answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// An nfnetlink batch: messages between a begin and an end marker.
#[derive(Debug, Default)]
pub struct Batch {
    bytes: Vec<u8>,
    /// Messages that asked for an acknowledgement.
    acked: u32,
    seq: u32,
}

/// Appends a netlink attribute; `body` writes its payload.
fn attr(out: &mut Vec<u8>, kind: u16, body: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    body(out);
    let len = u16::try_from(out.len() - start).expect("attribute under 64 KiB");
    out[start..start + 2].copy_from_slice(&len.to_ne_bytes());
    out[start + 2..start + 4].copy_from_slice(&kind.to_ne_bytes());
    out.resize(out.len().next_multiple_of(4), 0);
}

fn attr_str(out: &mut Vec<u8>, kind: u16, s: &str) {
    attr(out, kind, |o| {
        o.extend_from_slice(s.as_bytes());
        o.push(0);
    });
}

impl Batch {
    fn message(&mut self, kind: u16, flags: u16, family: u8, res_id: u16, body: impl FnOnce(&mut Vec<u8>)) {
        let start = self.bytes.len();
        self.seq += 1;
        self.bytes.extend_from_slice(&[0; 4]); // length, set below
        self.bytes.extend_from_slice(&kind.to_ne_bytes());
        self.bytes.extend_from_slice(&flags.to_ne_bytes());
        self.bytes.extend_from_slice(&self.seq.to_ne_bytes());
        self.bytes.extend_from_slice(&0u32.to_ne_bytes());
        self.bytes.extend_from_slice(&[family, 0]);
        self.bytes.extend_from_slice(&res_id.to_be_bytes());
        body(&mut self.bytes);
        let len = u32::try_from(self.bytes.len() - start).expect("message under 4 GiB");
        self.bytes[start..start + 4].copy_from_slice(&len.to_ne_bytes());
        if flags & NLM_F_ACK != 0 {
            self.acked += 1;
        }
    }

    /// The batch for `transaction`, when every command in it adds or
    /// deletes elements of a hash set or verdict map of `table`; `None`
    /// otherwise (the caller then uses `nft`).
    #[must_use]
    pub fn for_elements(transaction: &Value, table: &Rendered) -> Option<Batch> {
        let commands = transaction.get("nftables")?.as_array()?;
        if commands.is_empty() {
            return None;
        }
        let mut batch = Batch::default();
        batch.message(NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, 0, NFNL_SUBSYS_NFTABLES, |_| {});
        for command in commands {
            let (add, body) = match command.as_object()?.iter().next()? {
                (verb, body) if verb == "add" => (true, body.get("element")?),
                (verb, body) if verb == "delete" => (false, body.get("element")?),
                _ => return None,
            };
            let name = body.get("name")?.as_str()?;
            let def = table.sets.get(name)?;
            if def.interval || body.get("table")?.as_str()? != TABLE {
                return None;
            }
            let elements = body.get("elem")?.as_array()?;
            let encoded: Vec<Vec<u8>> = elements.iter().map(|e| element(def, e, add)).collect::<Option<_>>()?;
            for chunk in chunks(&encoded) {
                let (kind, flags) = if add {
                    (NFT_MSG_NEWSETELEM, NLM_F_REQUEST | NLM_F_CREATE | NLM_F_ACK)
                } else {
                    (NFT_MSG_DELSETELEM, NLM_F_REQUEST | NLM_F_ACK)
                };
                batch.message((NFNL_SUBSYS_NFTABLES << 8) | kind, flags, NFPROTO_INET, 0, |o| {
                    attr_str(o, NFTA_SET_ELEM_LIST_TABLE, TABLE);
                    attr_str(o, NFTA_SET_ELEM_LIST_SET, name);
                    attr(o, NFTA_SET_ELEM_LIST_ELEMENTS | NLA_F_NESTED, |o| {
                        for e in chunk {
                            o.extend_from_slice(e);
                        }
                    });
                });
            }
        }
        batch.message(NFNL_MSG_BATCH_END, NLM_F_REQUEST, 0, NFNL_SUBSYS_NFTABLES, |_| {});
        Some(batch)
    }

    /// The encoded messages.
    #[must_use]
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Sends the batch on a new nfnetlink socket in the calling thread's
    /// network namespace and waits for the kernel to acknowledge every
    /// message; the first error aborts the whole batch in the kernel.
    pub fn apply(&self) -> Result<(), NftError> {
        let io = |what: &str, e: nix::Error| NftError::Netlink(format!("{what}: {e}"));
        let fd = socket(AddressFamily::Netlink, SockType::Raw, SockFlag::SOCK_CLOEXEC, SockProtocol::NetlinkNetFilter)
            .map_err(|e| io("socket", e))?;
        let timeout = TimeVal::new(ANSWER_TIMEOUT.as_secs().cast_signed(), 0);
        setsockopt(&fd, sockopt::ReceiveTimeout, &timeout).map_err(|e| io("timeout", e))?;
        sendto(fd.as_raw_fd(), &self.bytes, &NetlinkAddr::new(0, 0), MsgFlags::empty()).map_err(|e| io("send", e))?;
        let mut acked = 0;
        let mut buf = vec![0u8; 1 << 16];
        // Each read brings at least one answer, so this ends within `acked` reads
        // (or at the first error, or at the receive timeout).
        for _ in 0..=self.acked {
            if acked == self.acked {
                return Ok(());
            }
            let n = recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty()).map_err(|e| io("receive", e))?;
            let mut at = 0;
            while at + 16 <= n {
                let len = u32::from_ne_bytes(buf[at..at + 4].try_into().expect("4 bytes")) as usize;
                let kind = u16::from_ne_bytes(buf[at + 4..at + 6].try_into().expect("2 bytes"));
                if len < 16 || at + len > n {
                    return Err(NftError::Netlink(format!("malformed answer of {len} bytes")));
                }
                if kind == NLMSG_ERROR && len >= 20 {
                    let code = i32::from_ne_bytes(buf[at + 16..at + 20].try_into().expect("4 bytes"));
                    if code != 0 {
                        let errno = nix::errno::Errno::from_raw(-code);
                        return Err(NftError::Netlink(format!("kernel rejected the batch: {errno}")));
                    }
                    acked += 1;
                } else if kind == NLMSG_DONE {
                    break;
                }
                at += len.next_multiple_of(4);
            }
        }
        if acked == self.acked {
            Ok(())
        } else {
            Err(NftError::Netlink(format!("{acked} of {} messages acknowledged", self.acked)))
        }
    }
}

/// Splits encoded elements into runs of at most [`ELEMENT_BYTES_PER_MESSAGE`]
/// bytes (one element is far smaller).
fn chunks(encoded: &[Vec<u8>]) -> Vec<&[Vec<u8>]> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, e) in encoded.iter().enumerate() {
        if bytes + e.len() > ELEMENT_BYTES_PER_MESSAGE && i > start {
            out.push(&encoded[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += e.len();
    }
    if start < encoded.len() {
        out.push(&encoded[start..]);
    }
    out
}

/// One `NFTA_LIST_ELEM`: the key, and for a verdict map being added to, the
/// verdict.
fn element(def: &SetDef, elem: &Value, add: bool) -> Option<Vec<u8>> {
    let (key, verdict) = match (def.map, elem) {
        (Some("verdict"), Value::Array(pair)) if pair.len() == 2 => (&pair[0], Some(&pair[1])),
        (Some(_), Value::Array(_)) => return None,
        (Some(_), key) if !add => (key, None),
        (Some(_), _) => return None,
        (None, key) => (key, None),
    };
    let key = key_bytes(&def.kind, key)?;
    let target = match verdict {
        Some(v) => Some(v.get("jump")?.get("target")?.as_str()?),
        None => None,
    };
    let mut out = Vec::new();
    attr(&mut out, NFTA_LIST_ELEM | NLA_F_NESTED, |o| {
        attr(o, NFTA_SET_ELEM_KEY | NLA_F_NESTED, |o| attr(o, NFTA_DATA_VALUE, |o| o.extend_from_slice(&key)));
        if let Some(chain) = target {
            attr(o, NFTA_SET_ELEM_DATA | NLA_F_NESTED, |o| {
                attr(o, NFTA_DATA_VERDICT | NLA_F_NESTED, |o| {
                    attr(o, NFTA_VERDICT_CODE, |o| o.extend_from_slice(&NFT_JUMP.to_be_bytes()));
                    attr_str(o, NFTA_VERDICT_CHAIN, chain);
                });
            });
        }
    });
    Some(out)
}

/// The key as the kernel stores it: each field of a concatenation padded
/// to a multiple of four bytes, numbers in network order.
fn key_bytes(kind: &Value, value: &Value) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    match (kind, value) {
        (Value::Array(kinds), Value::Object(o)) => {
            let parts = o.get("concat")?.as_array()?;
            if parts.len() != kinds.len() {
                return None;
            }
            for (k, v) in kinds.iter().zip(parts) {
                field(&mut out, k.as_str()?, v)?;
            }
        }
        (Value::String(k), v) => field(&mut out, k, v)?,
        _ => return None,
    }
    Some(out)
}

fn field(out: &mut Vec<u8>, kind: &str, value: &Value) -> Option<()> {
    match kind {
        "ipv4_addr" => out.extend_from_slice(&value.as_str()?.parse::<Ipv4Addr>().ok()?.octets()),
        "ipv6_addr" => out.extend_from_slice(&value.as_str()?.parse::<Ipv6Addr>().ok()?.octets()),
        "ifname" => {
            let name = value.as_str()?.as_bytes();
            if name.len() >= IFNAMSIZ {
                return None;
            }
            out.extend_from_slice(name);
            out.resize(out.len() + IFNAMSIZ - name.len(), 0);
        }
        "inet_proto" => {
            let proto: u8 = match value.as_str()? {
                "tcp" => 6,
                "udp" => 17,
                "sctp" => 132,
                _ => return None,
            };
            out.extend_from_slice(&[proto, 0, 0, 0]);
        }
        "inet_service" => {
            let port = u16::try_from(value.as_u64()?).ok()?;
            out.extend_from_slice(&port.to_be_bytes());
            out.extend_from_slice(&[0, 0]);
        }
        _ => return None,
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use serde_json::json;

    #[test]
    fn many_long_map_elements_split_into_messages_under_the_attribute_limit() {
        let chain = format!("pod/{}/{}/ingress", "n".repeat(63), "p".repeat(253));
        let mut table = Rendered::default();
        table.sets.insert(
            "ingress4".into(),
            SetDef { kind: json!("ipv4_addr"), map: Some("verdict"), interval: false, elements: BTreeMap::new() },
        );
        let elems: Vec<Value> = (0..2000u32)
            .map(|i| json!([std::net::Ipv4Addr::from(0x0a00_0000 + i).to_string(), {"jump": {"target": chain}}]))
            .collect();
        let tx = json!({"nftables": [{"add": {"element": {"family": "inet", "table": TABLE, "name": "ingress4", "elem": elems}}}]});
        let batch = Batch::for_elements(&tx, &table).expect("element-only transaction");
        // Walk the messages: every one is well-formed and under 64 KiB.
        let bytes = batch.bytes();
        let (mut at, mut messages) = (0, 0);
        while at < bytes.len() {
            let len = u32::from_ne_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize;
            assert!((20..65_536).contains(&len), "message of {len} bytes");
            at += len;
            messages += 1;
        }
        assert_eq!(at, bytes.len());
        assert!(messages > 3, "split into several messages ({messages}) between batch begin and end");
    }
}
