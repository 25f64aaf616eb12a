//! Rendering a [`Program`] as nftables objects, and as `nft -j` transactions:
//! the whole table, or only what changed between two programs.
//!
//! Layout of `table inet palisade` (the only table Palisade touches):
//!
//! ```text
//! chain egress  (hook forward, priority -5)   chain ingress (hook forward, priority 0)
//!   iifname . saddr not a pod's own pair:        ct established: accept
//!     jump spoofed                               ct related: jump related
//!   ct established: accept                       ip  daddr vmap @ingress4
//!   ct related: jump related                     ip6 daddr vmap @ingress6
//!   ip  saddr vmap @egress4
//!   ip6 saddr vmap @egress6
//!        |                                             |
//!   chain pod/<ns>/<pod>/egress                   chain pod/<ns>/<pod>/ingress
//!     jump policy/<ns>/<policy>/egress ...          jump policy/<ns>/<policy>/ingress ...
//!     rate-limited log; counter; drop               rate-limited log; counter; drop
//!        |
//!   chain policy/<ns>/<policy>/<dir>: one rule per rule, family and port kind:
//!     ip saddr @shared/pods4/<id> meta l4proto . th dport @shared/ports/<id> accept
//!     ip daddr . meta l4proto . th dport @shared/named4/<id> accept
//!   (sets shared by every rule whose set would hold the same elements;
//!   a pod isolated by more than four policies jumps through one shared
//!   chain per distinct list, shared/isolation-<dir>/<id>)
//!
//! chain spoofed: from a pod interface, or with a local pod's address: drop
//! chain related: from the connection's own peer, or from no pod: accept;
//!                from another pod: return (the policies decide)
//! ```
//!
//! A packet of a new connection costs two verdict-map lookups plus the
//! rules of the policies that select its two pods; remote pods are only
//! set elements. An accept in the egress base chain hands the packet to the
//! ingress base chain, so a connection needs both; a drop in either is final.
//! Unisolated pods have no map element and pass. Traffic to and from the
//! node itself (input/output hooks) is never filtered.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use palisade_policy::{Direction, ObjectKey, Protocol};

use crate::program::{FlowLog, LocalPod, PolicyProgram, PortSet, Program, RuleProgram};
use crate::ranges::{AddrSet, v4, v6};
pub use crate::ruleset::TABLE;
use crate::ruleset::{
    AddrField, Chain, CtDir, CtStates, Datum, Element, Expr, Hook, Key, KeyType, Part, Rule, Set, SetDecl, Statement,
    Table, Verdict,
};

/// Priority of the egress base chain (before ingress).
pub const EGRESS_PRIORITY: i32 = -5;
/// Priority of the ingress base chain.
pub const INGRESS_PRIORITY: i32 = 0;
/// Name of the counter of dropped spoofed packets.
pub const SPOOF_COUNTER: &str = "spoofed";

/// The address of the peer (`saddr` for ingress, `daddr` for egress) or of
/// the pod itself.
fn peer_field(dir: Direction) -> AddrField {
    if dir == Direction::Ingress { AddrField::Saddr } else { AddrField::Daddr }
}

/// A pod-address element of a peer set.
pub(crate) fn addr_element(addr: IpAddr) -> Element {
    Element::key(Key::addr(addr))
}

fn range_elements(set: &AddrSet, want_v6: bool) -> BTreeSet<Element> {
    let range = |a: Datum, b: Datum| Element::key(Key::One(Part::range(a, b)));
    if want_v6 {
        set.v6.iter().map(|(a, b)| range(v6(*a).into(), v6(*b).into())).collect()
    } else {
        set.v4.iter().map(|(a, b)| range(v4(*a).into(), v4(*b).into())).collect()
    }
}

fn set(key: Vec<KeyType>, interval: bool, elements: BTreeSet<Element>) -> Set {
    Set { decl: SetDecl::set(key, interval), elements }
}

/// Longest `namespace/name` kept whole in the names of table objects: the
/// longest name derived from it (`policy/<this>/ingress/<rule>/named6`,
/// `pod/<this>/ingress/denied`) then stays well within the kernel's 255
/// bytes, whatever the rule count.
pub const OBJECT_NAME_BUDGET: usize = 200;

