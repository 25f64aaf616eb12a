//! Reading a `nft -j list table` listing back into the typed table, so
//! that drift detection compares what the kernel holds with what was
//! applied object by object, rule by rule and element by element, not by
//! counts. Anything Palisade never writes (another statement, a set flag,
//! a hook, a chain policy) cannot be represented; it is reported as
//! unreadable, which is drift too.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use palisade_policy::Protocol;
use serde_json::{Value, json};

use super::Listing;
use crate::ruleset::{
    AddrField, Chain, CtDir, CtStates, Datum, Element, Expr, Hook, Key, KeyType, Part, Rule, Set, SetDecl, Statement,
    Table, Verdict,
};

/// What a listing holds, as far as Palisade's table objects go.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListedTable {
    /// The objects read.
    pub table: Table,
    /// What could not be read as anything Palisade writes, one line each
    /// (the object and why).
    pub unreadable: Vec<String>,
}

type Read<T> = Result<T, String>;

fn str_of<'a>(v: &'a Value, key: &str) -> Read<&'a str> {
    v.get(key).and_then(Value::as_str).ok_or_else(|| format!("no `{key}`"))
}

fn key_type(name: &str) -> Read<KeyType> {
    [KeyType::Ipv4Addr, KeyType::Ipv6Addr, KeyType::InetProto, KeyType::InetService, KeyType::Ifname]
        .into_iter()
        .find(|k| k.name() == name)
        .ok_or_else(|| format!("type {name}"))
}

fn protocol(v: &Value) -> Read<Protocol> {
    match (v.as_str(), v.as_u64()) {
        (Some("tcp"), _) | (_, Some(6)) => Ok(Protocol::Tcp),
        (Some("udp"), _) | (_, Some(17)) => Ok(Protocol::Udp),
        (Some("sctp"), _) | (_, Some(132)) => Ok(Protocol::Sctp),
        _ => Err(format!("protocol {v}")),
    }
}

fn datum(v: &Value, kind: KeyType) -> Read<Datum> {
    let text = || v.as_str().ok_or_else(|| format!("{} {v}", kind.name()));
    let d = match kind {
        KeyType::Ipv4Addr | KeyType::Ipv6Addr => {
            Datum::Addr(text()?.parse::<IpAddr>().map_err(|_| format!("address {v}"))?)
        }
        KeyType::InetProto => Datum::Proto(protocol(v)?),
        KeyType::InetService => Datum::Port(
            v.as_u64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                .and_then(|p| u16::try_from(p).ok())
                .ok_or_else(|| format!("port {v}"))?,
        ),
        KeyType::Ifname => Datum::Ifname(text()?.into()),
    };
    if d.fits(kind) { Ok(d) } else { Err(format!("{d} is not a {}", kind.name())) }
}

/// The last address of `addr/len`.
fn prefix_last(addr: IpAddr, len: u64) -> Read<IpAddr> {
    match addr {
        IpAddr::V4(a) if len <= 32 => {
            let host = u32::MAX.checked_shr(u32::try_from(len).unwrap_or(32)).unwrap_or(0);
            Ok(IpAddr::V4(Ipv4Addr::from(u32::from(a) | host)))
        }
        IpAddr::V6(a) if len <= 128 => {
            let host = u128::MAX.checked_shr(u32::try_from(len).unwrap_or(128)).unwrap_or(0);
            Ok(IpAddr::V6(Ipv6Addr::from(u128::from(a) | host)))
        }
        _ => Err(format!("prefix length {len}")),
    }
}

fn part(v: &Value, kind: KeyType) -> Read<Part> {
    if let Some([a, b]) = v.get("range").and_then(Value::as_array).map(Vec::as_slice) {
        return Ok(Part::range(datum(a, kind)?, datum(b, kind)?));
    }
    if let Some(p) = v.get("prefix") {
        let Datum::Addr(first) = datum(p.get("addr").unwrap_or(&Value::Null), kind)? else {
            return Err(format!("prefix {v}"));
        };
        let len = p.get("len").and_then(Value::as_u64).ok_or_else(|| format!("prefix {v}"))?;
        return Ok(Part::range(Datum::Addr(first), Datum::Addr(prefix_last(first, len)?)));
    }
    Ok(Part::One(datum(v, kind)?))
}

