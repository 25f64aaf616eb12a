//! Rule ports: v1alpha2 `protocols` and v1alpha1 `ports`, validated.

use palisade_policy::{ClusterPort, Protocol};

use super::api::{AnpPort, CnpPort, CnpProtocol};
use super::{V1ALPHA1, V1ALPHA2};
use crate::error::FieldErrors;

/// Checks a port list's length (1 to `max` items when present).
fn check_length<T>(list: &[T], field: &str, max: usize, errors: &mut FieldErrors) {
    if list.is_empty() || list.len() > max {
        errors.push(field.to_string(), format!("must have between 1 and {max} items, has {}", list.len()));
    }
}

/// A port number field: 1–65535.
fn number(value: Option<i64>, field: &str, errors: &mut FieldErrors) -> Option<u16> {
    let Some(n) = value else {
        errors.push(field.to_string(), "required");
        return None;
    };
    let valid = u16::try_from(n).ok().filter(|n| *n >= 1);
    if valid.is_none() {
        errors.push(field.to_string(), format!("{n} must be between 1 and 65535, inclusive"));
    }
    valid
}

/// A v1alpha1 protocol field (absent: TCP).
fn protocol(value: Option<&str>, field: &str, errors: &mut FieldErrors) -> Option<Protocol> {
    match value {
        None => Some(Protocol::Tcp),
        Some(p) => {
            let found = Protocol::from_api(p);
            if found.is_none() {
                errors.push(
                    field.to_string(),
                    format!("unsupported value {p:?}: supported values are \"TCP\", \"UDP\", \"SCTP\""),
                );
            }
            found
        }
    }
}

/// v1alpha2 `protocols`; `None` when absent (every port matches).
pub(super) fn v1alpha2(list: Option<&[CnpProtocol]>, rule: &str, errors: &mut FieldErrors) -> Option<Vec<ClusterPort>> {
    let list = list?;
    let field = format!("{rule}.protocols");
    check_length(list, &field, V1ALPHA2.ports, errors);
    let ports =
        list.iter().enumerate().filter_map(|(i, p)| protocol_entry(p, &format!("{field}[{i}]"), errors)).collect();
    Some(ports)
}

fn protocol_entry(p: &CnpProtocol, field: &str, errors: &mut FieldErrors) -> Option<ClusterPort> {
    let named = p.destination_named_port.as_deref().filter(|n| !n.is_empty());
    let set = [p.tcp.is_some(), p.udp.is_some(), p.sctp.is_some(), named.is_some()].into_iter().filter(|s| *s).count();
    if set != 1 {
        errors.push(field.to_string(), "must set exactly one of tcp, udp, sctp, destinationNamedPort");
        return None;
    }
    if let Some(name) = named {
        return Some(ClusterPort::Named(name.to_string()));
    }
    let (protocol, key, port) = match (&p.tcp, &p.udp, &p.sctp) {
        (Some(t), _, _) => (Protocol::Tcp, "tcp", t),
        (_, Some(u), _) => (Protocol::Udp, "udp", u),
        (_, _, Some(s)) => (Protocol::Sctp, "sctp", s),
        _ => return None,
    };
    let field = format!("{field}.{key}");
    let Some(port) = &port.destination_port else {
        errors.push(format!("{field}.destinationPort"), "required");
        return None;
    };
    destination_port(protocol, port, &format!("{field}.destinationPort"), errors)
}

fn destination_port(protocol: Protocol, port: &CnpPort, field: &str, errors: &mut FieldErrors) -> Option<ClusterPort> {
    match (port.number, &port.range) {
        (Some(n), None) => {
            let n = number(Some(n), &format!("{field}.number"), errors)?;
            Some(ClusterPort::Range { protocol, start: n, end: n })
        }
        (None, Some(range)) => {
            let (start, end) = range_bounds(range.start, range.end, &format!("{field}.range"), errors)?;
            if start >= end {
                errors.push(format!("{field}.range"), "Start port must be less than End port");
                return None;
            }
            Some(ClusterPort::Range { protocol, start, end })
        }
        _ => {
            errors.push(field.to_string(), "must set exactly one of number, range");
            None
        }
    }
}

fn range_bounds(start: Option<i64>, end: Option<i64>, field: &str, errors: &mut FieldErrors) -> Option<(u16, u16)> {
    let start = number(start, &format!("{field}.start"), errors);
    let end = number(end, &format!("{field}.end"), errors);
    Some((start?, end?))
}

/// v1alpha1 `ports`; `None` when absent.
pub(super) fn v1alpha1(list: Option<&[AnpPort]>, rule: &str, errors: &mut FieldErrors) -> Option<Vec<ClusterPort>> {
    let list = list?;
    let field = format!("{rule}.ports");
    check_length(list, &field, V1ALPHA1.ports, errors);
    let ports = list.iter().enumerate().filter_map(|(i, p)| anp_port(p, &format!("{field}[{i}]"), errors)).collect();
    Some(ports)
}

fn anp_port(p: &AnpPort, field: &str, errors: &mut FieldErrors) -> Option<ClusterPort> {
    let named = p.named_port.as_deref();
    let set = [p.port_number.is_some(), named.is_some(), p.port_range.is_some()].into_iter().filter(|s| *s).count();
    if set != 1 {
        errors.push(field.to_string(), "must set exactly one of portNumber, namedPort, portRange");
        return None;
    }
    if let Some(name) = named {
        return Some(ClusterPort::Named(name.to_string()));
    }
    if let Some(n) = &p.port_number {
        let field = format!("{field}.portNumber");
        let protocol = protocol(n.protocol.as_deref(), &format!("{field}.protocol"), errors);
        let port = number(n.port, &format!("{field}.port"), errors);
        return Some(ClusterPort::Range { protocol: protocol?, start: port?, end: port? });
    }
    let range = p.port_range.as_ref()?;
    let field = format!("{field}.portRange");
    let protocol = protocol(range.protocol.as_deref(), &format!("{field}.protocol"), errors);
    let (start, end) = range_bounds(range.start, range.end, &field, errors)?;
    if end < start {
        errors.push(format!("{field}.end"), format!("{end} must not be less than start ({start})"));
        return None;
    }
    Some(ClusterPort::Range { protocol: protocol?, start, end })
}
