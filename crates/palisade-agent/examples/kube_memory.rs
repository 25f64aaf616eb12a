//! Agent memory per pod: a recorded-style stream of 50,000 Pod objects as
//! the API serves them (managedFields, owner references, annotations, two
//! containers with env, resources and mounts, conditions and container
//! statuses) goes through the agent's path — deserialized as kube's watcher
//! does (`DynamicObject`), converted at the edge, applied to the index — and
//! the process's resident memory is read before and after.
//!
//! `cargo run --release -p palisade-agent --example kube_memory [PODS]`

#![allow(clippy::cast_precision_loss, reason = "reporting ratios of byte counts")]

use kube::api::DynamicObject;
use palisade_agent::apply_changes;
use palisade_agent::kube::convert;
use palisade_agent::kube::state::{KubeState, WatchEvent};
use palisade_policy::{ClusterIndex, ObjectKind};
use palisade_testkit::memory::rss_bytes;
use serde_json::json;

/// One pod, in the shape and size of what a real API server returns.
fn pod_json(i: usize) -> String {
    let ns = format!("team-{}", i % 500);
    let app = format!("app-{}", i % 97);
    let name = format!("{app}-7d9f8c6b5-{i:05x}");
    let tier = ["web", "api", "db"][i % 3];
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": name, "namespace": ns, "uid": format!("8c1c1f4e-0d7a-4f6e-9a51-{i:012x}"),
            "resourceVersion": format!("{}", 100_000 + i), "creationTimestamp": "2026-11-01T10:00:00Z",
            "generateName": format!("{app}-7d9f8c6b5-"),
            "labels": {"app": app, "pod-template-hash": "7d9f8c6b5", "tier": tier,
                       "version": format!("v{}", i % 4), "team": format!("team-{}", i % 500)},
            "annotations": {"kubectl.kubernetes.io/restartedAt": "2026-11-01T10:00:00Z",
                            "prometheus.io/scrape": "true", "prometheus.io/port": "9090"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": format!("{app}-7d9f8c6b5"),
                                 "uid": "1f0e6f3a-5b1c-4c7e-8d2a-0a9b8c7d6e5f", "controller": true, "blockOwnerDeletion": true}],
            "managedFields": [{"manager": "kube-controller-manager", "operation": "Update", "apiVersion": "v1",
                "time": "2026-11-01T10:00:00Z", "fieldsType": "FieldsV1",
                "fieldsV1": {"f:metadata": {"f:generateName": {}, "f:labels": {".": {}, "f:app": {}, "f:pod-template-hash": {}}},
                             "f:spec": {"f:containers": {"k:{\"name\":\"app\"}": {".": {}, "f:image": {}, "f:ports": {}}}}}},
                {"manager": "kubelet", "operation": "Update", "apiVersion": "v1", "time": "2026-11-01T10:00:05Z",
                 "fieldsType": "FieldsV1", "subresource": "status",
                 "fieldsV1": {"f:status": {"f:conditions": {}, "f:containerStatuses": {}, "f:podIP": {}, "f:podIPs": {}}}}]
        },
        "spec": {
            "nodeName": format!("node-{}", i % 100), "serviceAccountName": "default", "restartPolicy": "Always",
            "containers": [
                {"name": "app", "image": format!("registry.example.com/{app}:1.2.{}", i % 10),
                 "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}, {"name": "metrics", "containerPort": 9090, "protocol": "TCP"}],
                 "env": [{"name": "LOG_LEVEL", "value": "info"}, {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                 "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
                 "volumeMounts": [{"name": "kube-api-access", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": true}]},
                {"name": "sidecar", "image": "registry.example.com/proxy:2.0", "ports": [{"name": "proxy", "containerPort": 15001}],
                 "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}}}
            ],
            "volumes": [{"name": "kube-api-access", "projected": {"sources": [{"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}}]}}]
        },
        "status": {
            "phase": "Running", "hostIP": format!("192.168.{}.{}", (i / 250) % 250, i % 250),
            "podIP": format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255),
            "podIPs": [{"ip": format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255)}],
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-11-01T10:00:05Z"},
                           {"type": "ContainersReady", "status": "True", "lastTransitionTime": "2026-11-01T10:00:05Z"}],
            "containerStatuses": [{"name": "app", "ready": true, "restartCount": 0, "image": "x", "imageID": "sha256:abc",
                                   "containerID": format!("containerd://{i:064x}"), "started": true,
                                   "state": {"running": {"startedAt": "2026-11-01T10:00:04Z"}}}]
        }
    })
    .to_string()
}

fn feed(state: &mut KubeState, index: &mut ClusterIndex, range: std::ops::Range<usize>) -> usize {
    let mut bytes = 0;
    for i in range {
        let text = pod_json(i);
        bytes += text.len();
        let object: DynamicObject = serde_json::from_str(&text).expect("a pod");
        let (key, converted) = convert(ObjectKind::Pod, &object);
        apply_changes(index, state.handle(WatchEvent::InitApply(key, converted)).changes);
    }
    bytes
}

fn main() {
    let pods: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(50_000);
    let warm = 1_000.min(pods);
    let mut state = KubeState::default();
    let mut index = ClusterIndex::new();
    apply_changes(&mut index, state.handle(WatchEvent::InitStart(ObjectKind::Pod)).changes);
    feed(&mut state, &mut index, 0..warm);
    let before = rss_bytes();
    let wire = feed(&mut state, &mut index, warm..pods);
    apply_changes(&mut index, state.handle(WatchEvent::InitDone(ObjectKind::Pod)).changes);
    let after = rss_bytes();
    let per_pod = (after.saturating_sub(before)) as f64 / (pods - warm) as f64;
    println!("pods: {pods} (as served: {:.0} bytes of JSON each)", wire as f64 / (pods - warm) as f64);
    println!(
        "resident memory: {:.1} MiB after {warm} pods, {:.1} MiB after {pods}",
        before as f64 / 1_048_576.0,
        after as f64 / 1_048_576.0
    );
    println!("agent memory per pod: {per_pod:.0} bytes (target < 2048)");
    assert_eq!(index.counts().1, pods, "every pod indexed");
}
