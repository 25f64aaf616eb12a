//! One test per class of invalid input: each error names the file, the
//! object and the field, the object is rejected whole, and the rest loads.

use palisade_manifests::{LoadError, load_str};

fn np(spec: &str) -> String {
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: db, namespace: prod}}\nspec: {spec}\n---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: fine, namespace: prod}}\nspec: {{podSelector: {{}}}}\n"
    )
}

/// Loads `text` and returns its errors rendered, checking that the valid
/// companion policy still loaded and the invalid one did not.
fn errors_of(text: &str) -> Vec<String> {
    let loaded = load_str("policies.yaml", text, "default");
    let names: Vec<&str> = loaded.policies.iter().map(|p| p.name.as_str()).collect();
    assert!(!names.contains(&"db"), "invalid policy must be rejected whole: {names:?}");
    assert!(names.contains(&"fine"), "the valid policy still loads: {:?}", loaded.errors);
    loaded.errors.iter().map(ToString::to_string).collect()
}

#[track_caller]
fn assert_error(spec: &str, expected: &str) {
    let errors = errors_of(&np(spec));
    assert!(errors.iter().any(|e| e == expected), "expected {expected:?} among {errors:#?}");
}

#[test]
fn except_outside_cidr() {
    assert_error(
        "{podSelector: {}, ingress: [{from: [{podSelector: {}}, {ipBlock: {cidr: 10.0.0.0/16, except: [10.1.0.0/16]}}]}]}",
        "policies.yaml: NetworkPolicy prod/db: spec.ingress[0].from[1].ipBlock.except[0]: 10.1.0.0/16 is not inside 10.0.0.0/16",
    );
}

#[test]
fn except_equal_to_cidr_or_other_family() {
    assert_error(
        "{podSelector: {}, ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/16, except: [10.0.0.0/16]}}]}]}",
        "policies.yaml: NetworkPolicy prod/db: spec.ingress[0].from[0].ipBlock.except[0]: 10.0.0.0/16 must be a strict subset of cidr 10.0.0.0/16",
    );
    assert_error(
        "{podSelector: {}, ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/16, except: ['fd00::/64']}}]}]}",
        "policies.yaml: NetworkPolicy prod/db: spec.ingress[0].from[0].ipBlock.except[0]: fd00::/64 is not inside 10.0.0.0/16",
    );
}

#[test]
fn malformed_cidr() {
    assert_error(
        "{podSelector: {}, egress: [{to: [{ipBlock: {cidr: 10.0.0.300/8}}]}]}",
        "policies.yaml: NetworkPolicy prod/db: spec.egress[0].to[0].ipBlock.cidr: \"10.0.0.300/8\" is not a valid CIDR (for example 10.0.0.0/16 or 2001:db8::/64)",
    );
    assert_error(
        "{podSelector: {}, egress: [{to: [{ipBlock: {cidr: 10.0.0.1}}]}]}",
        "policies.yaml: NetworkPolicy prod/db: spec.egress[0].to[0].ipBlock.cidr: \"10.0.0.1\" is not a valid CIDR (for example 10.0.0.0/16 or 2001:db8::/64)",
    );
}

#[test]
fn port_out_of_range() {
    assert_error(
        "{podSelector: {}, ingress: [{ports: [{port: 0}]}]}",
        "policies.yaml: NetworkPolicy prod/db: spec.ingress[0].ports[0].port: 0 must be between 1 and 65535, inclusive",
    );
    assert_error(
        "{podSelector: {}, ingress: [{ports: [{port: 65536}]}]}",
        "policies.yaml: NetworkPolicy prod/db: spec.ingress[0].ports[0].port: 65536 must be between 1 and 65535, inclusive",
    );
}

#[test]
fn end_port_rules() {
    assert_error(
        "{podSelector: {}, ingress: [{ports: [{port: 90, endPort: 80}]}]}",
        "policies.yaml: NetworkPolicy prod/db: spec.ingress[0].ports[0].endPort: 80 must be greater than or equal to `port` (90)",
    );
    assert_error(
        "{podSelector: {}, ingress: [{ports: [{port: http, endPort: 80}]}]}",
        "policies.yaml: NetworkPolicy prod/db: spec.ingress[0].ports[0].endPort: may not be specified when `port` is a named port",
    );
    assert_error(
        "{podSelector: {}, ingress: [{ports: [{endPort: 80}]}]}",
        "policies.yaml: NetworkPolicy prod/db: spec.ingress[0].ports[0].endPort: may not be specified when `port` is not specified",
    );
}

