//! Where the binaries built by `cargo xtask tools` live, and how tests find the Debian ones.

use std::path::{Path, PathBuf};

use anyhow::bail;

/// The environment variable that moves the tools cache (CI points it at a cache that outlives
/// a fresh clone); by default it is `.tools/` at the workspace root, which git ignores.
pub const TOOLS_DIR_ENV: &str = "VERTICE_TOOLS_DIR";

/// The workspace root, known at compile time.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The tools cache folder.
pub fn tools_dir() -> PathBuf {
    match std::env::var_os(TOOLS_DIR_ENV) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => workspace_root().join(".tools"),
    }
}

/// A binary built by `cargo xtask tools` (kube-apiserver, etcd, kubectl, helm, s3s-fs, …),
/// found in `<tools dir>/bin`. Fails — never skips — with the command that installs it.
pub fn tool_binary(name: &str) -> anyhow::Result<PathBuf> {
    let path = tools_dir().join("bin").join(name);
    if path.is_file() {
        return Ok(path);
    }
    bail!(
        "{name} not found at {}; run `cargo xtask tools` (it builds and caches every test binary)",
        path.display()
    )
}

/// A binary from a Debian package, looked up in `dirs` then on PATH. Fails with the package to
/// install.
pub fn system_binary(name: &str, dirs: &[&str], debian_package: &str) -> anyhow::Result<PathBuf> {
    let path_dirs = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    let candidates = dirs
        .iter()
        .map(PathBuf::from)
        .chain(path_dirs)
        .chain(["/usr/sbin", "/usr/bin", "/sbin"].map(PathBuf::from));
    for dir in candidates {
        let path = dir.join(name);
        if path.is_file() {
            return Ok(path);
        }
    }
    bail!(
        "{name} not found; install the Debian package `{debian_package}` \
         (`cargo xtask tools` does it when run as root)"
    )
}
