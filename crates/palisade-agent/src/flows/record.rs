//! One flow record: a logged packet attributed by the engine.
//!
//! The kernel says which chain logged the packet (`palisade deny ingress …`
//! or `palisade new egress …`); the engine says why, from the same index
//! the dataplane was compiled from, with the same attribution `palisade
//! check -o json` prints: per side, the policies that isolate the pod, the
//! rule that admitted the flow or the cluster policy rule that decided it.

use std::net::IpAddr;
use std::time::SystemTime;

use palisade_dataplane::nflog::Logged;
use palisade_dataplane::render::{DENY_PREFIX, NEW_PREFIX};
use palisade_policy::attribution::{SideAttribution, side_attribution};
use palisade_policy::{AuditPolicies, ClusterIndex, Direction, Endpoint, Flow, Protocol, SideVerdict};
use serde::Serialize;

/// What a record reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FlowVerdict {
    /// The dataplane dropped the packet.
    Deny,
    /// The dataplane let it through, and an audit (staged) policy would
    /// deny it.
    WouldDeny,
    /// A policy that asks for it (`palisade.dev/log: allowed`) admitted it.
    Allow,
}

impl FlowVerdict {
    /// As the records spell it.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            FlowVerdict::Deny => "deny",
            FlowVerdict::WouldDeny => "would-deny",
            FlowVerdict::Allow => "allow",
        }
    }
}

/// One end of a flow.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct End {
    /// The pod's `namespace/name`, when the address is a pod's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    /// The address.
    pub addr: IpAddr,
}

/// One flow record (a JSON line).
#[derive(Clone, Debug, Serialize)]
pub struct FlowRecord {
    /// When the packet was logged (RFC 3339, UTC).
    pub time: String,
    /// What happened.
    pub verdict: FlowVerdict,
    /// The side whose chain logged it: `egress` at the source pod,
    /// `ingress` at the destination pod.
    pub direction: Direction,
    /// Source.
    pub src: End,
    /// Destination.
    pub dst: End,
    /// `TCP`, `UDP`, `SCTP`, or the protocol's number.
    pub protocol: String,
    /// Source port, when the protocol has ports.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sport: Option<u16>,
    /// Destination port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dport: Option<u16>,
    /// Why, at the source (as `palisade check -o json` says it).
    pub egress: SideAttribution,
    /// Why, at the destination.
    pub ingress: SideAttribution,
}

/// What a log prefix says: which rule logged the packet, and for which side.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Logger {
    /// The pod chain's denial.
    Deny(Direction),
    /// An observed pod's new connection.
    New(Direction),
}

impl Logger {
    /// Reads a prefix Palisade's rules write; `None` for others.
    #[must_use]
    pub fn of(prefix: &str) -> Option<Logger> {
        let (deny, rest) = if let Some(rest) = prefix.strip_prefix(DENY_PREFIX) {
            (true, rest)
        } else {
            (false, prefix.strip_prefix(NEW_PREFIX)?)
        };
        let dir = match rest.split_whitespace().next()? {
            "ingress" => Direction::Ingress,
            "egress" => Direction::Egress,
            _ => return None,
        };
        Some(if deny { Logger::Deny(dir) } else { Logger::New(dir) })
    }

    /// The side whose chain logged.
    #[must_use]
    pub fn direction(self) -> Direction {
        match self {
            Logger::Deny(d) | Logger::New(d) => d,
        }
    }
}

fn end(index: &ClusterIndex, e: Endpoint, addr: IpAddr) -> End {
    let pod = match e {
        Endpoint::Pod { id, .. } => Some(index.pod_name(id).to_string()),
        Endpoint::External(_) => None,
    };
    End { pod, addr }
}

fn protocol_of(number: u8) -> Option<Protocol> {
    match number {
        6 => Some(Protocol::Tcp),
        17 => Some(Protocol::Udp),
        132 => Some(Protocol::Sctp),
        _ => None,
    }
}

/// Whether `side` lets the flow through.
fn side_denies(side: SideVerdict) -> bool {
    !side.allows()
}

/// The record for a logged packet, or `None` when there is nothing to
/// report: a prefix not Palisade's, a packet without ports (the engine
/// judges TCP, UDP and SCTP by port), or an observed connection that is
/// neither admitted by a logging policy nor denied by an audit one.
#[must_use]
pub fn attribute(index: &ClusterIndex, logged: &Logged, now: SystemTime) -> Option<FlowRecord> {
    let rule = Logger::of(&logged.prefix)?;
    let head = logged.head?;
    let protocol = protocol_of(head.protocol);
    let (src, dst) = (index.endpoint_at(head.src), index.endpoint_at(head.dst));
    let dir = rule.direction();
    let attributed = |verdict: FlowVerdict, audit: AuditPolicies| {
        let flow = Flow { src, dst, port: head.dport.unwrap_or(0), protocol: protocol.unwrap_or(Protocol::Tcp) };
        let evaluated = index.evaluate_with(&flow, audit);
        FlowRecord {
            time: rfc3339(logged.time.unwrap_or(now)),
            verdict,
            direction: dir,
            src: end(index, src, head.src),
            dst: end(index, dst, head.dst),
            protocol: protocol.map_or_else(|| head.protocol.to_string(), |p| p.to_string()),
            sport: head.sport,
            dport: head.dport,
            egress: side_attribution(index, &flow, Direction::Egress, &evaluated, audit),
            ingress: side_attribution(index, &flow, Direction::Ingress, &evaluated, audit),
        }
    };
    match rule {
        // The kernel dropped it: say why, with the enforced policies (a
        // packet of another protocol has no port the engine could judge,
        // and is still reported, with the policies that isolate the pod).
        Logger::Deny(_) => Some(attributed(FlowVerdict::Deny, AuditPolicies::Exclude)),
        Logger::New(_) => {
            let protocol = protocol?;
            let flow = Flow { src, dst, port: head.dport?, protocol };
            let enforced = index.evaluate_enforced(&flow);
            if !enforced.allowed {
                // Its denial is logged by the chain that drops it.
                return None;
            }
            if side_denies(index.evaluate(&flow).side(dir)) {
                return Some(attributed(FlowVerdict::WouldDeny, AuditPolicies::Include));
            }
            match enforced.side(dir) {
                SideVerdict::Allowed(rule) if index.policy(rule.policy).policy().log_allowed => {
                    Some(attributed(FlowVerdict::Allow, AuditPolicies::Exclude))
                }
                _ => None,
            }
        }
    }
}

