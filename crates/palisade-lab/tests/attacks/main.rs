//! Attacks on the dataplane, with real packets in a lab node: each test
//! tries a way around the rules that an attacker found, and checks that it
//! no longer works while the legitimate traffic beside it still passes.
//! Packets are counted where they arrive, by an nftables counter in the
//! victim pod's own namespace (a namespace of the lab's).
//!
//! Needs root, nft and conntrack: `#[ignore]`d, run as root by
//! `scripts/test` (`--include-ignored`).

mod forge;

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::Duration;

use palisade_dataplane::nft::{Nft as _, NftCli};
use palisade_dataplane::render::render;
use palisade_dataplane::transaction::full;
use palisade_dataplane::{NodeScope, compile};
use palisade_lab::netns::{NetNs, unique_prefix};
use palisade_lab::serve;
use palisade_lab::topology::Topology;

/// x/a, x/b, x/c on this node; x/r on another. a admits c, r and the
/// documentation ranges on TCP and UDP 80; c admits a on the same ports; no
/// policy lets b reach either.
const CLUSTER: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: x, labels: {ns: x}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: a-ingress, namespace: x}
spec:
  podSelector: {matchLabels: {app: a}}
  policyTypes: [Ingress]
  ingress:
  - from:
    - podSelector: {matchLabels: {app: c}}
    - podSelector: {matchLabels: {app: r}}
    - ipBlock: {cidr: 192.0.2.0/24}
    - ipBlock: {cidr: "2001:db8::/64"}
    ports: [{protocol: TCP, port: 80}, {protocol: UDP, port: 80}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: c-ingress, namespace: x}
spec:
  podSelector: {matchLabels: {app: c}}
  policyTypes: [Ingress]
  ingress:
  - from: [{podSelector: {matchLabels: {app: a}}}]
    ports: [{protocol: TCP, port: 80}, {protocol: UDP, port: 80}]
"#;

const LOCAL: [(&str, &str, &str); 3] =
    [("a", "10.0.1.1", "fd00::1:1"), ("b", "10.0.1.2", "fd00::1:2"), ("c", "10.0.1.3", "fd00::1:3")];
const REMOTE: (&str, &str) = ("10.0.2.5", "fd00::2:5");
const EXTERNAL: (&str, &str) = ("192.0.2.10", "2001:db8::10");
/// Packets of each kind per spoofing case.
const N: usize = 10;
/// Forged errors per case.
const K: usize = 5;
/// The lab node's own IPv6 address in the ICMP test.
const NODE_V6: &str = "fd00:ff::1";

fn ip(s: &str) -> IpAddr {
    s.parse().expect("address")
}

