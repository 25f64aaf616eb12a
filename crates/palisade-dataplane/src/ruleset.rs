//! The nftables objects Palisade's table is made of, as typed data: what
//! `render` produces, what `transaction` diffs, and what the two
//! serializers turn into `nft -j` JSON (`json`) and nfnetlink messages
//! (`netlink`). Only the vocabulary Palisade uses exists here, so neither
//! serializer can meet anything it does not know.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use palisade_policy::Protocol;

/// The table Palisade owns (family `inet`).
pub const TABLE: &str = "palisade";

/// Everything in Palisade's table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Table {
    /// Named counters.
    pub counters: BTreeSet<String>,
    /// Sets and verdict maps by name.
    pub sets: BTreeMap<String, Set>,
    /// Chains by name.
    pub chains: BTreeMap<String, Chain>,
}

/// The type of one field of a set key, as nft names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KeyType {
    /// `ipv4_addr`.
    Ipv4Addr,
    /// `ipv6_addr`.
    Ipv6Addr,
    /// `inet_proto` (`meta l4proto`).
    InetProto,
    /// `inet_service` (a port).
    InetService,
    /// `ifname` (an interface name).
    Ifname,
}

impl KeyType {
    /// The address type of a family.
    #[must_use]
    pub fn addr(v6: bool) -> KeyType {
        if v6 { KeyType::Ipv6Addr } else { KeyType::Ipv4Addr }
    }

    /// nft's name for the type.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            KeyType::Ipv4Addr => "ipv4_addr",
            KeyType::Ipv6Addr => "ipv6_addr",
            KeyType::InetProto => "inet_proto",
            KeyType::InetService => "inet_service",
            KeyType::Ifname => "ifname",
        }
    }
}

/// What a set is: its key, whether it maps keys to verdicts, whether its
/// elements are intervals. Element commands carry it, so that each can be
/// encoded on its own.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SetDecl {
    /// Key fields; more than one is a concatenation.
    pub key: Vec<KeyType>,
    /// A verdict map (`map`), not a set.
    pub verdict_map: bool,
    /// Elements are intervals (`flags interval`).
    pub interval: bool,
}

impl SetDecl {
    /// A set of `key` (hash or, with `interval`, interval elements).
    #[must_use]
    pub fn set(key: Vec<KeyType>, interval: bool) -> SetDecl {
        SetDecl { key, verdict_map: false, interval }
    }

    /// A verdict map keyed by one field.
    #[must_use]
    pub fn verdict_map(key: KeyType) -> SetDecl {
        SetDecl { key: vec![key], verdict_map: true, interval: false }
    }
}

/// A set or verdict map with its elements.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Set {
    /// Its declaration.
    pub decl: SetDecl,
    /// Elements, ordered (stable output, exact comparison).
    pub elements: BTreeSet<Element>,
}

/// One datum of a key.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Datum {
    /// An IPv4 or IPv6 address.
    Addr(IpAddr),
    /// A transport protocol.
    Proto(Protocol),
    /// A port.
    Port(u16),
    /// An interface name.
    Ifname(Box<str>),
}

impl Datum {
    /// Whether the datum can be a value of `kind`.
    #[must_use]
    pub fn fits(&self, kind: KeyType) -> bool {
        match (self, kind) {
            (Datum::Addr(IpAddr::V4(_)), KeyType::Ipv4Addr)
            | (Datum::Addr(IpAddr::V6(_)), KeyType::Ipv6Addr)
            | (Datum::Proto(_), KeyType::InetProto)
            | (Datum::Port(_), KeyType::InetService) => true,
            // An interface name is NUL-terminated within IFNAMSIZ bytes.
            (Datum::Ifname(name), KeyType::Ifname) => name.len() < IFNAMSIZ && !name.contains('\0'),
            _ => false,
        }
    }
}

impl From<Ipv4Addr> for Datum {
    fn from(a: Ipv4Addr) -> Self {
        Datum::Addr(IpAddr::V4(a))
    }
}

impl From<Ipv6Addr> for Datum {
    fn from(a: Ipv6Addr) -> Self {
        Datum::Addr(IpAddr::V6(a))
    }
}

impl fmt::Display for Datum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Datum::Addr(a) => write!(f, "{a}"),
            Datum::Proto(p) => f.write_str(l4proto(*p)),
            Datum::Port(p) => write!(f, "{p}"),
            Datum::Ifname(i) => write!(f, "\"{i}\""),
        }
    }
}

/// Interface names are shorter than this (the kernel's `IFNAMSIZ`, with the NUL).
pub const IFNAMSIZ: usize = 16;

/// The IP protocol number.
#[must_use]
pub fn ip_proto(p: Protocol) -> u8 {
    match p {
        Protocol::Tcp => 6,
        Protocol::Udp => 17,
        Protocol::Sctp => 132,
    }
}

