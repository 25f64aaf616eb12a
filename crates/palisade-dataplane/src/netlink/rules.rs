//! Rule expressions as nf_tables expressions, for the statements `render`
//! writes:
//!
//! | JSON statement | kernel expressions |
//! |---|---|
//! | `match` of `ip`/`ip6` `saddr`/`daddr`, `meta iifname`, `meta l4proto`, `th dport` or a concatenation of them against `@set` (`==`, `!=`) | loads into consecutive registers, `lookup` (inverted for `!=`) |
//! | `match` of `ct state` `in` a list of states | `ct`, `bitwise` mask, `cmp neq 0` |
//! | `vmap` of an address against `@map` | load, `lookup` into the verdict register |
//! | `accept`, `drop`, `jump` | `immediate` verdict |
//! | `limit` (packets per unit, burst), `log` (prefix), `counter` (named) | `limit`, `log`, `objref` |
//!
//! As `nft` does, the first statement that reads an IPv4 or IPv6 header
//! field is preceded by a check of the packet's family (`meta nfproto`),
//! and a protocol loaded for an interval lookup gets nft's byte-order
//! expression (size two, length one), so that `nft list` shows what `nft`
//! would have written.

use serde_json::Value;

use super::{NFT_JUMP, NFTA_LIST_ELEM, attr_str, attr_u32, attr_u64, nested, value, verdict};
use crate::render::Rendered;

const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;

const NFT_REG_VERDICT: u32 = 0;
const NFT_REG_1: u32 = 1;
const NFT_REG32_00: u32 = 8;

const NFT_META_IIFNAME: u32 = 6;
const NFT_META_NFPROTO: u32 = 15;
const NFT_META_L4PROTO: u32 = 16;
const NFT_PAYLOAD_NETWORK_HEADER: u32 = 1;
const NFT_PAYLOAD_TRANSPORT_HEADER: u32 = 2;
const NFT_CT_STATE: u32 = 0;
const NFT_CMP_EQ: u32 = 0;
const NFT_CMP_NEQ: u32 = 1;
const NFT_LOOKUP_F_INV: u32 = 1;
const NFT_BYTEORDER_HTON: u32 = 1;
const NFT_OBJECT_COUNTER: u32 = 1;
const NFT_LIMIT_PKTS: u32 = 0;
const NF_DROP: i32 = 0;
const NF_ACCEPT: i32 = 1;
const NFPROTO_IPV4: u8 = 2;
const NFPROTO_IPV6: u8 = 10;

/// A value a statement loads: where from, and its length in bytes.
enum Load {
    Meta(u32, u32),
    Payload { base: u32, offset: u32, len: u32, family: Option<u8> },
}

impl Load {
    fn parse(v: &Value) -> Result<Load, String> {
        if let Some(meta) = v.get("meta") {
            return match meta.get("key").and_then(Value::as_str) {
                Some("iifname") => Ok(Load::Meta(NFT_META_IIFNAME, 16)),
                Some("l4proto") => Ok(Load::Meta(NFT_META_L4PROTO, 1)),
                other => Err(format!("meta {other:?} is not supported")),
            };
        }
        let p = v.get("payload").ok_or_else(|| format!("cannot load {v}"))?;
        let field = (p.get("protocol").and_then(Value::as_str), p.get("field").and_then(Value::as_str));
        let (base, offset, len, family) = match field {
            (Some("ip"), Some("saddr")) => (NFT_PAYLOAD_NETWORK_HEADER, 12, 4, Some(NFPROTO_IPV4)),
            (Some("ip"), Some("daddr")) => (NFT_PAYLOAD_NETWORK_HEADER, 16, 4, Some(NFPROTO_IPV4)),
            (Some("ip6"), Some("saddr")) => (NFT_PAYLOAD_NETWORK_HEADER, 8, 16, Some(NFPROTO_IPV6)),
            (Some("ip6"), Some("daddr")) => (NFT_PAYLOAD_NETWORK_HEADER, 24, 16, Some(NFPROTO_IPV6)),
            (Some("th"), Some("dport")) => (NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, None),
            _ => return Err(format!("payload {p} is not supported")),
        };
        Ok(Load::Payload { base, offset, len, family })
    }

    fn family(&self) -> Option<u8> {
        match self {
            Load::Payload { family, .. } => *family,
            Load::Meta(..) => None,
        }
    }
}

/// The register for a value at `words` four-byte words into the registers:
/// a 16-byte register where one starts there, as nft writes it.
fn register(words: u32) -> u32 {
    if words.is_multiple_of(4) { NFT_REG_1 + words / 4 } else { NFT_REG32_00 + words }
}

struct Rule<'a> {
    out: Vec<u8>,
    table: &'a Rendered,
    family_checked: bool,
}