/// An object's part of the names of its table objects: `namespace/name`,
/// or, when that is longer than [`OBJECT_NAME_BUDGET`] (a namespace of 63
/// and a pod name of 253 characters make 317), its beginning, `~` and 128
/// bits of SHA-256 of the whole, in as many bytes. Kubernetes names never
/// hold `~`, so a shortened name is never another object's whole one, and
/// two shortened names differ unless SHA-256 collides. Without this, one
/// pod with a long name made every transaction of its node fail.
#[must_use]
pub fn object_name(key: &ObjectKey) -> String {
    use sha2::{Digest as _, Sha256};
    use std::fmt::Write as _;
    let path = key.path();
    if path.len() <= OBJECT_NAME_BUDGET {
        return path;
    }
    let digest = Sha256::digest(path.as_bytes());
    let mut keep = OBJECT_NAME_BUDGET - 33;
    while !path.is_char_boundary(keep) {
        keep -= 1;
    }
    let mut name = format!("{}~", &path[..keep]);
    for b in &digest[..16] {
        let _ = write!(name, "{b:02x}");
    }
    name
}

/// Chain of a pod for a direction.
#[must_use]
pub fn pod_chain(pod: &ObjectKey, dir: Direction) -> String {
    format!("pod/{}/{dir}", object_name(pod))
}

/// Counter of a pod's denied packets for a direction.
#[must_use]
pub fn pod_counter(pod: &ObjectKey, dir: Direction) -> String {
    format!("pod/{}/{dir}/denied", object_name(pod))
}

/// Chain of a policy's rules for a direction.
#[must_use]
pub fn policy_chain(policy: &ObjectKey, dir: Direction) -> String {
    format!("policy/{}/{dir}", object_name(policy))
}

/// The prefix of every table object a pod owns: `pod/<ns>/<pod>/`.
pub(crate) fn pod_prefix(pod: &ObjectKey) -> String {
    format!("pod/{}/", object_name(pod))
}

/// The prefix of every table object a policy owns: `policy/<ns>/<name>/`.
pub(crate) fn policy_prefix(policy: &ObjectKey) -> String {
    format!("policy/{}/", object_name(policy))
}

/// The prefix of the sets rules share: `shared/<kind>/<id>`.
pub const SHARED_PREFIX: &str = "shared/";

/// The name of a shared set: its kind (`pods4`, `ports`, …) and the digest
/// of what decides its elements. Rules whose sets would hold the same
/// elements by construction share one set, so the number of sets follows
/// the distinct peer selectors, ipBlocks and port lists, not the number
/// of policies: nf_tables finds a set by walking the table's list of sets
/// on every rule and element message that names one, so a table of
/// 45,000 per-policy sets took 203 s to commit (docs/performance.md).
fn shared_set(kind: &str, id: &str) -> String {
    format!("{SHARED_PREFIX}{kind}/{id}")
}

/// A static set's name: its kind and the digest of its elements.
fn content_set(kind: &str, elements: &BTreeSet<Element>) -> String {
    let text: Vec<String> = elements.iter().map(ToString::to_string).collect();
    shared_set(kind, &crate::compile::set_id(&text))
}

/// The name of a rule's pod-peer set of a family.
pub(crate) fn pods_set(pods_id: &str, v6: bool) -> String {
    shared_set(if v6 { "pods6" } else { "pods4" }, pods_id)
}

/// The name of a rule's named-port set of a family.
pub(crate) fn named_set(named_id: &str, v6: bool) -> String {
    shared_set(if v6 { "named6" } else { "named4" }, named_id)
}

/// Renders `program` into table objects.
#[must_use]
pub fn render(program: &Program) -> Table {
    render_with_shared(program).0
}

/// [`render`], and the shared sets and chains each pod and policy refers to.
pub(crate) fn render_with_shared(program: &Program) -> (Table, BTreeMap<ObjectKey, BTreeSet<String>>) {
    let mut r = Table::default();
    base_chains(program, &mut r);
    cluster_sets(program, &mut r);
    let mut shared = BTreeMap::new();
    for (name, pod) in &program.pods {
        shared.insert(name.clone(), render_pod(&mut r, name, pod, program));
    }
    for (name, tier) in &program.tiers {
        shared.insert(name.clone(), crate::render_tiers::render_tier(&mut r, name, tier, program.flow_log.as_ref()));
    }
    let listed = listed_all(&program.pods);
    for (name, policy) in &program.policies {
        let sets = render_policy(&mut r, name, policy, listed.get(name).copied().unwrap_or_default());
        shared.insert(name.clone(), sets);
    }
    (r, shared)
}

/// Per policy, for which directions (by [`Direction::slot`]) some local pod
/// lists it as isolating it: one pass over the pods.
pub(crate) fn listed_all(pods: &BTreeMap<ObjectKey, LocalPod>) -> BTreeMap<&ObjectKey, [bool; 2]> {
    let mut out: BTreeMap<&ObjectKey, [bool; 2]> = BTreeMap::new();
    for pod in pods.values() {
        for dir in Direction::BOTH {
            for name in pod.isolation(dir).into_iter().flatten() {
                out.entry(name).or_default()[dir.slot()] = true;
            }
        }
    }
    out
}

