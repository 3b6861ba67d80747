//! Runs the built ktap-workload binary: every command succeeds silently, and bad input gets a message and its exit status.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn workload(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ktap-workload"))
        .args(args)
        .output()
        .expect("run ktap-workload")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[track_caller]
fn assert_silent_success(args: &[&str]) {
    let out = workload(args);
    assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
    assert!(out.stdout.is_empty(), "{args:?} printed to stdout");
    assert!(out.stderr.is_empty(), "{args:?} printed to stderr");
}

#[test]
fn every_command_runs_silently() {
    let exe = env!("CARGO_BIN_EXE_ktap-workload");
    for args in [
        &["getppid", "1000"][..],
        &["read", "4096", "100"],
        &["read", "0", "1"],
        &["open", exe, "50"],
        &["write", "100"],
        &["sleep", "1"],
        &["spin", "1"],
        &["fork", "5"],
        &["syscalls", "100"],
        &["connect", "3"],
    ] {
        assert_silent_success(args);
    }
}

#[test]
fn zero_counts_do_nothing_even_with_a_missing_path() {
    assert_silent_success(&["open", "/nonexistent/ktap-workload", "0"]);
    assert_silent_success(&["syscalls", "0"]);
}

#[test]
fn sleep_and_spin_take_their_time() {
    for cmd in ["sleep", "spin"] {
        let start = Instant::now();
        assert_silent_success(&[cmd, "50"]);
        assert!(
            start.elapsed() >= Duration::from_millis(50),
            "{cmd} 50 returned early"
        );
    }
}

#[test]
fn bad_arguments_exit_2_with_the_reason_and_usage() {
    for (args, reason) in [
        (&[][..], "missing COMMAND"),
        (&["frobnicate"], "unknown command `frobnicate`"),
        (
            &["read", "1"],
            "`read` takes SIZE N, but was given 1 argument",
        ),
        (
            &["write", "-3"],
            "N must be a non-negative integer, got \"-3\"",
        ),
    ] {
        let out = workload(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?} printed to stdout");
        let err = stderr(&out);
        assert!(
            err.starts_with(&format!("ktap-workload: {reason}\n")),
            "{args:?}: {err}"
        );
        assert!(
            err.contains("usage: ktap-workload COMMAND"),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn a_failing_call_exits_1_naming_the_file() {
    let out = workload(&["open", "/nonexistent/ktap-workload", "1"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "ktap-workload: open /nonexistent/ktap-workload: No such file or directory (os error 2)\n"
    );
}

#[test]
fn help_prints_usage_to_stdout() {
    let out = workload(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("usage: ktap-workload COMMAND"));
}
