//! Every input read faithfully, or refused loudly: each test starts from a
//! small input on which the analyzer used to give a clean answer from a
//! partial picture (issue #12, part 2).

use palisade_testkit::temp::TempDir;

/// Runs palisade in `dir` with `stdin`; returns (stdout, stderr, status).
fn palisade(dir: &std::path::Path, args: &[&str], stdin: &str) -> (String, String, i32) {
    palisade_testkit::command::run(env!("CARGO_BIN_EXE_palisade"), dir, args, stdin)
}

const PODS: &str = "
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: shop, labels: {app: web}}
status: {phase: Running, podIP: 10.0.0.1}
---
apiVersion: v1
kind: Pod
metadata: {name: db, namespace: shop, labels: {app: db}}
status: {phase: Running, podIP: 10.0.0.2}
---
apiVersion: v1
kind: Pod
metadata: {name: other, namespace: elsewhere, labels: {app: other}}
status: {phase: Running, podIP: 10.0.1.1}
";

fn cluster(name: &str, extra: &str) -> TempDir {
    let dir = TempDir::new(name);
    std::fs::write(dir.path().join("cluster.yaml"), format!("{PODS}---\n{extra}")).expect("write");
    dir
}

/// A CiliumClusterwideNetworkPolicy, and a Calico NetworkPolicy: `check`
/// used to print ALLOW and exit 0. (BaselineAdminNetworkPolicy, the kind
/// this test used first, is now read: see `cluster_policies.rs`.)
#[test]
fn policies_of_other_kinds_make_the_answer_incomplete() {
    let dir = cluster(
        "faithful-kinds",
        "apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata: {name: lockdown-all}
spec:
  endpointSelector: {}
  ingressDeny: [{fromEntities: [all]}]
---
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: lockdown, namespace: shop}
spec: {selector: all()}
",
    );
    let check = ["check", "-f", "cluster.yaml", "--from", "shop/web", "--to", "shop/db", "--port", "80"];
    let (out, err, code) = palisade(dir.path(), &check, "");
    assert_eq!(code, 3, "incomplete: {out}{err}");
    assert!(out.starts_with("ALLOW shop/web"), "{out}");
    assert!(
        out.contains(
            "INCOMPLETE: CiliumClusterwideNetworkPolicy (cilium.io) lockdown-all, \
                      NetworkPolicy (projectcalico.org) shop/lockdown could change this verdict"
        ),
        "{out}"
    );
    assert!(err.contains("warning: INCOMPLETE"), "{err}");
    assert!(!err.contains("error"), "a Calico NetworkPolicy is another kind, not an invalid one: {err}");

    let (out, _, code) = palisade(dir.path(), &[&check[..], &["-o", "json"]].concat(), "");
    assert_eq!(code, 3);
    let json: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(json["allowed"], true);
    assert_eq!(
        json["incomplete"]["ignored_policy_kinds"],
        serde_json::json!({"CiliumClusterwideNetworkPolicy (cilium.io)": 1, "NetworkPolicy (projectcalico.org)": 1})
    );
    assert_eq!(json["incomplete"]["could_change"].as_array().map(Vec::len), Some(2));

    // Only the cluster-wide policy can change a verdict outside shop.
    let (out, _, _) = palisade(
        dir.path(),
        &["check", "-f", "cluster.yaml", "--from", "elsewhere/other", "--to", "10.9.9.9", "--port", "80", "-o", "json"],
        "",
    );
    let json: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(
        json["incomplete"]["could_change"],
        serde_json::json!(["CiliumClusterwideNetworkPolicy (cilium.io) lockdown-all"])
    );

    let queries = "{\"from\":\"shop/web\",\"to\":\"shop/db\",\"port\":80}\n";
    let (out, _, code) = palisade(dir.path(), &["query", "-f", "cluster.yaml"], queries);
    assert_eq!(code, 3);
    assert!(out.trim_end().ends_with(",\"incomplete\":true}"), "{out}");

    for args in [&["matrix", "-f", "cluster.yaml"][..], &["explain", "-f", "cluster.yaml", "shop/db"]] {
        let (out, _, code) = palisade(dir.path(), args, "");
        assert_eq!(code, 3, "{args:?}");
        assert!(out.contains("INCOMPLETE"), "{args:?}: {out}");
    }
    let (out, _, code) = palisade(dir.path(), &["lint", "-f", "cluster.yaml", "-o", "json"], "");
    assert_eq!(code, 1, "a warning");
    assert!(out.contains("\"ignored-policy-kind\""), "{out}");
}

