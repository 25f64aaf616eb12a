//! Network namespaces the lab creates and removes, and running code inside them.
//!
//! Every namespace name carries the lab's unique prefix; a [`NetNs`] removes
//! its namespace when dropped (also on panic), so tests never leak one.

use std::fs::File;
use std::process::{Command, Output};

use nix::sched::{CloneFlags, setns};

/// Why a namespace operation failed.
#[derive(Debug, thiserror::Error)]
pub enum NetNsError {
    /// A command could not be started.
    #[error("cannot run `{command}`: {error}")]
    Spawn {
        /// The command line.
        command: String,
        /// The I/O error.
        error: std::io::Error,
    },
    /// A command failed.
    #[error("`{command}` failed: {stderr}")]
    Failed {
        /// The command line.
        command: String,
        /// What it printed.
        stderr: String,
    },
    /// Entering a namespace failed.
    #[error("cannot enter network namespace {name}: {error}")]
    Enter {
        /// Namespace name.
        name: String,
        /// The error.
        error: std::io::Error,
    },
}

/// Runs a command; fails with its stderr when it exits non-zero.
pub fn run(program: &str, args: &[&str]) -> Result<Output, NetNsError> {
    let command = format!("{program} {}", args.join(" "));
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|error| NetNsError::Spawn { command: command.clone(), error })?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(NetNsError::Failed { command, stderr: String::from_utf8_lossy(&out.stderr).trim().to_string() })
    }
}

/// A named network namespace, removed on drop unless [`NetNs::keep`] was called.
#[derive(Debug)]
pub struct NetNs {
    name: String,
    owned: bool,
}

impl NetNs {
    /// Creates the namespace `name` and brings its loopback up.
    pub fn create(name: &str) -> Result<Self, NetNsError> {
        run("ip", &["netns", "add", name])?;
        let ns = NetNs { name: name.to_string(), owned: true };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// A handle to an existing namespace that is not removed on drop.
    #[must_use]
    pub fn existing(name: &str) -> Self {
        NetNs { name: name.to_string(), owned: false }
    }

    /// The namespace's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Leaves the namespace in place when this handle is dropped (the lab
    /// records it and `lab down` removes it).
    #[must_use]
    pub fn keep(mut self) -> String {
        self.owned = false;
        std::mem::take(&mut self.name)
    }

    /// `ip -n NAME args…`.
    pub fn ip(&self, args: &[&str]) -> Result<Output, NetNsError> {
        let mut full = vec!["-n", self.name.as_str()];
        full.extend_from_slice(args);
        run("ip", &full)
    }

    /// `ip netns exec NAME program args…`.
    pub fn exec(&self, program: &str, args: &[&str]) -> Result<Output, NetNsError> {
        let mut full = vec!["netns", "exec", self.name.as_str(), program];
        full.extend_from_slice(args);
        run("ip", &full)
    }

    /// Sets a sysctl inside the namespace (never in the root namespace).
    pub fn sysctl(&self, key: &str, value: &str) -> Result<(), NetNsError> {
        self.exec("sysctl", &["-q", "-w", &format!("{key}={value}")]).map(|_| ())
    }

    /// Moves the calling thread into the namespace. Use on a thread of its own.
    pub fn enter(&self) -> Result<(), NetNsError> {
        enter(&self.name)
    }
}

/// Moves the calling thread into the namespace `name`.
pub fn enter(name: &str) -> Result<(), NetNsError> {
    let file =
        File::open(format!("/run/netns/{name}")).map_err(|error| NetNsError::Enter { name: name.into(), error })?;
    setns(file, CloneFlags::CLONE_NEWNET).map_err(|e| NetNsError::Enter { name: name.into(), error: e.into() })
}

impl Drop for NetNs {
    fn drop(&mut self) {
        if self.owned {
            let _ = run("ip", &["netns", "del", &self.name]);
        }
    }
}

/// Runs `f` on a thread of its own moved into the namespace `name`, and
/// returns its result.
///
/// # Panics
/// When the namespace cannot be entered, or `f` panics.
pub fn run_in<T: Send + 'static>(name: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let name = name.to_string();
    std::thread::spawn(move || {
        enter(&name).expect("enter namespace");
        f()
    })
    .join()
    .expect("thread in namespace")
}

/// Namespaces whose name starts with `prefix`.
#[must_use]
pub fn list_with_prefix(prefix: &str) -> Vec<String> {
    run("ip", &["netns", "list"])
        .map(|out| {
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter_map(|l| l.split_whitespace().next())
                .filter(|n| n.starts_with(prefix))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// A prefix unique to this process and moment: `pal-<6 hex>-`.
#[must_use]
pub fn unique_prefix() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let mix = (u64::from(std::process::id()) << 32 | u64::from(nanos)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    format!("pal-{:06x}-", mix >> 40)
}

/// For a root-only test (`#[ignore]`d, run with `--include-ignored` as
/// root by `scripts/test`): panics, naming what is missing, unless the
/// process is root and `tools` are installed. A root test that cannot run
/// fails; it never passes having run nothing.
///
/// # Panics
/// When not root or a tool is missing.
pub fn require_root(tools: &[&str]) {
    let root = nix::unistd::geteuid().is_root();
    let missing: Vec<&str> =
        tools.iter().copied().filter(|t| Command::new(t).arg("--version").output().is_err()).collect();
    assert!(
        root && missing.is_empty(),
        "this test needs root and {tools:?} (run as root: ./scripts/test); root={root}, missing: {missing:?}"
    );
}
