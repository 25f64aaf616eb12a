//! Findings about a set of policies, each with why it matters and a fix.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;

use serde::Serialize;

mod tiers;

use crate::describe;
use crate::evaluate::VirtualPod;
use crate::index::{ClusterIndex, PodId, PolicyId};
use crate::key::ObjectKey;
use crate::model::{
    ContainerPort, Direction, HOST_NETWORK, IpBlock, LabelSelector, Labels, NAMESPACE_NAME_LABEL, Peer, PodState,
    PortTarget, Protocol, Rule, RulePort,
};

/// How much a finding matters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Likely a mistake; `lint` exits non-zero.
    Warning,
    /// Worth a look.
    Info,
}

/// One finding.
#[derive(Debug, Serialize)]
pub struct Finding {
    /// Stable identifier of the check.
    pub code: &'static str,
    /// Severity.
    pub severity: Severity,
    /// The object: `NetworkPolicy prod/db` or `Pod prod/web`.
    pub object: String,
    /// The object's key, for the kinds Palisade reads (to find its file
    /// and its `palisade.dev/lint-ignore` annotation).
    #[serde(skip)]
    pub key: Option<ObjectKey>,
    /// Field path inside the object, if one.
    pub field: Option<String>,
    /// What was found.
    pub message: String,
    /// Why it matters.
    pub why: String,
    /// How to fix it.
    pub fix: String,
}

fn peer_field(dir: Direction, rule: usize, peer: usize) -> String {
    let list = if dir == Direction::Ingress { "from" } else { "to" };
    format!("spec.{dir}[{rule}].{list}[{peer}]")
}

fn sample(index: &ClusterIndex, pods: &[PodId]) -> String {
    let mut names: Vec<String> = pods.iter().take(5).map(|p| index.pod_name(*p).to_string()).collect();
    if pods.len() > 5 {
        names.push(format!("and {} more", pods.len() - 5));
    }
    names.join(", ")
}

/// What the input says beyond its objects, which changes what some
/// findings mean.
#[derive(Clone, Debug, Default)]
pub struct LintContext {
    /// Objects of kinds that create pods the input does not show (custom
    /// resources with a pod template, operators' workloads), described for
    /// the reader (`3 Rollout, 1 VirtualMachine`); when set, "selects no
    /// pod" findings are only information: the pods may exist.
    pub pods_elsewhere: Option<String>,
}

/// Runs every check. Findings are ordered by object, then check.
#[must_use]
pub fn lint(index: &ClusterIndex) -> Vec<Finding> {
    lint_with(index, &LintContext::default())
}

/// [`lint`] in `context`.
#[must_use]
pub fn lint_with(index: &ClusterIndex, context: &LintContext) -> Vec<Finding> {
    let mut findings = Vec::new();
    let policies = index.policies_sorted();
    // Policies that apply to exactly the same pods (same namespace, same
    // podSelector), in name order: the only ones that can shadow each
    // other's rules.
    let mut same_pods: BTreeMap<(&str, &LabelSelector), Vec<PolicyId>> = BTreeMap::new();
    for &id in &policies {
        let p = index.policy(id).policy();
        same_pods.entry((p.namespace.as_str(), &p.pod_selector)).or_default().push(id);
    }
    let addresses = PodAddresses::new(index);
    let host_network: Vec<PodId> = index
        .pods_sorted()
        .into_iter()
        .filter(|id| matches!(&index.pod(*id).pod().state, PodState::Excluded(r) if r == HOST_NETWORK))
        .collect();
    for &id in &policies {
        let before = findings.len();
        selects_nothing(index, id, &host_network, &mut findings);
        peers(index, id, &addresses, &host_network, &mut findings);
        if let Some(elsewhere) = &context.pods_elsewhere {
            for f in &mut findings[before..] {
                if matches!(f.code, "policy-selects-no-pod" | "peer-matches-no-pod") {
                    f.severity = Severity::Info;
                    let _ = write!(
                        f.message,
                        " in the input (which also holds {elsewhere}: kinds that create pods it does not show, \
                         so such pods may exist)"
                    );
                }
            }
        }
        named_ports(index, id, &mut findings);
        let p = index.policy(id).policy();
        shadowed_rules(index, id, &same_pods[&(p.namespace.as_str(), &p.pod_selector)], &mut findings);
    }
    dns_egress(index, &mut findings);
    tiers::lint_cluster_policies(index, context, &mut findings);
    findings
}

