//! Reading an NFLOG group over netlink (`nfnetlink_log`): the packets the
//! table's `log group N` statements send, with their prefix and headers.
//!
//! Unlike the kernel log (`log` without a group), NFLOG works in every
//! network namespace, carries the packet itself, and costs the packet path
//! one copy of its first bytes into a queue the kernel flushes in batches.
//! When the reader falls behind, the kernel drops records (the socket
//! overflows, `ENOBUFS`), never packets: a logged packet's verdict does not
//! wait for its record.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd as _, OwnedFd};
use std::time::{Duration, SystemTime};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{MsgFlags, NetlinkAddr, recv, sendto, setsockopt, sockopt};

use crate::netlink::{attributes, error_number, messages, netfilter_socket};

const NFNL_SUBSYS_ULOG: u16 = 4;
const NFULNL_MSG_PACKET: u16 = 0;
const NFULNL_MSG_CONFIG: u16 = 1;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NLMSG_ERROR: u16 = 2;

const NFULA_CFG_CMD: u16 = 1;
const NFULA_CFG_MODE: u16 = 2;
const NFULA_CFG_NLBUFSIZ: u16 = 3;
const NFULA_CFG_TIMEOUT: u16 = 4;
const NFULA_CFG_QTHRESH: u16 = 5;
const NFULNL_CFG_CMD_BIND: u8 = 1;
const NFULNL_COPY_PACKET: u8 = 2;

const NFULA_TIMESTAMP: u16 = 3;
const NFULA_IFINDEX_INDEV: u16 = 4;
const NFULA_IFINDEX_OUTDEV: u16 = 5;
const NFULA_PAYLOAD: u16 = 9;
const NFULA_PREFIX: u16 = 10;

/// Bytes of each packet copied: an IPv6 header with a few extension
/// headers, and the ports.
pub const COPY_RANGE: u32 = 128;
/// The receive buffer (set with `SO_RCVBUFFORCE`, which needs
/// `CAP_NET_ADMIN`): room for tens of thousands of records between reads.
pub const RECEIVE_BUFFER: usize = 16 << 20;

/// Why the group could not be read.
#[derive(Debug, thiserror::Error)]
pub enum NflogError {
    /// A socket call failed.
    #[error("nflog {what}: {errno}")]
    Io {
        /// The step.
        what: &'static str,
        /// The error.
        errno: Errno,
    },
    /// The kernel refused a configuration message (`EBUSY`: another
    /// process reads the group in this namespace).
    #[error("nflog {what}: the kernel answered {errno}")]
    Kernel {
        /// The message.
        what: &'static str,
        /// The kernel's error.
        errno: Errno,
    },
    /// The kernel dropped records: the socket's buffer was full.
    #[error("nflog: records were dropped (the receive buffer overflowed)")]
    Overflow,
}

/// The headers of a logged packet that flow records need.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PacketHead {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// The transport protocol number (6 TCP, 17 UDP, 132 SCTP, 1/58 ICMP).
    pub protocol: u8,
    /// Source port (TCP, UDP, SCTP; `None` for other protocols and for
    /// fragments after the first).
    pub sport: Option<u16>,
    /// Destination port.
    pub dport: Option<u16>,
}

/// One logged packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Logged {
    /// The rule's prefix.
    pub prefix: String,
    /// When the kernel logged it, if it said.
    pub time: Option<SystemTime>,
    /// The interfaces it came in on and would go out on (indexes).
    pub interfaces: (Option<u32>, Option<u32>),
    /// Its headers (`None`: not an IP packet Palisade can read).
    pub head: Option<PacketHead>,
}

/// A socket bound to one NFLOG group, in the namespace of the thread that
/// bound it.
#[derive(Debug)]
pub struct Nflog {
    fd: OwnedFd,
    buf: Vec<u8>,
}

