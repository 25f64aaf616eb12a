//! `palisade report` in a real headless browser (Debian's Chromium, driven
//! through ChromeDriver's WebDriver HTTP API): the page loads from a file
//! with no console errors and no network, the graph has the groups and the
//! edges the policies allow (expected from examples/three-tier's policies,
//! read as the spec reads them), a click on a pod shows its explanation,
//! and the changes since `--before` are listed. A screenshot is stored in
//! `target/test-artifacts/report.png` for people, never compared.

use std::collections::BTreeSet;
use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("workspace root")
}

/// ChromeDriver, killed on drop.
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    fn start() -> Driver {
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (apt-get install chromium chromium-driver)");
        let driver = Driver { child, port };
        let deadline = Instant::now() + Duration::from_secs(20);
        while driver.call("GET", "/status", None).get("value").and_then(|v| v.get("ready")) != Some(&json!(true)) {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        driver
    }

    /// One WebDriver call; the answer's JSON (`null` when unreachable).
    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let Ok(mut conn) = TcpStream::connect(("127.0.0.1", self.port)) else { return Value::Null };
        conn.set_read_timeout(Some(Duration::from_secs(60))).expect("timeout");
        let body = body.map(Value::to_string).unwrap_or_default();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        if conn.write_all(request.as_bytes()).is_err() {
            return Value::Null;
        }
        // The head, then exactly `Content-Length` bytes (the server may keep
        // the connection open).
        let mut answer = Vec::new();
        let mut byte = [0u8; 1];
        while !answer.ends_with(b"\r\n\r\n") {
            if conn.read(&mut byte).unwrap_or(0) == 0 {
                return Value::Null;
            }
            answer.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&answer).to_ascii_lowercase();
        let length = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or(0);
        let mut body = vec![0u8; length];
        if conn.read_exact(&mut body).is_err() {
            return Value::Null;
        }
        serde_json::from_slice(&body).unwrap_or(Value::Null)
    }
}

fn decode_base64(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let digits: Vec<u8> = text.bytes().filter_map(value).collect();
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, d)| n | (u32::from(*d) << (18 - 6 * i)));
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    out
}

#[test]
#[ignore = "needs Debian's chromium and chromium-driver (.ci/run and scripts/test, as root, install them)"]
fn the_report_renders_the_graph_and_explains_a_pod_in_a_browser() {
    let dir = palisade_testkit::temp::TempDir::new("report");
    let page = dir.path().join("report.html");
    let page_arg = page.display().to_string();
    let (out, err, code) = palisade_testkit::command::run(
        env!("CARGO_BIN_EXE_palisade"),
        &root(),
        &["report", "-f", "examples/three-tier/base", "-f", "examples/three-tier/steps"]
            .into_iter()
            .chain(["--before", "examples/three-tier/base", "-o", &page_arg])
            .collect::<Vec<_>>(),
        "",
    );
    assert_eq!(code, 0, "{out}{err}");
    let html = std::fs::read_to_string(&page).expect("page");
    // Nothing is fetched: no external script, style, image or font, and
    // the page's own policy forbids any (the XML namespace is a name).
    for fetch in ["src=\"http", "href=\"http", "url(http", "@import", "<link"] {
        assert!(!html.contains(fetch), "{fetch} in the page");
    }
    assert!(html.contains("content=\"default-src 'none'"), "a Content-Security-Policy forbidding fetches");

    let driver = Driver::start();
    let profile = dir.path().join("profile");
    let caps = json!({"capabilities": {"alwaysMatch": {
        "browserName": "chrome",
        "goog:loggingPrefs": {"browser": "ALL"},
        "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": [
            "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            format!("--user-data-dir={}", profile.display()), "--window-size=1400,900"
        ]}
    }}});
    let session = driver.call("POST", "/session", Some(&caps));
    let id = session["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("a session: {session}")).to_string();
    let s = |path: &str| format!("/session/{id}{path}");
    driver.call("POST", &s("/url"), Some(&json!({"url": format!("file://{}", page.display())})));
    let script = |code: &str| {
        driver.call("POST", &s("/execute/sync"), Some(&json!({"script": code, "args": []})))["value"].clone()
    };

    // The graph: one group per pod (they all behave differently), and the
    // edges the policies allow.
    assert_eq!(script("return window.palisadeReport"), json!({"groups": 4, "edges": 6}));
    let pods = script("return [...document.querySelectorAll('g.group')].map(g => g.getAttribute('data-pods'))");
    let pods: BTreeSet<&str> = pods.as_array().expect("groups").iter().filter_map(Value::as_str).collect();
    assert_eq!(pods, BTreeSet::from(["kube-system/coredns", "shop/backend", "shop/database", "shop/frontend"]));
    let edges = script(
        "const g = i => document.querySelector(`g.group[data-group=\"${i}\"]`).getAttribute('data-pods');
         return [...document.querySelectorAll('path.edge')].map(p => g(p.dataset.from) + ' -> ' + g(p.dataset.to))",
    );
    let edges: BTreeSet<&str> = edges.as_array().expect("edges").iter().filter_map(Value::as_str).collect();
    let expected = BTreeSet::from([
        "shop/frontend -> shop/backend",
        "shop/backend -> shop/database",
        "shop/frontend -> kube-system/coredns",
        "shop/backend -> kube-system/coredns",
        "shop/database -> kube-system/coredns",
        "kube-system/coredns -> shop/frontend",
    ]);
    assert_eq!(edges, expected);

    // A click on a pod shows its explanation.
    let found = driver.call(
        "POST",
        &s("/element"),
        Some(&json!({"using": "css selector", "value": "g.group[data-pods=\"shop/frontend\"] circle"})),
    );
    let element = found["value"].as_object().and_then(|o| o.values().next()).and_then(Value::as_str).expect("the node");
    driver.call("POST", &s(&format!("/element/{element}/click")), Some(&json!({})));
    let explained = script("return document.getElementById('explain').textContent");
    let explained = explained.as_str().unwrap_or_default();
    assert!(explained.starts_with("Pod shop/frontend"), "{explained}");
    assert!(explained.contains("shop/frontend"), "{explained}");
    assert_eq!(script("return document.getElementById('panel-title').textContent"), json!("shop/frontend"));
    // Its edges are highlighted: two out, one in.
    assert_eq!(script("return document.querySelectorAll('path.edge.out').length"), json!(2));
    assert_eq!(script("return document.querySelectorAll('path.edge.in').length"), json!(1));

    // The change since the base: policies only close connections.
    assert_eq!(script("return document.getElementById('changes').hidden"), json!(false));
    assert_eq!(script("return document.querySelectorAll('#changes-opened tr').length"), json!(0));
    let closed = script("return document.querySelectorAll('#changes-closed tr').length").as_u64().unwrap_or(0);
    assert!(closed > 1, "closed connections listed");

    // No console errors.
    let log = driver.call("POST", &s("/se/log"), Some(&json!({"type": "browser"})));
    let severe: Vec<&Value> =
        log["value"].as_array().into_iter().flatten().filter(|e| e["level"] == "SEVERE").collect();
    assert!(severe.is_empty(), "console errors: {severe:?}");

    // A screenshot for people (fonts differ between machines: not compared).
    let shot = driver.call("GET", &s("/screenshot"), None);
    let png = decode_base64(shot["value"].as_str().unwrap_or_default());
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    let artifacts = root().join("target/test-artifacts");
    std::fs::create_dir_all(&artifacts).expect("artifacts dir");
    std::fs::write(artifacts.join("report.png"), png).expect("screenshot");
    driver.call("DELETE", &s(""), None);
}