/// `matchLabel:` (a typo) makes the selector empty: every pod. It used to
/// load without a word.
#[test]
fn unknown_fields_are_reported_and_strict_rejects_them() {
    let dir = cluster(
        "faithful-unknown",
        "apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db, namespace: shop}
spec:
  podSelector: {matchLabel: {app: db}}
  ingress:
  - from:
    - podSelector: {matchLabels: {app: web}}
      ports: [{port: 5432}]
",
    );
    let (out, err, code) = palisade(dir.path(), &["lint", "-f", "cluster.yaml"], "");
    assert_eq!(code, 1, "{out}{err}");
    for field in ["spec.podSelector.matchLabel", "spec.ingress[0].from[0].ports"] {
        assert!(
            err.contains(&format!("warning: cluster.yaml: NetworkPolicy shop/db: {field}: unknown field")),
            "{field}: {err}"
        );
        assert!(out.contains(&format!("warning[unknown-field] NetworkPolicy shop/db: {field}")), "{field}: {out}");
    }
    let (_, err, code) = palisade(dir.path(), &["lint", "-f", "cluster.yaml", "--strict"], "");
    assert_eq!(code, 2, "strict: an error");
    assert!(
        err.contains("error: cluster.yaml: NetworkPolicy shop/db: spec.podSelector.matchLabel: unknown field"),
        "{err}"
    );
    let (_, err, code) = palisade(
        dir.path(),
        &["check", "-f", "cluster.yaml", "--strict", "--from", "shop/web", "--to", "shop/db", "--port", "1"],
        "",
    );
    assert_eq!(code, 2, "{err}");
}

/// An empty directory, a directory of non-manifests, `/dev/stdin` and a
/// pipe: each used to report success having read nothing.
#[test]
fn reading_nothing_is_an_error_and_pipes_are_read() {
    let dir = TempDir::new("faithful-nothing");
    std::fs::create_dir(dir.path().join("empty")).expect("dir");
    std::fs::create_dir(dir.path().join("notes")).expect("dir");
    std::fs::write(dir.path().join("notes/readme.yaml"), "# just a comment\n").expect("write");
    for input in ["empty", "notes"] {
        let (_, err, code) = palisade(dir.path(), &["lint", "-f", input], "");
        assert_eq!(code, 2, "{input}: {err}");
        assert!(err.contains("no objects were read"), "{input}: {err}");
    }
    let (out, err, code) = palisade(dir.path(), &["lint", "-f", "/dev/stdin"], PODS);
    assert_eq!(code, 0, "/dev/stdin is read like a file: {out}{err}");
    let (out, err, code) = palisade(dir.path(), &["lint", "-f", "-"], "");
    assert_eq!(code, 2, "{out}{err}");
}

/// kubectl accepts a byte-order mark, merge keys and typed lists whose
/// items carry no kind; the analyzer used to refuse or misread them.
#[test]
fn yaml_and_json_as_kubectl_reads_them() {
    let dir = TempDir::new("faithful-kubectl");
    let bom = format!("\u{feff}{PODS}");
    std::fs::write(dir.path().join("bom.yaml"), &bom).expect("write");
    // Anchors hold within one document: a List shares a template.
    let merge = "
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Pod
  metadata: &meta {name: a, namespace: x, labels: {app: a}}
  status: {phase: Running, podIP: 10.0.0.1}
- apiVersion: v1
  kind: Pod
  metadata:
    <<: *meta
    name: b
  status: {phase: Running, podIP: 10.0.0.2}
";
    std::fs::write(dir.path().join("merge.yaml"), merge).expect("write");
    let typed_list = r#"{"apiVersion":"v1","kind":"PodList","metadata":{},"items":[
        {"metadata":{"name":"a","namespace":"x","labels":{"app":"a"}},"status":{"phase":"Running","podIP":"10.0.0.1"}}]}"#;
    std::fs::write(dir.path().join("list.json"), typed_list).expect("write");
    let (out, err, code) =
        palisade(dir.path(), &["check", "-f", "bom.yaml", "--from", "shop/web", "--to", "shop/db", "--port", "80"], "");
    assert_eq!(code, 0, "{out}{err}");
    let (out, err, code) = palisade(dir.path(), &["explain", "-f", "merge.yaml", "x/b", "-o", "json"], "");
    assert_eq!(code, 0, "{out}{err}");
    let json: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(json["labels"], serde_json::json!({"app": "a"}), "merged from the anchor");
    let (out, err, code) = palisade(dir.path(), &["explain", "-f", "list.json", "x/a"], "");
    assert_eq!(code, 0, "items of a PodList are Pods: {out}{err}");
    let query = "\u{feff}{\"from\":\"shop/web\",\"to\":\"shop/db\",\"port\":80}\n";
    let (out, err, code) = palisade(dir.path(), &["query", "-f", "bom.yaml"], query);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("\"allowed\":true"), "{out}");
}