fn policy_object(index: &ClusterIndex, id: PolicyId) -> String {
    format!("NetworkPolicy {}", index.policy_name(id))
}

fn selects_nothing(index: &ClusterIndex, id: PolicyId, host_network: &[PodId], out: &mut Vec<Finding>) {
    let entry = index.policy(id);
    if entry.selected().is_empty() {
        let policy = entry.policy();
        let hosts = host_network_peers(index, host_network, &policy.namespace, None, Some(&policy.pod_selector));
        let message = if hosts.is_empty() {
            format!(
                "selects no pod: no pod in namespace {} has {}",
                policy.namespace,
                describe::selector(&policy.pod_selector)
            )
        } else {
            format!(
                "selects only hostNetwork pods ({}), which NetworkPolicy does not apply to: they use their node's address",
                sample(index, &hosts)
            )
        };
        out.push(Finding {
            code: "policy-selects-no-pod",
            severity: Severity::Warning,
            object: policy_object(index, id),
            key: Some(index.policy_key(id)),
            field: Some("spec.podSelector".into()),
            message,
            why: "a policy that selects no pod has no effect; often a label typo or the wrong namespace".into(),
            fix: "match the podSelector to the labels of the pods it should protect, or move the policy to their namespace"
                .into(),
        });
    }
}

/// The addresses of active pods, sorted, to find the pods in a CIDR
/// without scanning every pod.
struct PodAddresses(Vec<(IpAddr, PodId)>);

impl PodAddresses {
    fn new(index: &ClusterIndex) -> Self {
        let mut all: Vec<(IpAddr, PodId)> = index
            .pods_sorted()
            .into_iter()
            .filter(|id| index.pod(*id).pod().state == PodState::Active)
            .flat_map(|id| index.pod(id).pod().ips.iter().map(move |ip| (*ip, id)))
            .collect();
        all.sort_unstable();
        PodAddresses(all)
    }

    /// The pods with an address in `block` (outside its `except`), in name
    /// order.
    fn in_block(&self, index: &ClusterIndex, block: &IpBlock) -> Vec<PodId> {
        let (first, last) = (block.cidr.network(), block.cidr.broadcast());
        let start = self.0.partition_point(|(ip, _)| *ip < first);
        let mut pods: Vec<PodId> = self.0[start..]
            .iter()
            .take_while(|(ip, _)| *ip <= last)
            .filter(|(ip, _)| block.contains(*ip))
            .map(|(_, id)| *id)
            .collect();
        pods.sort_unstable_by(|a, b| index.pod_name(*a).cmp(index.pod_name(*b)));
        pods.dedup();
        pods
    }
}

/// The hostNetwork pods that selectors match, as a pod peer's (or, with no
/// namespace selector, a policy's podSelector) would: NetworkPolicy never
/// applies to them, their traffic carries the node's address.
fn host_network_peers(
    index: &ClusterIndex,
    host_network: &[PodId],
    policy_ns: &str,
    namespace_selector: Option<&LabelSelector>,
    pod_selector: Option<&LabelSelector>,
) -> Vec<PodId> {
    host_network
        .iter()
        .copied()
        .filter(|id| {
            let entry = index.pod(*id);
            let in_namespace = match namespace_selector {
                None => entry.pod().namespace == policy_ns,
                Some(sel) => sel.matches(index.namespace(entry.namespace()).labels()),
            };
            in_namespace && pod_selector.is_none_or(|sel| sel.matches(&index.pod_labels(*id)))
        })
        .collect()
}

