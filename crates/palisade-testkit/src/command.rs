//! Running a program as a user would: arguments, a working directory and
//! standard input, with `NO_COLOR` set.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

/// Runs `program` in `dir` with `args` and `stdin`; returns (stdout,
/// stderr, exit status).
///
/// # Panics
/// When the program cannot run, is killed by a signal, or writes other than
/// UTF-8.
#[must_use]
pub fn run(program: &str, dir: &Path, args: &[&str], stdin: &str) -> (String, String, i32) {
    run_with_env(program, dir, args, stdin, &[])
}

/// [`run`] with environment variables `env` set for the program.
///
/// # Panics
/// As [`run`].
#[must_use]
pub fn run_with_env(
    program: &str,
    dir: &Path,
    args: &[&str],
    stdin: &str,
    env: &[(&str, &str)],
) -> (String, String, i32) {
    let mut child = Command::new(program)
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program} runs: {e}"));
    let mut input = child.stdin.take().expect("stdin");
    // A program that exits before reading its input closes the pipe.
    let _ = input.write_all(stdin.as_bytes());
    drop(input);
    let out = child.wait_with_output().expect("the program finishes");
    (
        String::from_utf8(out.stdout).expect("utf-8 stdout"),
        String::from_utf8(out.stderr).expect("utf-8 stderr"),
        out.status.code().expect("an exit status"),
    )
}
