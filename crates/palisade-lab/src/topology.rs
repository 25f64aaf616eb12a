//! The lab's network: a node namespace that routes between one namespace per
//! pod (a veth pair each) and, optionally, one namespace of external hosts.
//!
//! ```text
//!   pod ns p0 (eth0: 10.0.1.1/32, fd00::1:1/128)      ext ns (eth0: the external addresses)
//!        | veth                                               | veth
//!   node ns: pv0 (169.254.0.1, fe80::1) ... uplink; routes /32 and /128 per address; forwarding on
//! ```
//!
//! Pods route everything through the node, so every pod-to-pod or
//! pod-to-external packet crosses the node's forward hook, where the
//! dataplane filters. All settings are made inside the lab's namespaces.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::netns::{NetNs, NetNsError};

/// The node-side gateway addresses every pod and the external namespace use.
pub const GATEWAY_V4: &str = "169.254.0.1";
/// IPv6 link-local gateway.
pub const GATEWAY_V6: &str = "fe80::1";

/// One namespace attached to the node.
#[derive(Debug)]
pub struct Attached {
    /// The namespace.
    pub ns: NetNs,
    /// Node-side interface name.
    pub veth: String,
    /// Addresses on its eth0.
    pub addrs: Vec<IpAddr>,
}

/// The node namespace and what hangs off it.
#[derive(Debug)]
pub struct Topology {
    /// Name prefix of every namespace.
    pub prefix: String,
    /// The node.
    pub node: NetNs,
    /// Pods by `namespace/name`.
    pub pods: BTreeMap<String, Attached>,
    /// External hosts, when any.
    pub external: Option<Attached>,
    /// hostNetwork pods by `namespace/name`: addresses of the node
    /// namespace itself (on its loopback interface).
    pub hosts: BTreeMap<String, Vec<IpAddr>>,
    next: usize,
}

impl Topology {
    /// Creates the node namespace with forwarding enabled.
    pub fn new(prefix: &str) -> Result<Self, NetNsError> {
        let node = NetNs::create(&format!("{prefix}node"))?;
        node.sysctl("net.ipv4.ip_forward", "1")?;
        node.sysctl("net.ipv6.conf.all.forwarding", "1")?;
        Ok(Topology {
            prefix: prefix.to_string(),
            node,
            pods: BTreeMap::new(),
            external: None,
            hosts: BTreeMap::new(),
            next: 0,
        })
    }

    /// Re-attaches to namespaces a previous process created (handles only;
    /// nothing is created, and nothing is removed when dropped).
    #[must_use]
    pub fn existing(
        prefix: &str,
        pods: &[(String, String, String, Vec<IpAddr>)],
        external: Option<(String, String, Vec<IpAddr>)>,
        hosts: BTreeMap<String, Vec<IpAddr>>,
    ) -> Self {
        let mut t = Topology {
            prefix: prefix.to_string(),
            node: NetNs::existing(&format!("{prefix}node")),
            pods: BTreeMap::new(),
            external: None,
            hosts,
            next: 0,
        };
        for (key, ns, veth, addrs) in pods {
            t.pods.insert(key.clone(), Attached { ns: NetNs::existing(ns), veth: veth.clone(), addrs: addrs.clone() });
            t.next = t.next.max(veth.trim_start_matches("pv").parse::<usize>().map_or(0, |n| n + 1));
        }
        t.external = external.map(|(ns, veth, addrs)| Attached { ns: NetNs::existing(&ns), veth, addrs });
        t
    }