fn pod_yaml(name: &str, node: &str, v4: &str, v6: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: x, labels: {{app: {name}}}}}\n\
         spec: {{nodeName: {node}, containers: [{{name: c, image: i}}]}}\n\
         status: {{phase: Running, podIP: {v4}, podIPs: [{{ip: {v4}}}, {{ip: \"{v6}\"}}]}}\n"
    )
}

/// The lab node: pods a, b, c with TCP and UDP servers on port 80, the
/// external hosts' namespace, and Palisade's table for node `lab`.
struct Node {
    topo: Topology,
}

impl Node {
    fn start() -> Node {
        Self::start_with("")
    }

    /// [`Node::start`] with `extra` manifests (cluster policies) beside
    /// [`CLUSTER`]'s.
    fn start_with(extra: &str) -> Node {
        let mut topo = Topology::new(&unique_prefix()).expect("node namespace");
        let mut yaml = format!("{CLUSTER}---\n{extra}");
        for (name, v4, v6) in LOCAL {
            topo.add_pod(&format!("x/{name}"), &[ip(v4), ip(v6)]).expect("pod namespace");
            serve::start(topo.pods[&format!("x/{name}")].ns.name(), &[ip(v4), ip(v6)], &[80], &[80], &[])
                .expect("servers");
            yaml.push_str("---\n");
            yaml.push_str(&pod_yaml(name, "lab", v4, v6));
        }
        yaml.push_str("---\n");
        yaml.push_str(&pod_yaml("r", "other", REMOTE.0, REMOTE.1));
        topo.add_external(&[ip(EXTERNAL.0), ip(EXTERNAL.1)]).expect("external namespace");
        let loaded = palisade_manifests::load_str("attacks.yaml", &yaml, "default");
        assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
        let index = loaded.index();
        let table = render(&compile(&index, &NodeScope::Node("lab".into()), &topo.pod_ifaces()));
        NftCli::in_netns(topo.node.name()).apply(&full(&table), &table).expect("the table applies");
        Node { topo }
    }

    fn pod(&self, name: &str) -> &NetNs {
        &self.topo.pods[&format!("x/{name}")].ns
    }

    fn external(&self) -> &NetNs {
        &self.topo.external.as_ref().expect("external namespace").ns
    }
}

/// Counters in a pod's own namespace: packets that reached it, by rule.
struct Counters<'a> {
    ns: &'a NetNs,
    names: Vec<String>,
}

impl<'a> Counters<'a> {
    /// A counter per name, counting the packets of its matches, in the
    /// input hook of `ns`.
    fn install(ns: &'a NetNs, rules: &[(String, String)]) -> Counters<'a> {
        let mut text = String::from("table inet count {\n");
        let mut names: Vec<String> = rules.iter().map(|(n, _)| n.clone()).collect();
        names.dedup();
        for name in &names {
            let _ = writeln!(text, "  counter {name} {{}}");
        }
        text.push_str("  chain input {\n    type filter hook input priority 0; policy accept;\n");
        for (name, matches) in rules {
            let _ = writeln!(text, "    {matches} counter name \"{name}\"");
        }
        text.push_str("  }\n}\n");
        let file = std::env::temp_dir().join(format!("{}-count.nft", ns.name()));
        std::fs::write(&file, text).expect("counter rules");
        let result = ns.exec("nft", &["-f", file.to_str().expect("path")]);
        let _ = std::fs::remove_file(&file);
        result.expect("counters in the pod's namespace");
        Counters { ns, names }
    }

    fn read(&self, name: &str) -> u64 {
        assert!(self.names.iter().any(|n| n == name), "no counter {name}");
        let out = self.ns.exec("nft", &["list", "counter", "inet", "count", name]).expect("counter");
        let text = String::from_utf8_lossy(&out.stdout);
        let packets = text.split_whitespace().skip_while(|w| *w != "packets").nth(1).expect("packets");
        packets.parse().expect("a count")
    }
}

/// Runs `f` on a thread inside namespace `ns`.
fn in_ns<T: Send>(ns: &NetNs, f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            ns.enter().expect("enter namespace");
            f()
        })
        .join()
        .expect("thread")
    })
}

/// Sends `count` UDP datagrams and `count` TCP SYNs from `from` (an
/// address of the sending namespace) to port 80 of `to`.
fn send_udp_and_syns(ns: &NetNs, from: IpAddr, to: IpAddr, count: usize) {
    in_ns(ns, || {
        let udp = UdpSocket::bind(SocketAddr::new(from, 0)).expect("bind udp");
        for _ in 0..count {
            let _ = udp.send_to(b"spoofed", SocketAddr::new(to, 80));
        }
        for _ in 0..count {
            let domain = if from.is_ipv6() { socket2::Domain::IPV6 } else { socket2::Domain::IPV4 };
            let s = socket2::Socket::new(domain, socket2::Type::STREAM, None).expect("tcp socket");
            s.bind(&SocketAddr::new(from, 0).into()).expect("bind tcp");
            // One SYN: closed long before the first retransmission.
            let _ = s.connect_timeout(&SocketAddr::new(to, 80).into(), Duration::from_millis(50));
        }
    });
    std::thread::sleep(Duration::from_millis(100));
}