fn peers(index: &ClusterIndex, id: PolicyId, addresses: &PodAddresses, host_network: &[PodId], out: &mut Vec<Finding>) {
    let policy = index.policy(id).policy();
    for dir in Direction::BOTH {
        for (r, rule) in policy.rules(dir).iter().enumerate() {
            for (p, peer) in rule.peers.iter().enumerate() {
                match peer {
                    Peer::Pods { namespace_selector, pod_selector } => {
                        if index.peer_pods(id, dir, r, p).is_empty() {
                            let hosts = host_network_peers(
                                index,
                                host_network,
                                &policy.namespace,
                                namespace_selector.as_ref(),
                                pod_selector.as_ref(),
                            );
                            let described = describe::peer(peer, &policy.namespace);
                            let message = if hosts.is_empty() {
                                format!("{described} matches no pod")
                            } else {
                                format!(
                                    "{described} matches only hostNetwork pods ({}), which it cannot admit: \
                                     their traffic carries the node's address (use an ipBlock for nodes)",
                                    sample(index, &hosts)
                                )
                            };
                            out.push(Finding {
                                code: "peer-matches-no-pod",
                                severity: Severity::Warning,
                                object: policy_object(index, id),
            key: Some(index.policy_key(id)),
                                field: Some(peer_field(dir, r, p)),
                                message,
                                why: "the rule admits nothing through this peer; often a label typo, or a namespace label that the namespace lacks".into(),
                                fix: "check the selector against `kubectl get pods,namespaces --show-labels`; namespaces can be matched by kubernetes.io/metadata.name".into(),
                            });
                        }
                    }
                    Peer::IpBlock(block) => {
                        let covered = addresses.in_block(index, block);
                        if !covered.is_empty() {
                            out.push(Finding {
                                code: "ipblock-covers-pods",
                                severity: Severity::Warning,
                                object: policy_object(index, id),
            key: Some(index.policy_key(id)),
                                field: Some(format!("{}.ipBlock", peer_field(dir, r, p))),
                                message: format!(
                                    "ipBlock {} covers the IPs of {} pod(s): {}",
                                    describe::ip_block(block),
                                    covered.len(),
                                    sample(index, &covered)
                                ),
                                why: "pod IPs change when pods are rescheduled; ipBlock is meant for addresses outside the cluster".into(),
                                fix: "select those pods with podSelector/namespaceSelector, and carve the pod CIDR out with except".into(),
                            });
                        }
                    }
                }
            }
            or_form(index, id, dir, r, rule, out);
        }
    }
}

fn or_form(index: &ClusterIndex, id: PolicyId, dir: Direction, r: usize, rule: &Rule, out: &mut Vec<Finding>) {
    let ns_only =
        rule.peers.iter().position(|p| matches!(p, Peer::Pods { namespace_selector: Some(_), pod_selector: None }));
    let pod_only =
        rule.peers.iter().position(|p| matches!(p, Peer::Pods { namespace_selector: None, pod_selector: Some(_) }));
    if let (Some(n), Some(p)) = (ns_only, pod_only) {
        let list = if dir == Direction::Ingress { "from" } else { "to" };
        out.push(Finding {
            code: "peer-or-not-and",
            severity: Severity::Info,
            object: policy_object(index, id),
            key: Some(index.policy_key(id)),
            field: Some(format!("spec.{dir}[{r}].{list}")),
            message: format!(
                "{list}[{n}] (namespaceSelector) and {list}[{p}] (podSelector) are two peers: they admit either group (OR), not pods matching both (AND)"
            ),
            why: "`- namespaceSelector: … / - podSelector: …` (two list items) and `- namespaceSelector: … / podSelector: …` (one item) differ by one dash and mean OR versus AND".into(),
            fix: "if you meant the selected pods inside the selected namespaces, put both selectors in one list item".into(),
        });
    }
}

fn declares(pod: &crate::model::Pod, name: &str, protocol: Protocol) -> bool {
    pod.ports.iter().any(|p| p.name.as_deref() == Some(name) && p.protocol == protocol)
}

