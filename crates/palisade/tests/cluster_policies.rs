//! ClusterNetworkPolicy and the v1alpha1 kinds through the command line:
//! provenance in `check`, `query` and `explain`, the tiers in `matrix` and
//! `diff`, lint findings, and validation errors that name the file, the
//! object and the field. Expectations are written from the API's
//! documentation (see `examples/cluster-policies`, whose comments say what
//! each step does). `BLESS=1` rewrites the golden files.

use std::path::{Path, PathBuf};

use palisade_testkit::temp::TempDir;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("workspace root")
}

fn palisade_in(dir: &Path, args: &[&str], stdin: &str) -> (String, String, i32) {
    palisade_testkit::command::run(env!("CARGO_BIN_EXE_palisade"), dir, args, stdin)
}

fn palisade(args: &[&str], stdin: &str) -> (String, String, i32) {
    palisade_in(&root(), args, stdin)
}

#[track_caller]
fn golden(name: &str, actual: &str) {
    palisade_testkit::golden::golden(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(name), actual);
}

const EXAMPLE: &str = "examples/cluster-policies";

fn check(from: &str, to: &str, port: &str, extra: &[&str]) -> (String, i32) {
    let args = [&["check", "-f", EXAMPLE, "--from", from, "--to", to, "--port", port][..], extra].concat();
    let (out, err, code) = palisade(&args, "");
    assert!(err.is_empty(), "{err}");
    (out, code)
}

/// Each step of the example, one connection each, with the rule that decides.
#[test]
fn check_names_the_tier_policy_rule_and_action() {
    // An Admin Deny that the namespace's allow-all NetworkPolicy cannot override.
    let (out, code) = check("shop/frontend", "monitoring/prometheus", "80", &[]);
    assert_eq!(code, 1);
    assert!(
        out.contains(
            "denied by admin protect-monitoring priority 10 ingress rule 1 (everyone-else), peer 0, all ports: Deny"
        ),
        "{out}"
    );
    // Pass, then payments' NetworkPolicy decides.
    let (out, code) = check("shop/frontend", "payments/api", "80", &[]);
    assert_eq!(code, 0);
    golden("check-cnp-pass.txt", &out);
    let (_, code) = check("shop/backend", "payments/api", "80", &[]);
    assert_eq!(code, 1, "the NetworkPolicy admits only the frontend");
    // Baseline isolation between namespaces, and dev's NetworkPolicy overriding it.
    let (out, code) = check("dev/client", "shop/backend", "80", &[]);
    assert_eq!(code, 1);
    assert!(out.contains("denied by baseline isolate-namespaces priority 100 ingress rule 0"), "{out}");
    let (out, code) = check("shop/backend", "dev/client", "80", &[]);
    assert_eq!(code, 0, "dev's own NetworkPolicy decides, not the Baseline tier: {out}");
    // Egress to networks: the exception accepted first, the subnet denied.
    let (out, _) = check("dev/client", "payments/api", "80", &[]);
    assert!(
        out.contains("egress dev/client (10.1.4.1): allowed by admin dev-egress priority 30 egress rule 0"),
        "{out}"
    );
    let (out, code) = check("dev/client", "10.1.3.9", "80", &[]);
    assert_eq!(code, 1);
    assert!(out.contains("denied by admin dev-egress priority 30 egress rule 1 (payments-subnet)"), "{out}");

    let (out, _) = check("shop/frontend", "payments/api", "80", &["-o", "json"]);
    golden("check-cnp-pass.json", &out);
}

#[test]
fn query_lines_carry_the_tier_reason() {
    let input = "{\"from\":\"shop/frontend\",\"to\":\"payments/api\",\"port\":80}\n\
                 {\"from\":\"dev/client\",\"to\":\"monitoring/prometheus\",\"port\":53,\"protocol\":\"UDP\"}\n";
    let (out, err, code) = palisade(&["query", "-f", EXAMPLE], input);
    assert_eq!((code, err.as_str()), (0, ""));
    golden("query-cnp.jsonl", &out);
}

#[test]
fn explain_shows_each_tier() {
    let (out, _, code) = palisade(&["explain", "-f", EXAMPLE, "payments/api"], "");
    assert_eq!(code, 0);
    golden("explain-cnp-payments.txt", &out);
    let (out, _, _) = palisade(&["explain", "-f", EXAMPLE, "shop/backend", "-o", "json"], "");
    let json: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(json["ingress"]["baseline"][0]["action"], "Accept", "{out}");
    assert_eq!(
        json["ingress"]["baseline"][1]["source"],
        "isolate-namespaces priority 100 ingress rule 0 (other-namespaces)"
    );
    assert_eq!(json["ingress"]["allows_everything"], false);
}