/// The protocol name nft uses in `meta l4proto`.
#[must_use]
pub fn l4proto(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
        Protocol::Sctp => "sctp",
    }
}

/// One field of a key: a value, or an inclusive range of values.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Part {
    /// One value.
    One(Datum),
    /// `first-last`, inclusive.
    Range(Datum, Datum),
}

impl Part {
    /// The first and last value the part covers.
    #[must_use]
    pub fn bounds(&self) -> (&Datum, &Datum) {
        match self {
            Part::One(d) => (d, d),
            Part::Range(a, b) => (a, b),
        }
    }

    /// A range, or one value when `first == last`.
    #[must_use]
    pub fn range(first: Datum, last: Datum) -> Part {
        if first == last { Part::One(first) } else { Part::Range(first, last) }
    }
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Part::One(d) => write!(f, "{d}"),
            Part::Range(a, b) => write!(f, "{a}-{b}"),
        }
    }
}

/// An element's key: one part, or a concatenation of parts (one per key
/// field).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Key {
    /// A single-field key.
    One(Part),
    /// A concatenation.
    Concat(Box<[Part]>),
}

impl Key {
    /// One address.
    #[must_use]
    pub fn addr(a: IpAddr) -> Key {
        Key::One(Part::One(Datum::Addr(a)))
    }

    /// The key's parts, one per key field.
    #[must_use]
    pub fn parts(&self) -> &[Part] {
        match self {
            Key::One(p) => std::slice::from_ref(p),
            Key::Concat(parts) => parts,
        }
    }
}

impl From<Vec<Part>> for Key {
    fn from(parts: Vec<Part>) -> Self {
        Key::Concat(parts.into_boxed_slice())
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.parts().iter().enumerate() {
            if i > 0 {
                f.write_str(" . ")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

/// A set element, or a verdict map element (key and verdict).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Element {
    /// The key.
    pub key: Key,
    /// The verdict, in a verdict map.
    pub verdict: Option<Verdict>,
}

impl Element {
    /// A set element.
    #[must_use]
    pub fn key(key: Key) -> Element {
        Element { key, verdict: None }
    }

    /// A verdict map element.
    #[must_use]
    pub fn mapping(key: Key, verdict: Verdict) -> Element {
        Element { key, verdict: Some(verdict) }
    }

    /// Whether the element can go into a set of `decl`: one part per key
    /// field, each of the field's type, ranges only in interval sets, and a
    /// verdict exactly in verdict maps.
    #[must_use]
    pub fn fits(&self, decl: &SetDecl) -> bool {
        let parts = self.key.parts();
        parts.len() == decl.key.len()
            && parts.iter().zip(&decl.key).all(|(part, kind)| {
                let (a, b) = part.bounds();
                a.fits(*kind) && b.fits(*kind) && (decl.interval || a == b) && a <= b
            })
            && self.verdict.is_some() == decl.verdict_map
    }
}

impl fmt::Display for Element {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.verdict {
            None => write!(f, "{}", self.key),
            Some(v) => write!(f, "{} : {v}", self.key),
        }
    }
}

/// A verdict.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Verdict {
    /// `accept`.
    Accept,
    /// `drop`.
    Drop,
    /// `jump CHAIN`.
    Jump(String),
    /// `return`: back to the chain that jumped here.
    Return,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Accept => f.write_str("accept"),
            Verdict::Drop => f.write_str("drop"),
            Verdict::Jump(c) => write!(f, "jump {c}"),
            Verdict::Return => f.write_str("return"),
        }
    }
}

/// A base chain's hook (Palisade filters forwarded traffic only).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    /// `hook forward`.
    Forward,
}

/// A chain; a base chain has a hook and a priority (type filter, policy
/// accept).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Chain {
    /// `(hook, priority)` for base chains.
    pub base: Option<(Hook, i32)>,
    /// Rules, in order.
    pub rules: Vec<Rule>,
}

/// A rule: statements evaluated in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule(pub Vec<Statement>);

/// An address field of the IPv4 or IPv6 header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddrField {
    /// `saddr`.
    Saddr,
    /// `daddr`.
    Daddr,
}

/// A value a rule loads from the packet or its metadata.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expr {
    /// `meta iifname`.
    Iifname,
    /// `meta oifname`.
    Oifname,
    /// `meta l4proto`.
    L4proto,
    /// `ip saddr`/`daddr` (`v6`: `ip6`).
    Addr {
        /// IPv6.
        v6: bool,
        /// Which address.
        field: AddrField,
    },
    /// `th dport`.
    Dport,
    /// `ct original|reply ip saddr` (`v6`: `ip6 saddr`): a source address
    /// of the connection the packet belongs to (for an ICMP error, the
    /// connection it is about).
    CtSaddr {
        /// IPv6.
        v6: bool,
        /// Which direction's tuple.
        dir: CtDir,
    },
}

