//! The fast path of conversion: Namespaces, Pods and NetworkPolicies read
//! straight from JSON into the fields policy uses, everything else skipped
//! without being built (managedFields, container specs beyond ports, status
//! conditions), then handed to the one validation as k8s-openapi values.
//!
//! Every field the API defines is known here, so a field it does not define
//! (a typo) is noticed at no cost; such an object, and one whose known
//! fields do not parse, takes the precise path instead (full k8s-openapi
//! types with field paths for errors and unknown fields), so messages are
//! the same whichever path an object takes.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::marker::PhantomData;

use k8s_openapi::api::{core::v1 as core, networking::v1 as net};
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};

use crate::pieces::Lenient;
use crate::pod::{PodParts, PortParts, SpecParts, StatusParts};

thread_local! {
    /// Whether the object being read had a field its type does not define.
    static UNKNOWN_SEEN: Cell<bool> = const { Cell::new(false) };
}

/// Reads `raw` as `T` on the fast path: `None` when it does not parse or
/// holds a field the API does not define (the precise path then says
/// which).
pub(crate) fn read<'a, T: Deserialize<'a>>(raw: &'a str) -> Option<T> {
    UNKNOWN_SEEN.with(|u| u.set(false));
    let value = serde_json::from_str(raw).ok()?;
    if UNKNOWN_SEEN.with(Cell::get) { None } else { Some(value) }
}

/// A struct whose known fields are read or skipped and whose other fields
/// are noticed: `name: Type = "jsonName"` for fields read, then the names
/// of fields skipped.
macro_rules! lean_struct {
    ($name:ident { $($field:ident : $ty:ty = $key:literal),* $(,)? } skip [$($skip:literal),* $(,)?]) => {
        #[derive(Debug, Default)]
        pub(crate) struct $name {
            $(pub $field: $ty,)*
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct Visit<'de>(PhantomData<&'de ()>);
                impl<'de> Visitor<'de> for Visit<'de> {
                    type Value = $name;
                    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                        f.write_str(concat!("struct ", stringify!($name)))
                    }
                    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<$name, A::Error> {
                        const SKIPPED: &[&str] = &[$($skip),*];
                        let mut out = $name::default();
                        while let Some(key) = map.next_key::<Lenient<'de>>()? {
                            match key.0.as_deref().unwrap_or_default() {
                                $($key => out.$field = map.next_value()?,)*
                                skip if SKIPPED.contains(&skip) => {
                                    map.next_value::<IgnoredAny>()?;
                                }
                                _ => {
                                    UNKNOWN_SEEN.with(|u| u.set(true));
                                    map.next_value::<IgnoredAny>()?;
                                }
                            }
                        }
                        Ok(out)
                    }
                }
                d.deserialize_map(Visit(PhantomData))
            }
        }
    };
}

type Labels = Option<BTreeMap<String, String>>;

/// The annotation that suppresses lint findings on an object.
pub const LINT_IGNORE: &str = "palisade.dev/lint-ignore";
/// The annotation that stages a NetworkPolicy (`audit`) or enforces it
/// (`enforce`, as without it).
pub const ENFORCEMENT: &str = "palisade.dev/enforcement";
/// The annotation that asks for flow-log records of the connections a
/// NetworkPolicy admits (`allowed`).
pub const LOG: &str = "palisade.dev/log";

/// Of an object's annotations, only Palisade's own ([`LINT_IGNORE`],
/// [`ENFORCEMENT`], [`LOG`]); the others, such as a large
/// `last-applied-configuration`, are skipped without being built.
#[derive(Clone, Debug, Default)]
pub(crate) struct Annotations {
    pub lint_ignore: Option<String>,
    pub enforcement: Option<String>,
    pub log: Option<String>,
}

impl Annotations {
    /// Palisade's annotations of a map of them.
    pub(crate) fn of(map: &BTreeMap<String, String>) -> Annotations {
        Annotations {
            lint_ignore: map.get(LINT_IGNORE).cloned(),
            enforcement: map.get(ENFORCEMENT).cloned(),
            log: map.get(LOG).cloned(),
        }
    }
}