impl Nflog {
    /// Binds `group`, asking for the first [`COPY_RANGE`] bytes of each
    /// packet, delivered when `batch` records are queued or after `flush`
    /// (the kernel's default is 100 records or one second).
    ///
    /// # Errors
    /// The socket could not be made, or the kernel refused the binding.
    pub fn bind(group: u16, batch: u32, flush: Duration) -> Result<Nflog, NflogError> {
        let fd = netfilter_socket().map_err(|(what, e)| NflogError::Io { what, errno: e })?;
        // Without CAP_NET_ADMIN, the default buffer stays.
        let _ = setsockopt(&fd, sockopt::RcvBufForce, &RECEIVE_BUFFER);
        let nflog = Nflog { fd, buf: vec![0; 1 << 18] };
        nflog.configure(group, "bind", |m| attr(m, NFULA_CFG_CMD, &[NFULNL_CFG_CMD_BIND]))?;
        nflog.configure(group, "copy mode", |m| {
            let mut mode = COPY_RANGE.to_be_bytes().to_vec();
            mode.extend_from_slice(&[NFULNL_COPY_PACKET, 0]);
            attr(m, NFULA_CFG_MODE, &mode);
        })?;
        let centiseconds = u32::try_from(flush.as_millis() / 10).unwrap_or(u32::MAX).max(1);
        nflog.configure(group, "batching", |m| {
            attr(m, NFULA_CFG_QTHRESH, &batch.max(1).to_be_bytes());
            attr(m, NFULA_CFG_TIMEOUT, &centiseconds.to_be_bytes());
            attr(m, NFULA_CFG_NLBUFSIZ, &(128u32 << 10).to_be_bytes());
        })?;
        Ok(nflog)
    }