/// A direction of a tracked connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CtDir {
    /// `original`: as its first packet went.
    Original,
    /// `reply`: the other way.
    Reply,
}

impl CtDir {
    /// The name nft uses.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            CtDir::Original => "original",
            CtDir::Reply => "reply",
        }
    }
}

impl Expr {
    /// An address of the IPv4 or IPv6 header.
    #[must_use]
    pub fn addr(v6: bool, field: AddrField) -> Expr {
        Expr::Addr { v6, field }
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Iifname => f.write_str("iifname"),
            Expr::Oifname => f.write_str("oifname"),
            Expr::L4proto => f.write_str("meta l4proto"),
            Expr::Addr { v6, field } => write!(
                f,
                "{} {}",
                if *v6 { "ip6" } else { "ip" },
                if *field == AddrField::Saddr { "saddr" } else { "daddr" }
            ),
            Expr::Dport => f.write_str("th dport"),
            Expr::CtSaddr { v6, dir } => write!(f, "ct {} {} saddr", dir.name(), if *v6 { "ip6" } else { "ip" }),
        }
    }
}

/// Connection tracking states (`ct state`), as a bit mask.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CtStates(u32);

impl CtStates {
    /// `invalid`.
    pub const INVALID: CtStates = CtStates(1);
    /// `established`.
    pub const ESTABLISHED: CtStates = CtStates(2);
    /// `related`.
    pub const RELATED: CtStates = CtStates(4);
    /// `new`.
    pub const NEW: CtStates = CtStates(8);
    /// `untracked`.
    pub const UNTRACKED: CtStates = CtStates(64);
    /// In the order nft lists them.
    pub const ALL: [(CtStates, &'static str); 5] = [
        (CtStates::INVALID, "invalid"),
        (CtStates::ESTABLISHED, "established"),
        (CtStates::RELATED, "related"),
        (CtStates::NEW, "new"),
        (CtStates::UNTRACKED, "untracked"),
    ];

    /// The kernel's bit mask.
    #[must_use]
    pub fn bits(self) -> u32 {
        self.0
    }

    /// The states' names, in nft's order.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        CtStates::ALL.into_iter().filter(move |(s, _)| self.0 & s.0 != 0).map(|(_, n)| n)
    }
}

impl std::ops::BitOr for CtStates {
    type Output = CtStates;
    fn bitor(self, rhs: CtStates) -> CtStates {
        CtStates(self.0 | rhs.0)
    }
}

/// A statement of a rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Statement {
    /// `ct state { … }`: the connection is in one of these states.
    CtState(CtStates),
    /// A match: the loaded values (a concatenation when several) are (or,
    /// `negated`, are not) in set `set`.
    Lookup {
        /// What is looked up.
        left: Vec<Expr>,
        /// The set.
        set: String,
        /// `!=`: matches when the key is not in the set.
        negated: bool,
    },
    /// `vmap`: the verdict of the map element for the loaded value; no
    /// element, no verdict.
    Vmap {
        /// The key.
        key: Expr,
        /// The verdict map.
        map: String,
    },
    /// `limit rate N/second burst B packets`.
    Limit {
        /// Packets per second.
        per_second: u64,
        /// Burst.
        burst: u32,
    },
    /// `log prefix "…"` (with `group N`: to NFLOG group `N`, read over
    /// netlink, instead of the kernel log).
    Log {
        /// The prefix (at most 127 bytes).
        prefix: String,
        /// The NFLOG group, if any.
        group: Option<u16>,
    },
    /// `counter name …`.
    Counter(String),
    /// A verdict.
    Verdict(Verdict),
    /// `meta l4proto P`: the transport protocol is `P` (a rule's ports when
    /// they are one whole protocol: no set needed).
    ProtoIs(Protocol),
    /// `tcp|udp|sctp dport N`: the protocol and the destination port (a
    /// rule's ports when they are one port: no set needed).
    PortIs(Protocol, u16),
    /// `iifname "cali*"` (`oifname` when `out`): the interface's name
    /// starts with `prefix` (1 to 15 bytes, no NUL).
    IfnamePrefix {
        /// The output interface (else the input one).
        out: bool,
        /// The prefix.
        prefix: String,
    },
    /// `tcp flags & (fin | syn | rst | ack) != syn`: a TCP packet that
    /// cannot open a connection (with `ct state new`: one the kernel picked
    /// up in mid-stream, as `nf_conntrack_tcp_loose` lets it).
    TcpNotSyn,
    /// `ip saddr 10.0.0.0/8` (`ip6`, `daddr`): the address is in one
    /// prefix (a rule's ipBlocks of a family when they are one CIDR: no set
    /// needed). `len` is below the family's width, or equal for one address.
    Prefix {
        /// The address field (`Expr::Addr`).
        field: AddrField,
        /// The network address (its family is the field's).
        net: IpAddr,
        /// Prefix length, 1 to 32 (128).
        len: u8,
    },
}