fn key(v: &Value, kinds: &[KeyType]) -> Read<Key> {
    // An element with stateful data lists its value under `elem.val`.
    let v = v.get("elem").and_then(|e| e.get("val")).unwrap_or(v);
    match (kinds, v.get("concat").and_then(Value::as_array)) {
        ([one], None) => Ok(Key::One(part(v, *one)?)),
        (many, Some(parts)) if many.len() == parts.len() && many.len() > 1 => {
            Ok(Key::Concat(parts.iter().zip(many).map(|(p, k)| part(p, *k)).collect::<Read<Vec<_>>>()?.into()))
        }
        _ => Err(format!("key {v}")),
    }
}

fn verdict(v: &Value) -> Read<Verdict> {
    if v.get("accept").is_some() {
        Ok(Verdict::Accept)
    } else if v.get("drop").is_some() {
        Ok(Verdict::Drop)
    } else if v.get("return").is_some() {
        Ok(Verdict::Return)
    } else if let Some(target) = v.get("jump").and_then(|j| j.get("target")).and_then(Value::as_str) {
        Ok(Verdict::Jump(target.to_string()))
    } else {
        Err(format!("verdict {v}"))
    }
}

fn set(v: &Value, verdict_map: bool) -> Read<Set> {
    let kinds: Vec<KeyType> = match v.get("type") {
        Some(Value::String(one)) => vec![key_type(one)?],
        Some(Value::Array(many)) => {
            many.iter().map(|k| key_type(k.as_str().unwrap_or_default())).collect::<Read<Vec<_>>>()?
        }
        _ => return Err("no type".into()),
    };
    if verdict_map && v.get("map").and_then(Value::as_str) != Some("verdict") {
        return Err(format!("a map to {}", v.get("map").unwrap_or(&Value::Null)));
    }
    let flags: Vec<&str> =
        v.get("flags").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
    if let Some(flag) = flags.iter().find(|f| **f != "interval") {
        return Err(format!("flag {flag}"));
    }
    let decl = SetDecl { key: kinds, verdict_map, interval: flags.contains(&"interval") };
    let mut elements = std::collections::BTreeSet::new();
    for e in v.get("elem").and_then(Value::as_array).into_iter().flatten() {
        let element = match (verdict_map, e.as_array().map(Vec::as_slice)) {
            (true, Some([k, d])) => Element { key: key(k, &decl.key)?, verdict: Some(verdict(d)?) },
            (false, _) => Element::key(key(e, &decl.key)?),
            _ => return Err(format!("element {e}")),
        };
        elements.insert(element);
    }
    Ok(Set { decl, elements })
}

fn chain(v: &Value) -> Read<Chain> {
    let Some(hook) = v.get("hook") else { return Ok(Chain::default()) };
    let prio = v.get("prio").and_then(Value::as_i64).and_then(|p| i32::try_from(p).ok());
    match (v.get("type").and_then(Value::as_str), hook.as_str(), v.get("policy").and_then(Value::as_str), prio) {
        (Some("filter"), Some("forward"), Some("accept"), Some(prio)) => {
            Ok(Chain { base: Some((Hook::Forward, prio)), rules: Vec::new() })
        }
        _ => Err(format!(
            "base chain of type {}, hook {hook}, policy {}",
            v.get("type").unwrap_or(&Value::Null),
            v.get("policy").unwrap_or(&Value::Null)
        )),
    }
}