fn named_ports(index: &ClusterIndex, id: PolicyId, out: &mut Vec<Finding>) {
    let entry = index.policy(id);
    let policy = entry.policy();
    for dir in Direction::BOTH {
        for (r, rule) in policy.rules(dir).iter().enumerate() {
            for (k, port) in rule.ports.iter().enumerate() {
                let PortTarget::Named(name) = &port.target else { continue };
                let candidates: Vec<PodId> = match dir {
                    Direction::Ingress => entry.selected().to_vec(),
                    Direction::Egress => index.rule_peer_pods(id, dir, r).unwrap_or_else(|| index.pods_sorted()),
                };
                if candidates.iter().any(|p| declares(index.pod(*p).pod(), name, port.protocol)) {
                    continue;
                }
                let whose = match dir {
                    Direction::Ingress => "no pod this policy selects",
                    Direction::Egress => "no pod this rule allows",
                };
                out.push(Finding {
                    code: "named-port-undeclared",
                    severity: Severity::Warning,
                    object: policy_object(index, id),
            key: Some(index.policy_key(id)),
                    field: Some(format!("spec.{dir}[{r}].ports[{k}].port")),
                    message: format!("{whose} declares a {} container port named {name}", port.protocol),
                    why: "named ports resolve on the destination pod's containerPorts; an undeclared name matches nothing".into(),
                    fix: format!("declare `name: {name}` on the container port, or use the port number"),
                });
            }
        }
    }
}

fn port_covers(b: &RulePort, a: &RulePort) -> bool {
    b.protocol == a.protocol
        && match (&b.target, &a.target) {
            (PortTarget::Any, _) => true,
            (PortTarget::Range { start: bs, end: be }, PortTarget::Range { start: as_, end: ae }) => {
                bs <= as_ && ae <= be
            }
            (PortTarget::Named(bn), PortTarget::Named(an)) => bn == an,
            _ => false,
        }
}

fn peer_covers(b: &Peer, a: &Peer) -> bool {
    if b == a {
        return true;
    }
    match (b, a) {
        (Peer::IpBlock(b), Peer::IpBlock(a)) => {
            b.cidr.contains(&a.cidr)
                && b.except
                    .iter()
                    .all(|e| a.except.iter().any(|ae| ae.contains(e)) || !e.contains(&a.cidr) && !a.cidr.contains(e))
        }
        (
            Peer::Pods { namespace_selector: bn, pod_selector: bp },
            Peer::Pods { namespace_selector: an, pod_selector: ap },
        ) => {
            let all_pods = bp.as_ref().is_none_or(crate::model::LabelSelector::is_empty);
            let all_namespaces = bn.as_ref().is_some_and(crate::model::LabelSelector::is_empty);
            (all_namespaces || bn == an) && (all_pods || bp == ap)
        }
        _ => false,
    }
}

fn rule_covers(b: &Rule, a: &Rule) -> bool {
    let peers = b.peers.is_empty()
        || (!a.peers.is_empty() && a.peers.iter().all(|ap| b.peers.iter().any(|bp| peer_covers(bp, ap))));
    let ports = b.ports.is_empty()
        || (!a.ports.is_empty() && a.ports.iter().all(|ap| b.ports.iter().any(|bp| port_covers(bp, ap))));
    peers && ports
}

