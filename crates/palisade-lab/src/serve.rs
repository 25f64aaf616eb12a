//! Servers inside pod namespaces: every port a pod declares answers (TCP
//! accepts and closes; UDP echoes; SCTP, where the kernel has SCTP sockets,
//! accepts the association and shuts it down; without SCTP sockets the
//! probe's raw INIT needs no server). One thread per socket, each inside
//! its namespace. They run until the process exits.
//!
//! Every socket is bound to one of the namespace's addresses, not to the
//! wildcard: a UDP reply must come from the address the datagram was sent
//! to, or the probing client (a connected socket) drops it (with several
//! addresses on one interface the kernel would pick the first); and
//! hostNetwork pods share the node namespace, each on its own addresses.

use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::thread;

use socket2::{Domain, Protocol, Socket, Type};

use crate::netns;
use crate::sctp::IPPROTO_SCTP;

/// A socket of `kind` bound to `addr`:`port` (an IPv6 one only for IPv6).
fn bound_socket(kind: Type, protocol: Protocol, addr: IpAddr, port: u16) -> io::Result<Socket> {
    let domain = if addr.is_ipv6() { Domain::IPV6 } else { Domain::IPV4 };
    let socket = Socket::new(domain, kind, Some(protocol))?;
    // The address may still be tentative (IPv6 duplicate address detection).
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
        socket.set_freebind_v6(true)?;
    } else {
        socket.set_freebind_v4(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.bind(&SocketAddr::new(addr, port).into())?;
    Ok(socket)
}

/// Starts servers in namespace `ns`, whose addresses are `addrs`, for
/// `tcp`, `udp` and `sctp` ports. Returns once every socket is bound (so
/// probes can start), or the first error.
pub fn start(ns: &str, addrs: &[IpAddr], tcp: &[u16], udp: &[u16], sctp: &[u16]) -> io::Result<()> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<io::Result<()>>();
    let sctp: &[u16] = if crate::sctp::sockets_available() { sctp } else { &[] };
    let streams: Vec<(IpAddr, u16, Protocol)> = tcp
        .iter()
        .map(|p| (*p, Protocol::TCP))
        .chain(sctp.iter().map(|p| (*p, Protocol::from(IPPROTO_SCTP))))
        .flat_map(|(port, protocol)| addrs.iter().map(move |a| (*a, port, protocol)))
        .collect();
    for &(addr, port, protocol) in &streams {
        let (ns, ready) = (ns.to_string(), ready_tx.clone());
        thread::spawn(move || {
            let bound = netns::enter(&ns).map_err(io::Error::other).and_then(|()| {
                let s = bound_socket(Type::STREAM, protocol, addr, port)?;
                s.listen(128)?;
                Ok(s)
            });
            match bound {
                Ok(listener) => {
                    let _ = ready.send(Ok(()));
                    // A TCP connection or an SCTP association: greet it and close.
                    for (conn, _) in std::iter::repeat_with(|| listener.accept()).flatten() {
                        let _ = conn.send(b"ok\n");
                    }
                }
                Err(e) => {
                    let _ = ready.send(Err(e));
                }
            }
        });
    }
    let datagrams: Vec<(IpAddr, u16)> = udp.iter().flat_map(|p| addrs.iter().map(move |a| (*a, *p))).collect();
    for &(addr, port) in &datagrams {
        let (ns, ready) = (ns.to_string(), ready_tx.clone());
        thread::spawn(move || {
            let bound = netns::enter(&ns)
                .map_err(io::Error::other)
                .and_then(|()| Ok(UdpSocket::from(bound_socket(Type::DGRAM, Protocol::UDP, addr, port)?)));
            match bound {
                Ok(socket) => {
                    let _ = ready.send(Ok(()));
                    let mut buf = [0u8; 512];
                    while let Ok((n, from)) = socket.recv_from(&mut buf) {
                        let _ = socket.send_to(&buf[..n], from);
                    }
                }
                Err(e) => {
                    let _ = ready.send(Err(e));
                }
            }
        });
    }
    drop(ready_tx);
    for _ in 0..streams.len() + datagrams.len() {
        ready_rx.recv().map_err(io::Error::other)??;
    }
    Ok(())
}
