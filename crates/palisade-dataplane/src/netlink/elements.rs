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

use std::net::IpAddr;

use super::objects::key_field;
use super::{Batch, NFTA_LIST_ELEM, attr_str, attr_u32, nested, value};
use crate::nft::EncodeError;
use crate::ruleset::{Datum, Element, KeyType, SetDecl, TABLE};

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
/// Bytes of elements per message: a netlink attribute's length is 16 bits,
/// so the nested element list must stay well under 64 KiB.
const ELEMENT_BYTES_PER_MESSAGE: usize = 32 * 1024;

/// Appends the messages adding (or deleting) `elements` of set `name`; a
/// verdict map's elements are deleted by key.
pub(super) fn messages(
    batch: &mut Batch,
    name: &str,
    decl: &SetDecl,
    elements: &[Element],
    add: bool,
) -> Result<(), EncodeError> {
    let mut encoded = Vec::with_capacity(elements.len());
    for e in elements {
        if !e.fits(decl) {
            return Err(EncodeError::Element { set: name.to_string(), element: e.to_string() });
        }
        encode(&mut encoded, decl, e, add);
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

/// Encodes one element (one or, for an rbtree range, two list entries);
/// it fits `decl`.
fn encode(out: &mut Vec<Vec<u8>>, decl: &SetDecl, element: &Element, add: bool) {
    let (first, last) = key_bytes(&decl.key, element);
    let target = element.verdict.as_ref().filter(|_| add);
    match (decl.interval, decl.key.len()) {
        (false, _) => list_elem(out, |o| {
            value(o, NFTA_SET_ELEM_KEY, &first);
            if let Some(v) = target {
                super::verdict(o, NFTA_SET_ELEM_DATA, v);
            }
        }),
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
fn key_bytes(fields: &[KeyType], element: &Element) -> (Vec<u8>, Vec<u8>) {
    let (mut first, mut last) = (Vec::new(), Vec::new());
    let concat = fields.len() > 1;
    for (kind, part) in fields.iter().zip(element.key.parts()) {
        let (a, b) = part.bounds();
        field(&mut first, *kind, a, concat);
        field(&mut last, *kind, b, concat);
    }
    (first, last)
}

/// One field's bytes; in a concatenation padded to four bytes.
fn field(out: &mut Vec<u8>, kind: KeyType, datum: &Datum, concat: bool) {
    let start = out.len();
    match datum {
        Datum::Addr(IpAddr::V4(a)) => out.extend_from_slice(&a.octets()),
        Datum::Addr(IpAddr::V6(a)) => out.extend_from_slice(&a.octets()),
        Datum::Ifname(name) => {
            // Shorter than the field (`Element::fits`), NUL-padded.
            out.extend_from_slice(name.as_bytes());
            out.resize(start + crate::ruleset::IFNAMSIZ, 0);
        }
        Datum::Proto(p) => out.push(crate::ruleset::ip_proto(*p)),
        Datum::Port(p) => out.extend_from_slice(&p.to_be_bytes()),
    }
    debug_assert_eq!(Some(out.len() - start), usize::try_from(key_field(kind).1).ok());
    if concat {
        out.resize(out.len().next_multiple_of(4), 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ruleset::{Key, Part};
    use palisade_policy::Protocol;

    #[test]
    fn successor_carries_and_stops_at_the_top() {
        assert_eq!(successor(&[10, 0, 2, 255]), Some(vec![10, 0, 3, 0]));
        assert_eq!(successor(&[255, 255]), None);
    }

    #[test]
    fn keys_are_padded_in_concatenations_only() {
        let ports = Element::key(Key::from(vec![
            Part::One(Datum::Proto(Protocol::Udp)),
            Part::Range(Datum::Port(80), Datum::Port(81)),
        ]));
        let (a, b) = key_bytes(&[KeyType::InetProto, KeyType::InetService], &ports);
        assert_eq!(a, vec![17, 0, 0, 0, 0, 80, 0, 0]);
        assert_eq!(b, vec![17, 0, 0, 0, 0, 81, 0, 0]);
        let (a, _) = key_bytes(&[KeyType::Ipv4Addr], &Element::key(Key::addr("10.0.0.1".parse().expect("ip"))));
        assert_eq!(a, vec![10, 0, 0, 1]);
    }
}
