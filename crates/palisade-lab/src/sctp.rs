//! SCTP in the lab. Where the kernel has SCTP sockets
//! ([`sockets_available`]), probes open real associations (see `probe`)
//! and pods serve their SCTP ports (see `serve`). Where it has none (the
//! development machine's kernel), a raw INIT chunk is sent from the source
//! namespace and its arrival is detected by a raw socket in the
//! destination namespace: the packet that opens an association crosses
//! the node's rules either way.

use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

/// IANA protocol number of SCTP.
pub const IPPROTO_SCTP: i32 = 132;

/// Whether this kernel has SCTP sockets (asked once: the answer is the
/// kernel's, the same in every namespace).
#[must_use]
pub fn sockets_available() -> bool {
    static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVAILABLE.get_or_init(|| Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::from(IPPROTO_SCTP))).is_ok())
}

/// CRC32c (Castagnoli), as SCTP's checksum uses it (RFC 9260, appendix A).
#[must_use]
pub fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0x82F6_3B78 } else { crc >> 1 };
        }
    }
    !crc
}

/// An SCTP packet with one INIT chunk from `src_port` to `dst_port`, whose
/// initiate tag is `tag` (the detector matches on it).
#[must_use]
pub fn init_packet(src_port: u16, dst_port: u16, tag: u32) -> Vec<u8> {
    let mut p = Vec::with_capacity(32);
    p.extend_from_slice(&src_port.to_be_bytes());
    p.extend_from_slice(&dst_port.to_be_bytes());
    p.extend_from_slice(&0u32.to_be_bytes()); // verification tag: 0 for INIT
    p.extend_from_slice(&0u32.to_be_bytes()); // checksum, filled below
    p.push(1); // chunk type INIT
    p.push(0); // flags
    p.extend_from_slice(&20u16.to_be_bytes()); // chunk length
    p.extend_from_slice(&tag.to_be_bytes()); // initiate tag
    p.extend_from_slice(&65_535u32.to_be_bytes()); // a_rwnd
    p.extend_from_slice(&1u16.to_be_bytes()); // outbound streams
    p.extend_from_slice(&1u16.to_be_bytes()); // inbound streams
    p.extend_from_slice(&tag.wrapping_add(1).to_be_bytes()); // initial TSN
    let sum = crc32c(&p);
    // The checksum is stored little-endian (RFC 9260, appendix A).
    p[8..12].copy_from_slice(&sum.to_le_bytes());
    p
}

/// `(dst_port, initiate tag)` of an INIT in an SCTP packet, if it is one.
#[must_use]
pub fn parse_init(sctp: &[u8]) -> Option<(u16, u32)> {
    if sctp.len() < 20 || sctp[12] != 1 {
        return None;
    }
    let dst_port = u16::from_be_bytes([sctp[2], sctp[3]]);
    let tag = u32::from_be_bytes([sctp[16], sctp[17], sctp[18], sctp[19]]);
    Some((dst_port, tag))
}

/// A raw SCTP socket; std's `UdpSocket` gives safe `recv_from`/`send_to` on it.
fn raw_socket(v6: bool) -> io::Result<UdpSocket> {
    let domain = if v6 { Domain::IPV6 } else { Domain::IPV4 };
    Ok(UdpSocket::from(Socket::new(domain, Type::RAW, Some(Protocol::from(IPPROTO_SCTP)))?))
}

/// A raw SCTP listener in the namespace of the thread that opened it.
#[derive(Debug)]
pub struct Detector {
    socket: UdpSocket,
    v6: bool,
}

impl Detector {
    /// Opens the raw socket (call from a thread inside the destination namespace).
    pub fn open(v6: bool) -> io::Result<Self> {
        Ok(Detector { socket: raw_socket(v6)?, v6 })
    }

    /// Waits until an INIT from `from` to `dst_port` with `tag` arrives, or `timeout`.
    pub fn wait_for(&self, from: IpAddr, dst_port: u16, tag: u32, timeout: Duration) -> io::Result<bool> {
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 2048];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(false);
            }
            self.socket.set_read_timeout(Some(left))?;
            let (n, source) = match self.socket.recv_from(&mut buf) {
                Ok(r) => r,
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => return Ok(false),
                Err(e) => return Err(e),
            };
            let bytes = &buf[..n];
            // IPv4 raw sockets deliver the IP header too; IPv6 ones do not.
            let sctp = if self.v6 {
                bytes
            } else {
                bytes.get(usize::from(bytes.first().map_or(0, |b| b & 0x0f)) * 4..).unwrap_or(&[])
            };
            if source.ip() == from && parse_init(sctp) == Some((dst_port, tag)) {
                return Ok(true);
            }
        }
    }
}

/// Sends an INIT from `from` (an address of the current thread's namespace).
pub fn send_init(from: IpAddr, to: IpAddr, src_port: u16, dst_port: u16, tag: u32) -> io::Result<()> {
    let domain = if to.is_ipv6() { Domain::IPV6 } else { Domain::IPV4 };
    let raw = Socket::new(domain, Type::RAW, Some(Protocol::from(IPPROTO_SCTP)))?;
    raw.bind(&SocketAddr::new(from, 0).into())?;
    let socket = UdpSocket::from(raw);
    socket.send_to(&init_packet(src_port, dst_port, tag), SocketAddr::new(to, 0))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_known_vectors() {
        // RFC 3720 B.4 test vectors.
        assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
        assert_eq!(crc32c(&[0xffu8; 32]), 0x62A8_AB43);
        let ascending: Vec<u8> = (0u8..32).collect();
        assert_eq!(crc32c(&ascending), 0x46DD_794E);
    }

    #[test]
    fn init_round_trip() {
        let p = init_packet(40_000, 80, 0xdead_beef);
        assert_eq!(parse_init(&p), Some((80, 0xdead_beef)));
        let mut check = p.clone();
        check[8..12].copy_from_slice(&[0; 4]);
        assert_eq!(u32::from_le_bytes([p[8], p[9], p[10], p[11]]), crc32c(&check));
    }
}