/// `2026-12-06T05:40:01.123456Z` (jiff's RFC 3339, to the microsecond).
#[must_use]
pub fn rfc3339(t: SystemTime) -> String {
    let t = k8s_openapi::jiff::Timestamp::try_from(t).unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
    format!("{t:.6}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn verdicts_are_spelt_as_serialized() {
        for v in [FlowVerdict::Deny, FlowVerdict::WouldDeny, FlowVerdict::Allow] {
            assert_eq!(serde_json::to_value(v).unwrap(), v.as_str());
        }
    }

    #[test]
    fn prefixes_name_the_rule_and_side() {
        assert_eq!(Logger::of("palisade deny ingress x/a: "), Some(Logger::Deny(Direction::Ingress)));
        assert_eq!(Logger::of("palisade new egress y/b: "), Some(Logger::New(Direction::Egress)));
        assert_eq!(Logger::of("palisade deny sideways x/a"), None);
        assert_eq!(Logger::of("someone else's prefix"), None);
        assert_eq!(Logger::of(""), None);
    }

    const POLICIES: &str = "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db, namespace: prod, annotations: {palisade.dev/log: allowed}}
spec:
  podSelector: {matchLabels: {app: db}}
  ingress: [{from: [{podSelector: {matchLabels: {app: web}}}], ports: [{port: 5432}]}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: staged, namespace: prod, annotations: {palisade.dev/enforcement: audit}}
spec: {podSelector: {matchLabels: {app: web}}, policyTypes: [Ingress]}
";

    fn logged(prefix: &str, src: &str, dst: &str, dport: u16) -> Logged {
        let head = palisade_dataplane::nflog::PacketHead {
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            protocol: 6,
            sport: Some(40_000),
            dport: Some(dport),
        };
        Logged { prefix: prefix.into(), time: None, interfaces: (None, None), head: Some(head) }
    }

    #[test]
    fn records_say_deny_would_deny_or_allow_with_the_rule() {
        let loaded = palisade_manifests::load_str(
            "c.yaml",
            &format!("{}---{POLICIES}", palisade_testkit::fixtures::WEB_AND_DB),
            "default",
        );
        assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
        let index = loaded.index();
        let now = SystemTime::UNIX_EPOCH;
        // Denied at db's ingress: port 80 is not admitted.
        let r = attribute(&index, &logged("palisade deny ingress prod/db: ", "10.0.0.1", "10.0.0.2", 80), now);
        let r = r.expect("a record");
        assert_eq!(r.verdict, FlowVerdict::Deny);
        assert_eq!(r.ingress.isolated_by, vec!["prod/db".to_string()]);
        assert_eq!(r.src.pod.as_deref(), Some("prod/web"));
        // Admitted by the logging policy's rule 0.
        let r = attribute(&index, &logged("palisade new ingress prod/db: ", "10.0.0.1", "10.0.0.2", 5432), now);
        let r = r.expect("a record");
        assert_eq!(r.verdict, FlowVerdict::Allow);
        assert_eq!(r.ingress.allowed_by.as_ref().map(|a| (a.policy.as_str(), a.rule)), Some(("prod/db", 0)));
        // The staged default deny on web would deny db -> web.
        let r = attribute(&index, &logged("palisade new ingress prod/web: ", "10.0.0.2", "10.0.0.1", 80), now);
        let r = r.expect("a record");
        assert_eq!(r.verdict, FlowVerdict::WouldDeny);
        assert_eq!(r.ingress.audit, vec!["prod/staged".to_string()]);
        // An observed connection that is neither: no record; nor for a
        // prefix that is not Palisade's.
        assert!(
            attribute(&index, &logged("palisade new egress prod/web: ", "10.0.0.1", "10.0.0.9", 80), now).is_none()
        );
        assert!(attribute(&index, &logged("iptables: ", "10.0.0.1", "10.0.0.2", 80), now).is_none());
    }

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(rfc3339(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00.000000Z");
        // 2026-12-06T05:40:01.5Z (checked with `date -u -d @1796535601`).
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_796_535_601_500);
        assert_eq!(rfc3339(t), "2026-12-06T05:40:01.500000Z");
        // A leap day.
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc3339(t), "2000-02-29T00:00:00.000000Z");
    }
}