#[test]
fn unknown_protocol_and_bad_port_name() {
    assert_error(
        "{podSelector: {}, ingress: [{ports: [{port: 80, protocol: ICMP}]}]}",
        "policies.yaml: NetworkPolicy prod/db: spec.ingress[0].ports[0].protocol: unsupported value \"ICMP\": supported values are \"TCP\", \"UDP\", \"SCTP\"",
    );
    assert_error(
        "{podSelector: {}, ingress: [{ports: [{port: 'HTTP--x'}]}]}",
        "policies.yaml: NetworkPolicy prod/db: spec.ingress[0].ports[0].port: \"HTTP--x\": a port name must contain only lowercase alphanumeric characters or '-'",
    );
}

#[test]
fn selector_operators_and_values() {
    assert_error(
        "{podSelector: {matchExpressions: [{key: app, operator: Equals, values: [a]}]}}",
        "policies.yaml: NetworkPolicy prod/db: spec.podSelector.matchExpressions[0].operator: \"Equals\" is not a valid label selector operator (In, NotIn, Exists, DoesNotExist)",
    );
    assert_error(
        "{podSelector: {matchExpressions: [{key: app, operator: In}]}}",
        "policies.yaml: NetworkPolicy prod/db: spec.podSelector.matchExpressions[0].values: must be specified when `operator` is 'In' or 'NotIn'",
    );
    assert_error(
        "{podSelector: {matchExpressions: [{key: app, operator: Exists, values: [a]}]}}",
        "policies.yaml: NetworkPolicy prod/db: spec.podSelector.matchExpressions[0].values: may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
    );
}

#[test]
fn bad_label_keys_and_values() {
    let errors = errors_of(&np("{podSelector: {matchLabels: {'-app': ok}}}"));
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("policies.yaml: NetworkPolicy prod/db: spec.podSelector.matchLabels: key \"-app\"")),
        "{errors:#?}"
    );
    let errors = errors_of(&np(
        "{podSelector: {}, ingress: [{from: [{namespaceSelector: {matchLabels: {env: 'bad value'}}}]}]}",
    ));
    assert!(
        errors.iter().any(|e| e.starts_with(
            "policies.yaml: NetworkPolicy prod/db: spec.ingress[0].from[0].namespaceSelector.matchLabels[env]: \"bad value\""
        )),
        "{errors:#?}"
    );
}

#[test]
fn peers_must_be_one_kind() {
    assert_error(
        "{podSelector: {}, ingress: [{from: [{}]}]}",
        "policies.yaml: NetworkPolicy prod/db: spec.ingress[0].from[0]: must specify a peer: podSelector, namespaceSelector or ipBlock",
    );
    assert_error(
        "{podSelector: {}, ingress: [{from: [{podSelector: {}, ipBlock: {cidr: 10.0.0.0/8}}]}]}",
        "policies.yaml: NetworkPolicy prod/db: spec.ingress[0].from[0]: may not specify both ipBlock and another peer (podSelector/namespaceSelector)",
    );
}

#[test]
fn policy_types_values() {
    assert_error(
        "{podSelector: {}, policyTypes: [Ingress, Sideways]}",
        "policies.yaml: NetworkPolicy prod/db: spec.policyTypes[1]: unsupported value \"Sideways\": supported values are \"Ingress\", \"Egress\"",
    );
    assert_error(
        "{podSelector: {}, policyTypes: [Egress, Egress]}",
        "policies.yaml: NetworkPolicy prod/db: spec.policyTypes[1]: duplicate value \"Egress\"",
    );
}

#[test]
fn wrong_types_name_the_field_path() {
    let errors = errors_of(&np("{podSelector: {}, ingress: [{from: [{ipBlock: {cidr: [1]}}]}]}"));
    assert!(
        errors.iter().any(|e| e
            .starts_with("policies.yaml: NetworkPolicy prod/db: spec.ingress[0].from[0].ipBlock.cidr: invalid type")),
        "{errors:#?}"
    );
}

