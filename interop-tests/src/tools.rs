//! Checks for the external tools (`go`, `node`, `npm`) the peers need.
//!
//! Locally a missing tool skips the test with a `skipped: ...` line on stderr; under
//! `CI=true` it fails the test, so CI never passes by skipping.

use std::process::{Command, Stdio};
use std::sync::OnceLock;

use crate::participant::Impl;

/// Whether `tool` runs (`go version`, `node --version`, ...). Cached per tool.
pub fn tool_available(tool: &str) -> bool {
    static GO: OnceLock<bool> = OnceLock::new();
    static NODE: OnceLock<bool> = OnceLock::new();
    static NPM: OnceLock<bool> = OnceLock::new();
    let probe = |args: &[&str]| {
        Command::new(tool)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    match tool {
        "go" => *GO.get_or_init(|| probe(&["version"])),
        "node" => *NODE.get_or_init(|| probe(&["--version"])),
        "npm" => *NPM.get_or_init(|| probe(&["--version"])),
        _ => probe(&["--version"]),
    }
}

/// Whether the environment says we run under CI (`CI=true` or `CI=1`).
pub fn running_in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// The tools missing for `impls`, each with the implementation that needs it.
pub fn missing_tools(impls: &[Impl]) -> Vec<(Impl, &'static str)> {
    let mut missing = Vec::new();
    for &imp in impls {
        for &tool in imp.required_tools() {
            if !tool_available(tool) && !missing.iter().any(|&(_, t)| t == tool) {
                missing.push((imp, tool));
            }
        }
    }
    missing
}

/// Checks that the tools for `impls` are installed.
///
/// Returns `true` when the test can go ahead. When a tool is missing it prints
/// `skipped: <reason>` to stderr and returns `false` (the test should return early),
/// except under CI (`CI=true`), where it panics so the test fails with the reason.
///
/// # Panics
///
/// Under CI, when a tool is missing.
pub fn require_impls(impls: &[Impl]) -> bool {
    let missing = missing_tools(impls);
    if missing.is_empty() {
        return true;
    }
    let reason = missing
        .iter()
        .map(|(imp, tool)| format!("`{tool}` (needed by the {imp} peer) is not installed"))
        .collect::<Vec<_>>()
        .join("; ");
    if running_in_ci() {
        panic!("CI=true and {reason}: install it, CI must not skip interop tests");
    }
    eprintln!("skipped: {reason}");
    false
}
