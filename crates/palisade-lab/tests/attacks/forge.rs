//! Forged ICMP and ICMPv6 errors about a UDP packet, sent from a raw
//! socket of the calling thread's namespace.

use std::net::{IpAddr, SocketAddr};

use socket2::{Domain, Protocol, Socket, Type};

/// Which error.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    /// Destination unreachable, port unreachable (ICMP 3/3, ICMPv6 1/4).
    PortUnreachable,
    /// Fragmentation needed with a next-hop MTU of 552 (ICMP 3/4), or
    /// packet too big with an MTU of 1280 (ICMPv6 2/0).
    TooBig,
}

/// The Internet checksum (RFC 1071).
fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The quoted packet: the headers of a UDP datagram from `src` to `dst`
/// with 14 bytes of payload.
fn quoted(src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
    let udp_len: u16 = 8 + 14;
    let mut out = Vec::new();
    match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let mut header = vec![0x45, 0, 0, 0, 0x12, 0x34, 0x40, 0, 64, 17, 0, 0];
            header[2..4].copy_from_slice(&(20 + udp_len).to_be_bytes());
            header.extend_from_slice(&s.octets());
            header.extend_from_slice(&d.octets());
            let sum = checksum(&header);
            header[10..12].copy_from_slice(&sum.to_be_bytes());
            out.extend(header);
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            out.extend_from_slice(&[0x60, 0, 0, 0]);
            out.extend_from_slice(&udp_len.to_be_bytes());
            out.extend_from_slice(&[17, 64]);
            out.extend_from_slice(&s.octets());
            out.extend_from_slice(&d.octets());
        }
        _ => panic!("mixed families"),
    }
    out.extend_from_slice(&src.port().to_be_bytes());
    out.extend_from_slice(&dst.port().to_be_bytes());
    out.extend_from_slice(&udp_len.to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    out
}

/// Sends `count` errors of `kind` from `from` to `victim`'s address, about
/// the datagram `victim` sent to `peer`.
pub fn send_error(kind: Kind, from: IpAddr, victim: SocketAddr, peer: SocketAddr, count: usize) {
    let v6 = victim.is_ipv6();
    let mut message = match (kind, v6) {
        (Kind::PortUnreachable, false) => vec![3, 3, 0, 0, 0, 0, 0, 0],
        (Kind::TooBig, false) => vec![3, 4, 0, 0, 0, 0, 0x02, 0x28],
        (Kind::PortUnreachable, true) => vec![1, 4, 0, 0, 0, 0, 0, 0],
        (Kind::TooBig, true) => vec![2, 0, 0, 0, 0, 0, 0x05, 0x00],
    };
    message.extend(quoted(victim, peer));
    if !v6 {
        // The kernel fills in the ICMPv6 checksum, not ICMP's.
        let sum = checksum(&message);
        message[2..4].copy_from_slice(&sum.to_be_bytes());
    }
    let (domain, protocol) = if v6 { (Domain::IPV6, Protocol::ICMPV6) } else { (Domain::IPV4, Protocol::ICMPV4) };
    let socket = Socket::new(domain, Type::RAW, Some(protocol)).expect("raw socket");
    socket.bind(&SocketAddr::new(from, 0).into()).expect("bind the sender's address");
    for _ in 0..count {
        socket.send_to(&message, &SocketAddr::new(victim.ip(), 0).into()).expect("send the error");
    }
}
