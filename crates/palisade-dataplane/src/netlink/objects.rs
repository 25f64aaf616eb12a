//! One command as nf_tables messages: tables, counters, sets and maps,
//! chains, rules and elements of Palisade's table only.

use super::{Batch, attr_bytes, attr_str, attr_u32, attr_u64, nested};
use crate::netlink::{elements, rules};
use crate::nft::EncodeError;
use crate::ruleset::{Hook, KeyType, SetDecl, TABLE, Table};
use crate::transaction::Command;

const NLM_F_CREATE: u16 = 0x400;
const NLM_F_APPEND: u16 = 0x800;

const NFT_MSG_NEWTABLE: u16 = 0;
const NFT_MSG_DELTABLE: u16 = 2;
const NFT_MSG_NEWCHAIN: u16 = 3;
const NFT_MSG_DELCHAIN: u16 = 5;
const NFT_MSG_NEWRULE: u16 = 6;
const NFT_MSG_DELRULE: u16 = 8;
const NFT_MSG_NEWSET: u16 = 9;
const NFT_MSG_DELSET: u16 = 11;
const NFT_MSG_NEWOBJ: u16 = 18;
const NFT_MSG_DELOBJ: u16 = 20;

const NFTA_TABLE_NAME: u16 = 1;
const NFTA_TABLE_FLAGS: u16 = 2;
const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_CHAIN_HOOK: u16 = 4;
const NFTA_CHAIN_POLICY: u16 = 5;
const NFTA_CHAIN_TYPE: u16 = 7;
const NFTA_HOOK_HOOKNUM: u16 = 1;
const NFTA_HOOK_PRIORITY: u16 = 2;
const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NFTA_SET_TABLE: u16 = 1;
const NFTA_SET_NAME: u16 = 2;
const NFTA_SET_FLAGS: u16 = 3;
const NFTA_SET_KEY_TYPE: u16 = 4;
const NFTA_SET_KEY_LEN: u16 = 5;
const NFTA_SET_DATA_TYPE: u16 = 6;
const NFTA_SET_DATA_LEN: u16 = 7;
const NFTA_SET_DESC: u16 = 9;
const NFTA_SET_ID: u16 = 10;
const NFTA_SET_USERDATA: u16 = 13;
const NFTA_SET_DESC_CONCAT: u16 = 2;
const NFTA_SET_FIELD_LEN: u16 = 1;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_OBJ_TABLE: u16 = 1;
const NFTA_OBJ_NAME: u16 = 2;
const NFTA_OBJ_TYPE: u16 = 3;
const NFTA_OBJ_DATA: u16 = 4;
const NFTA_COUNTER_BYTES: u16 = 1;
const NFTA_COUNTER_PACKETS: u16 = 2;

const NFT_OBJECT_COUNTER: u32 = 1;
const NFT_SET_INTERVAL: u32 = 0x4;
const NFT_SET_MAP: u32 = 0x8;
const NFT_SET_CONCAT: u32 = 0x80;
const NFT_DATA_VERDICT: u32 = 0xffff_ff00;
const NF_INET_FORWARD: u32 = 2;
const NF_ACCEPT: u32 = 1;

/// nft's set userdata, which only `nft list` reads (it is what `nft`
/// itself stores for these declarations): the key's byte order
/// (`NFTNL_UDATA_SET_KEYBYTEORDER`: 1 host, for interface names; 2 big
/// endian, for addresses) for single-field sets, and for verdict maps also
/// the data's byte order (`NFTNL_UDATA_SET_DATABYTEORDER`, none) and that
/// the data are not intervals (`NFTNL_UDATA_SET_DATA_INTERVAL`).
fn userdata(field_type: u32, map: bool) -> Vec<u8> {
    let order = if field_type == IFNAME_TYPE { 1 } else { 2 };
    let mut out = vec![0, 4, order, 0, 0, 0];
    if map {
        out.extend_from_slice(&[1, 4, 0, 0, 0, 0, 6, 4, 0, 0, 0, 0]);
    }
    out
}

const IFNAME_TYPE: u32 = 41;
/// Longest object name the kernel takes (`NFT_NAME_MAXLEN` less the NUL).
const NAME_MAX: usize = 255;

/// A field of a set key: nft's type id and its length in bytes.
pub(super) fn key_field(kind: KeyType) -> (u32, u32) {
    match kind {
        KeyType::Ipv4Addr => (7, 4),
        KeyType::Ipv6Addr => (8, 16),
        KeyType::InetProto => (12, 1),
        KeyType::InetService => (13, 2),
        KeyType::Ifname => (IFNAME_TYPE, 16),
    }
}

/// `name`, if the kernel can hold it.
pub(super) fn name(name: &str) -> Result<&str, EncodeError> {
    if name.len() > NAME_MAX || name.contains('\0') {
        return Err(EncodeError::Name(name.chars().take(80).collect()));
    }
    Ok(name)
}

