//! Which node interface each local pod address is routed through, from the
//! routing table (`ip -j route show` and `ip -j -6 route show`), for the
//! dataplane's anti-spoofing; and a watch of the routing table, so that a
//! new pod's interface is learnt as soon as its route appears.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::process::Command;

use serde_json::Value;

/// Host routes (`/32`, `/128`) and the device they use.
#[must_use]
pub fn pod_interfaces() -> BTreeMap<IpAddr, String> {
    let mut out = BTreeMap::new();
    for family in ["-4", "-6"] {
        let Ok(output) = Command::new("ip").args(["-j", family, "route", "show"]).output() else { continue };
        let Ok(Value::Array(routes)) = serde_json::from_slice::<Value>(&output.stdout) else { continue };
        for route in routes {
            let (Some(dst), Some(dev)) = (route["dst"].as_str(), route["dev"].as_str()) else { continue };
            let host = dst.strip_suffix("/32").or_else(|| dst.strip_suffix("/128")).unwrap_or(dst);
            if let Ok(addr) = host.parse::<IpAddr>() {
                out.insert(addr, dev.to_string());
            }
        }
    }
    out
}

/// The addresses of this namespace's own interfaces (`ip -j addr show`).
#[must_use]
pub fn node_addresses() -> BTreeSet<IpAddr> {
    let mut out = BTreeSet::new();
    let Ok(output) = Command::new("ip").args(["-j", "addr", "show"]).output() else { return out };
    let Ok(Value::Array(links)) = serde_json::from_slice::<Value>(&output.stdout) else { return out };
    for link in links {
        for info in link["addr_info"].as_array().into_iter().flatten() {
            if let Some(addr) = info["local"].as_str().and_then(|a| a.parse().ok()) {
                out.insert(addr);
            }
        }
    }
    out
}

/// `RTMGRP_LINK`, `RTMGRP_IPV4_ROUTE` and `RTMGRP_IPV6_ROUTE`.
const ROUTE_GROUPS: u32 = 0x1 | 0x40 | 0x400;

/// Calls `changed` after every burst of link or route changes in this
/// thread's network namespace (on a thread of its own, which inherits the
/// namespace), until `changed` returns `false` (the thread ends at the
/// next change after that, or with the process).
///
/// # Errors
/// When the rtnetlink socket cannot be opened or bound.
pub fn watch(changed: impl Fn() -> bool + Send + 'static) -> std::io::Result<std::thread::JoinHandle<()>> {
    use nix::sys::socket::{
        AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, bind, recv, socket,
    };
    use std::os::fd::AsRawFd as _;
    let fd = socket(AddressFamily::Netlink, SockType::Raw, SockFlag::SOCK_CLOEXEC, SockProtocol::NetlinkRoute)?;
    bind(fd.as_raw_fd(), &NetlinkAddr::new(0, ROUTE_GROUPS))?;
    std::thread::Builder::new().name("routes".into()).spawn(move || {
        let mut buf = vec![0u8; 1 << 16];
        loop {
            // A message, or an overflow (ENOBUFS): something changed.
            match recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty()) {
                Ok(_) | Err(nix::errno::Errno::ENOBUFS) => {
                    // The rest of the burst joins this notice.
                    while recv(fd.as_raw_fd(), &mut buf, MsgFlags::MSG_DONTWAIT).is_ok() {}
                    if !changed() {
                        return;
                    }
                }
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(100)),
            }
        }
    })
}
