//! Servers inside pod namespaces: every port a pod declares answers (TCP
//! accepts and closes; UDP echoes; SCTP, where the kernel has SCTP sockets,
//! accepts the association and shuts it down; without SCTP sockets the
//! probe's raw INIT needs no server). One thread per socket, each inside
//! its namespace. They run until the process exits.

use std::io;
use std::net::{Ipv6Addr, SocketAddr, UdpSocket};
use std::thread;

use socket2::{Domain, Protocol, Socket, Type};

use crate::netns;
use crate::sctp::IPPROTO_SCTP;

fn dual_stack(kind: Type, protocol: Protocol, port: u16) -> io::Result<Socket> {
    let socket = Socket::new(Domain::IPV6, kind, Some(protocol))?;
    socket.set_only_v6(false)?;
    socket.set_reuse_address(true)?;
    socket.bind(&SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), port).into())?;
    Ok(socket)
}

/// Starts servers in namespace `ns` for `tcp`, `udp` and `sctp` ports.
/// Returns once every socket is bound (so probes can start), or the first
/// error.
pub fn start(ns: &str, tcp: &[u16], udp: &[u16], sctp: &[u16]) -> io::Result<()> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<io::Result<()>>();
    let sctp: &[u16] = if crate::sctp::sockets_available() { sctp } else { &[] };
    let streams =
        tcp.iter().map(|p| (*p, Protocol::TCP)).chain(sctp.iter().map(|p| (*p, Protocol::from(IPPROTO_SCTP))));
    for (port, protocol) in streams {
        let (ns, ready) = (ns.to_string(), ready_tx.clone());
        thread::spawn(move || {
            let bound = netns::enter(&ns).map_err(io::Error::other).and_then(|()| {
                let s = dual_stack(Type::STREAM, protocol, port)?;
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
    for &port in udp {
        let (ns, ready) = (ns.to_string(), ready_tx.clone());
        thread::spawn(move || {
            let bound = netns::enter(&ns)
                .map_err(io::Error::other)
                .and_then(|()| Ok(UdpSocket::from(dual_stack(Type::DGRAM, Protocol::UDP, port)?)));
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
    for _ in 0..tcp.len() + udp.len() + sctp.len() {
        ready_rx.recv().map_err(io::Error::other)??;
    }
    Ok(())
}