/// `peers`: the policies that apply to exactly the same pods as `id`
/// (itself included), in name order.
fn shadowed_rules(index: &ClusterIndex, id: PolicyId, peers: &[PolicyId], out: &mut Vec<Finding>) {
    let policy = index.policy(id).policy();
    for dir in Direction::BOTH {
        if !policy.isolates(dir) {
            continue;
        }
        for (r, rule) in policy.rules(dir).iter().enumerate() {
            let shadow = peers.iter().find_map(|&other| {
                let o = index.policy(other).policy();
                if !o.isolates(dir) {
                    return None;
                }
                o.rules(dir).iter().enumerate().find_map(|(k, candidate)| {
                    let same = other == id && k == r;
                    // An identical rule shadows only the later of the two.
                    let earlier = (&o.name, k) < (&policy.name, r);
                    let covers = rule_covers(candidate, rule) && (candidate != rule || earlier);
                    (!same && covers).then(|| format!("{} {dir} rule {k}", index.policy_name(other)))
                })
            });
            if let Some(by) = shadow {
                out.push(Finding {
                    code: "rule-shadowed",
                    severity: Severity::Info,
                    object: policy_object(index, id),
                    key: Some(index.policy_key(id)),
                    field: Some(format!("spec.{dir}[{r}]")),
                    message: format!("rule is already covered by {by}, which admits at least the same peers and ports"),
                    why: "policies are additive: a rule inside a broader rule for the same pods changes nothing".into(),
                    fix: "remove the narrower rule, or narrow the broader one if it admits more than intended".into(),
                });
            }
        }
    }
}

fn dns_egress(index: &ClusterIndex, out: &mut Vec<Finding>) {
    let dns_pods: Vec<PodId> = index
        .pods_sorted()
        .into_iter()
        .filter(|p| index.pod(*p).pod().is_endpoint() && index.pod_label(*p, "k8s-app") == Some("kube-dns"))
        .collect();
    let namespace_labels = index.namespace_id("kube-system").map_or_else(
        || Labels::from([(NAMESPACE_NAME_LABEL.into(), "kube-system".into())]),
        |ns| index.namespace(ns).labels().clone(),
    );
    let virtual_dns = VirtualPod {
        namespace: "kube-system".into(),
        namespace_labels,
        labels: Labels::from([("k8s-app".into(), "kube-dns".into())]),
        ports: vec![
            ContainerPort { name: Some("dns".into()), port: 53, protocol: Protocol::Udp },
            ContainerPort { name: Some("dns-tcp".into()), port: 53, protocol: Protocol::Tcp },
        ],
    };
    // Group pods by the policies isolating their egress: one finding per group.
    let mut groups: Vec<(Vec<PolicyId>, Vec<PodId>)> = Vec::new();
    for pod_id in index.pods_sorted() {
        let entry = index.pod(pod_id);
        if !entry.pod().is_endpoint() || entry.isolating(Direction::Egress).is_empty() {
            continue;
        }
        if index.pod_label(pod_id, "k8s-app") == Some("kube-dns") {
            continue;
        }
        let reaches = if dns_pods.is_empty() {
            index.egress_to_virtual_pod(pod_id, &virtual_dns, 53, Protocol::Udp).allows()
        } else {
            dns_pods.iter().any(|dns| index.evaluate(&index.pod_flow(pod_id, *dns, 53, Protocol::Udp)).allowed)
        };
        if reaches {
            continue;
        }
        let policies = entry.isolating(Direction::Egress).to_vec();
        match groups.iter_mut().find(|(p, _)| *p == policies) {
            Some((_, pods)) => pods.push(pod_id),
            None => groups.push((policies, vec![pod_id])),
        }
    }
    for (policies, pods) in groups {
        let names: Vec<String> = policies.iter().map(|p| index.policy_name(*p).to_string()).collect();
        out.push(Finding {
            code: "egress-blocks-dns",
            severity: Severity::Warning,
            object: format!("Pod {}", index.pod_name(pods[0])),
            key: Some(index.pod_key(pods[0])),
            field: None,
            message: format!(
                "{} pod(s) isolated for egress by {} cannot reach cluster DNS (pods with k8s-app=kube-dns in kube-system) on UDP 53: {}",
                pods.len(),
                names.join(", "),
                sample(index, &pods)
            ),
            why: "once egress is isolated, name lookups fail unless a rule allows DNS; most applications then fail in confusing ways".into(),
            fix: "add an egress rule to namespaceSelector kubernetes.io/metadata.name=kube-system with podSelector k8s-app=kube-dns on UDP 53 and TCP 53".into(),
        });
    }
}