impl<'de> Deserialize<'de> for Annotations {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> Visitor<'de> for Visit {
            type Value = Annotations;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("annotations")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Annotations, A::Error> {
                let mut out = Annotations::default();
                while let Some(key) = map.next_key::<Lenient<'de>>()? {
                    let slot = match key.0.as_deref() {
                        Some(LINT_IGNORE) => &mut out.lint_ignore,
                        Some(ENFORCEMENT) => &mut out.enforcement,
                        Some(LOG) => &mut out.log,
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                            continue;
                        }
                    };
                    *slot = Some(map.next_value()?);
                }
                Ok(out)
            }
        }
        d.deserialize_map(Visit)
    }
}

lean_struct!(Meta {
    labels: Labels = "labels",
    owner_references: Option<Vec<OwnerRef>> = "ownerReferences",
    annotations: Option<Annotations> = "annotations",
} skip ["creationTimestamp", "deletionGracePeriodSeconds", "deletionTimestamp", "finalizers",
    "generateName", "generation", "managedFields", "name", "namespace", "resourceVersion", "selfLink", "uid"]);

lean_struct!(OwnerRef {
    kind: Option<String> = "kind",
    name: Option<String> = "name",
} skip ["apiVersion", "blockOwnerDeletion", "controller", "uid"]);

lean_struct!(Namespace { metadata: Option<Meta> = "metadata" } skip ["apiVersion", "kind", "spec", "status"]);

lean_struct!(Pod {
    metadata: Option<Meta> = "metadata",
    spec: Option<PodSpec> = "spec",
    status: Option<PodStatus> = "status",
} skip ["apiVersion", "kind"]);

lean_struct!(PodSpec {
    containers: Option<Vec<Container>> = "containers",
    init_containers: Option<Vec<Container>> = "initContainers",
    host_network: Option<bool> = "hostNetwork",
    node_name: Option<String> = "nodeName",
} skip ["activeDeadlineSeconds", "affinity", "automountServiceAccountToken", "dnsConfig", "dnsPolicy",
    "enableServiceLinks", "ephemeralContainers", "hostAliases", "hostIPC", "hostPID", "hostUsers", "hostname",
    "hostnameOverride", "imagePullSecrets", "nodeSelector", "os", "overhead", "preemptionPolicy", "priority",
    "priorityClassName", "readinessGates", "resourceClaims", "resources", "restartPolicy", "runtimeClassName",
    "schedulerName", "schedulingGates", "securityContext", "serviceAccount", "serviceAccountName",
    "setHostnameAsFQDN", "shareProcessNamespace", "subdomain", "terminationGracePeriodSeconds", "tolerations",
    "topologySpreadConstraints", "volumes"]);

lean_struct!(Container {
    ports: Option<Vec<ContainerPort>> = "ports",
} skip ["args", "command", "env", "envFrom", "image", "imagePullPolicy", "lifecycle", "livenessProbe", "name",
    "readinessProbe", "resizePolicy", "resources", "restartPolicy", "restartPolicyRules", "securityContext",
    "startupProbe", "stdin", "stdinOnce", "terminationMessagePath", "terminationMessagePolicy", "tty",
    "volumeDevices", "volumeMounts", "workingDir"]);

lean_struct!(ContainerPort {
    number: Option<i32> = "containerPort",
    name: Option<String> = "name",
    protocol: Option<String> = "protocol",
} skip ["hostIP", "hostPort"]);

lean_struct!(PodStatus {
    phase: Option<String> = "phase",
    pod_ip: Option<String> = "podIP",
    pod_ips: Option<Vec<Ip>> = "podIPs",
    host_ip: Option<String> = "hostIP",
    host_ips: Option<Vec<Ip>> = "hostIPs",
} skip ["conditions", "containerStatuses", "ephemeralContainerStatuses", "extendedResourceClaimStatus",
    "initContainerStatuses", "message", "nominatedNodeName", "observedGeneration", "qosClass", "reason", "resize",
    "resourceClaimStatuses", "startTime"]);