#[test]
fn bad_names() {
    let text = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: Not_Valid, namespace: prod}\nspec: {}\n";
    let loaded = load_str("p.yaml", text, "default");
    assert!(loaded.policies.is_empty());
    assert!(
        loaded.errors[0]
            .to_string()
            .starts_with("p.yaml: NetworkPolicy prod/Not_Valid: metadata.name: must be a lowercase RFC 1123 subdomain")
    );
    let missing = load_str("p.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {namespace: prod}\n", "default");
    assert_eq!(missing.errors[0].to_string(), "p.yaml: Pod prod/: metadata.name: required");
}

#[test]
fn invalid_pods_and_namespaces() {
    let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: web, namespace: prod}\nspec: {containers: [{name: c, ports: [{containerPort: 70000}, {containerPort: 80, name: 'web server'}]}]}\nstatus: {podIP: 10.0.0.999}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: prod, labels: {'a/b/c': x}}\n";
    let loaded = load_str("pods.yaml", text, "default");
    assert!(loaded.pods.is_empty() && loaded.namespaces.is_empty());
    let errors: Vec<String> = loaded.errors.iter().map(ToString::to_string).collect();
    for expected in [
        "pods.yaml: Pod prod/web: spec.containers[0].ports[0].containerPort: 70000 must be between 1 and 65535, inclusive",
        "pods.yaml: Pod prod/web: spec.containers[0].ports[1].name: \"web server\": a port name must contain only lowercase alphanumeric characters or '-'",
        "pods.yaml: Pod prod/web: status.podIP: \"10.0.0.999\" is not a valid IP address",
    ] {
        assert!(errors.iter().any(|e| e == expected), "expected {expected:?} among {errors:#?}");
    }
    assert!(
        errors.iter().any(|e| e.starts_with("pods.yaml: Namespace prod: metadata.labels: key \"a/b/c\"")),
        "{errors:#?}"
    );
}

#[test]
fn syntax_errors_have_line_and_column() {
    let loaded = load_str("broken.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: a\n", "default");
    match &loaded.errors[..] {
        [LoadError::Syntax { file, line, column, .. }] => {
            assert_eq!(file, "broken.yaml");
            assert!(*line >= 3 && *column >= 1, "line {line} column {column}");
        }
        other => panic!("expected one syntax error, got {other:?}"),
    }
    let json = load_str("broken.json", "{\"kind\": \"Pod\",\n  \"metadata\": }", "default");
    match &json.errors[..] {
        [LoadError::Syntax { line: 2, column, .. }] => assert!(*column > 1),
        other => panic!("expected a JSON syntax error on line 2, got {other:?}"),
    }
}

#[test]
fn duplicates_and_unsupported_versions() {
    let text = "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\napiVersion: networking.k8s.io/v1beta1\nkind: NetworkPolicy\nmetadata: {name: p}\n";
    let loaded = load_str("dup.yaml", text, "default");
    assert_eq!(loaded.namespaces.len(), 1);
    let errors: Vec<String> = loaded.errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        errors,
        vec![
            "dup.yaml: Namespace a: metadata.name: duplicate Namespace: already defined in dup.yaml; this copy is ignored".to_string(),
            "dup.yaml: NetworkPolicy default/p: apiVersion: \"networking.k8s.io/v1beta1\" is not a supported version of NetworkPolicy".to_string(),
        ]
    );
}

#[test]
fn unknown_enforcement_or_log_annotation() {
    let with = |annotation: &str| {
        format!(
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: db, namespace: prod, annotations: {{{annotation}}}}}\nspec: {{podSelector: {{}}}}\n---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: fine, namespace: prod}}\nspec: {{podSelector: {{}}}}\n"
        )
    };
    let errors = errors_of(&with("palisade.dev/enforcement: staged"));
    assert!(
        errors.iter().any(|e| e
            == "policies.yaml: NetworkPolicy prod/db: metadata.annotations[\"palisade.dev/enforcement\"]: unsupported value \"staged\": supported values are \"enforce\", \"audit\""),
        "{errors:#?}"
    );
    let errors = errors_of(&with("palisade.dev/log: everything"));
    assert!(errors.iter().any(|e| e.contains("metadata.annotations[\"palisade.dev/log\"]")), "{errors:#?}");
}
