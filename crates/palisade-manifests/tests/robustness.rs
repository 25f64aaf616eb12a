//! No input may panic the loader or what consumes its output: random text,
//! and valid manifests with bytes flipped, lines dropped or text truncated.
//! (The coverage-guided fuzz target in `fuzz/` explores further.)

use std::fmt::Write as _;

use palisade_manifests::load_str;
use palisade_policy::Protocol;
use palisade_policy::lint::lint;
use palisade_policy::matrix::Case;
use proptest::prelude::*;

const SEEDS: [&str; 6] = [
    include_str!("../../../examples/walkthrough/part2/steps/03-within-production.yaml"),
    include_str!("../../../examples/three-tier/steps/02-policies.yaml"),
    include_str!("../../palisade/tests/fixtures/lint.yaml"),
    include_str!("../../../examples/cluster-policies/steps/03-pass-to-namespace-policies.yaml"),
    include_str!("../../../examples/cluster-policies/steps/04-egress-networks-with-an-exception.yaml"),
    include_str!("../../palisade-dataplane/tests/golden/cluster-policies.yaml"),
];

fn exercise(text: &str) {
    let loaded = load_str("fuzz.yaml", text, "default");
    for e in &loaded.errors {
        assert!(!e.to_string().is_empty());
    }
    let index = loaded.index();
    let pods: Vec<_> = index.pods_sorted().into_iter().take(8).collect();
    for pod in &pods {
        let _ = index.explain(*pod);
    }
    let _ = index.matrix(pods, vec![Case { port: 80, protocol: Protocol::Tcp }]);
    let _ = lint(&index);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_text(text in "\\PC{0,200}") {
        exercise(&text);
    }

    #[test]
    fn mutated_manifests(seed in 0usize..SEEDS.len(), flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8), cut in any::<usize>(), drop_line in any::<usize>()) {
        let mut bytes = SEEDS[seed].as_bytes().to_vec();
        for (at, value) in flips {
            let i = at % bytes.len();
            bytes[i] = value;
        }
        let text = String::from_utf8_lossy(&bytes).to_string();
        exercise(&text);
        let lines: Vec<&str> = text.lines().collect();
        let dropped: Vec<&str> = lines.iter().enumerate().filter(|(i, _)| *i != drop_line % lines.len().max(1)).map(|(_, l)| *l).collect();
        exercise(&dropped.join("\n"));
        let end = text.char_indices().map(|(i, _)| i).nth(cut % text.chars().count().max(1)).unwrap_or(0);
        exercise(&text[..end]);
    }
}

