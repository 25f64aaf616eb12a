//! A mock Kubernetes API server for tests: lists and chunked watch streams
//! in the API server's wire format, driven by the test.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;

/// A resource the mock serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resource {
    Namespaces,
    Pods,
    NetworkPolicies,
    /// Served only by a mock started with the policy API.
    ClusterNetworkPolicies,
    /// Served only by a mock started with the policy API.
    AdminNetworkPolicies,
    /// Served only by a mock started with the policy API.
    BaselineAdminNetworkPolicies,
    Nodes,
}

/// Resources the mock knows.
const RESOURCES: usize = 7;

impl Resource {
    const ALL: [Resource; RESOURCES] = [
        Resource::Namespaces,
        Resource::Pods,
        Resource::NetworkPolicies,
        Resource::ClusterNetworkPolicies,
        Resource::AdminNetworkPolicies,
        Resource::BaselineAdminNetworkPolicies,
        Resource::Nodes,
    ];

    fn slot(self) -> usize {
        self as usize
    }

    fn path(self) -> &'static str {
        match self {
            Resource::Namespaces => "/api/v1/namespaces",
            Resource::Pods => "/api/v1/pods",
            Resource::NetworkPolicies => "/apis/networking.k8s.io/v1/networkpolicies",
            Resource::ClusterNetworkPolicies => "/apis/policy.networking.k8s.io/v1alpha2/clusternetworkpolicies",
            Resource::AdminNetworkPolicies => "/apis/policy.networking.k8s.io/v1alpha1/adminnetworkpolicies",
            Resource::BaselineAdminNetworkPolicies => {
                "/apis/policy.networking.k8s.io/v1alpha1/baselineadminnetworkpolicies"
            }
            Resource::Nodes => "/api/v1/nodes",
        }
    }

    /// The kind (`Pod`, …).
    #[must_use]
    pub fn kind(self) -> &'static str {
        match self {
            Resource::Namespaces => "Namespace",
            Resource::Pods => "Pod",
            Resource::NetworkPolicies => "NetworkPolicy",
            Resource::ClusterNetworkPolicies => "ClusterNetworkPolicy",
            Resource::AdminNetworkPolicies => "AdminNetworkPolicy",
            Resource::BaselineAdminNetworkPolicies => "BaselineAdminNetworkPolicy",
            Resource::Nodes => "Node",
        }
    }

    /// The `apiVersion` of its objects.
    #[must_use]
    pub fn api_version(self) -> &'static str {
        match self {
            Resource::NetworkPolicies => "networking.k8s.io/v1",
            Resource::ClusterNetworkPolicies => "policy.networking.k8s.io/v1alpha2",
            Resource::AdminNetworkPolicies | Resource::BaselineAdminNetworkPolicies => {
                "policy.networking.k8s.io/v1alpha1"
            }
            _ => "v1",
        }
    }

    /// Whether it belongs to the `policy.networking.k8s.io` API.
    fn policy_api(self) -> bool {
        self.api_version().starts_with("policy.networking.k8s.io/")
    }
}

/// The `APIResourceList` of a `policy.networking.k8s.io` version, as an API
/// server with the CRDs installed serves it.
fn policy_resource_list(group_version: &str) -> Option<Value> {
    let resources: Vec<Value> = Resource::ALL
        .into_iter()
        .filter(|r| r.api_version() == group_version)
        .map(|r| {
            let name = r.path().rsplit('/').next().unwrap_or_default();
            json!({"name": name, "singularName": r.kind().to_lowercase(), "namespaced": false,
                   "kind": r.kind(), "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]})
        })
        .collect();
    (!resources.is_empty())
        .then(|| json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}))
}

fn key(object: &Value) -> String {
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    match object["metadata"]["namespace"].as_str() {
        Some(ns) => format!("{ns}/{name}"),
        None => name.to_string(),
    }
}

#[derive(Clone, Debug)]
enum Cmd {
    /// A watch event line, with the resourceVersion it carries.
    Event(u64, String),
    /// Close the connection without ending the stream.
    Drop,
    /// Send `410 Expired` and close.
    Expire,
}

