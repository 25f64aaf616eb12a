//! Servers inside pod namespaces: every TCP and UDP port a pod declares
//! answers (TCP accepts and closes; UDP echoes). One thread per socket,
//! each inside its namespace. They run until the process exits.

use std::io::{self, Write as _};
use std::net::{Ipv6Addr, SocketAddr, TcpListener, UdpSocket};
use std::thread;

use socket2::{Domain, Protocol, Socket, Type};

use crate::netns;

fn dual_stack(kind: Type, protocol: Protocol, port: u16) -> io::Result<Socket> {
    let socket = Socket::new(Domain::IPV6, kind, Some(protocol))?;
    socket.set_only_v6(false)?;
    socket.set_reuse_address(true)?;
    socket.bind(&SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), port).into())?;
    Ok(socket)
}

/// Starts servers in namespace `ns` for `tcp` and `udp` ports. Returns once
/// every socket is bound (so probes can start), or the first error.
pub fn start(ns: &str, tcp: &[u16], udp: &[u16]) -> io::Result<()> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<io::Result<()>>();
    for &port in tcp {
        let (ns, ready) = (ns.to_string(), ready_tx.clone());
        thread::spawn(move || {
            let bound = netns::enter(&ns).map_err(io::Error::other).and_then(|()| {
                let s = dual_stack(Type::STREAM, Protocol::TCP, port)?;
                s.listen(128)?;
                Ok(TcpListener::from(s))
            });
            match bound {
                Ok(listener) => {
                    let _ = ready.send(Ok(()));
                    for mut conn in listener.incoming().flatten() {
                        let _ = conn.write_all(b"ok\n");
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
    for _ in 0..tcp.len() + udp.len() {
        ready_rx.recv().map_err(io::Error::other)??;
    }
    Ok(())
}
