//! What the lab's end-to-end tests share: running the `palisade` binary,
//! the machine-wide lab lock (with a clean lab before and after), and the
//! lab's state file.

#![allow(dead_code, reason = "each test binary uses part of it")]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use serde_json::Value;

static LAB: Mutex<()> = Mutex::new(());

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("workspace root")
}

/// Runs `palisade args` from the workspace root: stdout, stderr, exit code.
pub fn palisade(args: &[&str]) -> (String, String, i32) {
    palisade_with_env(args, &[])
}

/// [`palisade`] with environment variables set.
pub fn palisade_with_env(args: &[&str], env: &[(&str, &str)]) -> (String, String, i32) {
    let out = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(args)
        .envs(env.iter().copied())
        .current_dir(root())
        .output()
        .expect("palisade runs");
    (
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
        out.status.code().unwrap_or(-1),
    )
}

/// Takes the lab lock and makes sure no lab is left over, before and after.
pub struct LabGuard<'a>(#[allow(dead_code, reason = "held for its lifetime")] std::sync::MutexGuard<'a, ()>);

impl LabGuard<'_> {
    /// Takes the lock, after `lab down`.
    pub fn take() -> Self {
        let guard = LAB.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let _ = palisade(&["lab", "down"]);
        LabGuard(guard)
    }
}

impl Drop for LabGuard<'_> {
    fn drop(&mut self) {
        let (_, err, code) = palisade(&["lab", "down"]);
        assert!(code == 0 || std::thread::panicking(), "lab down failed: {err}");
        let leftover =
            String::from_utf8_lossy(&Command::new("ip").args(["netns", "list"]).output().expect("ip").stdout)
                .to_string();
        assert!(!leftover.contains("pal-lab-") || std::thread::panicking(), "namespaces left behind: {leftover}");
    }
}

/// The running lab's state.
pub fn state() -> Value {
    serde_json::from_str(&std::fs::read_to_string("/run/palisade-lab/state.json").expect("lab state")).expect("json")
}

/// Writes a manifest.
pub fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).expect("write manifest");
}

/// Connects to `to` from the network namespace `ns` again and again (each
/// attempt times out after 20 ms), counting the connections that got
/// through, until [`Watcher::finish`] (at most 20,000 attempts).
pub struct Watcher {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    breaches: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    handle: std::thread::JoinHandle<usize>,
}

impl Watcher {
    /// Starts watching.
    pub fn start(ns: &str, to: std::net::SocketAddr) -> Self {
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let breaches = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (s, b, ns) = (stop.clone(), breaches.clone(), ns.to_string());
        let handle = std::thread::spawn(move || {
            palisade_lab::netns::enter(&ns).expect("enter the watcher's namespace");
            let mut attempts = 0usize;
            while !s.load(Ordering::Relaxed) && attempts < 20_000 {
                attempts += 1;
                if std::net::TcpStream::connect_timeout(&to, std::time::Duration::from_millis(20)).is_ok() {
                    b.fetch_add(1, Ordering::Relaxed);
                }
            }
            attempts
        });
        Watcher { stop, breaches, handle }
    }

    /// Connections that got through so far.
    pub fn breaches(&self) -> usize {
        self.breaches.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Stops; the attempts made and the connections that got through.
    pub fn finish(self) -> (usize, usize) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let through = self.breaches.clone();
        let attempts = self.handle.join().expect("watcher");
        (attempts, through.load(std::sync::atomic::Ordering::Relaxed))
    }
}
