//! Set and map elements as nf_tables messages.
//!
//! Keys are stored as the kernel compares them: each field of a
//! concatenation padded to a multiple of four bytes, numbers in network
//! order. Interval sets come in two kernel kinds, encoded differently:
//! - one field (address blocks, an rbtree set): a range `[a, b]` is a start
//!   element `a` and an end element `b + 1` flagged `INTERVAL_END`; a range
//!   that reaches the last address has no end element;
//! - a concatenation (protocol . port ranges, a pipapo set): one element
//!   with the first key and the last key (`KEY_END`, inclusive).

use std::net::{Ipv4Addr, Ipv6Addr};

use serde_json::Value;

use super::objects::{key_field, key_fields};
use super::{Batch, NFT_JUMP, NFTA_LIST_ELEM, attr_str, attr_u32, nested, value, verdict};
use crate::render::{SetDef, TABLE};

const NLM_F_CREATE: u16 = 0x400;
const NFT_MSG_NEWSETELEM: u16 = 12;
const NFT_MSG_DELSETELEM: u16 = 14;
const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_SET_ELEM_DATA: u16 = 2;
const NFTA_SET_ELEM_FLAGS: u16 = 3;
const NFTA_SET_ELEM_KEY_END: u16 = 10;
const NFT_SET_ELEM_INTERVAL_END: u32 = 1;
const IFNAMSIZ: usize = 16;
/// Bytes of elements per message: a netlink attribute's length is 16 bits,
/// so the nested element list must stay well under 64 KiB.
const ELEMENT_BYTES_PER_MESSAGE: usize = 32 * 1024;

