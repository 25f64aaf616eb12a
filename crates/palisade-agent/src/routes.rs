//! Which node interface each local pod address is routed through, from the
//! routing table (`ip -j route show` and `ip -j -6 route show`), for the
//! dataplane's anti-spoofing.

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