#[test]
fn deeply_nested_and_aliased_yaml_is_rejected_not_fatal() {
    let nested = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    exercise(&nested);
    let bomb = "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\ng: [*f, *f, *f, *f, *f, *f, *f, *f, *f]\n";
    exercise(bomb);
    let deep_list = format!("{}{{}}{}", r#"{"kind":"List","items":["#.repeat(50), "]}".repeat(50));
    let loaded = load_str("deep.json", &deep_list, "default");
    assert_eq!(loaded.errors.len(), 1, "nesting beyond the limit is one error: {:?}", loaded.errors);
    assert!(loaded.errors[0].to_string().contains("Lists nested too deeply"));
}

/// Hostile values in every field of a ClusterNetworkPolicy: wrong types,
/// out-of-range and enormous numbers, nulls, empty and huge lists. Each
/// object is refused with an error naming it and a field; nothing panics,
/// and the valid policy beside them loads.
#[test]
fn hostile_cluster_policies_are_refused_by_field() {
    let valid = "apiVersion: policy.networking.k8s.io/v1alpha2\nkind: ClusterNetworkPolicy\nmetadata: {name: ok}\n\
                 spec: {tier: Admin, priority: 1, subject: {namespaces: {}}, ingress: [{action: Deny, from: [{namespaces: {}}]}]}\n";
    let many_peers = (0..30).map(|_| "{namespaces: {}}").collect::<Vec<_>>().join(", ");
    let many_rules = (0..26).map(|_| "{action: Deny, from: [{namespaces: {}}]}").collect::<Vec<_>>().join(", ");
    let hostile = [
        ("priority-string", "{tier: Admin, priority: \"1\", subject: {namespaces: {}}}".to_string(), "spec.priority"),
        ("priority-negative", "{tier: Admin, priority: -1, subject: {namespaces: {}}}".into(), "spec.priority"),
        ("priority-float", "{tier: Admin, priority: 1.5, subject: {namespaces: {}}}".into(), "spec.priority"),
        ("spec-null", "null".into(), "spec"),
        ("tier-list", "{tier: [Admin], priority: 1, subject: {namespaces: {}}}".into(), "spec.tier"),
        ("subject-empty", "{tier: Admin, priority: 1, subject: {}}".into(), "spec.subject"),
        ("ingress-map", "{tier: Admin, priority: 1, subject: {namespaces: {}}, ingress: {a: b}}".into(), "spec.ingress"),
        ("too-many-peers", format!("{{tier: Admin, priority: 1, subject: {{namespaces: {{}}}}, ingress: [{{action: Deny, from: [{many_peers}]}}]}}"), "spec.ingress[0].from"),
        ("too-many-rules", format!("{{tier: Admin, priority: 1, subject: {{namespaces: {{}}}}, ingress: [{many_rules}]}}"), "spec.ingress"),
        ("port-zero", "{tier: Admin, priority: 1, subject: {namespaces: {}}, ingress: [{action: Deny, from: [{namespaces: {}}], protocols: [{tcp: {destinationPort: {number: 0}}}]}]}".into(), "spec.ingress[0].protocols[0].tcp.destinationPort.number"),
        ("port-huge", "{tier: Admin, priority: 1, subject: {namespaces: {}}, ingress: [{action: Deny, from: [{namespaces: {}}], protocols: [{udp: {destinationPort: {number: 65536}}}]}]}".into(), "spec.ingress[0].protocols[0].udp.destinationPort.number"),
        ("tcp-empty", "{tier: Admin, priority: 1, subject: {namespaces: {}}, ingress: [{action: Deny, from: [{namespaces: {}}], protocols: [{tcp: {}}]}]}".into(), "spec.ingress[0].protocols[0].tcp.destinationPort"),
        ("cidr-garbage", "{tier: Admin, priority: 1, subject: {namespaces: {}}, egress: [{action: Deny, to: [{networks: ['10.0.0.0/8/8']}]}]}".into(), "spec.egress[0].to[0].networks[0]"),
        ("cidr-long", format!("{{tier: Admin, priority: 1, subject: {{namespaces: {{}}}}, egress: [{{action: Deny, to: [{{networks: ['{}']}}]}}]}}", "1".repeat(60)), "spec.egress[0].to[0].networks[0]"),
        ("selector-operator", "{tier: Admin, priority: 1, subject: {namespaces: {matchExpressions: [{key: a, operator: Near}]}}}".into(), "spec.subject.namespaces.matchExpressions[0].operator"),
        ("rule-name-long", format!("{{tier: Admin, priority: 1, subject: {{namespaces: {{}}}}, ingress: [{{name: {}, action: Deny, from: [{{namespaces: {{}}}}]}}]}}", "n".repeat(101)), "spec.ingress[0].name"),
        ("ingress-networks", "{tier: Admin, priority: 1, subject: {namespaces: {}}, ingress: [{action: Deny, from: [{networks: [10.0.0.0/8]}]}]}".into(), "spec.ingress[0].from[0]"),
    ];
    let mut text = valid.to_string();
    for (name, spec, _) in &hostile {
        let _ = write!(
            text,
            "---\napiVersion: policy.networking.k8s.io/v1alpha2\nkind: ClusterNetworkPolicy\nmetadata: {{name: {name}}}\nspec: {spec}\n"
        );
    }
    let loaded = load_str("hostile.yaml", &text, "default");
    for (name, _, field) in &hostile {
        let object = format!("ClusterNetworkPolicy {name}");
        let found = loaded.errors.iter().any(|e| {
            matches!(e,
            palisade_manifests::LoadError::Invalid { object: o, field: f, .. } if *o == object && f == field)
        });
        assert!(
            found,
            "{name}: no error at {field}: {:#?}",
            loaded.errors.iter().filter(|e| e.to_string().contains(name)).collect::<Vec<_>>()
        );
    }
    assert_eq!(loaded.cluster_policies.len(), 1, "only the valid one loads");
    exercise(&text);
    // A number beyond 64 bits: the file, the object and the field are
    // named, in JSON and in YAML alike (YAML reads it as a float, which no
    // integer field takes).
    let huge = r#"{"apiVersion": "policy.networking.k8s.io/v1alpha2", "kind": "ClusterNetworkPolicy",
        "metadata": {"name": "huge"}, "spec": {"tier": "Admin", "priority": 100000000000000000000000, "subject": {"namespaces": {}}}}"#;
    let loaded = load_str("huge.json", huge, "default");
    assert!(
        loaded
            .errors
            .iter()
            .any(|e| e.to_string().starts_with("huge.json: ClusterNetworkPolicy huge: spec.priority: ")),
        "{:?}",
        loaded.errors
    );
    let huge = "apiVersion: policy.networking.k8s.io/v1alpha2\nkind: ClusterNetworkPolicy\nmetadata: {name: huge}\n\
                spec: {tier: Admin, priority: 100000000000000000000000, subject: {namespaces: {}}}\n";
    let loaded = load_str("huge.yaml", huge, "default");
    assert!(
        loaded
            .errors
            .iter()
            .any(|e| e.to_string().starts_with("huge.yaml: ClusterNetworkPolicy huge: spec.priority: "))
    );
    assert!(loaded.cluster_policies.is_empty());
}