/// `check -o json` named an end `"default/test-mon (no IP)"`: the name and
/// the address are separate fields now.
#[test]
fn check_json_keeps_names_and_addresses_apart() {
    let dir = cluster("faithful-json", "");
    let (out, err, code) = palisade(
        dir.path(),
        &["check", "-f", "cluster.yaml", "--from", "shop/web", "--to", "10.9.9.9", "--port", "80", "-o", "json"],
        "",
    );
    assert_eq!(code, 0, "{out}{err}");
    let json: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!((&json["from"], &json["from_addr"]), (&serde_json::json!("shop/web"), &serde_json::json!("10.0.0.1")));
    assert_eq!((&json["to"], &json["to_addr"]), (&serde_json::json!("10.9.9.9"), &serde_json::json!("10.9.9.9")));
}

/// A UDP-only port was probed as TCP, and UDP never appeared: the default
/// ports are now those pods declare and policies name, each with its own
/// protocol.
#[test]
fn matrix_shows_each_port_with_its_protocol() {
    let dir = cluster(
        "faithful-matrix",
        "apiVersion: v1
kind: Pod
metadata: {name: api, namespace: shop, labels: {app: api}}
spec: {containers: [{name: c, ports: [{containerPort: 8080}]}]}
status: {phase: Running, podIP: 10.0.0.3}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: dns, namespace: shop}
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress: [{ports: [{port: 53, protocol: UDP}]}]
",
    );
    let (out, err, code) = palisade(dir.path(), &["matrix", "-f", "cluster.yaml", "-o", "json"], "");
    assert_eq!(code, 0, "{out}{err}");
    let json: serde_json::Value = serde_json::from_str(&out).expect("json");
    let cases: Vec<(u64, String)> = json["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .map(|c| (c["port"].as_u64().expect("port"), c["protocol"].as_str().expect("protocol").to_string()))
        .collect();
    assert_eq!(cases, [(8080, "TCP".to_string()), (53, "UDP".to_string())]);
    let (out, _, _) = palisade(dir.path(), &["matrix", "-f", "cluster.yaml", "-o", "json", "--ports", "53"], "");
    let json: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(json["cases"][0]["protocol"], "TCP", "explicit ports default to TCP");
}