    fn attach(&self, ns: &NetNs, veth: &str, addrs: &[IpAddr]) -> Result<(), NetNsError> {
        self.node.ip(&["link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns.name()])?;
        self.node.ip(&["link", "set", veth, "up"])?;
        self.node.ip(&["addr", "add", &format!("{GATEWAY_V4}/32"), "dev", veth])?;
        self.node.ip(&["addr", "add", &format!("{GATEWAY_V6}/64"), "dev", veth, "nodad"])?;
        ns.ip(&["link", "set", "eth0", "up"])?;
        for addr in addrs {
            let len = if addr.is_ipv4() { "32" } else { "128" };
            let cidr = format!("{addr}/{len}");
            if addr.is_ipv4() {
                ns.ip(&["addr", "add", &cidr, "dev", "eth0"])?;
            } else {
                ns.ip(&["addr", "add", &cidr, "dev", "eth0", "nodad"])?;
            }
            self.node.ip(&["route", "add", &cidr, "dev", veth])?;
        }
        ns.ip(&["route", "add", GATEWAY_V4, "dev", "eth0", "scope", "link"])?;
        ns.ip(&["route", "add", "default", "via", GATEWAY_V4, "dev", "eth0"])?;
        ns.ip(&["-6", "route", "add", "default", "via", GATEWAY_V6, "dev", "eth0"])?;
        Ok(())
    }

    /// Adds a pod namespace with `addrs`.
    pub fn add_pod(&mut self, key: &str, addrs: &[IpAddr]) -> Result<(), NetNsError> {
        let index = self.next;
        self.next += 1;
        let ns = NetNs::create(&format!("{}p{index}", self.prefix))?;
        let veth = format!("pv{index}");
        self.attach(&ns, &veth, addrs)?;
        self.pods.insert(key.to_string(), Attached { ns, veth, addrs: addrs.to_vec() });
        Ok(())
    }

    /// Removes a pod namespace (its veth goes with it).
    pub fn remove_pod(&mut self, key: &str) -> Result<(), NetNsError> {
        if let Some(pod) = self.pods.remove(key) {
            for addr in &pod.addrs {
                let len = if addr.is_ipv4() { 32 } else { 128 };
                let _ = self.node.ip(&["route", "del", &format!("{addr}/{len}")]);
            }
            let name = pod.ns.name().to_string();
            drop(pod);
            // A handle from `existing` does not remove on drop.
            if crate::netns::list_with_prefix(&name).contains(&name) {
                crate::netns::run("ip", &["netns", "del", &name])?;
            }
        }
        Ok(())
    }

    /// Adds a hostNetwork pod: `addrs` become the node namespace's own
    /// (on its loopback), as a node's addresses are the host's.
    pub fn add_host(&mut self, key: &str, addrs: &[IpAddr]) -> Result<(), NetNsError> {
        for addr in addrs {
            let (len, nodad) = if addr.is_ipv4() { ("32", None) } else { ("128", Some("nodad")) };
            let cidr = format!("{addr}/{len}");
            let mut args = vec!["addr", "add", &cidr, "dev", "lo"];
            args.extend(nodad);
            self.node.ip(&args)?;
        }
        self.hosts.insert(key.to_string(), addrs.to_vec());
        Ok(())
    }

    /// Removes a hostNetwork pod's addresses from the node namespace.
    pub fn remove_host(&mut self, key: &str) -> Result<(), NetNsError> {
        for addr in self.hosts.remove(key).unwrap_or_default() {
            let len = if addr.is_ipv4() { 32 } else { 128 };
            self.node.ip(&["addr", "del", &format!("{addr}/{len}"), "dev", "lo"])?;
        }
        Ok(())
    }

    /// Adds the external-hosts namespace with `addrs`.
    pub fn add_external(&mut self, addrs: &[IpAddr]) -> Result<(), NetNsError> {
        let ns = NetNs::create(&format!("{}ext", self.prefix))?;
        self.attach(&ns, "uplink", addrs)?;
        self.external = Some(Attached { ns, veth: "uplink".into(), addrs: addrs.to_vec() });
        Ok(())
    }

    /// Pod address → node-side interface, for the dataplane's anti-spoofing.
    #[must_use]
    pub fn pod_ifaces(&self) -> BTreeMap<IpAddr, String> {
        self.pods.values().flat_map(|p| p.addrs.iter().map(|a| (*a, p.veth.clone()))).collect()
    }

    /// Leaves every namespace in place when dropped (the lab's state file
    /// records them for `lab down`).
    pub fn keep(self) {
        let _ = self.node.keep();
        for (_, pod) in self.pods {
            let _ = pod.ns.keep();
        }
        if let Some(ext) = self.external {
            let _ = ext.ns.keep();
        }
    }
}
