//! Golden test of the rendered transaction, and the property that applying
//! a diff leads to the same state as rendering from scratch.

use std::collections::BTreeMap;

use palisade_dataplane::render::render;
use palisade_dataplane::transaction::{diff, full};
use palisade_dataplane::{NodeScope, compile};
use palisade_manifests::load_str;
use palisade_policy::ClusterIndex;
use palisade_policy::synth::Rng;
use palisade_policy::synth::e2e::{model, random_policies};

fn model_index(policies_yaml: &str) -> ClusterIndex {
    let loaded = load_str("policies.yaml", policies_yaml, "default");
    assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
    let (namespaces, pods) = model();
    ClusterIndex::from_objects(namespaces, pods, loaded.policies)
}

/// The model with the cluster policies and Nodes of `yaml` (and its
/// NetworkPolicies).
fn model_index_with_tiers(yaml: &str) -> ClusterIndex {
    let mut loaded = load_str("cluster-policies.yaml", yaml, "default");
    assert!(loaded.errors.is_empty() && loaded.warnings.is_empty(), "{:?} {:?}", loaded.errors, loaded.warnings);
    let (namespaces, pods) = model();
    loaded.namespaces = namespaces;
    loaded.pods = pods;
    loaded.take_index()
}

fn ifaces() -> BTreeMap<std::net::IpAddr, String> {
    let (_, pods) = model();
    pods.iter().enumerate().flat_map(|(i, p)| p.ips.iter().map(move |ip| (*ip, format!("pv{i}")))).collect()
}

#[test]
fn golden_full_transaction() {
    let index = model_index(include_str!("golden/policies.yaml"));
    let program = compile(&index, &NodeScope::All, &ifaces());
    let rendered =
        serde_json::to_string_pretty(&palisade_dataplane::json::transaction(&full(&render(&program)))).expect("json");
    palisade_testkit::golden::golden(
        std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/full.json")),
        &rendered,
    );
}

/// The tiers as rendered: the golden transaction, and the layout the
/// render module documents, checked on it.
#[test]
fn golden_tiers_transaction() {
    let index = model_index_with_tiers(include_str!("golden/cluster-policies.yaml"));
    let table = render(&compile(&index, &NodeScope::All, &ifaces()));
    let rendered = serde_json::to_string_pretty(&palisade_dataplane::json::transaction(&full(&table))).expect("json");
    palisade_testkit::golden::golden(
        std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/tiers.json")),
        &rendered,
    );
    let rules = |chain: &str| -> Vec<String> {
        table.chains[chain]
            .rules
            .iter()
            .map(|r| r.0.iter().map(ToString::to_string).collect::<Vec<_>>().join(" "))
            .collect()
    };
    // x/a: the Admin list (x-isolation's rules inlined: Pass is `return`,
    // Deny counts and drops), then no NetworkPolicy and no Baseline
    // ingress: the end.
    let xa = rules("pod/x/a/ingress");
    assert_eq!(xa.len(), 1, "{xa:?}");
    let list = xa[0].strip_prefix("jump ").expect("a jump to the list");
    assert!(list.starts_with("shared/admin-ingress/"), "{list}");
    let inlined = rules(list);
    assert!(inlined.iter().any(|r| r.ends_with("return")), "Pass is a return: {inlined:?}");
    let deny = "counter name \"tier/ClusterNetworkPolicy/x-isolation/ingress/denied\" drop";
    assert!(inlined.iter().any(|r| r.ends_with(deny)), "{inlined:?}");
    // z/a: AdminNetworkPolicy z-web's rule, the port compared before the
    // peer set is looked up.
    let za = rules("pod/z/a/ingress");
    let z_web = rules(za[0].strip_prefix("jump ").expect("a jump"));
    assert_eq!(z_web.len(), 2, "both families: {z_web:?}");
    assert!(z_web[0].starts_with("tcp dport 80 ip saddr @shared/pods4/") && z_web[0].ends_with("accept"), "{z_web:?}");
    // Egress of every pod: the Admin list (no-infra), then the Baseline list
    // (no-external), as no NetworkPolicy isolates egress.
    let egress = rules("pod/y/b/egress");
    assert_eq!(egress.len(), 2, "{egress:?}");
    assert!(
        egress[0].starts_with("jump shared/admin-egress/") && egress[1].starts_with("jump shared/baseline-egress/")
    );
    // domainNames: a rule that matches nothing is no rule.
    let admin_egress = rules(egress[0].strip_prefix("jump ").expect("a jump"));
    assert_eq!(admin_egress.len(), 2, "the nodes rule, both families: {admin_egress:?}");
    assert!(!table.chains.keys().any(|c| c.starts_with("tier/")), "a policy's rules live in the list chains");
}

