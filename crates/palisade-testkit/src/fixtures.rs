//! Small clusters as manifests, for tests that add their policies.

/// Namespace `prod` with two running pods, `web` (10.0.0.1, `app: web`)
/// and `db` (10.0.0.2, `app: db`); policies follow as more documents.
pub const WEB_AND_DB: &str = "
apiVersion: v1
kind: Namespace
metadata: {name: prod}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: prod, labels: {app: web}}
spec: {containers: [{name: c, image: i}]}
status: {podIP: 10.0.0.1, podIPs: [{ip: 10.0.0.1}], phase: Running}
---
apiVersion: v1
kind: Pod
metadata: {name: db, namespace: prod, labels: {app: db}}
spec: {containers: [{name: c, image: i}]}
status: {podIP: 10.0.0.2, podIPs: [{ip: 10.0.0.2}], phase: Running}
";