fn expr(v: &Value) -> Read<Expr> {
    if let Some(meta) = v.get("meta") {
        return match meta.get("key").and_then(Value::as_str) {
            Some("iifname") => Ok(Expr::Iifname),
            Some("oifname") => Ok(Expr::Oifname),
            Some("l4proto") => Ok(Expr::L4proto),
            _ => Err(format!("meta {meta}")),
        };
    }
    if let Some(p) = v.get("payload") {
        return match (p.get("protocol").and_then(Value::as_str), p.get("field").and_then(Value::as_str)) {
            (Some("th"), Some("dport")) => Ok(Expr::Dport),
            (Some(family @ ("ip" | "ip6")), Some(field @ ("saddr" | "daddr"))) => Ok(Expr::Addr {
                v6: family == "ip6",
                field: if field == "saddr" { AddrField::Saddr } else { AddrField::Daddr },
            }),
            _ => Err(format!("payload {p}")),
        };
    }
    if let Some(ct) = v.get("ct") {
        let dir = match ct.get("dir").and_then(Value::as_str) {
            Some("original") => CtDir::Original,
            Some("reply") => CtDir::Reply,
            _ => return Err(format!("ct {ct}")),
        };
        return match ct.get("key").and_then(Value::as_str) {
            Some("ip saddr") => Ok(Expr::CtSaddr { v6: false, dir }),
            Some("ip6 saddr") => Ok(Expr::CtSaddr { v6: true, dir }),
            _ => Err(format!("ct {ct}")),
        };
    }
    Err(format!("expression {v}"))
}

fn ct_states(v: &Value) -> Read<CtStates> {
    let names: Vec<&str> = match v {
        Value::String(one) => vec![one.as_str()],
        Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
        _ => return Err(format!("ct state {v}")),
    };
    let mut states: Option<CtStates> = None;
    for name in names {
        let (s, _) = CtStates::ALL.into_iter().find(|(_, n)| *n == name).ok_or_else(|| format!("ct state {name}"))?;
        states = Some(states.map_or(s, |t| t | s));
    }
    states.ok_or_else(|| "no ct state".into())
}

/// `meta l4proto P`, `tcp|udp|sctp dport N`, `ip saddr A/L`, an interface
/// name prefix or the TCP mid-stream test, if that is what it is.
fn compare(op: &str, left: &Value, right: &Value) -> Option<Statement> {
    if op == "!=" {
        let flags = json!({"&": [{"payload": {"protocol": "tcp", "field": "flags"}}, ["fin", "syn", "rst", "ack"]]});
        return (*left == flags && right == "syn").then_some(Statement::TcpNotSyn);
    }
    if op != "==" {
        return None;
    }
    let key = left.get("meta").and_then(|m| m.get("key")).and_then(Value::as_str);
    if let (Some(key @ ("iifname" | "oifname")), Some(prefix)) = (key, right.as_str().and_then(|r| r.strip_suffix('*')))
    {
        return Some(Statement::IfnamePrefix { out: key == "oifname", prefix: prefix.to_string() });
    }
    if left.get("meta").and_then(|m| m.get("key")).and_then(Value::as_str) == Some("l4proto") {
        return protocol(right).ok().map(Statement::ProtoIs);
    }
    let payload = left.get("payload")?;
    if let Ok(Expr::Addr { v6, field }) = expr(left) {
        let (text, len) = match right.get("prefix") {
            Some(p) => (p.get("addr")?.as_str()?, u8::try_from(p.get("len")?.as_u64()?).ok()?),
            None => (right.as_str()?, if v6 { 128 } else { 32 }),
        };
        let net: IpAddr = text.parse().ok()?;
        return (net.is_ipv6() == v6).then_some(Statement::Prefix { field, net, len });
    }
    if payload.get("field").and_then(Value::as_str) != Some("dport") {
        return None;
    }
    let proto = protocol(payload.get("protocol")?).ok()?;
    let port = u16::try_from(right.as_u64()?).ok()?;
    Some(Statement::PortIs(proto, port))
}