/// Appends the messages adding (or deleting) `elems` of set `name`.
pub(super) fn messages(batch: &mut Batch, name: &str, def: &SetDef, elems: &[Value], add: bool) -> Result<(), String> {
    let mut encoded = Vec::with_capacity(elems.len());
    for e in elems {
        encode(&mut encoded, def, e, add).ok_or_else(|| format!("element {e} does not fit set {name}"))?;
    }
    let (kind, flags) = if add { (NFT_MSG_NEWSETELEM, NLM_F_CREATE) } else { (NFT_MSG_DELSETELEM, 0) };
    for chunk in chunks(&encoded) {
        batch.nft(kind, flags, |o| {
            attr_str(o, NFTA_SET_ELEM_LIST_TABLE, TABLE);
            attr_str(o, NFTA_SET_ELEM_LIST_SET, name);
            nested(o, NFTA_SET_ELEM_LIST_ELEMENTS, |o| {
                for e in chunk {
                    o.extend_from_slice(e);
                }
            });
        });
    }
    Ok(())
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

fn list_elem(out: &mut Vec<Vec<u8>>, body: impl FnOnce(&mut Vec<u8>)) {
    let mut e = Vec::new();
    nested(&mut e, NFTA_LIST_ELEM, body);
    out.push(e);
}

/// Encodes one element (one or, for an rbtree range, two list entries).
fn encode(out: &mut Vec<Vec<u8>>, def: &SetDef, elem: &Value, add: bool) -> Option<()> {
    let fields = key_fields(&def.kind)?;
    let (key_value, data) = match (def.map, elem) {
        (Some("verdict"), Value::Array(pair)) if pair.len() == 2 => (&pair[0], Some(&pair[1])),
        (Some(_), Value::Array(_)) => return None,
        (Some(_), key) if !add => (key, None),
        (Some(_), _) => return None,
        (None, key) => (key, None),
    };
    let target = match data {
        Some(v) if add => Some(v.get("jump")?.get("target")?.as_str()?),
        _ => None,
    };
    let (first, last) = key_bytes(&fields, key_value)?;
    match (def.interval, fields.len()) {
        (false, _) => {
            if first != last {
                return None;
            }
            list_elem(out, |o| {
                value(o, NFTA_SET_ELEM_KEY, &first);
                if let Some(chain) = target {
                    verdict(o, NFTA_SET_ELEM_DATA, NFT_JUMP, Some(chain));
                }
            });
        }
        (true, 1) => {
            list_elem(out, |o| value(o, NFTA_SET_ELEM_KEY, &first));
            if let Some(end) = successor(&last) {
                list_elem(out, |o| {
                    value(o, NFTA_SET_ELEM_KEY, &end);
                    attr_u32(o, NFTA_SET_ELEM_FLAGS, NFT_SET_ELEM_INTERVAL_END);
                });
            }
        }
        (true, _) => list_elem(out, |o| {
            value(o, NFTA_SET_ELEM_KEY, &first);
            value(o, NFTA_SET_ELEM_KEY_END, &last);
        }),
    }
    Some(())
}

/// `bytes + 1` as a big-endian number; `None` when it would overflow.
fn successor(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut out = bytes.to_vec();
    for b in out.iter_mut().rev() {
        if *b == u8::MAX {
            *b = 0;
        } else {
            *b += 1;
            return Some(out);
        }
    }
    None
}

/// The first and last key an element covers (equal unless it holds a range).
fn key_bytes(fields: &[&str], value: &Value) -> Option<(Vec<u8>, Vec<u8>)> {
    let parts: Vec<&Value> =
        if fields.len() == 1 { vec![value] } else { value.get("concat")?.as_array()?.iter().collect() };
    if parts.len() != fields.len() {
        return None;
    }
    let (mut first, mut last) = (Vec::new(), Vec::new());
    let concat = fields.len() > 1;
    for (kind, part) in fields.iter().zip(parts) {
        let (a, b) = match part.get("range").and_then(Value::as_array) {
            Some(r) if r.len() == 2 => (&r[0], &r[1]),
            Some(_) => return None,
            None => (part, part),
        };
        field(&mut first, kind, a, concat)?;
        field(&mut last, kind, b, concat)?;
    }
    Some((first, last))
}

/// One field's bytes; in a concatenation padded to four bytes.
fn field(out: &mut Vec<u8>, kind: &str, value: &Value, concat: bool) -> Option<()> {
    let start = out.len();
    match kind {
        "ipv4_addr" => out.extend_from_slice(&value.as_str()?.parse::<Ipv4Addr>().ok()?.octets()),
        "ipv6_addr" => out.extend_from_slice(&value.as_str()?.parse::<Ipv6Addr>().ok()?.octets()),
        "ifname" => {
            let name = value.as_str()?.as_bytes();
            if name.len() >= IFNAMSIZ || name.contains(&0) {
                return None;
            }
            out.extend_from_slice(name);
            out.resize(start + IFNAMSIZ, 0);
        }
        "inet_proto" => out.push(match value.as_str()? {
            "tcp" => 6,
            "udp" => 17,
            "sctp" => 132,
            _ => return None,
        }),
        "inet_service" => out.extend_from_slice(&u16::try_from(value.as_u64()?).ok()?.to_be_bytes()),
        _ => return None,
    }
    debug_assert_eq!(Some(out.len() - start), key_field(kind).and_then(|(_, len)| usize::try_from(len).ok()));
    if concat {
        out.resize(out.len().next_multiple_of(4), 0);
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn successor_carries_and_stops_at_the_top() {
        assert_eq!(successor(&[10, 0, 2, 255]), Some(vec![10, 0, 3, 0]));
        assert_eq!(successor(&[255, 255]), None);
    }

    #[test]
    fn keys_are_padded_in_concatenations_only() {
        let (a, b) =
            key_bytes(&["inet_proto", "inet_service"], &json!({"concat": ["udp", {"range": [80, 81]}]})).expect("fits");
        assert_eq!(a, vec![17, 0, 0, 0, 0, 80, 0, 0]);
        assert_eq!(b, vec![17, 0, 0, 0, 0, 81, 0, 0]);
        let (a, _) = key_bytes(&["ipv4_addr"], &json!("10.0.0.1")).expect("fits");
        assert_eq!(a, vec![10, 0, 0, 1]);
        assert!(key_bytes(&["ifname"], &json!("a-name-of-16-byt")).is_none());
    }
}