    /// Sends one configuration message for `group` and reads its
    /// acknowledgement.
    fn configure(&self, group: u16, what: &'static str, body: impl FnOnce(&mut Vec<u8>)) -> Result<(), NflogError> {
        let mut m = Vec::with_capacity(64);
        m.extend_from_slice(&[0; 4]);
        m.extend_from_slice(&((NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_CONFIG).to_ne_bytes());
        m.extend_from_slice(&(NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
        m.extend_from_slice(&1u32.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(&[0, 0]); // nfgenmsg: AF_UNSPEC, version 0
        m.extend_from_slice(&group.to_be_bytes()); // res_id: the group
        body(&mut m);
        let len = u32::try_from(m.len()).expect("a short message");
        m[..4].copy_from_slice(&len.to_ne_bytes());
        let io = |what, errno| NflogError::Io { what, errno };
        sendto(self.fd.as_raw_fd(), &m, &NetlinkAddr::new(0, 0), MsgFlags::empty()).map_err(|e| io("send", e))?;
        let mut answer = [0u8; 512];
        // The acknowledgement, within a bound (records may already be queued).
        for _ in 0..64 {
            let n = recv(self.fd.as_raw_fd(), &mut answer, MsgFlags::empty()).map_err(|e| io("receive", e))?;
            for message in messages(&answer[..n]).flatten() {
                if message.kind == NLMSG_ERROR {
                    return match error_number(message.body) {
                        Some(0) => Ok(()),
                        Some(code) => Err(NflogError::Kernel { what, errno: Errno::from_raw(-code) }),
                        None => Err(NflogError::Kernel { what, errno: Errno::EPROTO }),
                    };
                }
            }
        }
        Err(NflogError::Kernel { what, errno: Errno::ETIMEDOUT })
    }

    /// Waits up to `timeout` for records and appends every record of one
    /// read to `out`; returns how many were added.
    ///
    /// # Errors
    /// [`NflogError::Overflow`] when the kernel dropped records since the
    /// last read (the reader goes on); others when the socket failed.
    pub fn read(&mut self, out: &mut Vec<Logged>, timeout: Duration) -> Result<usize, NflogError> {
        let ms = u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(std::os::fd::AsFd::as_fd(&self.fd), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(0) | Err(Errno::EINTR) => return Ok(0),
            Ok(_) => {}
            Err(e) => return Err(NflogError::Io { what: "poll", errno: e }),
        }
        let n = match recv(self.fd.as_raw_fd(), &mut self.buf, MsgFlags::MSG_DONTWAIT) {
            Ok(n) => n,
            Err(Errno::EAGAIN | Errno::EINTR) => return Ok(0),
            Err(Errno::ENOBUFS) => return Err(NflogError::Overflow),
            Err(e) => return Err(NflogError::Io { what: "receive", errno: e }),
        };
        let before = out.len();
        for message in messages(&self.buf[..n]).flatten() {
            if message.kind == (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET
                && let Some(body) = message.body.get(4..)
            {
                out.push(parse_packet(body));
            }
        }
        Ok(out.len() - before)
    }
}

/// An attribute holding `payload` (the netlink writer's own framing).
pub(crate) fn attr(m: &mut Vec<u8>, kind: u16, payload: &[u8]) {
    crate::netlink::attr(m, kind, |b| b.extend_from_slice(payload));
}

/// One `NFULNL_MSG_PACKET`'s attributes (after its nfgenmsg).
fn parse_packet(body: &[u8]) -> Logged {
    let mut logged = Logged { prefix: String::new(), time: None, interfaces: (None, None), head: None };
    let be32 = |v: &[u8]| v.get(..4).map(|b| u32::from_be_bytes(b.try_into().expect("4 bytes")));
    for (kind, value) in attributes(body) {
        match kind {
            NFULA_PREFIX => logged.prefix = String::from_utf8_lossy(value).trim_end_matches('\0').to_string(),
            NFULA_PAYLOAD => logged.head = packet_head(value),
            NFULA_IFINDEX_INDEV => logged.interfaces.0 = be32(value),
            NFULA_IFINDEX_OUTDEV => logged.interfaces.1 = be32(value),
            NFULA_TIMESTAMP if value.len() >= 16 => {
                let sec = u64::from_be_bytes(value[..8].try_into().expect("8 bytes"));
                let usec = u64::from_be_bytes(value[8..16].try_into().expect("8 bytes"));
                logged.time =
                    SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(sec) + Duration::from_micros(usec));
            }
            _ => {}
        }
    }
    logged
}

/// The addresses, protocol and ports of an IPv4 or IPv6 packet's first
/// bytes; `None` when they do not hold a whole IP header.
#[must_use]
pub fn packet_head(packet: &[u8]) -> Option<PacketHead> {
    match packet.first()? >> 4 {
        4 => {
            let ihl = usize::from(packet[0] & 0x0f) * 4;
            if ihl < 20 || packet.len() < 20 {
                return None;
            }
            let octets = |at: usize| -> [u8; 4] { packet[at..at + 4].try_into().expect("4 bytes") };
            let (src, dst) = (Ipv4Addr::from(octets(12)), Ipv4Addr::from(octets(16)));
            let fragment_offset = u16::from_be_bytes([packet[6], packet[7]]) & 0x1fff;
            let protocol = packet[9];
            let ports = if fragment_offset == 0 { ports(protocol, packet.get(ihl..)) } else { None };
            Some(head(src.into(), dst.into(), protocol, ports))
        }
        6 => {
            if packet.len() < 40 {
                return None;
            }
            let octets = |at: usize| -> [u8; 16] { packet[at..at + 16].try_into().expect("16 bytes") };
            let (src, dst) = (Ipv6Addr::from(octets(8)), Ipv6Addr::from(octets(24)));
            let (mut next, mut at, mut first_fragment) = (packet[6], 40usize, true);
            // Extension headers, within a bound: hop-by-hop, routing,
            // destination options (8-byte units after the first 8), fragment.
            for _ in 0..8 {
                match next {
                    0 | 43 | 60 => {
                        let ext = packet.get(at..at + 2)?;
                        next = ext[0];
                        at += (usize::from(ext[1]) + 1) * 8;
                    }
                    44 => {
                        let ext = packet.get(at..at + 4)?;
                        next = ext[0];
                        first_fragment = u16::from_be_bytes([ext[2], ext[3]]) >> 3 == 0;
                        at += 8;
                    }
                    _ => break,
                }
            }
            let ports = if first_fragment { ports(next, packet.get(at..)) } else { None };
            Some(head(src.into(), dst.into(), next, ports))
        }
        _ => None,
    }
}

fn head(src: IpAddr, dst: IpAddr, protocol: u8, ports: Option<(u16, u16)>) -> PacketHead {
    PacketHead { src, dst, protocol, sport: ports.map(|p| p.0), dport: ports.map(|p| p.1) }
}

/// The ports of a TCP, UDP or SCTP header (each starts with them).
fn ports(protocol: u8, l4: Option<&[u8]>) -> Option<(u16, u16)> {
    let l4 = l4?;
    if !matches!(protocol, 6 | 17 | 132) || l4.len() < 4 {
        return None;
    }
    Some((u16::from_be_bytes([l4[0], l4[1]]), u16::from_be_bytes([l4[2], l4[3]])))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4_udp(fragment_offset: u16) -> Vec<u8> {
        let mut p = vec![0x45, 0, 0, 28, 0, 0];
        p.extend_from_slice(&fragment_offset.to_be_bytes());
        p.extend_from_slice(&[64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
        p.extend_from_slice(&[0x9c, 0x40, 0, 53, 0, 8, 0, 0]);
        p
    }

    #[test]
    fn reads_addresses_and_ports_of_ipv4() {
        let h = packet_head(&v4_udp(0)).unwrap();
        assert_eq!(h.src, "10.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(h.dst, "10.0.0.2".parse::<IpAddr>().unwrap());
        assert_eq!((h.protocol, h.sport, h.dport), (17, Some(40_000), Some(53)));
        // A later fragment carries no ports; its first bytes are data.
        let later = packet_head(&v4_udp(3)).unwrap();
        assert_eq!((later.sport, later.dport), (None, None));
    }

    #[test]
    fn reads_ipv6_through_extension_headers() {
        let mut p = vec![0x60, 0, 0, 0, 0, 16, 0, 64];
        p.extend_from_slice(&"fd00::1".parse::<Ipv6Addr>().unwrap().octets());
        p.extend_from_slice(&"fd00::2".parse::<Ipv6Addr>().unwrap().octets());
        // Hop-by-hop (8 bytes) -> fragment, offset 0 -> TCP.
        p.extend_from_slice(&[44, 0, 1, 4, 0, 0, 0, 0]);
        p.extend_from_slice(&[6, 0, 0, 0, 0, 0, 0, 1]);
        p.extend_from_slice(&[0x1f, 0x90, 0x00, 0x50]);
        let h = packet_head(&p).unwrap();
        assert_eq!((h.protocol, h.sport, h.dport), (6, Some(8080), Some(80)));
        assert_eq!(h.dst, "fd00::2".parse::<IpAddr>().unwrap());
        // A non-first fragment: no ports.
        p[40 + 8 + 3] = 0x08;
        assert_eq!(packet_head(&p).unwrap().dport, None);
    }

    #[test]
    fn short_or_foreign_packets_are_not_read() {
        assert_eq!(packet_head(&[]), None);
        assert_eq!(packet_head(&[0x45, 0, 0]), None);
        assert_eq!(packet_head(&[0x20; 40]), None);
        // A header length below 20 bytes.
        let mut bad = v4_udp(0);
        bad[0] = 0x42;
        assert_eq!(packet_head(&bad), None);
        // Truncated transport header: no ports, addresses still read.
        let cut = &v4_udp(0)[..22];
        assert_eq!(packet_head(cut).unwrap().sport, None);
    }
}
