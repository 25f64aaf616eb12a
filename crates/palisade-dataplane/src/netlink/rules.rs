//! Rule statements as nf_tables expressions:
//!
//! | statement | kernel expressions |
//! |---|---|
//! | `Lookup` of `ip`/`ip6` `saddr`/`daddr`, `meta iifname`, `meta l4proto`, `th dport` or a concatenation of them in `@set` (negated: not in) | loads into consecutive registers, `lookup` (inverted when negated) |
//! | `CtState` | `ct`, `bitwise` mask, `cmp neq 0` |
//! | `ct original`/`reply` `ip`/`ip6` `saddr` in a concatenation | `ct` load of `src_ip`/`src_ip6` with its direction |
//! | `Vmap` of an address in `@map` | load, `lookup` into the verdict register |
//! | `Verdict`: accept, drop, jump, return | `immediate` verdict |
//! | `Limit` (packets per second, burst), `Log` (prefix), `Counter` (named) | `limit`, `log`, `objref` |
//! | `ProtoIs`, `PortIs` (`meta l4proto P`, `P dport N`) | `meta` load and `cmp`, then a `payload` load and `cmp` for the port |
//! | `IfnamePrefix` (`iifname "p*"`) | `meta` load, `cmp` of the prefix's bytes |
//! | `TcpNotSyn` | `meta l4proto` and `cmp`, `payload` load of the flags byte, `bitwise` mask, `cmp neq syn` |
//! | `Prefix` (`ip saddr A/L`) | family check, `payload` load, `bitwise` mask (below full length), `cmp` |
//!
//! As `nft` does, the first statement that reads an IPv4 or IPv6 header
//! field is preceded by a check of the packet's family (`meta nfproto`),
//! and a protocol loaded for an interval lookup gets nft's byte-order
//! expression (size two, length one), so that `nft list` shows what `nft`
//! would have written.

use super::{NFTA_LIST_ELEM, attr, attr_str, attr_u32, attr_u64, nested, value, verdict};
use crate::netlink::objects::name;
use crate::nft::EncodeError;
use crate::ruleset::{AddrField, CtDir, Expr, Rule, Statement, Table, Verdict};

const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;

const NFT_REG_VERDICT: u32 = 0;
const NFT_REG_1: u32 = 1;
const NFT_REG32_00: u32 = 8;

const NFT_META_IIFNAME: u32 = 6;
const NFT_META_OIFNAME: u32 = 7;
const NFT_META_NFPROTO: u32 = 15;
const NFT_META_L4PROTO: u32 = 16;
const NFT_PAYLOAD_NETWORK_HEADER: u32 = 1;
const NFT_PAYLOAD_TRANSPORT_HEADER: u32 = 2;
const NFT_CT_STATE: u32 = 0;
const NFT_CT_SRC_IP: u32 = 19;
const NFT_CT_SRC_IP6: u32 = 21;
const NFT_CMP_EQ: u32 = 0;
const NFT_CMP_NEQ: u32 = 1;
const NFT_LOOKUP_F_INV: u32 = 1;
const NFT_BYTEORDER_HTON: u32 = 1;
const NFT_OBJECT_COUNTER: u32 = 1;
const NFT_LIMIT_PKTS: u32 = 0;
const NFPROTO_IPV4: u8 = 2;
const NFPROTO_IPV6: u8 = 10;

/// A value a statement loads: where from, and its length in bytes.
enum Load {
    Meta(u32, u32),
    Payload {
        base: u32,
        offset: u32,
        len: u32,
        family: Option<u8>,
    },
    /// A `ct` key of one direction's tuple.
    Ct {
        key: u32,
        dir: CtDir,
        len: u32,
    },
}

impl Load {
    fn of(e: Expr) -> Load {
        match e {
            Expr::Iifname => Load::Meta(NFT_META_IIFNAME, 16),
            Expr::Oifname => Load::Meta(NFT_META_OIFNAME, 16),
            Expr::L4proto => Load::Meta(NFT_META_L4PROTO, 1),
            Expr::Addr { v6: false, field } => Load::Payload {
                base: NFT_PAYLOAD_NETWORK_HEADER,
                offset: if field == AddrField::Saddr { 12 } else { 16 },
                len: 4,
                family: Some(NFPROTO_IPV4),
            },
            Expr::Addr { v6: true, field } => Load::Payload {
                base: NFT_PAYLOAD_NETWORK_HEADER,
                offset: if field == AddrField::Saddr { 8 } else { 24 },
                len: 16,
                family: Some(NFPROTO_IPV6),
            },
            Expr::Dport => Load::Payload { base: NFT_PAYLOAD_TRANSPORT_HEADER, offset: 2, len: 2, family: None },
            Expr::CtSaddr { v6: false, dir } => Load::Ct { key: NFT_CT_SRC_IP, dir, len: 4 },
            Expr::CtSaddr { v6: true, dir } => Load::Ct { key: NFT_CT_SRC_IP6, dir, len: 16 },
        }
    }