#[derive(Debug)]
struct Shared {
    rv: u64,
    objects: [BTreeMap<String, Value>; RESOURCES],
    /// Delivered events, for watches that start from an older version.
    log: [Vec<(u64, String)>; RESOURCES],
    /// Watches from before this version get 410.
    expired_before: [u64; RESOURCES],
    /// Lists wait while held.
    hold: [bool; RESOURCES],
    watchers: [broadcast::Sender<Cmd>; RESOURCES],
    /// Whether it serves `policy.networking.k8s.io` (the CRDs are installed).
    policy_api: bool,
    /// Events created through the API.
    events: Vec<Value>,
    /// ConfigMaps applied through the API, by `namespace/name`.
    configmaps: BTreeMap<String, Value>,
    /// Server-side applies of ConfigMaps received.
    configmap_writes: usize,
}

/// The mock server; actions take effect at once.
#[derive(Debug)]
pub struct Mock {
    addr: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    task: tokio::task::JoinHandle<()>,
}

impl Mock {
    /// Listens on 127.0.0.1 (of the current network namespace), without
    /// the `policy.networking.k8s.io` API (a cluster without its CRDs).
    pub async fn start() -> Mock {
        Self::start_serving(false).await
    }

    /// [`Mock::start`], serving the `policy.networking.k8s.io` API
    /// (ClusterNetworkPolicy v1alpha2, AdminNetworkPolicy and
    /// BaselineAdminNetworkPolicy v1alpha1), or not.
    pub async fn start_serving(policy_api: bool) -> Mock {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let shared = Arc::new(Mutex::new(Shared {
            rv: 1,
            objects: Default::default(),
            log: Default::default(),
            expired_before: [0; RESOURCES],
            hold: [false; RESOURCES],
            watchers: std::array::from_fn(|_| broadcast::channel(1024).0),
            events: Vec::new(),
            configmaps: BTreeMap::new(),
            configmap_writes: 0,
            policy_api,
        }));
        let server = shared.clone();
        let task = tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                tokio::spawn(serve(conn, server.clone()));
            }
        });
        Mock { addr, shared, task }
    }

    /// The server's address.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A kube client for this server (built inside the runtime: it spawns a task).
    #[expect(clippy::unused_async, reason = "kube's client spawns a task, so it must be built in the runtime")]
    pub async fn client(&self) -> kube::Client {
        let uri: http::Uri = format!("http://{}", self.addr).parse().expect("uri");
        kube::Client::try_from(kube::Config::new(uri)).expect("client")
    }

    fn change(&self, r: Resource, mut object: Value, deliver: Option<&str>) {
        let mut s = self.shared.lock().expect("lock");
        s.rv += 1;
        let rv = s.rv;
        object["metadata"]["resourceVersion"] = json!(rv.to_string());
        let k = key(&object);
        let kind = deliver.unwrap_or(if s.objects[r.slot()].contains_key(&k) { "MODIFIED" } else { "ADDED" });
        if kind == "DELETED" {
            s.objects[r.slot()].remove(&k);
        } else {
            s.objects[r.slot()].insert(k, object.clone());
        }
        if deliver != Some("SILENT") {
            object["kind"] = json!(r.kind());
            object["apiVersion"] = json!(r.api_version());
            let line = json!({"type": kind, "object": object}).to_string();
            s.log[r.slot()].push((rv, line.clone()));
            let _ = s.watchers[r.slot()].send(Cmd::Event(rv, line));
        }
    }

    /// Adds or replaces an object; watchers get ADDED or MODIFIED.
    pub fn put(&self, r: Resource, object: Value) {
        self.change(r, object, None);
    }

    /// Adds or replaces an object without telling watchers (a missed event).
    pub fn put_silently(&self, r: Resource, object: Value) {
        self.change(r, object, Some("SILENT"));
    }

    fn remove(&self, r: Resource, key: &str, silently: bool) {
        let object = self.shared.lock().expect("lock").objects[r.slot()].get(key).cloned().expect("object to delete");
        if silently {
            let mut s = self.shared.lock().expect("lock");
            s.rv += 1;
            s.objects[r.slot()].remove(key);
        } else {
            self.change(r, object, Some("DELETED"));
        }
    }

    /// Deletes an object; watchers get DELETED.
    pub fn delete(&self, r: Resource, key: &str) {
        self.remove(r, key, false);
    }

    /// Deletes an object without telling watchers.
    pub fn delete_silently(&self, r: Resource, key: &str) {
        self.remove(r, key, true);
    }

    /// Sends a BOOKMARK at the current version.
    pub fn bookmark(&self, r: Resource) {
        let s = self.shared.lock().expect("lock");
        let object =
            json!({"kind": r.kind(), "apiVersion": r.api_version(), "metadata": {"resourceVersion": s.rv.to_string()}});
        let _ = s.watchers[r.slot()].send(Cmd::Event(s.rv, json!({"type": "BOOKMARK", "object": object}).to_string()));
    }

    /// Drops every open watch of `r` mid-stream.
    pub fn drop_watches(&self, r: Resource) {
        let _ = self.shared.lock().expect("lock").watchers[r.slot()].send(Cmd::Drop);
    }

    /// Expires every older version: open watches get `410 Expired`, and so
    /// does any watch that starts before the current version.
    pub fn expire(&self, r: Resource) {
        let mut s = self.shared.lock().expect("lock");
        s.expired_before[r.slot()] = s.rv;
        let _ = s.watchers[r.slot()].send(Cmd::Expire);
    }

    /// Holds (or releases) list responses of `r`.
    pub fn hold(&self, r: Resource, on: bool) {
        self.shared.lock().expect("lock").hold[r.slot()] = on;
    }

    /// The objects `r` holds now.
    #[must_use]
    pub fn objects(&self, r: Resource) -> Vec<Value> {
        self.shared.lock().expect("lock").objects[r.slot()].values().cloned().collect()
    }

    /// Events created so far.
    #[must_use]
    pub fn events(&self) -> Vec<Value> {
        self.shared.lock().expect("lock").events.clone()
    }

    /// ConfigMaps applied so far, and how many applies were received.
    #[must_use]
    pub fn configmaps(&self) -> (Vec<Value>, usize) {
        let s = self.shared.lock().expect("lock");
        (s.configmaps.values().cloned().collect(), s.configmap_writes)
    }

    /// Stops accepting connections.
    pub async fn shutdown(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

/// Reads one request head (bounded); `None` at end of stream.
async fn request(conn: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 64 * 1024 || conn.read(&mut byte).await.ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    Some(String::from_utf8_lossy(&head).into_owned())
}

async fn chunk(conn: &mut TcpStream, line: &str) -> std::io::Result<()> {
    let data = format!("{line}\n");
    conn.write_all(format!("{:x}\r\n{data}\r\n", data.len()).as_bytes()).await?;
    conn.flush().await
}

async fn serve(mut conn: TcpStream, shared: Arc<Mutex<Shared>>) {
    while let Some(head) = request(&mut conn).await {
        let target = head.split_whitespace().nth(1).unwrap_or("/").to_string();
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        if head.starts_with("POST ") && path.ends_with("/events") {
            if !create_event(&mut conn, &head, &shared).await {
                return;
            }
            continue;
        }
        if path.contains("/configmaps") {
            if !configmaps(&mut conn, &head, path, &shared).await {
                return;
            }
            continue;
        }
        let policy_api = shared.lock().expect("lock").policy_api;
        // API discovery: the group list (no groups beyond the built-in ones
        // served here), and the policy API's resource lists when served.
        let discovery = if path == "/apis" {
            Some(json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": []}))
        } else {
            path.strip_prefix("/apis/").filter(|_| policy_api).and_then(policy_resource_list)
        };
        if let Some(body) = discovery {
            let body = body.to_string();
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            if conn.write_all(response.as_bytes()).await.is_err() {
                return;
            }
            continue;
        }
        let params: BTreeMap<&str, &str> = query.split('&').filter_map(|p| p.split_once('=')).collect();
        let served = Resource::ALL.into_iter().find(|r| r.path() == path && (policy_api || !r.policy_api()));
        let Some(r) = served else {
            let body =
                json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404})
                    .to_string();
            let _ = conn
                .write_all(
                    format!(
                        "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    )
                    .as_bytes(),
                )
                .await;
            continue;
        };
        if params.get("watch") == Some(&"true") {
            let from: u64 = params.get("resourceVersion").and_then(|v| v.parse().ok()).unwrap_or(0);
            watch(conn, &shared, r, from).await;
            return;
        }
        // A list; held lists wait (bounded).
        for _ in 0..1500 {
            if !shared.lock().expect("lock").hold[r.slot()] {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let body = {
            let s = shared.lock().expect("lock");
            json!({
                "kind": format!("{}List", r.kind()),
                "apiVersion": r.api_version(),
                "metadata": {"resourceVersion": s.rv.to_string()},
                "items": s.objects[r.slot()].values().collect::<Vec<_>>(),
            })
            .to_string()
        };
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        if conn.write_all(response.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// A request's body (bounded by its `Content-Length`, at most 1 MiB).
async fn body(conn: &mut TcpStream, head: &str) -> Option<Value> {
    let length: usize = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string()))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
        .min(1 << 20);
    let mut body = vec![0u8; length];
    conn.read_exact(&mut body).await.ok()?;
    Some(serde_json::from_slice(&body).unwrap_or(Value::Null))
}

async fn answer(conn: &mut TcpStream, status: &str, body: &Value) -> bool {
    let body = body.to_string();
    let response =
        format!("HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len());
    conn.write_all(response.as_bytes()).await.is_ok()
}

/// ConfigMaps: `PATCH …/namespaces/{ns}/configmaps/{name}` (a server-side
/// apply: the body replaces the object) and `GET …/namespaces/{ns}/configmaps`
/// (a list, filtered by a `key=value` label selector).
async fn configmaps(conn: &mut TcpStream, head: &str, path: &str, shared: &Arc<Mutex<Shared>>) -> bool {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let target = head.split_whitespace().nth(1).unwrap_or_default();
    if let ["api", "v1", "namespaces", ns, "configmaps", name] = parts.as_slice()
        && head.starts_with("PATCH ")
    {
        let Some(mut object) = body(conn, head).await else { return false };
        object["metadata"]["name"] = json!(name);
        object["metadata"]["namespace"] = json!(ns);
        {
            let mut s = shared.lock().expect("lock");
            s.configmap_writes += 1;
            s.configmaps.insert(format!("{ns}/{name}"), object.clone());
        }
        return answer(conn, "200 OK", &object).await;
    }
    if let ["api", "v1", "namespaces", ns, "configmaps"] = parts.as_slice() {
        let selector = target.split_once("labelSelector=").map(|(_, s)| s.split('&').next().unwrap_or_default());
        let selector = selector.map(|s| s.replace("%3D", "=").replace("%2F", "/"));
        let items: Vec<Value> = {
            let s = shared.lock().expect("lock");
            s.configmaps
                .iter()
                .filter(|(k, _)| k.starts_with(&format!("{ns}/")))
                .map(|(_, v)| v.clone())
                .filter(|v| {
                    selector
                        .as_deref()
                        .and_then(|s| s.split_once('='))
                        .is_none_or(|(k, want)| v["metadata"]["labels"][k] == want)
                })
                .collect()
        };
        let list =
            json!({"kind": "ConfigMapList", "apiVersion": "v1", "metadata": {"resourceVersion": "1"}, "items": items});
        return answer(conn, "200 OK", &list).await;
    }
    answer(
        conn,
        "404 Not Found",
        &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404}),
    )
    .await
}

/// `POST /api/v1/namespaces/{ns}/events`: records the Event, answers 201.
async fn create_event(conn: &mut TcpStream, head: &str, shared: &Arc<Mutex<Shared>>) -> bool {
    let Some(mut event) = body(conn, head).await else { return false };
    let name = format!(
        "{}{}",
        event["metadata"]["generateName"].as_str().unwrap_or("event."),
        shared.lock().expect("lock").events.len()
    );
    event["metadata"]["name"] = json!(name);
    shared.lock().expect("lock").events.push(event.clone());
    answer(conn, "201 Created", &event).await
}

async fn watch(mut conn: TcpStream, shared: &Arc<Mutex<Shared>>, r: Resource, from: u64) {
    let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
    if conn.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    let expired =
        json!({"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": format!("too old resource version: {from}"), "reason": "Expired", "code": 410}})
        .to_string();
    let (backlog, mut rx, too_old) = {
        let s = shared.lock().expect("lock");
        let backlog: Vec<String> =
            s.log[r.slot()].iter().filter(|(rv, _)| *rv > from).map(|(_, l)| l.clone()).collect();
        (backlog, s.watchers[r.slot()].subscribe(), from < s.expired_before[r.slot()])
    };
    if too_old {
        let _ = chunk(&mut conn, &expired).await;
        let _ = conn.write_all(b"0\r\n\r\n").await;
        return;
    }
    for line in backlog {
        if chunk(&mut conn, &line).await.is_err() {
            return;
        }
    }
    loop {
        match rx.recv().await {
            Ok(Cmd::Event(rv, line)) if rv > from => {
                if chunk(&mut conn, &line).await.is_err() {
                    return;
                }
            }
            Ok(Cmd::Event(..)) => {}
            Ok(Cmd::Drop) | Err(_) => return,
            Ok(Cmd::Expire) => {
                let _ = chunk(&mut conn, &expired).await;
                let _ = conn.write_all(b"0\r\n\r\n").await;
                return;
            }
        }
    }
}