#[test]
fn matrix_and_diff_include_the_tiers() {
    let (out, _, code) = palisade(&["matrix", "-f", EXAMPLE], "");
    assert_eq!(code, 0);
    golden("matrix-cnp.txt", &out);
    // Removing the Admin tier's monitoring protection opens monitoring to
    // everyone (its NetworkPolicy allows all).
    let dir = TempDir::new("cnp-diff");
    let after = dir.path().join("after");
    std::fs::create_dir_all(after.join("steps")).expect("mkdir");
    let example = root().join(EXAMPLE);
    std::fs::copy(example.join("base/00-namespaces-and-pods.yaml"), after.join("pods.yaml")).expect("copy");
    for step in [
        "01-baseline-namespace-isolation.yaml",
        "03-pass-to-namespace-policies.yaml",
        "04-egress-networks-with-an-exception.yaml",
    ] {
        std::fs::copy(example.join("steps").join(step), after.join("steps").join(step)).expect("copy");
    }
    let allow_all = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: allow-all, namespace: monitoring}\nspec: {podSelector: {}, ingress: [{}]}\n";
    std::fs::write(after.join("steps/02-only-the-network-policy.yaml"), allow_all).expect("write");
    let (out, _, code) = palisade(&["diff", "--before", EXAMPLE, "--after", after.to_str().expect("utf-8")], "");
    assert_eq!(code, 1, "changes: {out}");
    for from in ["dev/client", "payments/api", "shop/backend", "shop/frontend"] {
        assert!(out.contains(&format!("  {from} -> monitoring/prometheus TCP/80\n")), "{from}: {out}");
    }
    assert!(out.contains("8 opened, 0 closed"), "{out}");
}

#[test]
fn lint_finds_shadowed_rules_passes_and_equal_priorities() {
    let dir = TempDir::new("cnp-lint");
    std::fs::write(
        dir.path().join("p.yaml"),
        "apiVersion: v1
kind: Pod
metadata: {name: a, namespace: x, labels: {app: a}}
status: {phase: Running, podIP: 10.0.0.1}
---
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: a-pass}
spec:
  tier: Admin
  priority: 5
  subject: {namespaces: {}}
  ingress: [{action: Pass, from: [{namespaces: {}}]}]
---
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: b-deny}
spec:
  tier: Admin
  priority: 5
  subject: {namespaces: {matchLabels: {kubernetes.io/metadata.name: x}}}
  ingress:
  - {action: Deny, from: [{namespaces: {matchLabels: {team: a}}}]}
  egress:
  - {action: Accept, to: [{networks: [10.0.0.0/8]}]}
  - {action: Deny, to: [{networks: [10.1.0.0/16]}], protocols: [{udp: {destinationPort: {number: 53}}}]}
  - {action: Accept, to: [{domainNames: [example.com]}]}
---
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: nobody}
spec:
  tier: Baseline
  priority: 1
  subject: {namespaces: {matchLabels: {team: none}}}
  ingress: [{action: Deny, from: [{namespaces: {}}]}]
",
    )
    .expect("write");
    let (out, _, code) = palisade_in(dir.path(), &["lint", "-f", "p.yaml", "-o", "json"], "");
    assert_eq!(code, 1, "warnings: {out}");
    let json: serde_json::Value = serde_json::from_str(&out).expect("json");
    let found: Vec<(String, String, String)> = json
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| {
            let s = |k: &str| f[k].as_str().unwrap_or_default().to_string();
            (s("code"), s("object"), s("field"))
        })
        .collect();
    let expected = [
        ("deny-unreachable-after-pass", "ClusterNetworkPolicy b-deny", "spec.ingress[0]"),
        ("cluster-rule-shadowed", "ClusterNetworkPolicy b-deny", "spec.egress[1]"),
        ("domain-names-not-enforced", "ClusterNetworkPolicy b-deny", "spec.egress[2].to[0].domainNames"),
        ("equal-priority-overlap", "ClusterNetworkPolicy b-deny", "spec.priority"),
        ("policy-selects-no-pod", "ClusterNetworkPolicy nobody", "spec.subject"),
    ];
    for (code, object, field) in expected {
        assert!(
            found.iter().any(|f| (f.0.as_str(), f.1.as_str(), f.2.as_str()) == (code, object, field)),
            "{code} {object} {field}: {found:?}"
        );
    }
    assert_eq!(found.len(), expected.len(), "{found:?}");
    assert!(
        json.as_array().expect("findings").iter().all(|f| f["file"] == "p.yaml"),
        "every finding names its file: {out}"
    );

    // `palisade.dev/lint-ignore` on a cluster policy suppresses its codes.
    let text = std::fs::read_to_string(dir.path().join("p.yaml")).expect("read");
    let text = text.replace(
        "metadata: {name: nobody}",
        "metadata: {name: nobody, annotations: {palisade.dev/lint-ignore: policy-selects-no-pod}}",
    );
    std::fs::write(dir.path().join("p.yaml"), text).expect("write");
    let (out, _, _) = palisade_in(dir.path(), &["lint", "-f", "p.yaml", "-o", "json"], "");
    assert!(!out.contains("ClusterNetworkPolicy nobody"), "suppressed: {out}");
}