/// Issue #11, item 1: a host behind the node's uplink (the lab's external
/// namespace) sends TCP and UDP with a local pod's source address, in both
/// families. None of it may reach x/a, though x/a admits that pod; the
/// same host's own address and a remote pod's address (traffic from other
/// nodes arrives on the uplink) still reach x/a as its policy says, and so
/// does the real pod. A pod that forges another local pod's address is
/// dropped too.
#[test]
#[ignore = "root: network namespaces and nftables (scripts/test runs it as root)"]
fn local_pod_addresses_spoofed_from_outside_their_interface_are_dropped() {
    palisade_lab::netns::require_root(&["nft", "conntrack"]);
    let node = Node::start();
    let (ext, b) = (node.external(), node.pod("b"));
    // The external namespace also holds c's and r's addresses, so that its
    // sockets can use them as sources (no route on the node points there).
    for addr in [LOCAL[2].1, REMOTE.0] {
        ext.ip(&["addr", "add", &format!("{addr}/32"), "dev", "eth0"]).expect("address");
    }
    for addr in [LOCAL[2].2, REMOTE.1] {
        ext.ip(&["addr", "add", &format!("{addr}/128"), "dev", "eth0", "nodad"]).expect("address");
    }
    b.ip(&["addr", "add", &format!("{}/32", LOCAL[2].1), "dev", "eth0"]).expect("address");
    b.ip(&["addr", "add", &format!("{}/128", LOCAL[2].2), "dev", "eth0", "nodad"]).expect("address");
    let sources = [
        ("c4", LOCAL[2].1),
        ("c6", LOCAL[2].2),
        ("r4", REMOTE.0),
        ("r6", REMOTE.1),
        ("ext4", EXTERNAL.0),
        ("ext6", EXTERNAL.1),
    ];
    // Datagrams and connection attempts (SYNs), not the rest of a
    // connection that completes.
    let rules: Vec<(String, String)> = sources
        .iter()
        .flat_map(|(name, addr)| {
            let family = if ip(addr).is_ipv6() { "ip6" } else { "ip" };
            [
                format!("{family} saddr {addr} udp dport 80"),
                format!("{family} saddr {addr} tcp dport 80 tcp flags & (syn | ack) == syn"),
            ]
            .map(|m| ((*name).to_string(), m))
        })
        .collect();
    let counters = Counters::install(node.pod("a"), &rules);
    let a = |v6: bool| ip(if v6 { LOCAL[0].2 } else { LOCAL[0].1 });
    // From the uplink with c's addresses: dropped.
    for (name, addr) in &sources[..2] {
        send_udp_and_syns(ext, ip(addr), a(ip(addr).is_ipv6()), N);
        assert_eq!(counters.read(name), 0, "{name}: spoofed from the uplink reached x/a");
    }
    // From pod b's interface with c's addresses: dropped.
    for (name, addr) in &sources[..2] {
        send_udp_and_syns(b, ip(addr), a(ip(addr).is_ipv6()), N);
        assert_eq!(counters.read(name), 0, "{name}: spoofed from x/b reached x/a");
    }
    // A remote pod's and an external host's own addresses from the uplink:
    // admitted by x/a's policy, they arrive.
    for (name, addr) in &sources[2..] {
        send_udp_and_syns(ext, ip(addr), a(ip(addr).is_ipv6()), N);
        assert_eq!(counters.read(name), 2 * N as u64, "{name}: admitted traffic from the uplink was lost");
    }
    // The real c, from its own interface: arrives.
    for (name, addr) in &sources[..2] {
        send_udp_and_syns(node.pod("c"), ip(addr), a(ip(addr).is_ipv6()), N);
        assert_eq!(counters.read(name), 2 * N as u64, "{name}: x/c's own traffic was lost");
    }
}

/// One end of a UDP flow between two pods, kept open while errors about
/// it are forged.
struct Flow {
    _socket: UdpSocket,
    /// The victim's address and port, and the peer's.
    victim: SocketAddr,
    peer: SocketAddr,
}

/// A UDP flow from `client` to port 80 of `server` (which echoes), seen
/// from `victim` (the client or the server): its address and port, and
/// the peer's.
fn flow(node: &Node, client: (&str, IpAddr), server: IpAddr, victim_is_client: bool) -> Flow {
    let socket = in_ns(node.pod(client.0), || {
        let s = UdpSocket::bind(SocketAddr::new(client.1, 0)).expect("bind");
        s.connect(SocketAddr::new(server, 80)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(2))).expect("timeout");
        s.send(b"flow").expect("send");
        s.recv(&mut [0u8; 16]).expect("the echo: the flow is admitted and tracked");
        s
    });
    let local = socket.local_addr().expect("local address");
    let remote = SocketAddr::new(server, 80);
    let (victim, peer) = if victim_is_client { (local, remote) } else { (remote, local) };
    Flow { _socket: socket, victim, peer }
}