#[test]
fn remote_pods_are_elements_not_rules() {
    // The same policies over a cluster with many more remote pods: the rule
    // count does not change, only set elements do.
    let yaml = include_str!("golden/policies.yaml");
    let small = render(&compile(&model_index(yaml), &NodeScope::Node("node".into()), &ifaces()));
    let loaded = load_str("policies.yaml", yaml, "default");
    let (namespaces, mut pods) = model();
    let template = pods[4].clone(); // y/b
    for i in 0..500 {
        let mut p = template.clone();
        p.name = format!("remote-{i}");
        p.node_name = Some("elsewhere".into());
        p.ips = vec![
            format!("10.0.2.{}", 10 + i % 240).parse().expect("ip"),
            format!("fd00::2:{:x}", 0x100 + i).parse().expect("ip"),
        ];
        pods.push(p);
    }
    let big_index = ClusterIndex::from_objects(namespaces, pods, loaded.policies);
    let big = render(&compile(&big_index, &NodeScope::Node("node".into()), &ifaces()));
    let rules = |r: &palisade_dataplane::ruleset::Table| r.chains.values().map(|c| c.rules.len()).sum::<usize>();
    let elements = |r: &palisade_dataplane::ruleset::Table| r.sets.values().map(|s| s.elements.len()).sum::<usize>();
    assert_eq!(rules(&small), rules(&big), "rules do not grow with remote pods");
    assert!(elements(&big) > elements(&small), "remote pods are set elements");
}

#[test]
fn diff_is_empty_for_equal_programs_and_full_render_is_deterministic() {
    let mut rng = Rng::new(5);
    let (namespaces, pods) = model();
    let index = ClusterIndex::from_objects(namespaces, pods, random_policies(&mut rng, 6));
    let a = render(&compile(&index, &NodeScope::All, &ifaces()));
    let b = render(&compile(&index, &NodeScope::All, &ifaces()));
    assert!(diff(&a, &b).is_none());
    assert_eq!(full(&a), full(&b));
}

/// Issue #11, item 5: the kernel finds a set by walking the table's list of
/// sets, so their number must not grow with the number of policies. 200
/// policies that repeat the same ten peer selectors and port lists
/// (selecting a pod each) make the same sets as ten of them; every
/// pod isolated by many policies jumps through one shared chain per list.
#[test]
fn sets_follow_distinct_selectors_not_policies() {
    let policies = |n: usize| -> String {
        use std::fmt::Write as _;
        (0..n).fold(String::new(), |mut out, j| {
            let _ = write!(
                out,
                    "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: p{j}, namespace: x}}\n\
                     spec:\n  podSelector: {{matchLabels: {{pod: a}}}}\n  ingress:\n  \
                     - from: [{{podSelector: {{matchLabels: {{k{}: v}}}}}}, {{ipBlock: {{cidr: 192.168.{}.0/24}}}}]\n    \
                     ports: [{{port: {}}}, {{port: {}}}]\n",
                    j % 10,
                    j % 10,
                    1000 + j % 10,
                    2000 + j % 10
            );
            out
        })
    };
    let rendered = |n: usize| render(&compile(&model_index(&policies(n)), &NodeScope::All, &ifaces()));
    let (ten, many) = (rendered(10), rendered(200));
    let shared = |t: &palisade_dataplane::ruleset::Table| t.sets.keys().filter(|n| n.starts_with("shared/")).count();
    // The one CIDR of each rule is a comparison, not a set.
    assert_eq!(shared(&ten), 10 * 3, "per distinct rule: pods4, pods6, ports");
    assert_eq!(shared(&many), shared(&ten), "200 policies repeating them add no set");
    // x/a is isolated by all 200: one jump to a shared chain that jumps to them.
    let chain = &many.chains["pod/x/a/ingress"].rules;
    assert_eq!(chain.len(), 3, "jump, log, drop: {chain:?}");
    let lists = many.chains.keys().filter(|n| n.starts_with("shared/isolation-ingress/")).count();
    assert_eq!(lists, 1);
}