lean_struct!(Ip { ip: Option<String> = "ip" } skip []);

lean_struct!(NetworkPolicy {
    metadata: Option<Meta> = "metadata",
    spec: Option<Spec> = "spec",
} skip ["apiVersion", "kind"]);

lean_struct!(Spec {
    pod_selector: Option<Selector> = "podSelector",
    policy_types: Option<Vec<String>> = "policyTypes",
    ingress: Option<Vec<Rule>> = "ingress",
    egress: Option<Vec<Rule>> = "egress",
} skip []);

// One type for both directions: `from` is only known in ingress rules and
// `to` only in egress rules ([`Spec::check_directions`]).
lean_struct!(Rule {
    from: Option<Vec<Peer>> = "from",
    to: Option<Vec<Peer>> = "to",
    ports: Option<Vec<RulePort>> = "ports",
} skip []);

lean_struct!(Peer {
    pod_selector: Option<Selector> = "podSelector",
    namespace_selector: Option<Selector> = "namespaceSelector",
    ip_block: Option<IpBlock> = "ipBlock",
} skip []);

lean_struct!(IpBlock {
    cidr: Option<String> = "cidr",
    except: Option<Vec<String>> = "except",
} skip []);

lean_struct!(RulePort {
    protocol: Option<String> = "protocol",
    port: Option<IntOrString> = "port",
    end_port: Option<i32> = "endPort",
} skip []);

lean_struct!(Selector {
    match_labels: Labels = "matchLabels",
    match_expressions: Option<Vec<Requirement>> = "matchExpressions",
} skip []);

lean_struct!(Requirement {
    key: Option<String> = "key",
    operator: Option<String> = "operator",
    values: Option<Vec<String>> = "values",
} skip []);

/// What the fast path cannot represent (a required field missing): the
/// precise path reads the object instead, and says what is wrong.
#[derive(Debug)]
pub(crate) struct Missing;

type Read<T> = Result<T, Missing>;

/// The metadata policy reads of a Namespace: its labels.
fn object_meta(m: Option<Meta>) -> meta::ObjectMeta {
    meta::ObjectMeta { labels: m.unwrap_or_default().labels, ..meta::ObjectMeta::default() }
}

impl Namespace {
    pub(crate) fn into_api(self) -> core::Namespace {
        core::Namespace { metadata: object_meta(self.metadata), ..core::Namespace::default() }
    }
}

fn ips<T>(list: Option<Vec<Ip>>, make: impl Fn(String) -> T) -> Read<Option<Vec<T>>> {
    let Some(list) = list else { return Ok(None) };
    // `ip` is required: the precise path says so.
    list.into_iter().map(|i| i.ip.map(&make).ok_or(Missing)).collect::<Read<Vec<T>>>().map(Some)
}

impl Pod {
    /// What policy reads of the pod.
    pub(crate) fn into_parts(self) -> Read<PodParts> {
        let spec = match self.spec {
            None => SpecParts::default(),
            Some(s) => SpecParts {
                // `containers` is required in the API but absent is read as
                // empty, as k8s-openapi does.
                containers: container_ports(s.containers)?,
                init_containers: container_ports(s.init_containers)?,
                host_network: s.host_network,
                node_name: s.node_name,
            },
        };
        let status = match self.status {
            None => StatusParts::default(),
            Some(s) => {
                // Not used, but `ip` is required in each.
                ips(s.host_ips, |ip| ip)?;
                StatusParts { phase: s.phase, pod_ip: s.pod_ip, pod_ips: ips(s.pod_ips, |ip| ip)?.unwrap_or_default() }
            }
        };
        let meta = self.metadata.unwrap_or_default();
        let owners = meta.owner_references.into_iter().flatten();
        let owners = owners.map(|o| (o.kind.unwrap_or_default(), o.name.unwrap_or_default())).collect();
        Ok(PodParts { labels: meta.labels, owners, spec, status })
    }
}