    /// The family check `nft` puts before the first load of this value
    /// (a `ct` address in a concatenation follows the header address that
    /// carries the check).
    fn family(&self) -> Option<u8> {
        match self {
            Load::Payload { family, .. } => *family,
            Load::Meta(..) | Load::Ct { .. } => None,
        }
    }
}

/// The register for a value at `words` four-byte words into the registers:
/// a 16-byte register where one starts there, as nft writes it.
fn register(words: u32) -> u32 {
    if words.is_multiple_of(4) { NFT_REG_1 + words / 4 } else { NFT_REG32_00 + words }
}

struct Encoder<'a> {
    out: Vec<u8>,
    table: &'a Table,
    family_checked: bool,
}

impl Encoder<'_> {
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

    fn verdict(&mut self, v: &Verdict) -> Result<(), EncodeError> {
        if let Verdict::Jump(chain) = v {
            name(chain)?;
        }
        self.expr("immediate", |o| {
            attr_u32(o, 1, NFT_REG_VERDICT); // NFTA_IMMEDIATE_DREG
            verdict(o, 2, v); // NFTA_IMMEDIATE_DATA
        });
        Ok(())
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
                Load::Ct { key, dir, len } => {
                    self.expr("ct", |o| {
                        attr_u32(o, 2, *key); // NFTA_CT_KEY
                        attr_u32(o, 1, reg); // NFTA_CT_DREG
                        attr(o, 3, |o| o.push(u8::from(*dir == CtDir::Reply))); // NFTA_CT_DIRECTION
                    });
                    words += len.div_ceil(4);
                }
            }
        }
    }

    /// `left` looked up in `@set`; into the verdict register for a map.
    fn lookup(&mut self, left: &[Expr], set: &str, inverted: bool, map: bool) -> Result<(), EncodeError> {
        let decl = &self.table.sets.get(set).ok_or_else(|| EncodeError::UnknownSet(set.to_string()))?.decl;
        if decl.verdict_map != map {
            return Err(EncodeError::SetKind { set: set.to_string(), verdict_map: decl.verdict_map });
        }
        let values: Vec<Load> = left.iter().map(|e| Load::of(*e)).collect();
        self.load(&values, decl.interval);
        self.expr("lookup", |o| {
            attr_str(o, 1, set); // NFTA_LOOKUP_SET
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

    fn ct_state(&mut self, mask: u32) {
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
    }

    fn statement(&mut self, stmt: &Statement) -> Result<(), EncodeError> {
        match stmt {
            Statement::CtState(states) => self.ct_state(states.bits()),
            Statement::Lookup { left, set, negated } => self.lookup(left, set, *negated, false)?,
            Statement::Vmap { key, map } => self.lookup(std::slice::from_ref(key), map, false, true)?,
            Statement::Verdict(v) => self.verdict(v)?,
            Statement::Counter(counter) => {
                let counter = name(counter)?;
                self.expr("objref", |o| {
                    attr_u32(o, 1, NFT_OBJECT_COUNTER); // NFTA_OBJREF_IMM_TYPE
                    attr_str(o, 2, counter); // NFTA_OBJREF_IMM_NAME
                });
            }
            Statement::Limit { per_second, burst } => self.expr("limit", |o| {
                attr_u64(o, 1, *per_second); // NFTA_LIMIT_RATE
                attr_u64(o, 2, 1); // NFTA_LIMIT_UNIT: seconds
                attr_u32(o, 3, *burst); // NFTA_LIMIT_BURST
                attr_u32(o, 4, NFT_LIMIT_PKTS); // NFTA_LIMIT_TYPE
                attr_u32(o, 5, 0); // NFTA_LIMIT_FLAGS
            }),
            Statement::ProtoIs(p) => {
                self.meta(NFT_META_L4PROTO, NFT_REG_1);
                self.cmp(NFT_CMP_EQ, NFT_REG_1, &[crate::ruleset::ip_proto(*p)]);
            }
            Statement::PortIs(p, port) => {
                // As nft writes `tcp dport N` in an inet table: the
                // protocol first, then the port.
                self.meta(NFT_META_L4PROTO, NFT_REG_1);
                self.cmp(NFT_CMP_EQ, NFT_REG_1, &[crate::ruleset::ip_proto(*p)]);
                self.expr("payload", |o| {
                    attr_u32(o, 1, NFT_REG_1); // NFTA_PAYLOAD_DREG
                    attr_u32(o, 2, NFT_PAYLOAD_TRANSPORT_HEADER); // NFTA_PAYLOAD_BASE
                    attr_u32(o, 3, 2); // NFTA_PAYLOAD_OFFSET
                    attr_u32(o, 4, 2); // NFTA_PAYLOAD_LEN
                });
                self.cmp(NFT_CMP_EQ, NFT_REG_1, &port.to_be_bytes());
            }
            Statement::IfnamePrefix { out, prefix } => {
                if prefix.is_empty() || prefix.len() > 15 || prefix.contains('\0') {
                    return Err(EncodeError::Ifname(prefix.clone()));
                }
                // As nft writes `iifname "p*"`: a compare of the prefix's bytes only.
                self.meta(if *out { NFT_META_OIFNAME } else { NFT_META_IIFNAME }, NFT_REG_1);
                self.cmp(NFT_CMP_EQ, NFT_REG_1, prefix.as_bytes());
            }
            Statement::TcpNotSyn => {
                // As nft writes it: the protocol, the flags byte masked
                // with fin|syn|rst|ack, compared with syn.
                self.meta(NFT_META_L4PROTO, NFT_REG_1);
                self.cmp(NFT_CMP_EQ, NFT_REG_1, &[6]);
                self.expr("payload", |o| {
                    attr_u32(o, 1, NFT_REG_1); // NFTA_PAYLOAD_DREG
                    attr_u32(o, 2, NFT_PAYLOAD_TRANSPORT_HEADER); // NFTA_PAYLOAD_BASE
                    attr_u32(o, 3, 13); // NFTA_PAYLOAD_OFFSET
                    attr_u32(o, 4, 1); // NFTA_PAYLOAD_LEN
                });
                self.expr("bitwise", |o| {
                    attr_u32(o, 1, NFT_REG_1); // NFTA_BITWISE_SREG
                    attr_u32(o, 2, NFT_REG_1); // NFTA_BITWISE_DREG
                    attr_u32(o, 3, 1); // NFTA_BITWISE_LEN
                    value(o, 4, &[0x17]); // NFTA_BITWISE_MASK: fin|syn|rst|ack
                    value(o, 5, &[0]); // NFTA_BITWISE_XOR
                });
                self.cmp(NFT_CMP_NEQ, NFT_REG_1, &[0x02]);
            }
            Statement::Prefix { field, net, len } => {
                self.load(&[Load::of(Expr::addr(net.is_ipv6(), *field))], false);
                let (bytes, full) = match net {
                    std::net::IpAddr::V4(a) => (a.octets().to_vec(), 32),
                    std::net::IpAddr::V6(a) => (a.octets().to_vec(), 128),
                };
                if *len < full {
                    // As nft writes a prefix: mask, then compare.
                    let mask: Vec<u8> = (0..bytes.len())
                        .map(|i| {
                            let bits = usize::from(*len).saturating_sub(i * 8).min(8);
                            if bits == 0 { 0 } else { 0xffu8 << (8 - bits) }
                        })
                        .collect();
                    let width = u32::try_from(bytes.len()).expect("16 bytes at most");
                    self.expr("bitwise", |o| {
                        attr_u32(o, 1, NFT_REG_1); // NFTA_BITWISE_SREG
                        attr_u32(o, 2, NFT_REG_1); // NFTA_BITWISE_DREG
                        attr_u32(o, 3, width); // NFTA_BITWISE_LEN
                        value(o, 4, &mask); // NFTA_BITWISE_MASK
                        value(o, 5, &vec![0; bytes.len()]); // NFTA_BITWISE_XOR
                    });
                }
                self.cmp(NFT_CMP_EQ, NFT_REG_1, &bytes);
            }
            Statement::Log { prefix, group } => {
                if prefix.contains('\0') || prefix.len() > 127 {
                    return Err(EncodeError::LogPrefix(prefix.chars().take(40).collect()));
                }
                self.expr("log", |o| {
                    if let Some(group) = group {
                        attr(o, 1, |b| b.extend_from_slice(&group.to_be_bytes())); // NFTA_LOG_GROUP
                    }
                    attr_str(o, 2, prefix); // NFTA_LOG_PREFIX
                });
            }
        }
        Ok(())
    }
}

/// The nested `NFTA_LIST_ELEM` expressions of one rule.
pub(super) fn expressions(rule: &Rule, table: &Table) -> Result<Vec<u8>, EncodeError> {
    let mut encoder = Encoder { out: Vec::new(), table, family_checked: false };
    for stmt in &rule.0 {
        encoder.statement(stmt)?;
    }
    Ok(encoder.out)
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