/// Isolation lists longer than this go through a chain of their own,
/// shared by every pod with the same list (replicas of one workload are
/// isolated by the same policies); shorter ones are jumped to from the
/// pod's chain directly, which saves a new connection one jump.
pub const SHARED_LIST_ABOVE: usize = 4;

/// The shared chain that jumps to `policies`, in order, for `dir`.
fn isolation_chain(dir: Direction, policies: &[ObjectKey]) -> String {
    shared_set(&format!("isolation-{dir}"), &crate::compile::set_id(&policies))
}

/// The prefix of the flow-log records of denied packets.
pub const DENY_PREFIX: &str = "palisade deny";
/// The prefix of the flow-log records of observed new connections.
pub const NEW_PREFIX: &str = "palisade new";

/// A log prefix: `what`, the direction and the object (a pod, or a cluster
/// policy for its Deny rules), within the kernel's limit (the agent reads
/// only `what` and the direction).
pub(crate) fn log_prefix(what: &str, dir: Direction, pod: &ObjectKey) -> String {
    format!("{what} {dir} {}: ", pod.path()).chars().take(120).collect()
}

/// The rule that logs a pod's packet for `dir` without judging it:
/// rate-limited per pod and direction (over the limit, the rule does not
/// match and the packet goes on to its verdict unlogged).
pub(crate) fn log_rule(flow_log: Option<&FlowLog>, prefix: String) -> Rule {
    match flow_log {
        Some(f) => Rule(vec![
            Statement::Limit { per_second: u64::from(f.per_second), burst: f.burst },
            Statement::Log { prefix, group: Some(f.group) },
        ]),
        None => Rule(vec![Statement::Limit { per_second: 10, burst: 5 }, Statement::Log { prefix, group: None }]),
    }
}

/// The chains and counters of one local pod; returns the shared chains it
/// jumps to. The program's `tiers` are the compiled cluster policies its
/// lists name.
pub(crate) fn render_pod(r: &mut Table, key: &ObjectKey, pod: &LocalPod, program: &Program) -> BTreeSet<String> {
    let tiers = &program.tiers;
    let flow_log = program.flow_log.as_ref();
    let mut shared = BTreeSet::new();
    for dir in Direction::BOTH {
        if !pod.has_chain(dir) {
            continue;
        }
        let (admin, baseline) =
            crate::render_tiers::pod_tier_jumps(r, pod, dir, (tiers, flow_log.is_some()), &mut shared);
        let mut rules = Vec::new();
        if pod.observe[dir.slot()] && flow_log.is_some() {
            rules.push(log_rule(flow_log, log_prefix(NEW_PREFIX, dir, key)));
        }
        rules.extend(admin);
        let Some(policies) = pod.isolation(dir) else {
            rules.extend(baseline);
            r.chains.insert(pod_chain(key, dir), Chain { base: None, rules });
            continue;
        };
        let jumps: Vec<Rule> =
            policies.iter().map(|p| Rule(vec![Statement::Verdict(Verdict::Jump(policy_chain(p, dir)))])).collect();
        if policies.len() > SHARED_LIST_ABOVE {
            let chain = isolation_chain(dir, policies);
            r.chains.insert(chain.clone(), Chain { base: None, rules: jumps });
            shared.insert(chain.clone());
            rules.push(Rule(vec![Statement::Verdict(Verdict::Jump(chain))]));
        } else {
            rules.extend(jumps);
        }
        rules.push(log_rule(flow_log, log_prefix(DENY_PREFIX, dir, key)));
        let counter = pod_counter(key, dir);
        rules.push(Rule(vec![Statement::Counter(counter.clone()), Statement::Verdict(Verdict::Drop)]));
        r.counters.insert(counter);
        r.chains.insert(pod_chain(key, dir), Chain { base: None, rules });
    }
    shared
}

/// The chains of one policy and the shared sets its rules look up;
/// `listed` says for which directions a local pod jumps to it (pods list
/// only policies with rules for the direction, so an empty chain is never
/// needed; one is rendered only if a listing says so).
/// Returns the shared sets its rules refer to.
pub(crate) fn render_policy(
    r: &mut Table,
    key: &ObjectKey,
    policy: &PolicyProgram,
    listed: [bool; 2],
) -> BTreeSet<String> {
    let mut shared = BTreeSet::new();
    for dir in Direction::BOTH {
        let rules = policy.rules(dir);
        if rules.is_empty() && !listed[dir.slot()] {
            continue;
        }
        let mut chain = Vec::new();
        for rule in rules {
            let style = RuleStyle { verdict: &[Statement::Verdict(Verdict::Accept)], ports_first: false, sets: true };
            render_rule(r, &mut chain, &mut shared, rule, dir, style);
        }
        r.chains.insert(policy_chain(key, dir), Chain { base: None, rules: chain });
    }
    shared
}

