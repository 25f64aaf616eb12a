//! One `nft -j` command as nf_tables messages: tables, counters, sets and
//! maps, chains, rules and elements of Palisade's table only.

use serde_json::Value;

use super::{Batch, attr_bytes, attr_str, attr_u32, attr_u64, nested};
use crate::netlink::{elements, rules};
use crate::render::{Rendered, TABLE};

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

/// A field of a set key: nft's type id and its length in bytes.
pub(super) fn key_field(kind: &str) -> Option<(u32, u32)> {
    Some(match kind {
        "ipv4_addr" => (7, 4),
        "ipv6_addr" => (8, 16),
        "inet_proto" => (12, 1),
        "inet_service" => (13, 2),
        "ifname" => (IFNAME_TYPE, 16),
        _ => return None,
    })
}

/// The fields of a set's `type` (a name, or a list for concatenations).
pub(super) fn key_fields(kind: &Value) -> Option<Vec<&str>> {
    match kind {
        Value::String(k) => Some(vec![k.as_str()]),
        Value::Array(ks) => ks.iter().map(Value::as_str).collect(),
        _ => None,
    }
}

/// The command's single `{kind: body}` pair.
fn single(v: &Value) -> Result<(&str, &Value), String> {
    let o = v.as_object().filter(|o| o.len() == 1).ok_or("expected one key")?;
    let (k, v) = o.iter().next().expect("one key");
    Ok((k.as_str(), v))
}

fn text<'a>(body: &'a Value, key: &str) -> Result<&'a str, String> {
    body.get(key).and_then(Value::as_str).ok_or_else(|| format!("no \"{key}\""))
}

/// Appends the messages for one command.
pub(super) fn command(batch: &mut Batch, command: &Value, table: &Rendered) -> Result<(), String> {
    let (verb, object) = single(command)?;
    let (kind, body) = single(object)?;
    if text(body, "family")? != "inet" {
        return Err("only the inet family".into());
    }
    let table_name = if kind == "table" { text(body, "name")? } else { text(body, "table")? };
    if table_name != TABLE {
        return Err(format!("only table {TABLE}"));
    }
    match (verb, kind) {
        ("add", "table") => batch.nft(NFT_MSG_NEWTABLE, NLM_F_CREATE, |o| {
            attr_str(o, NFTA_TABLE_NAME, TABLE);
            attr_u32(o, NFTA_TABLE_FLAGS, 0);
        }),
        ("delete", "table") => batch.nft(NFT_MSG_DELTABLE, 0, |o| attr_str(o, NFTA_TABLE_NAME, TABLE)),
        ("add", "counter") => {
            let name = text(body, "name")?;
            batch.nft(NFT_MSG_NEWOBJ, NLM_F_CREATE, |o| {
                attr_str(o, NFTA_OBJ_TABLE, TABLE);
                attr_str(o, NFTA_OBJ_NAME, name);
                attr_u32(o, NFTA_OBJ_TYPE, NFT_OBJECT_COUNTER);
                nested(o, NFTA_OBJ_DATA, |o| {
                    attr_u64(o, NFTA_COUNTER_BYTES, 0);
                    attr_u64(o, NFTA_COUNTER_PACKETS, 0);
                });
            });
        }
        ("delete", "counter") => {
            let name = text(body, "name")?;
            batch.nft(NFT_MSG_DELOBJ, 0, |o| {
                attr_str(o, NFTA_OBJ_TABLE, TABLE);
                attr_str(o, NFTA_OBJ_NAME, name);
                attr_u32(o, NFTA_OBJ_TYPE, NFT_OBJECT_COUNTER);
            });
        }
        ("add", "set" | "map") => add_set(batch, kind == "map", body, table)?,
        ("delete", "set" | "map") => {
            let name = text(body, "name")?;
            batch.nft(NFT_MSG_DELSET, 0, |o| {
                attr_str(o, NFTA_SET_TABLE, TABLE);
                attr_str(o, NFTA_SET_NAME, name);
            });
        }
        ("add", "chain") => add_chain(batch, body)?,
        ("delete", "chain") => {
            let name = text(body, "name")?;
            batch.nft(NFT_MSG_DELCHAIN, 0, |o| {
                attr_str(o, NFTA_CHAIN_TABLE, TABLE);
                attr_str(o, NFTA_CHAIN_NAME, name);
            });
        }
        // A rule deletion naming only the chain removes all its rules.
        ("flush", "chain") => {
            let name = text(body, "name")?;
            batch.nft(NFT_MSG_DELRULE, 0, |o| {
                attr_str(o, NFTA_RULE_TABLE, TABLE);
                attr_str(o, NFTA_RULE_CHAIN, name);
            });
        }
        ("add", "rule") => {
            let chain = text(body, "chain")?;
            let exprs = body.get("expr").and_then(Value::as_array).ok_or("no \"expr\"")?;
            let encoded = rules::expressions(exprs, table)?;
            batch.nft(NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND, |o| {
                attr_str(o, NFTA_RULE_TABLE, TABLE);
                attr_str(o, NFTA_RULE_CHAIN, chain);
                nested(o, NFTA_RULE_EXPRESSIONS, |o| o.extend_from_slice(&encoded));
            });
        }
        ("add" | "delete", "element") => {
            let name = text(body, "name")?;
            let def = table.sets.get(name).ok_or_else(|| format!("set {name} is not in the table"))?;
            let elems = body.get("elem").and_then(Value::as_array).ok_or("no \"elem\"")?;
            elements::messages(batch, name, def, elems, verb == "add")?;
        }
        _ => return Err(format!("{verb} {kind} is not supported")),
    }
    Ok(())
}