/// Invalid objects: each error names the file, the object and the field;
/// the valid objects load and the invalid ones are left out.
#[test]
fn validation_errors_name_file_object_and_field() {
    let dir = TempDir::new("cnp-invalid");
    std::fs::write(
        dir.path().join("bad.yaml"),
        "apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: bad}
spec:
  tier: Middle
  priority: 1001
  subject: {namespaces: {}, pods: {podSelector: {}}}
  ingress:
  - {action: Allow, from: [{namespaces: {}}]}
  - {action: Deny, from: []}
  egress:
  - action: Deny
    to: [{networks: [10.0.0.0/8, not-a-cidr]}, {nodes: {}, networks: [10.0.0.0/8]}]
    protocols: [{tcp: {destinationPort: {range: {start: 90, end: 80}}}}, {destinationNamedPort: http}]
---
apiVersion: policy.networking.k8s.io/v1alpha1
kind: BaselineAdminNetworkPolicy
metadata: {name: not-default}
spec:
  subject: {namespaces: {}}
  ingress: [{action: Pass, from: [{namespaces: {}}]}]
---
apiVersion: policy.networking.k8s.io/v1alpha1
kind: ClusterNetworkPolicy
metadata: {name: wrong-version}
spec: {}
---
apiVersion: crd.antrea.io/v1beta1
kind: ClusterNetworkPolicy
metadata: {name: antreas}
spec: {}
",
    )
    .expect("write");
    let (_, err, code) = palisade_in(dir.path(), &["lint", "-f", "bad.yaml"], "");
    assert_eq!(code, 2, "{err}");
    let expected = [
        "bad.yaml: ClusterNetworkPolicy bad: spec.tier: unsupported value \"Middle\"",
        "bad.yaml: ClusterNetworkPolicy bad: spec.priority: 1001 must be between 0 and 1000, inclusive",
        "bad.yaml: ClusterNetworkPolicy bad: spec.subject: may set only one of namespaces, pods",
        "bad.yaml: ClusterNetworkPolicy bad: spec.ingress[0].action: unsupported value \"Allow\": supported values are \"Accept\", \"Deny\", \"Pass\"",
        "bad.yaml: ClusterNetworkPolicy bad: spec.ingress[1].from: must have between 1 and 25 items, has 0",
        "bad.yaml: ClusterNetworkPolicy bad: spec.egress[0].to[0].networks[1]: Invalid CIDR format provided",
        "bad.yaml: ClusterNetworkPolicy bad: spec.egress[0].to[1]: must set exactly one of namespaces, pods, nodes, networks, domainNames",
        "bad.yaml: ClusterNetworkPolicy bad: spec.egress[0].protocols[0].tcp.destinationPort.range: Start port must be less than End port",
        "bad.yaml: ClusterNetworkPolicy bad: spec.egress[0]: networks/nodes/domainNames peer cannot be set with namedPorts",
        "bad.yaml: BaselineAdminNetworkPolicy not-default: metadata.name: Only one baseline admin network policy",
        "bad.yaml: BaselineAdminNetworkPolicy not-default: spec.ingress[0].action: unsupported value \"Pass\": supported values are \"Allow\", \"Deny\"",
        "bad.yaml: ClusterNetworkPolicy wrong-version: apiVersion: \"policy.networking.k8s.io/v1alpha1\" is not a supported version",
    ];
    for e in expected {
        assert!(err.contains(e), "missing {e:?} in:\n{err}");
    }
    assert!(
        err.contains("INCOMPLETE") && err.contains("ClusterNetworkPolicy (crd.antrea.io)"),
        "another vendor's kind: {err}"
    );
}

/// `nodes` peers match the addresses of the selected Nodes.
#[test]
fn nodes_peers_match_node_addresses() {
    let dir = TempDir::new("cnp-nodes");
    std::fs::write(
        dir.path().join("n.yaml"),
        "apiVersion: v1
kind: Node
metadata: {name: infra-1, labels: {role: infra}}
status: {addresses: [{type: InternalIP, address: 192.168.10.1}, {type: Hostname, address: infra-1}]}
---
apiVersion: v1
kind: Node
metadata: {name: worker-1, labels: {role: worker}}
status: {addresses: [{type: InternalIP, address: 192.168.10.2}]}
---
apiVersion: v1
kind: Pod
metadata: {name: a, namespace: x}
status: {phase: Running, podIP: 10.0.0.1}
---
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: no-infra}
spec:
  tier: Admin
  priority: 1
  subject: {namespaces: {}}
  egress: [{action: Deny, to: [{nodes: {matchLabels: {role: infra}}}]}]
",
    )
    .expect("write");
    let run = |to: &str| {
        palisade_in(dir.path(), &["check", "-f", "n.yaml", "--from", "x/a", "--to", to, "--port", "10250"], "")
    };
    let (out, err, code) = run("192.168.10.1");
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("peer: the addresses of nodes with role=infra"), "{out}");
    assert_eq!(run("192.168.10.2").2, 0, "a worker node is not selected");
}