fn statement(v: &Value) -> Read<Statement> {
    if let Some(m) = v.get("match") {
        let (op, left, right) = (str_of(m, "op")?, m.get("left").unwrap_or(&Value::Null), &m["right"]);
        if left.get("ct").and_then(|c| c.get("key")).and_then(Value::as_str) == Some("state") {
            return if matches!(op, "in" | "==") { Ok(Statement::CtState(ct_states(right)?)) } else { Err(op.into()) };
        }
        if let Some(statement) = compare(op, left, right) {
            return Ok(statement);
        }
        let set = right.as_str().and_then(|r| r.strip_prefix('@')).ok_or_else(|| format!("match {m}"))?;
        let left = match left.get("concat").and_then(Value::as_array) {
            Some(parts) => parts.iter().map(expr).collect::<Read<Vec<_>>>()?,
            None => vec![expr(left)?],
        };
        let negated = match op {
            "==" | "in" => false,
            "!=" => true,
            _ => return Err(format!("operator {op}")),
        };
        return Ok(Statement::Lookup { left, set: set.to_string(), negated });
    }
    if let Some(vmap) = v.get("vmap") {
        let map = vmap.get("data").and_then(Value::as_str).and_then(|d| d.strip_prefix('@'));
        let map = map.ok_or_else(|| format!("vmap {vmap}"))?;
        return Ok(Statement::Vmap { key: expr(vmap.get("key").unwrap_or(&Value::Null))?, map: map.to_string() });
    }
    if let Some(limit) = v.get("limit") {
        let rate = limit.get("rate").and_then(Value::as_u64);
        let burst = limit.get("burst").and_then(Value::as_u64).map_or(Some(0), |b| u32::try_from(b).ok());
        let plain = limit.get("per").and_then(Value::as_str) == Some("second")
            && limit.get("inv").is_none_or(|i| i == false)
            && limit.get("rate_unit").is_none_or(|u| u == "packets");
        return match (rate, burst, plain) {
            (Some(per_second), Some(burst), true) => Ok(Statement::Limit { per_second, burst }),
            _ => Err(format!("limit {limit}")),
        };
    }
    if let Some(log) = v.get("log") {
        let prefix = log.get("prefix").and_then(Value::as_str).unwrap_or_default();
        let group = log.get("group").map(|g| g.as_u64().and_then(|g| u16::try_from(g).ok()));
        let extra = log.as_object().is_some_and(|o| o.keys().any(|k| k != "prefix" && k != "group"));
        return match (extra, group) {
            (true, _) | (_, Some(None)) => Err(format!("log {log}")),
            (false, group) => Ok(Statement::Log { prefix: prefix.to_string(), group: group.flatten() }),
        };
    }
    if let Some(counter) = v.get("counter") {
        return counter.as_str().map(|c| Statement::Counter(c.to_string())).ok_or_else(|| format!("counter {counter}"));
    }
    verdict(v).map(Statement::Verdict)
}

fn rule(v: &Value) -> Read<Rule> {
    let exprs = v.get("expr").and_then(Value::as_array).ok_or("no expressions")?;
    Ok(Rule(exprs.iter().map(statement).collect::<Read<Vec<_>>>()?))
}

impl Listing {
    /// The listing's objects as the typed table, and what could not be
    /// read (a rule or set Palisade never writes). Rules keep the listing's
    /// order within their chain.
    #[must_use]
    pub fn table(&self) -> ListedTable {
        let mut out = ListedTable::default();
        for item in self.items() {
            let name = |v: &Value| v.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
            let result = if let Some(v) = item.get("set") {
                set(v, false)
                    .map(|s| drop(out.table.sets.insert(name(v), s)))
                    .map_err(|e| format!("set {}: {e}", name(v)))
            } else if let Some(v) = item.get("map") {
                set(v, true)
                    .map(|s| drop(out.table.sets.insert(name(v), s)))
                    .map_err(|e| format!("map {}: {e}", name(v)))
            } else if let Some(v) = item.get("counter") {
                out.table.counters.insert(name(v));
                Ok(())
            } else if let Some(v) = item.get("chain") {
                let found = chain(v);
                let entry = out.table.chains.entry(name(v)).or_default();
                match found {
                    Ok(c) => {
                        entry.base = c.base;
                        Ok(())
                    }
                    Err(e) => Err(format!("chain {}: {e}", name(v))),
                }
            } else if let Some(v) = item.get("rule") {
                let chain = v.get("chain").and_then(Value::as_str).unwrap_or_default().to_string();
                let rules = &mut out.table.chains.entry(chain.clone()).or_default().rules;
                let index = rules.len();
                rule(v).map(|r| rules.push(r)).map_err(|e| format!("chain {chain}: rule {index}: {e}"))
            } else {
                Ok(())
            };
            if let Err(e) = result {
                out.unreadable.push(e);
            }
        }
        out
    }
}