fn add_chain(batch: &mut Batch, body: &Value) -> Result<(), String> {
    let name = text(body, "name")?;
    let base = match body.get("hook") {
        None => None,
        Some(hook) => {
            if hook != "forward" || text(body, "type")? != "filter" || text(body, "policy")? != "accept" {
                return Err("only filter chains on the forward hook with policy accept".into());
            }
            let prio = body.get("prio").and_then(Value::as_i64).ok_or("no \"prio\"")?;
            Some(i32::try_from(prio).map_err(|_| "priority out of range")?)
        }
    };
    batch.nft(NFT_MSG_NEWCHAIN, NLM_F_CREATE, |o| {
        attr_str(o, NFTA_CHAIN_TABLE, TABLE);
        attr_str(o, NFTA_CHAIN_NAME, name);
        if let Some(prio) = base {
            nested(o, NFTA_CHAIN_HOOK, |o| {
                attr_u32(o, NFTA_HOOK_HOOKNUM, NF_INET_FORWARD);
                attr_u32(o, NFTA_HOOK_PRIORITY, prio.cast_unsigned());
            });
            attr_u32(o, NFTA_CHAIN_POLICY, NF_ACCEPT);
            attr_str(o, NFTA_CHAIN_TYPE, "filter");
        }
    });
    Ok(())
}

fn add_set(batch: &mut Batch, map: bool, body: &Value, table: &Rendered) -> Result<(), String> {
    let name = text(body, "name")?;
    let kind = body.get("type").ok_or("no \"type\"")?;
    let fields = key_fields(kind).ok_or("bad \"type\"")?;
    let fields: Vec<(u32, u32)> = fields
        .iter()
        .map(|f| key_field(f).ok_or_else(|| format!("type {f} is not supported")))
        .collect::<Result<_, _>>()?;
    let interval = match body.get("flags") {
        None => false,
        Some(flags) if flags == &serde_json::json!(["interval"]) => true,
        Some(flags) => return Err(format!("flags {flags} are not supported")),
    };
    if map && body.get("map").and_then(Value::as_str) != Some("verdict") {
        return Err("only verdict maps".into());
    }
    let concat = fields.len() > 1;
    // Concatenations: nft's composite type id, each field padded to 4 bytes.
    let key_type = fields.iter().fold(0u32, |acc, (id, _)| (acc << 6) | id);
    let key_len: u32 = if concat { fields.iter().map(|(_, len)| len.next_multiple_of(4)).sum() } else { fields[0].1 };
    let mut flags = 0;
    if interval {
        flags |= NFT_SET_INTERVAL;
        if concat {
            flags |= NFT_SET_CONCAT;
        }
    }
    if map {
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
        if map {
            attr_u32(o, NFTA_SET_DATA_TYPE, NFT_DATA_VERDICT);
            attr_u32(o, NFTA_SET_DATA_LEN, 0);
        }
        attr_u32(o, NFTA_SET_ID, id);
        if interval && concat {
            nested(o, NFTA_SET_DESC, |o| {
                nested(o, NFTA_SET_DESC_CONCAT, |o| {
                    for (_, len) in &fields {
                        nested(o, NFTA_LIST_ELEM, |o| attr_u32(o, NFTA_SET_FIELD_LEN, *len));
                    }
                });
            });
        }
        if !concat {
            attr_bytes(o, NFTA_SET_USERDATA, &userdata(fields[0].0, map));
        }
    });
    if let Some(elems) = body.get("elem").and_then(Value::as_array) {
        let def = table.sets.get(name).ok_or_else(|| format!("set {name} is not in the table"))?;
        elements::messages(batch, name, def, elems, true)?;
    }
    Ok(())
}
