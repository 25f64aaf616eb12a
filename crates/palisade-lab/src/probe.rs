//! Real connections between lab namespaces, in parallel, each bounded in time.
//!
//! TCP: a connection that completes, or is refused (the SYN got through and
//! a reset came back), is allowed; a timeout is denied. UDP: an echo, or an
//! ICMP port-unreachable, is allowed; silence is denied. SCTP, where the
//! kernel has SCTP sockets: like TCP, an association that is established or
//! aborted by the peer is allowed; without them, an INIT that arrives at the
//! destination namespace is allowed.

use std::io::{self, Read as _};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use palisade_policy::Protocol;
use socket2::{Domain, Socket, Type};

use crate::{netns, sctp};

/// One connection attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Probe {
    /// Namespace of the source.
    pub from_ns: String,
    /// Source address.
    pub from: IpAddr,
    /// Namespace of the destination (SCTP detection runs there).
    pub to_ns: String,
    /// Destination address.
    pub to: IpAddr,
    /// Destination port.
    pub port: u16,
    /// Protocol.
    pub protocol: Protocol,
}

fn bound(from: IpAddr, kind: Type, protocol: Option<socket2::Protocol>) -> io::Result<Socket> {
    let socket = Socket::new(if from.is_ipv6() { Domain::IPV6 } else { Domain::IPV4 }, kind, protocol)?;
    socket.bind(&SocketAddr::new(from, 0).into())?;
    Ok(socket)
}

/// A connection-oriented probe (TCP, or SCTP over real sockets): completed
/// or refused by the peer (a TCP reset, an SCTP ABORT) is allowed.
fn stream(p: &Probe, timeout: Duration, protocol: Option<socket2::Protocol>) -> io::Result<bool> {
    let socket = bound(p.from, Type::STREAM, protocol)?;
    match socket.connect_timeout(&SocketAddr::new(p.to, p.port).into(), timeout) {
        Ok(()) if protocol.is_some() => Ok(true),
        Ok(()) => {
            let mut stream = TcpStream::from(socket);
            stream.set_read_timeout(Some(timeout))?;
            let _ = stream.read(&mut [0u8; 8]);
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => Ok(true),
        Err(e) if matches!(e.kind(), io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock) => Ok(false),
        Err(e) => Err(e),
    }
}

fn udp(p: &Probe, timeout: Duration) -> io::Result<bool> {
    let socket = UdpSocket::from(bound(p.from, Type::DGRAM, None)?);
    socket.connect(SocketAddr::new(p.to, p.port))?;
    socket.set_read_timeout(Some(timeout))?;
    socket.send(b"palisade-probe")?;
    match socket.recv(&mut [0u8; 64]) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => Ok(true),
        Err(e) if matches!(e.kind(), io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock) => Ok(false),
        Err(e) => Err(e),
    }
}

fn sctp_probe(p: &Probe, timeout: Duration, tag: u32) -> io::Result<bool> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let to_ns = p.to_ns.clone();
    let (from, port, v6) = (p.from, p.port, p.to.is_ipv6());
    let detector = std::thread::spawn(move || -> io::Result<bool> {
        netns::enter(&to_ns).map_err(io::Error::other)?;
        let d = sctp::Detector::open(v6);
        let _ = ready_tx.send(());
        d?.wait_for(from, port, tag, timeout)
    });
    let _ = ready_rx.recv_timeout(timeout);
    sctp::send_init(p.from, p.to, 40_000 + (tag % 20_000) as u16, p.port, tag)?;
    detector.join().map_err(|_| io::Error::other("detector thread panicked"))?
}

/// Runs one probe from a thread that is (or will be) inside `from_ns`.
pub fn run_one(p: &Probe, timeout: Duration, tag: u32) -> io::Result<bool> {
    netns::enter(&p.from_ns).map_err(io::Error::other)?;
    match p.protocol {
        Protocol::Tcp => stream(p, timeout, None),
        Protocol::Udp => udp(p, timeout),
        Protocol::Sctp if sctp::sockets_available() => {
            stream(p, timeout, Some(socket2::Protocol::from(sctp::IPPROTO_SCTP)))
        }
        Protocol::Sctp => sctp_probe(p, timeout, tag),
    }
}

/// Runs `probes` on up to `parallel` threads. A denial where `expected`
/// says allowed is retried once with `retry_timeout`, so that a slow machine
/// does not report a false denial (a retry can only turn a denial into an
/// allowance if packets really pass). Results are in input order.
#[must_use]
pub fn run_all(
    probes: &[Probe],
    expected: &[bool],
    parallel: usize,
    timeout: Duration,
    retry_timeout: Duration,
) -> Vec<io::Result<bool>> {
    let next = AtomicUsize::new(0);
    let results: Vec<std::sync::Mutex<Option<io::Result<bool>>>> =
        probes.iter().map(|_| std::sync::Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..parallel.max(1).min(probes.len().max(1)) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(p) = probes.get(i) else { break };
                    // Each probe gets a thread of its own: entering a namespace is per thread.
                    let tag = 0x5041_0000 ^ (i as u32).wrapping_mul(2_654_435_761);
                    let p2 = p.clone();
                    let first = std::thread::spawn(move || run_one(&p2, timeout, tag))
                        .join()
                        .unwrap_or_else(|_| Err(io::Error::other("probe panicked")));
                    let result = match first {
                        Ok(false) if expected.get(i).copied().unwrap_or(true) => {
                            let p3 = p.clone();
                            std::thread::spawn(move || run_one(&p3, retry_timeout, tag.wrapping_add(1)))
                                .join()
                                .unwrap_or_else(|_| Err(io::Error::other("probe panicked")))
                        }
                        other => other,
                    };
                    *results[i].lock().expect("result slot") = Some(result);
                }
            });
        }
    });
    results
        .into_iter()
        .map(|m| m.into_inner().expect("result slot").unwrap_or_else(|| Err(io::Error::other("probe not run"))))
        .collect()
}