/// `check` refused a hostNetwork pod named as `ns/pod` ("not a policy
/// endpoint"). It is its node's address: ipBlock peers match it, pod and
/// namespace selectors do not, and traffic with a pod on its own node is
/// never filtered.
#[test]
fn a_host_network_pod_is_its_nodes_address() {
    let dir = TempDir::new("faithful-hostnetwork");
    std::fs::write(
        dir.path().join("cluster.yaml"),
        "apiVersion: v1
kind: Pod
metadata: {name: agent, namespace: kube-system, labels: {app: agent}}
spec: {hostNetwork: true, nodeName: n1, containers: [{name: c}]}
status: {phase: Running, hostIP: 192.168.46.2, podIP: 192.168.46.2, podIPs: [{ip: 192.168.46.2}]}
---
apiVersion: v1
kind: Pod
metadata: {name: db, namespace: shop, labels: {app: db}}
spec: {nodeName: n2, containers: [{name: c}]}
status: {phase: Running, podIP: 10.0.2.1}
---
apiVersion: v1
kind: Pod
metadata: {name: cache, namespace: shop, labels: {app: cache}}
spec: {nodeName: n2, containers: [{name: c}]}
status: {phase: Running, podIP: 10.0.2.2}
---
apiVersion: v1
kind: Pod
metadata: {name: local, namespace: shop, labels: {app: local}}
spec: {nodeName: n1, containers: [{name: c}]}
status: {phase: Running, podIP: 10.0.1.1}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db, namespace: shop}
spec:
  podSelector: {matchLabels: {app: db}}
  ingress: [{from: [{ipBlock: {cidr: 192.168.46.0/24}}]}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: cache, namespace: shop}
spec:
  podSelector: {matchLabels: {app: cache}}
  ingress: [{from: [{namespaceSelector: {}, podSelector: {matchLabels: {app: agent}}}]}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny, namespace: shop}
spec: {podSelector: {matchLabels: {app: local}}, policyTypes: [Ingress]}
",
    )
    .expect("write");
    let check = |to: &str| {
        palisade(
            dir.path(),
            &["check", "-f", "cluster.yaml", "--from", "kube-system/agent", "--to", to, "--port", "80"],
            "",
        )
    };
    let (out, err, code) = check("shop/db");
    assert_eq!(code, 0, "the ipBlock admits the node's address: {out}{err}");
    assert!(
        out.starts_with("ALLOW kube-system/agent (hostNetwork, node address 192.168.46.2) -> shop/db (10.0.2.1)"),
        "{out}"
    );
    let (out, _, code) = check("shop/cache");
    assert_eq!(code, 1, "a podSelector does not match a hostNetwork pod: {out}");
    let (out, _, code) = check("shop/local");
    assert_eq!(code, 0, "same node: {out}");
    assert!(out.contains("same node n1"), "{out}");
    let (out, _, _) = palisade(
        dir.path(),
        &[
            "check",
            "-f",
            "cluster.yaml",
            "--from",
            "kube-system/agent",
            "--to",
            "shop/db",
            "--port",
            "80",
            "-o",
            "json",
        ],
        "",
    );
    let json: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(
        (&json["from"], &json["from_addr"]),
        (&serde_json::json!("kube-system/agent"), &serde_json::json!("192.168.46.2"))
    );
    let queries = "{\"from\":\"kube-system/agent\",\"to\":\"shop/cache\",\"port\":80}\n{\"from\":\"shop/local\",\"to\":\"kube-system/agent\",\"port\":80}\n";
    let (out, err, code) = palisade(dir.path(), &["query", "-f", "cluster.yaml"], queries);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).expect("json line")).collect();
    assert_eq!(lines[0]["allowed"], false);
    assert_eq!(lines[1]["allowed"], true);
    assert!(lines[1]["reason"].as_str().expect("reason").starts_with("same node"), "{out}");
}

/// `lint` knows its limits: pods an operator creates are not in a dump,
/// hostNetwork pods are not "no pod", an annotation suppresses a finding,
/// and JSON findings name their file.
#[test]
fn lint_knows_its_limits() {
    let dir = TempDir::new("faithful-lint");
    std::fs::write(
        dir.path().join("rollout.yaml"),
        "apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: web, namespace: shop}
spec: {template: {metadata: {labels: {app: web}}, spec: {containers: [{name: c, image: i}]}}}
",
    )
    .expect("write");
    std::fs::write(
        dir.path().join("policies.yaml"),
        "apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web, namespace: shop}
spec: {podSelector: {matchLabels: {app: web}}, policyTypes: [Ingress]}
",
    )
    .expect("write");
    let (out, err, code) = palisade(dir.path(), &["lint", "-f", "."], "");
    assert_eq!(code, 0, "only information: {out}{err}");
    assert!(out.contains("info[policy-selects-no-pod] NetworkPolicy shop/web"), "{out}");
    assert!(out.contains("which also holds 1 Rollout"), "{out}");
    let (out, _, _) = palisade(dir.path(), &["lint", "-f", ".", "-o", "json"], "");
    let json: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(json[0]["file"], "./policies.yaml", "{out}");

    std::fs::remove_file(dir.path().join("rollout.yaml")).expect("remove");
    std::fs::write(
        dir.path().join("agent.yaml"),
        "apiVersion: v1
kind: Pod
metadata: {name: agent, namespace: shop, labels: {app: web}}
spec: {hostNetwork: true, containers: [{name: c}]}
status: {phase: Running, podIP: 192.168.46.2}
",
    )
    .expect("write");
    let (out, _, code) = palisade(dir.path(), &["lint", "-f", "."], "");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("selects only hostNetwork pods (shop/agent)"), "{out}");

    std::fs::write(
        dir.path().join("policies.yaml"),
        "apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web, namespace: shop, annotations: {palisade.dev/lint-ignore: 'policy-selects-no-pod, rule-shadowed'}}
spec: {podSelector: {matchLabels: {app: web}}, policyTypes: [Ingress]}
",
    )
    .expect("write");
    let (out, _, code) = palisade(dir.path(), &["lint", "-f", "."], "");
    assert_eq!(code, 0, "suppressed: {out}");
    assert!(!out.contains("policy-selects-no-pod"), "{out}");
}
