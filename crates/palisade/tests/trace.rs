//! Live trace in the lab, with real packets: `lab trace` follows a
//! generated packet through the node's chains and maps the path to
//! policies and rules; `trace` on the node waits for the next real packet.
//! Expected paths come from the policies (examples/three-tier): the
//! frontend may reach the backend (the frontend's egress rule 0 and the
//! backend's ingress rule 0 admit it), not the database (isolated, no
//! rule admits it). The marker table is gone afterwards. Root only.

mod lab_common;

use lab_common::{LabGuard, palisade};
use serde_json::Value;

fn trace(from: &str, to: &str, port: &str, protocol: &str) -> (Value, i32) {
    let (out, err, code) =
        palisade(&["lab", "trace", "--from", from, "--to", to, "--port", port, "--protocol", protocol, "-o", "json"]);
    (serde_json::from_str(&out).unwrap_or_else(|e| panic!("trace json: {e}\n{out}\n{err}")), code)
}

fn node() -> String {
    format!("{}node", lab_common::state()["prefix"].as_str().expect("prefix"))
}

fn marker_left() -> bool {
    let out = std::process::Command::new("ip").args(["netns", "exec", &node(), "nft", "list", "tables"]).output();
    String::from_utf8_lossy(&out.expect("nft").stdout).contains("palisade-trace")
}

#[test]
#[ignore = "root: the lab (scripts/test runs it as root)"]
fn traces_map_the_path_to_policies_and_agree_with_the_engine() {
    let _lab = LabGuard::take();
    let (_, err, code) = palisade(&["lab", "up", "-f", "examples/three-tier/base", "-f", "examples/three-tier/steps"]);
    assert_eq!(code, 0, "{err}");

    let (r, code) = trace("shop/frontend", "shop/backend", "9000", "tcp");
    assert_eq!((code, &r["allowed"], &r["agrees"]), (0, &Value::Bool(true), &Value::Bool(true)), "{r}");
    assert_eq!(
        r["sides"],
        serde_json::json!([
            "egress shop/frontend: policy shop/frontend rule 0 -> accept",
            "ingress shop/backend: policy shop/backend rule 0 -> accept"
        ])
    );

    let (r, code) = trace("shop/frontend", "shop/database", "5432", "tcp");
    assert_eq!((code, &r["allowed"], &r["agrees"]), (0, &Value::Bool(false), &Value::Bool(true)), "{r}");
    assert_eq!(
        r["sides"],
        serde_json::json!([
            "egress shop/frontend: isolated by shop/allow-dns, shop/default-deny, shop/frontend, no rule admits -> drop"
        ])
    );

    // UDP, to a pod no policy isolates.
    let (r, code) = trace("shop/backend", "kube-system/coredns", "53", "udp");
    assert_eq!(code, 0, "{r}");
    assert_eq!(
        r["sides"],
        serde_json::json!([
            "egress shop/backend: policy shop/allow-dns rule 0 -> accept",
            "ingress kube-system/coredns: not isolated -> accept"
        ])
    );
    assert!(!marker_left(), "the trace marker table is removed");
}

#[test]
#[ignore = "root: the lab (scripts/test runs it as root)"]
fn a_cluster_policy_deny_is_named_in_the_trace() {
    let _lab = LabGuard::take();
    let (_, err, code) =
        palisade(&["lab", "up", "-f", "examples/cluster-policies/base", "-f", "examples/cluster-policies/steps"]);
    assert_eq!(code, 0, "{err}");
    // examples/cluster-policies: only monitoring may reach monitoring (an
    // Admin-tier Deny for the rest).
    let (r, code) = trace("dev/client", "monitoring/prometheus", "9090", "tcp");
    assert_eq!(code, 0, "{r}");
    assert_eq!(r["allowed"], false, "{r}");
    let sides = r["sides"].to_string();
    assert!(sides.contains("ClusterNetworkPolicy") && sides.contains("Deny -> drop"), "{r}");
}

#[test]
#[ignore = "root: the lab (scripts/test runs it as root)"]
fn trace_on_the_node_waits_for_the_next_real_packet() {
    let _lab = LabGuard::take();
    let (_, err, code) = palisade(&["lab", "up", "-f", "examples/three-tier/base", "-f", "examples/three-tier/steps"]);
    assert_eq!(code, 0, "{err}");
    let st = lab_common::state();
    let manifests = format!("{}/manifests", st["workdir"].as_str().expect("workdir"));
    let db = st["pods"]["shop/database"]["plan"]["addrs"][0].as_str().expect("address").to_string();
    let frontend_ns = st["pods"]["shop/frontend"]["netns"].as_str().expect("netns").to_string();
    let node = node();
    let waiting = std::process::Command::new("ip")
        .args(["netns", "exec", &node, env!("CARGO_BIN_EXE_palisade"), "trace", "-f", &manifests])
        .args(["--from", "shop/frontend", "--to", "shop/database", "--port", "5432", "--timeout", "5"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("palisade trace");
    std::thread::sleep(std::time::Duration::from_millis(700));
    let to: std::net::SocketAddr = format!("{db}:5432").parse().unwrap();
    palisade_lab::netns::run_in(&frontend_ns, move || {
        let _ = std::net::TcpStream::connect_timeout(&to, std::time::Duration::from_millis(300));
    });
    let out = waiting.wait_with_output().expect("trace ends");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("path: egress shop/frontend: isolated by"), "{text}");
    assert!(text.contains("traced: DENY; engine: DENY (they agree)"), "{text}");
    assert!(!marker_left(), "the trace marker table is removed");
}