/// Issue #11, item 2: ICMP and ICMPv6 errors (port unreachable, and
/// fragmentation needed / packet too big) about a live UDP flow between
/// x/a and x/c, sent to either end, about a flow either end opened. From
/// the flow's peer, from the node and from a host behind the uplink (a
/// router on the path) they arrive; from x/b, which no policy lets reach
/// x/a or x/c, none does.
#[test]
#[ignore = "root: network namespaces and nftables (scripts/test runs it as root)"]
fn related_icmp_errors_only_from_the_peer_or_from_no_pod() {
    palisade_lab::netns::require_root(&["nft", "conntrack"]);
    let node = Node::start();
    // A node has an address of its own; the lab node only link-local ones.
    node.topo.node.ip(&["addr", "add", &format!("{NODE_V6}/128"), "dev", "lo"]).expect("node address");
    let mut failures = Vec::new();
    let mut checked = 0;
    for v6 in [false, true] {
        let addr = |i: usize| ip(if v6 { LOCAL[i].2 } else { LOCAL[i].1 });
        let (node_addr, ext_addr) =
            if v6 { (ip(NODE_V6), ip(EXTERNAL.1)) } else { (ip("169.254.0.1"), ip(EXTERNAL.0)) };
        // (victim, peer): both ends of the flow in turn.
        for (victim, peer) in [(0usize, 2usize), (2, 0)] {
            let family = if v6 { "ip6" } else { "ip" };
            let proto = if v6 { "ipv6-icmp" } else { "icmp" };
            let senders: [(&str, IpAddr); 4] =
                [("peer", addr(peer)), ("node", node_addr), ("router", ext_addr), ("b", addr(1))];
            let rules: Vec<(String, String)> = senders
                .iter()
                .map(|(name, a)| ((*name).to_string(), format!("{family} saddr {a} meta l4proto {proto}")))
                .collect();
            let victim_ns = node.pod(LOCAL[victim].0);
            let _ = victim_ns.exec("nft", &["delete", "table", "inet", "count"]);
            let counters = Counters::install(victim_ns, &rules);
            for victim_is_client in [true, false] {
                let (client, server) = if victim_is_client { (victim, peer) } else { (peer, victim) };
                let f = flow(&node, (LOCAL[client].0, addr(client)), addr(server), victim_is_client);
                for kind in [forge::Kind::PortUnreachable, forge::Kind::TooBig] {
                    for (name, from) in senders {
                        let ns = match name {
                            "peer" => node.pod(LOCAL[peer].0),
                            "b" => node.pod("b"),
                            "router" => node.external(),
                            _ => &node.topo.node,
                        };
                        let before = counters.read(name);
                        in_ns(ns, || forge::send_error(kind, from, f.victim, f.peer, K));
                        std::thread::sleep(Duration::from_millis(50));
                        let arrived = counters.read(name) - before;
                        let expected = if name == "b" { 0 } else { K as u64 };
                        checked += 1;
                        if arrived != expected {
                            failures.push(format!(
                                "{kind:?} from {name} ({from}) to {} about the flow {} -> {}: {arrived} of {K} arrived, expected {expected}",
                                LOCAL[victim].0,
                                if victim_is_client { f.victim } else { f.peer },
                                if victim_is_client { f.peer } else { f.victim },
                            ));
                        }
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{} of {checked} cases wrong:\n{}", failures.len(), failures.join("\n"));
}

/// x/a guarded by the Admin tier: x/c accepted on port 80, every other pod
/// denied (the remote pod r too, though x/a's NetworkPolicy admits it).
const ADMIN_GUARD: &str = "
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: guard-a}
spec:
  tier: Admin
  priority: 1
  subject: {pods: {namespaceSelector: {}, podSelector: {matchLabels: {app: a}}}}
  ingress:
  - {name: c, action: Accept, from: [{pods: {namespaceSelector: {}, podSelector: {matchLabels: {app: c}}}}],
     protocols: [{tcp: {destinationPort: {number: 80}}}, {udp: {destinationPort: {number: 80}}}]}
  - {name: no-other-pod, action: Deny, from: [{namespaces: {}}]}
";

/// The Admin tier against the ways around it: x/c's admitted address
/// forged from the uplink and from x/b is dropped by anti-spoofing before
/// any tier sees it; the remote pod r, which x/a's NetworkPolicy admits, is
/// denied by the Admin tier; external hosts (no pod, so no pod peer of the
/// Admin tier matches them) still reach x/a through its NetworkPolicy; and
/// ICMP errors forged by x/b about x/a's live flow with x/c are dropped by
/// the Admin tier, while the flow's own peer's arrive.
#[test]
#[ignore = "root: network namespaces and nftables (scripts/test runs it as root)"]
fn the_admin_tier_holds_against_forged_sources_and_related_errors() {
    palisade_lab::netns::require_root(&["nft", "conntrack"]);
    let node = Node::start_with(ADMIN_GUARD);
    let (ext, b) = (node.external(), node.pod("b"));
    for addr in [LOCAL[2].1, REMOTE.0] {
        ext.ip(&["addr", "add", &format!("{addr}/32"), "dev", "eth0"]).expect("address");
    }
    b.ip(&["addr", "add", &format!("{}/32", LOCAL[2].1), "dev", "eth0"]).expect("address");
    let sources = [("c4", LOCAL[2].1), ("r4", REMOTE.0), ("ext4", EXTERNAL.0), ("b4", LOCAL[1].1)];
    let rules: Vec<(String, String)> = sources
        .iter()
        .flat_map(|(name, addr)| {
            [
                format!("ip saddr {addr} udp dport 80"),
                format!("ip saddr {addr} tcp dport 80 tcp flags & (syn | ack) == syn"),
            ]
            .map(|m| ((*name).to_string(), m))
        })
        .collect();
    let counters = Counters::install(node.pod("a"), &rules);
    let a = ip(LOCAL[0].1);
    send_udp_and_syns(ext, ip(LOCAL[2].1), a, N);
    send_udp_and_syns(b, ip(LOCAL[2].1), a, N);
    assert_eq!(counters.read("c4"), 0, "x/c's address forged from the uplink or from x/b reached x/a");
    send_udp_and_syns(ext, ip(REMOTE.0), a, N);
    assert_eq!(counters.read("r4"), 0, "the Admin tier's Deny let the remote pod through");
    send_udp_and_syns(b, ip(LOCAL[1].1), a, N);
    assert_eq!(counters.read("b4"), 0, "x/b reached x/a");
    send_udp_and_syns(ext, ip(EXTERNAL.0), a, N);
    assert_eq!(counters.read("ext4"), 2 * N as u64, "an external host the NetworkPolicy admits was lost");
    send_udp_and_syns(node.pod("c"), ip(LOCAL[2].1), a, N);
    assert_eq!(counters.read("c4"), 2 * N as u64, "x/c, accepted by the Admin tier, was lost");

    // Forged ICMP errors about a live flow x/c -> x/a.
    let _ = node.pod("a").exec("nft", &["delete", "table", "inet", "count"]);
    let icmp = [("peer", LOCAL[2].1), ("b", LOCAL[1].1)]
        .map(|(name, addr)| (name.to_string(), format!("ip saddr {addr} meta l4proto icmp")));
    let counters = Counters::install(node.pod("a"), &icmp);
    let f = flow(&node, ("c", ip(LOCAL[2].1)), a, false);
    for (name, from) in [("peer", LOCAL[2].1), ("b", LOCAL[1].1)] {
        let ns = if name == "peer" { node.pod("c") } else { b };
        in_ns(ns, || forge::send_error(forge::Kind::PortUnreachable, ip(from), f.victim, f.peer, K));
    }
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(counters.read("peer"), K as u64, "the flow's own peer's errors were lost");
    assert_eq!(counters.read("b"), 0, "x/b's forged errors got past the Admin tier");
}

/// A policy that lets x/b reach x/a on TCP 81; the revocation test takes
/// it away.
const B_TO_A_81: &str = r"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: a-from-b, namespace: x}
spec:
  podSelector: {matchLabels: {app: a}}
  policyTypes: [Ingress]
  ingress: [{from: [{podSelector: {matchLabels: {app: b}}}], ports: [{protocol: TCP, port: 81}]}]
";

/// The node's table for [`CLUSTER`] (and `extra`), as the agent renders it;
/// `midstream`: with the drop of TCP packets that open a connection in
/// mid-stream (the control run takes it out).
fn table_for(node: &Node, extra: &str, midstream: bool) -> palisade_dataplane::ruleset::Table {
    use palisade_dataplane::ruleset::Statement;
    let mut yaml = format!("{CLUSTER}---\n{extra}");
    for (name, v4, v6) in LOCAL {
        yaml.push_str("---\n");
        yaml.push_str(&pod_yaml(name, "lab", v4, v6));
    }
    let index = palisade_manifests::load_str("attacks.yaml", &yaml, "default").index();
    let mut table = render(&compile(&index, &NodeScope::Node("lab".into()), &node.topo.pod_ifaces()));
    if !midstream {
        for chain in table.chains.values_mut() {
            chain.rules.retain(|r| !r.0.contains(&Statement::TcpNotSyn));
        }
    }
    table
}

/// Whether a revoked TCP connection x/b -> x/a:81 came back: x/a, which
/// every policy still lets send to x/b (x/b is not isolated), writes first
/// after the revocation, then x/b answers. Returns the bytes each end
/// received after the revocation, and the conntrack entries left between
/// them on port 81.
fn revive(node: &Node, midstream: bool) -> (usize, usize, usize) {
    use std::io::{Read as _, Write as _};
    let nft = NftCli::in_netns(node.topo.node.name());
    let table = table_for(node, B_TO_A_81, midstream);
    nft.apply(&full(&table), &table).expect("the table with x/b admitted");
    let (a, b) = (ip(LOCAL[0].1), ip(LOCAL[1].1));
    let listener = in_ns(node.pod("a"), || std::net::TcpListener::bind(SocketAddr::new(a, 81)).expect("listen"));
    let mut client = in_ns(node.pod("b"), || {
        std::net::TcpStream::connect_timeout(&SocketAddr::new(a, 81), Duration::from_secs(2)).expect("x/b is admitted")
    });
    let (mut server, _) = listener.accept().expect("accept");
    for s in [&server, &client] {
        s.set_read_timeout(Some(Duration::from_millis(300))).expect("timeout");
    }
    client.write_all(b"hello").expect("write");
    let mut buf = [0u8; 64];
    assert_eq!(server.read(&mut buf).expect("established"), 5);
    // The change: x/b is no longer admitted. The agent applies it, then
    // deletes the connection's entry (its revocation step).
    let denied = table_for(node, "", midstream);
    nft.apply(&full(&denied), &denied).expect("the table without it");
    in_ns(&node.topo.node, || {
        let mut ct = palisade_dataplane::conntrack::Conntrack::new().expect("conntrack");
        let found: Vec<_> = ct
            .entries(palisade_dataplane::conntrack::Filter::OrigSrc(b))
            .expect("dump")
            .into_iter()
            .filter(|e| e.orig.dport == 81)
            .collect();
        assert_eq!(ct.delete(&found).expect("delete").deleted, 1, "one entry to revoke");
    });
    // x/a writes first: a new connection x/a -> x/b, which no policy forbids.
    let _ = server.write_all(b"from a");
    std::thread::sleep(Duration::from_millis(100));
    let got_b = client.read(&mut buf).unwrap_or(0);
    let _ = client.write_all(b"from b");
    std::thread::sleep(Duration::from_millis(100));
    let got_a = server.read(&mut buf).unwrap_or(0);
    let count = |args: &[&str]| {
        node.topo.node.exec("conntrack", args).map_or(0, |o| String::from_utf8_lossy(&o.stdout).lines().count())
    };
    let out = count(&["-L", "-p", "tcp", "--orig-port-dst", "81"]);
    let back = count(&["-L", "-p", "tcp", "--orig-port-src", "81"]);
    (got_b, got_a, out + back)
}

/// Issue #14: a connection revoked because the policies now deny it
/// (x/b -> x/a:81) must not come back through its other end. With
/// `nf_conntrack_tcp_loose` (the default) x/a's next segment is picked up
/// as a new connection x/a -> x/b, which no policy forbids, and x/b's
/// answers would pass as its replies; the table drops TCP packets that
/// open a connection without a SYN. The control run, without that rule,
/// shows the way back is real.
#[test]
#[ignore = "root: network namespaces, nftables and conntrack (scripts/test runs it as root)"]
fn a_revoked_connection_does_not_come_back_through_its_other_end() {
    palisade_lab::netns::require_root(&["nft", "conntrack"]);
    let node = Node::start();
    let loose = node.topo.node.exec("sysctl", &["-n", "net.netfilter.nf_conntrack_tcp_loose"]).expect("sysctl");
    assert_eq!(String::from_utf8_lossy(&loose.stdout).trim(), "1", "the kernel default, which the attack needs");
    let (to_b, to_a, entries) = revive(&node, false);
    assert!(to_b > 0 && to_a > 0 && entries > 0, "without the rule the connection comes back: {to_b} {to_a} {entries}");
    let node = Node::start();
    let (to_b, to_a, entries) = revive(&node, true);
    assert_eq!((to_b, to_a, entries), (0, 0, 0), "a revoked connection came back through x/a");
}