/// How many nft rules each of `policy`'s rules for `dir` renders to, in
/// order: a rule's position in its policy chain tells which policy rule it
/// is (a trace names the position).
#[must_use]
pub fn rule_spans(policy: &PolicyProgram, dir: Direction) -> Vec<usize> {
    let (mut scratch, mut shared) = (Table::default(), BTreeSet::new());
    policy
        .rules(dir)
        .iter()
        .map(|rule| {
            let mut chain = Vec::new();
            let style = RuleStyle { verdict: &[Statement::Verdict(Verdict::Accept)], ports_first: false, sets: true };
            render_rule(&mut scratch, &mut chain, &mut shared, rule, dir, style);
            chain.len()
        })
        .collect()
}

/// `ct state established,related accept`: what a node with conntrack and
/// no policies holds (the lab bench's conntrack-only baseline). Palisade's
/// own base chains split it: established packets pass at once, related
/// ones go to the [`RELATED_CHAIN`].
#[must_use]
pub fn conntrack_rule() -> Rule {
    Rule(vec![Statement::CtState(CtStates::ESTABLISHED | CtStates::RELATED), Statement::Verdict(Verdict::Accept)])
}

/// The chain that judges packets related to a tracked connection.
pub const RELATED_CHAIN: &str = "related";
/// The chain that drops packets whose source address is not theirs.
pub const SPOOF_CHAIN: &str = "spoofed";

/// The set of the cluster's pod addresses of a family, each paired with
/// itself (`a . a`), so that one lookup of `ip saddr . ct original ip
/// saddr` tells whether a pod sent a packet about its own connection.
#[must_use]
pub fn cluster_set(v6: bool) -> &'static str {
    if v6 { "cluster/pods6" } else { "cluster/pods4" }
}

/// An element of a [`cluster_set`]: `addr . addr`.
pub(crate) fn pair_element(addr: IpAddr) -> Element {
    Element::key(Key::from(vec![Part::One(Datum::Addr(addr)), Part::One(Datum::Addr(addr))]))
}

/// The cluster's pod-address sets (their elements change with any pod of
/// the cluster, so they have an owner of their own).
pub(crate) fn cluster_sets(program: &Program, r: &mut Table) {
    for v6 in [false, true] {
        let elements = program.cluster_addrs.iter().filter(|a| a.is_ipv6() == v6).map(|a| pair_element(*a));
        r.sets
            .insert(cluster_set(v6).into(), set(vec![KeyType::addr(v6), KeyType::addr(v6)], false, elements.collect()));
    }
}

/// The start of both base chains: packets of admitted connections pass
/// (`ct state established accept`), and packets related to one (ICMP
/// errors about it) are judged by [`related_chain`].
fn conntrack_rules() -> Vec<Rule> {
    vec![
        Rule(vec![Statement::CtState(CtStates::ESTABLISHED), Statement::Verdict(Verdict::Accept)]),
        Rule(vec![Statement::CtState(CtStates::RELATED), Statement::Verdict(Verdict::Jump(RELATED_CHAIN.into()))]),
    ]
}

/// A packet related to a tracked connection (an ICMP or ICMPv6 error
/// about it) is accepted when it comes from that connection's own peer, or
/// from an address that is no pod's (a router on the path, a node). One
/// from another pod returns to the base chain and meets the policies like
/// any packet: `ct state related` alone would let any pod that knows a
/// connection's ports reset it or shrink its path MTU.
fn related_chain() -> Chain {
    let mut rules = Vec::new();
    for v6 in [false, true] {
        let saddr = Expr::addr(v6, AddrField::Saddr);
        for dir in [CtDir::Original, CtDir::Reply] {
            rules.push(Rule(vec![
                Statement::lookup(vec![saddr, Expr::CtSaddr { v6, dir }], cluster_set(v6)),
                Statement::Verdict(Verdict::Accept),
            ]));
        }
        rules.push(Rule(vec![
            Statement::lookup(vec![saddr, saddr], cluster_set(v6)),
            Statement::Verdict(Verdict::Return),
        ]));
    }
    rules.push(Rule(vec![Statement::Verdict(Verdict::Accept)]));
    Chain { base: None, rules }
}

