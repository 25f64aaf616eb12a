//! One large manifest: `policies` NetworkPolicies over `pods` pods of
//! node `lab`, the shape of a large real file (the large-change
//! measurements of the dataplane and the agent).

use std::fmt::Write as _;

/// `pods` pods (node `lab`, addresses 10.1.x.y) in 10 namespaces and
/// `policies` policies, each selecting a tenth of a namespace's pods,
/// admitting another tenth and an ipBlock on a numeric and a named port,
/// with an egress rule to another namespace.
#[must_use]
pub fn manifests(policies: usize, pods: usize) -> String {
    let mut out = String::new();
    for n in 0..10 {
        let _ =
            write!(out, "---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: ns{n}, labels: {{team: t{n}}}}}\n");
    }
    for i in 0..pods {
        let _ = write!(
            out,
            "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: pod{i}, namespace: ns{}, labels: {{app: app{}, tier: t{}}}}}\n\
             spec: {{nodeName: lab, containers: [{{name: c, image: i, ports: [{{name: http, containerPort: 8080}}]}}]}}\n\
             status: {{phase: Running, podIP: 10.1.{}.{}, podIPs: [{{ip: 10.1.{}.{}}}]}}\n",
            i % 10,
            i % 10,
            i % 3,
            i / 250,
            i % 250 + 1,
            i / 250,
            i % 250 + 1
        );
    }
    for j in 0..policies {
        let _ = write!(
            out,
            "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: p{j}, namespace: ns{}}}\n\
             spec:\n  podSelector: {{matchLabels: {{app: app{}}}}}\n  policyTypes: [Ingress, Egress]\n  ingress:\n  \
             - from: [{{podSelector: {{matchLabels: {{app: app{}}}}}}}, {{ipBlock: {{cidr: 192.168.{}.0/24}}}}]\n    \
             ports: [{{port: {}}}, {{port: http}}]\n  egress:\n  - to: [{{namespaceSelector: {{matchLabels: {{team: t{}}}}}}}]\n",
            j % 10,
            j % 10,
            (j + 1) % 10,
            j % 256,
            1000 + j % 2000,
            (j + 3) % 10
        );
    }
    out
}

/// A synthetic cluster written as the files a user hands the analyzer:
/// `dir/cluster.json`, one `kind: List` JSON document as `kubectl get
/// namespaces,pods,networkpolicies -A -o json` prints it (indented), and
/// `dir/cluster.yaml`, the same objects as multi-document block YAML.
///
/// # Panics
/// When the files cannot be written.
pub fn write_cluster(size: palisade_policy::synth::Size, dir: &std::path::Path) {
    use std::io::Write as _;
    let cluster = palisade_policy::synth::generate(size, 1);
    let items = palisade_manifests::encode::cluster_manifests(&cluster.namespaces, &cluster.pods, &cluster.policies);
    let list =
        serde_json::json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""}, "items": items});
    let create = |name: &str| std::io::BufWriter::new(std::fs::File::create(dir.join(name)).expect("create"));
    let mut json = create("cluster.json");
    serde_json::to_writer_pretty(&mut json, &list).expect("write JSON");
    json.flush().expect("write JSON");
    let mut yaml = create("cluster.yaml");
    for item in &items {
        writeln!(yaml, "---").expect("write YAML");
        serde_norway::to_writer(&mut yaml, item).expect("write YAML");
    }
    yaml.flush().expect("write YAML");
}
