//! Address ranges: ipBlocks with their `except` carved out, and unions of
//! addresses, as sorted disjoint inclusive ranges per family (the form nft
//! interval sets take without overlaps).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use palisade_policy::IpBlock;

/// Sorted, disjoint, non-adjacent inclusive ranges of IPv4 and IPv6 addresses.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AddrSet {
    /// IPv4 ranges.
    pub v4: Vec<(u32, u32)>,
    /// IPv6 ranges.
    pub v6: Vec<(u128, u128)>,
}

fn normalize<T: Copy + Ord>(ranges: &mut Vec<(T, T)>, next: impl Fn(T) -> Option<T>) {
    ranges.sort_unstable();
    let mut out: Vec<(T, T)> = Vec::with_capacity(ranges.len());
    for &(start, end) in ranges.iter() {
        if let Some(last) = out.last_mut() {
            // Merge overlapping or adjacent ranges.
            if next(last.1).is_none_or(|n| start <= n) {
                if end > last.1 {
                    last.1 = end;
                }
                continue;
            }
        }
        out.push((start, end));
    }
    *ranges = out;
}

fn subtract<T: Copy + Ord>(
    ranges: &[(T, T)],
    cut: (T, T),
    prev: impl Fn(T) -> Option<T>,
    next: impl Fn(T) -> Option<T>,
) -> Vec<(T, T)> {
    let mut out = Vec::with_capacity(ranges.len() + 1);
    for &(start, end) in ranges {
        if cut.1 < start || cut.0 > end {
            out.push((start, end));
            continue;
        }
        if cut.0 > start
            && let Some(p) = prev(cut.0)
        {
            out.push((start, p));
        }
        if cut.1 < end
            && let Some(n) = next(cut.1)
        {
            out.push((n, end));
        }
    }
    out
}

/// The IPv6 bits of an address (IPv4 addresses map into ::ffff:0:0/96).
fn v6_bits(addr: IpAddr) -> u128 {
    match addr {
        IpAddr::V4(a) => a.to_ipv6_mapped().to_bits(),
        IpAddr::V6(a) => a.to_bits(),
    }
}

/// `whole` minus every range in `cuts`.
fn carve<T: Copy + Ord>(
    whole: (T, T),
    cuts: impl Iterator<Item = (T, T)>,
    prev: impl Fn(T) -> Option<T> + Copy,
    next: impl Fn(T) -> Option<T> + Copy,
) -> Vec<(T, T)> {
    cuts.fold(vec![whole], |parts, cut| subtract(&parts, cut, prev, next))
}

impl AddrSet {
    /// True when no address is in the set.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    /// Adds one address.
    pub fn insert(&mut self, addr: IpAddr) {
        match addr {
            IpAddr::V4(a) => self.v4.push((a.to_bits(), a.to_bits())),
            IpAddr::V6(a) => self.v6.push((a.to_bits(), a.to_bits())),
        }
    }

    /// Adds an ipBlock: its CIDR minus each `except`.
    pub fn insert_block(&mut self, block: &IpBlock) {
        let bounds = |net: &ipnet::IpNet| match (net.network(), net.broadcast()) {
            (IpAddr::V4(a), IpAddr::V4(b)) => Ok((a.to_bits(), b.to_bits())),
            (a, b) => Err((v6_bits(a), v6_bits(b))),
        };
        match bounds(&block.cidr) {
            Ok(whole) => {
                let cuts = block.except.iter().filter_map(|e| bounds(e).ok());
                self.v4.extend(carve(whole, cuts, |x| x.checked_sub(1), |x| x.checked_add(1)));
            }
            Err(whole) => {
                let cuts = block.except.iter().filter_map(|e| bounds(e).err());
                self.v6.extend(carve(whole, cuts, |x| x.checked_sub(1), |x| x.checked_add(1)));
            }
        }
    }

    /// Sorts and merges; call after inserting.
    pub fn normalize(&mut self) {
        normalize(&mut self.v4, |x: u32| x.checked_add(1));
        normalize(&mut self.v6, |x: u128| x.checked_add(1));
    }

    /// Whether `addr` is in the set (for tests and checks).
    #[must_use]
    pub fn contains(&self, addr: IpAddr) -> bool {
        match addr {
            IpAddr::V4(a) => self.v4.iter().any(|(s, e)| (*s..=*e).contains(&a.to_bits())),
            IpAddr::V6(a) => self.v6.iter().any(|(s, e)| (*s..=*e).contains(&a.to_bits())),
        }
    }
}

/// An IPv4 range bound as an address.
#[must_use]
pub fn v4(bits: u32) -> Ipv4Addr {
    Ipv4Addr::from_bits(bits)
}

/// An IPv6 range bound as an address.
#[must_use]
pub fn v6(bits: u128) -> Ipv6Addr {
    Ipv6Addr::from_bits(bits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn block(cidr: &str, except: &[&str]) -> IpBlock {
        IpBlock { cidr: cidr.parse().unwrap(), except: except.iter().map(|e| e.parse().unwrap()).collect() }
    }

    #[test]
    fn except_is_carved_out() {
        let mut s = AddrSet::default();
        s.insert_block(&block("10.0.0.0/16", &["10.0.2.2/32", "10.0.3.0/24"]));
        s.normalize();
        let ip = |t: &str| t.parse::<Ipv4Addr>().unwrap().to_bits();
        assert_eq!(
            s.v4,
            vec![
                (ip("10.0.0.0"), ip("10.0.2.1")),
                (ip("10.0.2.3"), ip("10.0.2.255")),
                (ip("10.0.4.0"), ip("10.0.255.255"))
            ]
        );
    }

    #[test]
    fn union_merges_overlaps_and_neighbours() {
        let mut s = AddrSet::default();
        s.insert("10.0.0.1".parse().unwrap());
        s.insert("10.0.0.2".parse().unwrap());
        s.insert_block(&block("10.0.0.0/30", &[]));
        s.insert_block(&block("::/0", &["fd00::/8"]));
        s.normalize();
        assert_eq!(s.v4.len(), 1, "{:?}", s.v4);
        assert_eq!(s.v6.len(), 2);
        assert!(!s.contains("fd00::1".parse().unwrap()));
        assert!(s.contains("2001:db8::1".parse().unwrap()));
    }

    proptest! {
        #[test]
        fn set_agrees_with_the_blocks(a in any::<u32>(), len in 8u8..=32, cut in any::<u32>(), cut_len in 8u8..=32, probe in any::<u32>()) {
            let net = ipnet::Ipv4Net::new(Ipv4Addr::from_bits(a), len).unwrap().trunc();
            let except = ipnet::Ipv4Net::new(Ipv4Addr::from_bits(cut), cut_len).unwrap().trunc();
            let b = IpBlock { cidr: net.into(), except: if net.contains(&except) && except.prefix_len() > len { vec![except.into()] } else { vec![] } };
            let mut s = AddrSet::default();
            s.insert_block(&b);
            s.normalize();
            for addr in [probe, net.network().to_bits(), net.broadcast().to_bits(), except.network().to_bits()] {
                let addr = IpAddr::V4(Ipv4Addr::from_bits(addr));
                prop_assert_eq!(s.contains(addr), b.contains(addr), "{}", addr);
            }
        }
    }
}
