//! End to end on a real cluster (kind or any other), skipped when none is
//! reachable. It needs `kubectl`, a kubeconfig for a cluster whose nodes
//! can run the Palisade image (for kind: `docker build -t palisade:0.1.0 .`
//! then `kind load docker-image palisade:0.1.0`), and
//! `PALISADE_E2E_CLUSTER=1` so that an unrelated kubeconfig is never used
//! by accident:
//!
//! ```sh
//! PALISADE_E2E_CLUSTER=1 cargo test -p palisade --test cluster_e2e -- --nocapture
//! ```
//!
//! It installs `deploy/`, waits for the DaemonSet, then in a fresh namespace
//! checks with real connections that a default-deny policy closes a server
//! and an allow policy opens it again, and removes the namespace.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn kubectl(args: &[&str]) -> Result<String, String> {
    let out = Command::new("kubectl")
        .args(["--request-timeout=20s"])
        .args(args)
        .output()
        .map_err(|e| format!("kubectl: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!("kubectl {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr)))
    }
}

fn apply(manifest: &str) {
    let mut child = Command::new("kubectl")
        .args(["apply", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("kubectl apply");
    std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), manifest.as_bytes()).expect("write manifest");
    assert!(child.wait().expect("kubectl apply").success(), "kubectl apply failed:\n{manifest}");
}

/// Whether `client` can open a TCP connection to `addr:80` (bounded).
fn connects(ns: &str, addr: &str) -> bool {
    kubectl(&["-n", ns, "exec", "client", "--", "sh", "-c", &format!("nc -z -w 2 {addr} 80")]).is_ok()
}

/// Polls `check` until it returns `want` (bounded); returns the last answer.
fn eventually(want: bool, check: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = check();
        if got == want || Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

struct Namespace(String);

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = kubectl(&["delete", "namespace", &self.0, "--wait=false"]);
    }
}

#[test]
fn policies_are_enforced_on_a_real_cluster() {
    if std::env::var_os("PALISADE_E2E_CLUSTER").is_none() {
        eprintln!("skipped: set PALISADE_E2E_CLUSTER=1 to run against the cluster of your kubeconfig");
        return;
    }
    if let Err(e) = kubectl(&["version"]) {
        eprintln!("skipped: no cluster reachable ({e})");
        return;
    }
    let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy");
    kubectl(&["apply", "-k", &deploy.to_string_lossy()]).expect("install deploy/");
    kubectl(&["-n", "palisade-system", "rollout", "status", "ds/palisade", "--timeout=180s"]).expect("agents ready");

    let ns = Namespace(format!("palisade-e2e-{}", std::process::id()));
    kubectl(&["create", "namespace", &ns.0]).expect("namespace");
    apply(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: server, namespace: {ns}, labels: {{app: server}}}}\n\
         spec: {{containers: [{{name: web, image: nginx:1.27-alpine, ports: [{{containerPort: 80}}]}}]}}\n---\n\
         apiVersion: v1\nkind: Pod\nmetadata: {{name: client, namespace: {ns}, labels: {{app: client}}}}\n\
         spec: {{containers: [{{name: sh, image: busybox:1.36, command: [sleep, '3600']}}]}}\n",
        ns = ns.0
    ));
    kubectl(&["-n", &ns.0, "wait", "--for=condition=Ready", "pod/server", "pod/client", "--timeout=180s"])
        .expect("pods ready");
    let server_ip = kubectl(&["-n", &ns.0, "get", "pod", "server", "-o", "jsonpath={.status.podIP}"]).expect("pod IP");

    assert!(eventually(true, || connects(&ns.0, &server_ip)), "no policy: client reaches server");
    apply(&format!(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: deny, namespace: {}}}\n\
         spec: {{podSelector: {{}}, policyTypes: [Ingress]}}\n",
        ns.0
    ));
    assert!(!eventually(false, || connects(&ns.0, &server_ip)), "default deny: client cannot reach server");
    apply(&format!(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: allow-client, namespace: {}}}\n\
         spec: {{podSelector: {{matchLabels: {{app: server}}}}, ingress: [{{from: [{{podSelector: {{matchLabels: {{app: client}}}}}}], ports: [{{port: 80}}]}}]}}\n",
        ns.0
    ));
    assert!(eventually(true, || connects(&ns.0, &server_ip)), "allow: client reaches server again");
}