/// Anti-spoofing, for every interface: a packet from a local pod's
/// interface must carry one of that pod's addresses as its source, and a
/// packet carrying a local pod's address must come from that pod's
/// interface (not from the uplink, another pod or a tunnel). Packets of
/// local pods (most of what crosses the node) settle it in one lookup of
/// the interface-address pair; only the others jump to the checks.
fn anti_spoofing(program: &Program, r: &mut Table, egress: &mut Vec<Rule>) {
    let mut ifaces = BTreeSet::new();
    let mut pairs: [BTreeSet<Element>; 2] = [BTreeSet::new(), BTreeSet::new()];
    let mut local: [BTreeSet<Element>; 2] = [BTreeSet::new(), BTreeSet::new()];
    for pod in program.pods.values() {
        let Some(iface) = &pod.iface else { continue };
        ifaces.insert(Element::key(Key::One(Part::One(Datum::Ifname(iface.as_str().into())))));
        for addr in &pod.addrs {
            let key = Key::from(vec![Part::One(Datum::Ifname(iface.as_str().into())), Part::One(Datum::Addr(*addr))]);
            pairs[usize::from(addr.is_ipv6())].insert(Element::key(key));
            local[usize::from(addr.is_ipv6())].insert(addr_element(*addr));
        }
    }
    if ifaces.is_empty() && !crate::render_gate::needs_spoof_chain(program) {
        return;
    }
    r.counters.insert(SPOOF_COUNTER.into());
    r.sets.insert("pod-ifaces".into(), set(vec![KeyType::Ifname], false, ifaces));
    let drop = |left: Vec<Expr>, set: &str| {
        Rule(vec![
            Statement::lookup(left, set),
            Statement::Counter(SPOOF_COUNTER.into()),
            Statement::Verdict(Verdict::Drop),
        ])
    };
    let mut checks = vec![drop(vec![Expr::Iifname], "pod-ifaces")];
    for (v6, family) in [(false, "4"), (true, "6")] {
        let (pairs_set, local_set) = (format!("pod-addrs{family}"), format!("local-addrs{family}"));
        let slot = usize::from(v6);
        let key = vec![KeyType::Ifname, KeyType::addr(v6)];
        r.sets.insert(pairs_set.clone(), set(key, false, std::mem::take(&mut pairs[slot])));
        r.sets.insert(local_set.clone(), set(vec![KeyType::addr(v6)], false, std::mem::take(&mut local[slot])));
        egress.push(Rule(vec![
            Statement::Lookup {
                left: vec![Expr::Iifname, Expr::addr(v6, AddrField::Saddr)],
                set: pairs_set,
                negated: true,
            },
            Statement::Verdict(Verdict::Jump(SPOOF_CHAIN.into())),
        ]));
        checks.push(drop(vec![Expr::addr(v6, AddrField::Saddr)], &local_set));
    }
    checks.extend(crate::render_gate::spoofed_gate_rules(program));
    r.chains.insert(SPOOF_CHAIN.into(), Chain { base: None, rules: checks });
}

/// The base chains, dispatch maps, anti-spoofing sets and the related
/// chain (they depend on every local pod).
pub(crate) fn base_chains(program: &Program, r: &mut Table) {
    let mut dispatch: BTreeMap<(Direction, bool), BTreeSet<Element>> = BTreeMap::new();
    for (name, pod) in &program.pods {
        for addr in &pod.addrs {
            for dir in Direction::BOTH {
                if pod.has_chain(dir) {
                    let e = Element::mapping(Key::addr(*addr), Verdict::Jump(pod_chain(name, dir)));
                    dispatch.entry((dir, addr.is_ipv6())).or_default().insert(e);
                }
            }
        }
    }
    let mut egress = crate::render_gate::gate_rules(program, r);
    anti_spoofing(program, r, &mut egress);
    egress.extend(conntrack_rules());
    egress.extend(crate::render_gate::midstream_rules(r));
    let mut ingress = conntrack_rules();
    r.chains.insert(RELATED_CHAIN.into(), related_chain());
    for (dir, chain) in [(Direction::Egress, &mut egress), (Direction::Ingress, &mut ingress)] {
        for v6 in [false, true] {
            let map = format!("{dir}{}", if v6 { 6 } else { 4 });
            r.sets.insert(
                map.clone(),
                Set {
                    decl: SetDecl::verdict_map(KeyType::addr(v6)),
                    elements: dispatch.remove(&(dir, v6)).unwrap_or_default(),
                },
            );
            let field = if dir == Direction::Egress { AddrField::Saddr } else { AddrField::Daddr };
            chain.push(Rule(vec![Statement::Vmap { key: Expr::addr(v6, field), map }]));
        }
    }
    r.chains.insert("egress".into(), Chain { base: Some((Hook::Forward, EGRESS_PRIORITY)), rules: egress });
    r.chains.insert("ingress".into(), Chain { base: Some((Hook::Forward, INGRESS_PRIORITY)), rules: ingress });
}