impl Statement {
    /// `left` is in `set`.
    #[must_use]
    pub fn lookup(left: Vec<Expr>, set: impl Into<String>) -> Statement {
        Statement::Lookup { left, set: set.into(), negated: false }
    }
}

impl fmt::Display for Statement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Statement::CtState(s) => write!(f, "ct state {{ {} }}", s.names().collect::<Vec<_>>().join(", ")),
            Statement::Lookup { left, set, negated } => {
                let left: Vec<String> = left.iter().map(ToString::to_string).collect();
                write!(f, "{} {}@{set}", left.join(" . "), if *negated { "!= " } else { "" })
            }
            Statement::Vmap { key, map } => write!(f, "{key} vmap @{map}"),
            Statement::Limit { per_second, burst } => write!(f, "limit rate {per_second}/second burst {burst} packets"),
            Statement::Log { prefix, group: None } => write!(f, "log prefix \"{prefix}\""),
            Statement::Log { prefix, group: Some(g) } => write!(f, "log prefix \"{prefix}\" group {g}"),
            Statement::Counter(c) => write!(f, "counter name \"{c}\""),
            Statement::Verdict(v) => write!(f, "{v}"),
            Statement::ProtoIs(p) => write!(f, "meta l4proto {}", l4proto(*p)),
            Statement::PortIs(p, port) => write!(f, "{} dport {port}", l4proto(*p)),
            Statement::IfnamePrefix { out, prefix } => {
                write!(f, "{} \"{prefix}*\"", if *out { "oifname" } else { "iifname" })
            }
            Statement::TcpNotSyn => f.write_str("tcp flags & (fin | syn | rst | ack) != syn"),
            Statement::Prefix { field, net, len } => {
                let full = if net.is_ipv6() { 128 } else { 32 };
                let left = Expr::addr(net.is_ipv6(), *field);
                if *len == full { write!(f, "{left} {net}") } else { write!(f, "{left} {net}/{len}") }
            }
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{s}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elements_fit_their_declarations_only() {
        let ports = SetDecl::set(vec![KeyType::InetProto, KeyType::InetService], true);
        let range = Element::key(
            vec![Part::One(Datum::Proto(Protocol::Tcp)), Part::Range(Datum::Port(80), Datum::Port(90))].into(),
        );
        assert!(range.fits(&ports));
        assert!(
            !range.fits(&SetDecl::set(vec![KeyType::InetProto, KeyType::InetService], false)),
            "range in a hash set"
        );
        let backwards = Element::key(
            vec![Part::One(Datum::Proto(Protocol::Tcp)), Part::Range(Datum::Port(90), Datum::Port(80))].into(),
        );
        assert!(!backwards.fits(&ports));
        let v4 = Element::key(Key::addr("10.0.0.1".parse().expect("ip")));
        assert!(v4.fits(&SetDecl::set(vec![KeyType::Ipv4Addr], false)));
        assert!(!v4.fits(&SetDecl::set(vec![KeyType::Ipv6Addr], false)));
        assert!(!v4.fits(&SetDecl::verdict_map(KeyType::Ipv4Addr)), "a map element needs a verdict");
        let jump = Element::mapping(Key::addr("10.0.0.1".parse().expect("ip")), Verdict::Jump("c".into()));
        assert!(jump.fits(&SetDecl::verdict_map(KeyType::Ipv4Addr)));
        // Interface names: at most 15 bytes and no NUL (IFNAMSIZ with the terminator).
        assert!(Datum::Ifname("a-name-of-15-by".into()).fits(KeyType::Ifname));
        assert!(!Datum::Ifname("a-name-of-16-byt".into()).fits(KeyType::Ifname));
        assert!(!Datum::Ifname("nul\0inside".into()).fits(KeyType::Ifname));
    }

    #[test]
    fn statements_read_as_nft_writes_them() {
        let s = Statement::Lookup {
            left: vec![Expr::addr(true, AddrField::Daddr), Expr::L4proto, Expr::Dport],
            set: "p/named6".into(),
            negated: true,
        };
        assert_eq!(s.to_string(), "ip6 daddr . meta l4proto . th dport != @p/named6");
        assert_eq!(
            Statement::CtState(CtStates::RELATED | CtStates::ESTABLISHED).to_string(),
            "ct state { established, related }"
        );
    }
}