/// Each container's declared ports.
fn container_ports(list: Option<Vec<Container>>) -> Read<Vec<Vec<PortParts>>> {
    let mut out = Vec::with_capacity(list.as_ref().map_or(0, Vec::len));
    for c in list.into_iter().flatten() {
        let ports = c.ports.into_iter().flatten().map(|p| {
            // Required: the precise path says so.
            Ok(PortParts { number: p.number.ok_or(Missing)?, name: p.name, protocol: p.protocol })
        });
        out.push(ports.collect::<Read<Vec<PortParts>>>()?);
    }
    Ok(out)
}

fn selector(s: Selector) -> Read<meta::LabelSelector> {
    let expressions = match s.match_expressions {
        None => None,
        Some(list) => Some(
            list.into_iter()
                .map(|r| {
                    Ok(meta::LabelSelectorRequirement {
                        key: r.key.ok_or(Missing)?,
                        operator: r.operator.ok_or(Missing)?,
                        values: r.values,
                    })
                })
                .collect::<Read<Vec<_>>>()?,
        ),
    };
    Ok(meta::LabelSelector { match_labels: s.match_labels, match_expressions: expressions })
}

/// An optional selector, converted.
fn maybe_selector(s: Option<Selector>) -> Read<Option<meta::LabelSelector>> {
    s.map(selector).transpose()
}

fn peers(list: Option<Vec<Peer>>) -> Read<Option<Vec<net::NetworkPolicyPeer>>> {
    let Some(list) = list else { return Ok(None) };
    let mut out = Vec::with_capacity(list.len());
    for p in list {
        let ip_block = match p.ip_block {
            None => None,
            Some(b) => Some(net::IPBlock { cidr: b.cidr.ok_or(Missing)?, except: b.except }),
        };
        out.push(net::NetworkPolicyPeer {
            ip_block,
            namespace_selector: maybe_selector(p.namespace_selector)?,
            pod_selector: maybe_selector(p.pod_selector)?,
        });
    }
    Ok(Some(out))
}

fn ports(list: Option<Vec<RulePort>>) -> Option<Vec<net::NetworkPolicyPort>> {
    list.map(|ports| {
        ports
            .into_iter()
            .map(|p| net::NetworkPolicyPort { end_port: p.end_port, port: p.port, protocol: p.protocol })
            .collect()
    })
}

impl NetworkPolicy {
    /// Palisade's annotations of the policy.
    pub(crate) fn annotations(&self) -> Annotations {
        self.metadata.as_ref().and_then(|m| m.annotations.clone()).unwrap_or_default()
    }

    /// The spec as k8s-openapi holds it; `None` when a required field is
    /// missing or a rule names its peers with the other direction's key.
    pub(crate) fn take_spec(&mut self) -> Read<Option<net::NetworkPolicySpec>> {
        let Some(spec) = self.spec.take() else { return Ok(None) };
        let mut ingress = None;
        if let Some(rules) = spec.ingress {
            let mut out = Vec::with_capacity(rules.len());
            for r in rules {
                if r.to.is_some() {
                    return Err(Missing);
                }
                out.push(net::NetworkPolicyIngressRule { from: peers(r.from)?, ports: ports(r.ports) });
            }
            ingress = Some(out);
        }
        let mut egress = None;
        if let Some(rules) = spec.egress {
            let mut out = Vec::with_capacity(rules.len());
            for r in rules {
                if r.from.is_some() {
                    return Err(Missing);
                }
                out.push(net::NetworkPolicyEgressRule { to: peers(r.to)?, ports: ports(r.ports) });
            }
            egress = Some(out);
        }
        let pod_selector = maybe_selector(spec.pod_selector)?;
        Ok(Some(net::NetworkPolicySpec { pod_selector, policy_types: spec.policy_types, ingress, egress }))
    }
}