/// The family's ranges as one prefix `(network, length)`, when they are
/// exactly one CIDR other than the whole family.
fn single_prefix(set: &AddrSet, ipv6: bool) -> Option<(IpAddr, u8)> {
    let (first, last, width) = if ipv6 {
        let [(a, b)] = set.v6.as_slice() else { return None };
        (*a, *b, 128)
    } else {
        let [(a, b)] = set.v4.as_slice() else { return None };
        (u128::from(*a), u128::from(*b), 32)
    };
    let size = last.checked_sub(first)?.checked_add(1)?;
    if !size.is_power_of_two() || first % size != 0 {
        return None;
    }
    let len = u8::try_from(width - size.trailing_zeros()).ok()?;
    if len == 0 {
        return None;
    }
    let net = if ipv6 { IpAddr::V6(v6(first)) } else { IpAddr::V4(v4(u32::try_from(first).ok()?)) };
    Some((net, len))
}

/// An element of a named-port set: destination address, protocol, port.
pub(crate) fn named_element((addr, proto, port): (IpAddr, Protocol, u16)) -> Element {
    Element::key(Key::from(vec![
        Part::One(Datum::Addr(addr)),
        Part::One(Datum::Proto(proto)),
        Part::One(Datum::Port(port)),
    ]))
}

fn port_element((proto, first, last): (Protocol, u16, u16)) -> Element {
    Element::key(Key::from(vec![Part::One(Datum::Proto(proto)), Part::range(Datum::Port(first), Datum::Port(last))]))
}

/// Ranges of at most this many ports go into a rule's hash set one port
/// per element; longer ones into its interval set.
pub const EXPAND_PORTS_UP_TO: u32 = 256;

/// The matches for a rule's numeric ports (merged ranges), creating their
/// sets, cheapest lookup first: a protocol allowed on every port matches
/// on the protocol alone (`…/protos`); single ports and short ranges are
/// exact elements of a hash set (`…/ports`); only long ranges need an
/// interval set (`…/ranges`, a concatenated interval set, whose lookups
/// cost several times a hash lookup: `palisade lab bench` measured 5% of
/// new connections per second against a conntrack-only table when every
/// rule used one).
fn numeric_matches(r: &mut Table, shared: &mut BTreeSet<String>, numeric: &[(Protocol, u16, u16)]) -> Vec<Statement> {
    // One port, or one whole protocol: a comparison, no set (most rules
    // name one port; a set per port list made the kernel's commit walk
    // thousands of sets).
    match numeric {
        [(proto, 0, u16::MAX)] => return vec![Statement::ProtoIs(*proto)],
        [(proto, first, last)] if first == last => return vec![Statement::PortIs(*proto, *first)],
        _ => {}
    }
    let (mut protos, mut exact, mut ranges) = (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
    for &(proto, first, last) in numeric {
        let len = u32::from(last) - u32::from(first) + 1;
        if (first, last) == (0, u16::MAX) {
            protos.insert(Element::key(Key::One(Part::One(Datum::Proto(proto)))));
        } else if len <= EXPAND_PORTS_UP_TO {
            exact.extend((first..=last).map(|port| port_element((proto, port, port))));
        } else {
            ranges.insert(port_element((proto, first, last)));
        }
    }
    let mut out = Vec::new();
    let l4 = vec![Expr::L4proto, Expr::Dport];
    for (suffix, key, interval, elements, left) in [
        ("protos", vec![KeyType::InetProto], false, protos, vec![Expr::L4proto]),
        ("ports", vec![KeyType::InetProto, KeyType::InetService], false, exact, l4.clone()),
        ("ranges", vec![KeyType::InetProto, KeyType::InetService], true, ranges, l4),
    ] {
        if !elements.is_empty() {
            let name = content_set(suffix, &elements);
            shared.insert(name.clone());
            r.sets.insert(name.clone(), set(key, interval, elements));
            out.push(Statement::lookup(left, name));
        }
    }
    out
}

/// How [`render_rule`] renders a rule.
#[derive(Clone, Copy)]
pub(crate) struct RuleStyle<'a> {
    /// What a match leads to.
    pub(crate) verdict: &'a [Statement],
    /// A numeric port match before the peer match (a comparison that fails
    /// before a set lookup: cluster policy rules, which every connection
    /// of the pods they select crosses in order, mostly name ports).
    pub(crate) ports_first: bool,
    /// Whether to build the pod-peer and named-port sets, whose names do
    /// not depend on their elements (`false` where another part of the
    /// table renders the same sets: a cluster policy's rules in a pod's
    /// list chain).
    pub(crate) sets: bool,
}