impl Rule<'_> {
    fn expr(&mut self, name: &str, body: impl FnOnce(&mut Vec<u8>)) {
        nested(&mut self.out, NFTA_LIST_ELEM, |o| {
            attr_str(o, NFTA_EXPR_NAME, name);
            nested(o, NFTA_EXPR_DATA, body);
        });
    }

    fn meta(&mut self, key: u32, dreg: u32) {
        self.expr("meta", |o| {
            attr_u32(o, 2, key); // NFTA_META_KEY
            attr_u32(o, 1, dreg); // NFTA_META_DREG
        });
    }

    fn cmp(&mut self, op: u32, sreg: u32, data: &[u8]) {
        self.expr("cmp", |o| {
            attr_u32(o, 1, sreg); // NFTA_CMP_SREG
            attr_u32(o, 2, op); // NFTA_CMP_OP
            value(o, 3, data); // NFTA_CMP_DATA
        });
    }

    fn verdict(&mut self, code: i32, chain: Option<&str>) {
        self.expr("immediate", |o| {
            attr_u32(o, 1, NFT_REG_VERDICT); // NFTA_IMMEDIATE_DREG
            verdict(o, 2, code, chain); // NFTA_IMMEDIATE_DATA
        });
    }

    /// Loads `values` into consecutive registers; returns the first.
    fn load(&mut self, values: &[Load], interval: bool) {
        if let Some(family) = values.iter().find_map(Load::family)
            && !self.family_checked
        {
            self.family_checked = true;
            self.meta(NFT_META_NFPROTO, NFT_REG_1);
            self.cmp(NFT_CMP_EQ, NFT_REG_1, &[family]);
        }
        let mut words = 0;
        for value in values {
            let reg = register(words);
            match value {
                Load::Meta(key, len) => {
                    self.meta(*key, reg);
                    if *key == NFT_META_L4PROTO && interval {
                        self.expr("byteorder", |o| {
                            attr_u32(o, 1, reg); // NFTA_BYTEORDER_SREG
                            attr_u32(o, 2, reg); // NFTA_BYTEORDER_DREG
                            attr_u32(o, 3, NFT_BYTEORDER_HTON); // NFTA_BYTEORDER_OP
                            attr_u32(o, 4, 1); // NFTA_BYTEORDER_LEN
                            attr_u32(o, 5, 2); // NFTA_BYTEORDER_SIZE
                        });
                    }
                    words += len.div_ceil(4);
                }
                Load::Payload { base, offset, len, .. } => {
                    self.expr("payload", |o| {
                        attr_u32(o, 1, reg); // NFTA_PAYLOAD_DREG
                        attr_u32(o, 2, *base); // NFTA_PAYLOAD_BASE
                        attr_u32(o, 3, *offset); // NFTA_PAYLOAD_OFFSET
                        attr_u32(o, 4, *len); // NFTA_PAYLOAD_LEN
                    });
                    words += len.div_ceil(4);
                }
            }
        }
    }

    /// `left` looked up in `@set`; into the verdict register for a map.
    fn lookup(&mut self, left: &Value, set: &Value, inverted: bool, map: bool) -> Result<(), String> {
        let name = set.as_str().and_then(|s| s.strip_prefix('@')).ok_or_else(|| format!("not a set: {set}"))?;
        let def = self.table.sets.get(name).ok_or_else(|| format!("set {name} is not in the table"))?;
        if def.map.is_some() != map {
            return Err(format!("{name}: a set where a map is expected, or the reverse"));
        }
        let values: Vec<Load> = match left.get("concat").and_then(Value::as_array) {
            Some(parts) => parts.iter().map(Load::parse).collect::<Result<_, _>>()?,
            None => vec![Load::parse(left)?],
        };
        self.load(&values, def.interval);
        self.expr("lookup", |o| {
            attr_str(o, 1, name); // NFTA_LOOKUP_SET
            attr_u32(o, 2, NFT_REG_1); // NFTA_LOOKUP_SREG
            if map {
                attr_u32(o, 3, NFT_REG_VERDICT); // NFTA_LOOKUP_DREG
            }
            if inverted {
                attr_u32(o, 5, NFT_LOOKUP_F_INV); // NFTA_LOOKUP_FLAGS
            }
        });
        Ok(())
    }

    fn ct_state(&mut self, states: &Value) -> Result<(), String> {
        let mut mask = 0u32;
        for s in states.as_array().ok_or("ct states are a list")? {
            mask |= match s.as_str() {
                Some("invalid") => 1,
                Some("established") => 2,
                Some("related") => 4,
                Some("new") => 8,
                Some("untracked") => 64,
                _ => return Err(format!("ct state {s} is not supported")),
            };
        }
        self.expr("ct", |o| {
            attr_u32(o, 2, NFT_CT_STATE); // NFTA_CT_KEY
            attr_u32(o, 1, NFT_REG_1); // NFTA_CT_DREG
        });
        self.expr("bitwise", |o| {
            attr_u32(o, 1, NFT_REG_1); // NFTA_BITWISE_SREG
            attr_u32(o, 2, NFT_REG_1); // NFTA_BITWISE_DREG
            attr_u32(o, 3, 4); // NFTA_BITWISE_LEN
            value(o, 4, &mask.to_ne_bytes()); // NFTA_BITWISE_MASK
            value(o, 5, &[0; 4]); // NFTA_BITWISE_XOR
        });
        self.cmp(NFT_CMP_NEQ, NFT_REG_1, &[0; 4]);
        Ok(())
    }

    fn statement(&mut self, stmt: &Value) -> Result<(), String> {
        let o = stmt.as_object().filter(|o| o.len() == 1).ok_or_else(|| format!("bad statement {stmt}"))?;
        let (kind, body) = o.iter().next().expect("one key");
        match kind.as_str() {
            "match" => {
                let left = body.get("left").ok_or("match without left")?;
                let right = body.get("right").ok_or("match without right")?;
                match body.get("op").and_then(Value::as_str) {
                    Some("in") if left.get("ct").and_then(|c| c.get("key")) == Some(&Value::from("state")) => {
                        self.ct_state(right)
                    }
                    Some(op @ ("==" | "!=")) => self.lookup(left, right, op == "!=", false),
                    _ => Err(format!("match {body} is not supported")),
                }
            }
            "vmap" => {
                let key = body.get("key").ok_or("vmap without key")?;
                let data = body.get("data").ok_or("vmap without data")?;
                self.lookup(key, data, false, true)
            }
            "accept" => {
                self.verdict(NF_ACCEPT, None);
                Ok(())
            }
            "drop" => {
                self.verdict(NF_DROP, None);
                Ok(())
            }
            "jump" => {
                let target = body.get("target").and_then(Value::as_str).ok_or("jump without target")?;
                self.verdict(NFT_JUMP, Some(target));
                Ok(())
            }
            "counter" => {
                let name = body.as_str().ok_or("only named counters")?;
                self.expr("objref", |o| {
                    attr_u32(o, 1, NFT_OBJECT_COUNTER); // NFTA_OBJREF_IMM_TYPE
                    attr_str(o, 2, name); // NFTA_OBJREF_IMM_NAME
                });
                Ok(())
            }
            "limit" => {
                let rate = body.get("rate").and_then(Value::as_u64).ok_or("limit without rate")?;
                let burst = body.get("burst").and_then(Value::as_u64).unwrap_or(5);
                let unit: u64 = match body.get("per").and_then(Value::as_str) {
                    Some("second") => 1,
                    Some("minute") => 60,
                    Some("hour") => 3600,
                    other => return Err(format!("limit per {other:?} is not supported")),
                };
                let burst = u32::try_from(burst).map_err(|_| "burst out of range")?;
                self.expr("limit", |o| {
                    attr_u64(o, 1, rate); // NFTA_LIMIT_RATE
                    attr_u64(o, 2, unit); // NFTA_LIMIT_UNIT
                    attr_u32(o, 3, burst); // NFTA_LIMIT_BURST
                    attr_u32(o, 4, NFT_LIMIT_PKTS); // NFTA_LIMIT_TYPE
                    attr_u32(o, 5, 0); // NFTA_LIMIT_FLAGS
                });
                Ok(())
            }
            "log" => {
                let prefix = body.get("prefix").and_then(Value::as_str).ok_or("log without prefix")?;
                if prefix.contains('\0') || prefix.len() > 127 {
                    return Err("log prefix too long".into());
                }
                self.expr("log", |o| attr_str(o, 2, prefix)); // NFTA_LOG_PREFIX
                Ok(())
            }
            other => Err(format!("statement {other} is not supported")),
        }
    }
}

/// The nested `NFTA_LIST_ELEM` expressions of one rule.
pub(super) fn expressions(statements: &[Value], table: &Rendered) -> Result<Vec<u8>, String> {
    let mut rule = Rule { out: Vec::new(), table, family_checked: false };
    for stmt in statements {
        rule.statement(stmt)?;
    }
    Ok(rule.out)
}

#[cfg(test)]
mod tests {
    use super::register;

    #[test]
    fn registers_follow_nft() {
        // ip6 daddr . meta l4proto . th dport: 16-byte registers 1 and 2, then 32-bit register 5.
        assert_eq!([register(0), register(4), register(5)], [1, 2, 13]);
        // ip daddr . meta l4proto . th dport.
        assert_eq!([register(0), register(1), register(2)], [1, 9, 10]);
    }
}
