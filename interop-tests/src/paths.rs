//! Where things are: the peers' sources, the cargo target directory, our build outputs.

use std::path::{Path, PathBuf};

/// `interop-tests/` in the source tree.
pub fn interop_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `interop-tests/peers/<name>`.
pub fn peer_source_dir(name: &str) -> PathBuf {
    interop_dir().join("peers").join(name)
}

/// The cargo profile directory the running program was built into (e.g.
/// `target/debug`), found from the executable's own path: test binaries live in
/// `<profile>/deps`, examples in `<profile>/examples`, binaries in `<profile>`.
pub fn profile_dir() -> PathBuf {
    let fallback = || target_dir_fallback().join("debug");
    let Ok(exe) = std::env::current_exe() else {
        return fallback();
    };
    let Some(dir) = exe.parent() else {
        return fallback();
    };
    match dir.file_name().and_then(|n| n.to_str()) {
        Some("deps" | "examples") => dir.parent().map_or_else(fallback, Path::to_path_buf),
        _ => dir.to_path_buf(),
    }
}

/// The cargo target directory (the profile directory's parent).
pub fn target_dir() -> PathBuf {
    profile_dir()
        .parent()
        .map_or_else(target_dir_fallback, Path::to_path_buf)
}

fn target_dir_fallback() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| interop_dir().join("..").join("target"), PathBuf::from)
}

/// `target/interop/`: where the harness puts the Go binary and its lock files.
pub fn harness_dir() -> PathBuf {
    target_dir().join("interop")
}