/// Renders one policy rule as chain rules, creating its sets, as `style`
/// says. Which rules exist depends on the policy alone (peer kinds, port
/// kinds); the pods of the cluster only fill the sets.
pub(crate) fn render_rule(
    r: &mut Table,
    chain: &mut Vec<Rule>,
    shared: &mut BTreeSet<String>,
    rule: &RuleProgram,
    dir: Direction,
    style: RuleStyle<'_>,
) {
    let RuleStyle { verdict, ports_first, sets } = style;
    let peer = |v6: bool| Expr::addr(v6, peer_field(dir));
    // Peer alternatives: (family, match), or one family-free alternative.
    let mut alternatives: Vec<(Option<bool>, Option<Statement>)> = Vec::new();
    match &rule.peers {
        None => alternatives.push((None, None)),
        Some(peers) => {
            for v6 in [false, true] {
                let family = if v6 { "6" } else { "4" };
                if let Some(pods) = &peers.pods {
                    let name = pods_set(&peers.pods_id, v6);
                    shared.insert(name.clone());
                    if sets {
                        let elements = pods.iter().filter(|a| a.is_ipv6() == v6).map(|a| addr_element(*a)).collect();
                        r.sets.insert(name.clone(), set(vec![KeyType::addr(v6)], false, elements));
                    }
                    alternatives.push((Some(v6), Some(Statement::lookup(vec![peer(v6)], name))));
                }
                if let Some(blocks) = &peers.blocks {
                    // ipBlocks are the policy's own: a family they do not
                    // cover gets no set and no rule (it could never match).
                    let elements = range_elements(blocks, v6);
                    if elements.is_empty() {
                        continue;
                    }
                    // One CIDR (not everything): a comparison, no set.
                    if let Some((net, len)) = single_prefix(blocks, v6) {
                        let m = Statement::Prefix { field: peer_field(dir), net, len };
                        alternatives.push((Some(v6), Some(m)));
                        continue;
                    }
                    let name = content_set(&format!("blocks{family}"), &elements);
                    shared.insert(name.clone());
                    r.sets.insert(name.clone(), set(vec![KeyType::addr(v6)], true, elements));
                    alternatives.push((Some(v6), Some(Statement::lookup(vec![peer(v6)], name))));
                }
            }
        }
    }
    let numeric = rule.ports.as_ref().map(|p| numeric_matches(r, shared, &p.numeric)).unwrap_or_default();
    let named_match = |r: &mut Table, shared: &mut BTreeSet<String>, v6: bool, ports: &PortSet| {
        let name = named_set(&ports.named_id, v6);
        shared.insert(name.clone());
        if sets {
            let elements =
                ports.named.iter().filter(|(addr, ..)| addr.is_ipv6() == v6).map(|n| named_element(*n)).collect();
            r.sets.insert(
                name.clone(),
                set(vec![KeyType::addr(v6), KeyType::InetProto, KeyType::InetService], false, elements),
            );
        }
        Statement::lookup(vec![Expr::addr(v6, AddrField::Daddr), Expr::L4proto, Expr::Dport], name)
    };
    let mut emit = |mut statements: Vec<Statement>| {
        statements.extend_from_slice(verdict);
        chain.push(Rule(statements));
    };
    for (family, peer) in alternatives {
        let peer: Vec<Statement> = peer.into_iter().collect();
        match &rule.ports {
            None => emit(peer.clone()),
            Some(ports) => {
                for numeric in &numeric {
                    if ports_first {
                        emit([numeric.clone()].into_iter().chain(peer.iter().cloned()).collect());
                    } else {
                        emit(peer.iter().cloned().chain([numeric.clone()]).collect());
                    }
                }
                if ports.has_named {
                    let families = family.map_or(vec![false, true], |v6| vec![v6]);
                    for v6 in families {
                        let m = named_match(r, shared, v6, ports);
                        emit(peer.iter().cloned().chain([m]).collect());
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::program::PolicyProgram;

    /// The longest names Kubernetes allows, as a tenant may choose them:
    /// every table object's name stays within the kernel's 255 bytes, two
    /// pods whose names differ only at the end keep apart, and the whole
    /// table encodes. Short names are unchanged.
    #[test]
    fn long_names_stay_within_the_kernel_limit_and_apart() {
        let ns = "n".repeat(63);
        let long = |last: char| format!("{}{last}", "p".repeat(252));
        let (a, b) = (ObjectKey::pod(&ns, &long('a')), ObjectKey::pod(&ns, &long('b')));
        let policy = ObjectKey::policy(&ns, &"q".repeat(253));
        let pod = |ip: &str| LocalPod {
            addrs: vec![ip.parse().expect("ip")],
            iface: Some("veth0".into()),
            ingress: Some(vec![policy.clone()]),
            egress: Some(Vec::new()),
            ..LocalPod::default()
        };
        let mut program = Program::default();
        program.pods.insert(a.clone(), pod("10.0.0.1"));
        program.pods.insert(b.clone(), pod("10.0.0.2"));
        let ports = PortSet { numeric: vec![(Protocol::Tcp, 80, 80)], ..PortSet::default() };
        let rule = RuleProgram { peers: None, ports: Some(ports) };
        program.policies.insert(policy.clone(), PolicyProgram { ingress: vec![rule], egress: Vec::new() });
        let table = render(&program);
        for name in table.chains.keys().chain(table.sets.keys()).chain(&table.counters) {
            assert!(name.len() <= 255, "{} bytes: {name}", name.len());
        }
        assert_ne!(pod_chain(&a, Direction::Ingress), pod_chain(&b, Direction::Ingress));
        assert!(table.chains.contains_key(&pod_chain(&b, Direction::Egress)));
        let tx = crate::transaction::full(&table);
        assert!(crate::netlink::Batch::encode(&tx, &table).is_ok(), "the table encodes");
        assert_eq!(object_name(&ObjectKey::pod("x", "a")), "x/a");
        assert_eq!(object_name(&a).len(), OBJECT_NAME_BUDGET);
    }

    #[test]
    fn one_cidr_is_a_prefix_and_anything_else_is_not() {
        let mut set = AddrSet { v4: vec![(0x0a00_0000, 0x0aff_ffff)], v6: vec![(1, 1)] };
        assert_eq!(single_prefix(&set, false), Some(("10.0.0.0".parse().expect("ip"), 8)));
        assert_eq!(single_prefix(&set, true), Some(("::1".parse().expect("ip"), 128)));
        set.v4 = vec![(0x0a00_0001, 0x0a00_0002)]; // two addresses, not aligned
        assert_eq!(single_prefix(&set, false), None);
        set.v4 = vec![(0, u32::MAX)]; // everything: keep the set
        assert_eq!(single_prefix(&set, false), None);
        set.v4 = vec![(1, 1), (3, 3)];
        assert_eq!(single_prefix(&set, false), None);
        set.v6 = vec![(0, u128::MAX)];
        assert_eq!(single_prefix(&set, true), None);
    }

    fn set_of(r: &Table, name: &str) -> Vec<String> {
        r.sets.get(name).map(|s| s.elements.iter().map(ToString::to_string).collect()).unwrap_or_default()
    }

    #[test]
    fn ports_go_to_the_cheapest_set_that_holds_them() {
        let mut r = Table::default();
        let mut shared = BTreeSet::new();
        let numeric = [
            (Protocol::Tcp, 80, 80),
            (Protocol::Tcp, 1000, 1255), // 256 ports: one element each
            (Protocol::Tcp, 2000, 2256), // 257 ports: an interval
            (Protocol::Udp, 0, u16::MAX),
        ];
        let matches = numeric_matches(&mut r, &mut shared, &numeric);
        assert_eq!(matches.len(), 3, "protocols, exact ports and ranges: one match each");
        let named = |kind: &str| -> String {
            shared.iter().find(|n| n.starts_with(&format!("{SHARED_PREFIX}{kind}/"))).expect("a set").clone()
        };
        let (protos, ports, ranges) = (named("protos"), named("ports"), named("ranges"));
        assert_eq!(set_of(&r, &protos), ["udp"]);
        let exact = set_of(&r, &ports);
        assert_eq!((exact.len(), exact.first().map(String::as_str)), (257, Some("tcp . 80")));
        assert!(exact.contains(&"tcp . 1255".to_string()) && !exact.contains(&"tcp . 1256".to_string()));
        assert_eq!(set_of(&r, &ranges), ["tcp . 2000-2256"]);
        assert!(r.sets[&ranges].decl.interval && !r.sets[&ports].decl.interval);
        // Only what a rule has gets a set; the same ports, the same set.
        let mut r = Table::default();
        let mut shared = BTreeSet::new();
        let two = [(Protocol::Sctp, 81, 81), (Protocol::Udp, 81, 81)];
        assert_eq!(numeric_matches(&mut r, &mut shared, &two).len(), 1);
        assert_eq!(numeric_matches(&mut r, &mut shared, &two).len(), 1);
        assert_eq!((r.sets.len(), shared.len()), (1, 1));
        numeric_matches(&mut r, &mut shared, &[(Protocol::Sctp, 82, 83)]);
        assert_eq!(r.sets.len(), 2, "other ports, another set");
        // One port, or one whole protocol: a comparison, no set.
        let mut r = Table::default();
        let one = numeric_matches(&mut r, &mut shared, &[(Protocol::Sctp, 81, 81)]);
        assert_eq!(one, [Statement::PortIs(Protocol::Sctp, 81)]);
        let all = numeric_matches(&mut r, &mut shared, &[(Protocol::Udp, 0, u16::MAX)]);
        assert_eq!(all, [Statement::ProtoIs(Protocol::Udp)]);
        assert!(r.sets.is_empty());
    }
}