/// Appends the messages for one command.
pub(super) fn command(batch: &mut Batch, command: &Command, table: &Table) -> Result<(), EncodeError> {
    match command {
        Command::AddTable => batch.nft(NFT_MSG_NEWTABLE, NLM_F_CREATE, |o| {
            attr_str(o, NFTA_TABLE_NAME, TABLE);
            attr_u32(o, NFTA_TABLE_FLAGS, 0);
        }),
        Command::DeleteTable => batch.nft(NFT_MSG_DELTABLE, 0, |o| attr_str(o, NFTA_TABLE_NAME, TABLE)),
        Command::AddCounter(counter) => {
            let counter = name(counter)?;
            batch.nft(NFT_MSG_NEWOBJ, NLM_F_CREATE, |o| {
                attr_str(o, NFTA_OBJ_TABLE, TABLE);
                attr_str(o, NFTA_OBJ_NAME, counter);
                attr_u32(o, NFTA_OBJ_TYPE, NFT_OBJECT_COUNTER);
                nested(o, NFTA_OBJ_DATA, |o| {
                    attr_u64(o, NFTA_COUNTER_BYTES, 0);
                    attr_u64(o, NFTA_COUNTER_PACKETS, 0);
                });
            });
        }
        Command::DeleteCounter(counter) => {
            let counter = name(counter)?;
            batch.nft(NFT_MSG_DELOBJ, 0, |o| {
                attr_str(o, NFTA_OBJ_TABLE, TABLE);
                attr_str(o, NFTA_OBJ_NAME, counter);
                attr_u32(o, NFTA_OBJ_TYPE, NFT_OBJECT_COUNTER);
            });
        }
        Command::AddSet { name: set, decl, elements } => {
            add_set(batch, name(set)?, decl);
            if !elements.is_empty() {
                elements::messages(batch, set, decl, elements, true)?;
            }
        }
        Command::DeleteSet { name: set, .. } => {
            let set = name(set)?;
            batch.nft(NFT_MSG_DELSET, 0, |o| {
                attr_str(o, NFTA_SET_TABLE, TABLE);
                attr_str(o, NFTA_SET_NAME, set);
            });
        }
        Command::AddChain { name: chain, base } => add_chain(batch, name(chain)?, *base),
        Command::DeleteChain(chain) => {
            let chain = name(chain)?;
            batch.nft(NFT_MSG_DELCHAIN, 0, |o| {
                attr_str(o, NFTA_CHAIN_TABLE, TABLE);
                attr_str(o, NFTA_CHAIN_NAME, chain);
            });
        }
        // A rule deletion naming only the chain removes all its rules.
        Command::FlushChain(chain) => {
            let chain = name(chain)?;
            batch.nft(NFT_MSG_DELRULE, 0, |o| {
                attr_str(o, NFTA_RULE_TABLE, TABLE);
                attr_str(o, NFTA_RULE_CHAIN, chain);
            });
        }
        Command::AddRule { chain, rule } => {
            let chain = name(chain)?;
            let encoded = rules::expressions(rule, table)?;
            batch.nft(NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND, |o| {
                attr_str(o, NFTA_RULE_TABLE, TABLE);
                attr_str(o, NFTA_RULE_CHAIN, chain);
                nested(o, NFTA_RULE_EXPRESSIONS, |o| o.extend_from_slice(&encoded));
            });
        }
        Command::AddElements { set, decl, elements } => elements::messages(batch, name(set)?, decl, elements, true)?,
        Command::DeleteElements { set, decl, elements } => {
            elements::messages(batch, name(set)?, decl, elements, false)?;
        }
    }
    Ok(())
}

fn add_chain(batch: &mut Batch, name: &str, base: Option<(Hook, i32)>) {
    batch.nft(NFT_MSG_NEWCHAIN, NLM_F_CREATE, |o| {
        attr_str(o, NFTA_CHAIN_TABLE, TABLE);
        attr_str(o, NFTA_CHAIN_NAME, name);
        if let Some((Hook::Forward, prio)) = base {
            nested(o, NFTA_CHAIN_HOOK, |o| {
                attr_u32(o, NFTA_HOOK_HOOKNUM, NF_INET_FORWARD);
                attr_u32(o, NFTA_HOOK_PRIORITY, prio.cast_unsigned());
            });
            attr_u32(o, NFTA_CHAIN_POLICY, NF_ACCEPT);
            attr_str(o, NFTA_CHAIN_TYPE, "filter");
        }
    });
}

fn add_set(batch: &mut Batch, name: &str, decl: &SetDecl) {
    let fields: Vec<(u32, u32)> = decl.key.iter().map(|k| key_field(*k)).collect();
    let concat = fields.len() > 1;
    // Concatenations: nft's composite type id, each field padded to 4 bytes.
    let key_type = fields.iter().fold(0u32, |acc, (id, _)| (acc << 6) | id);
    let key_len: u32 = if concat { fields.iter().map(|(_, len)| len.next_multiple_of(4)).sum() } else { fields[0].1 };
    let mut flags = 0;
    if decl.interval {
        flags |= NFT_SET_INTERVAL;
        if concat {
            flags |= NFT_SET_CONCAT;
        }
    }
    if decl.verdict_map {
        flags |= NFT_SET_MAP;
    }
    batch.set_ids += 1;
    let id = batch.set_ids;
    batch.nft(NFT_MSG_NEWSET, NLM_F_CREATE, |o| {
        attr_str(o, NFTA_SET_TABLE, TABLE);
        attr_str(o, NFTA_SET_NAME, name);
        attr_u32(o, NFTA_SET_FLAGS, flags);
        attr_u32(o, NFTA_SET_KEY_TYPE, key_type);
        attr_u32(o, NFTA_SET_KEY_LEN, key_len);
        if decl.verdict_map {
            attr_u32(o, NFTA_SET_DATA_TYPE, NFT_DATA_VERDICT);
            attr_u32(o, NFTA_SET_DATA_LEN, 0);
        }
        attr_u32(o, NFTA_SET_ID, id);
        if decl.interval && concat {
            nested(o, NFTA_SET_DESC, |o| {
                nested(o, NFTA_SET_DESC_CONCAT, |o| {
                    for (_, len) in &fields {
                        nested(o, NFTA_LIST_ELEM, |o| attr_u32(o, NFTA_SET_FIELD_LEN, *len));
                    }
                });
            });
        }
        if !concat {
            attr_bytes(o, NFTA_SET_USERDATA, &userdata(fields[0].0, decl.verdict_map));
        }
    });
}
