//! The Debian packages the tests need (database servers, Prometheus, iproute2): installed with
//! apt-get when we run as root, otherwise we say exactly what to run.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};

/// What `ensure` did.
pub enum Outcome {
    /// Every package was already installed.
    AllInstalled,
    /// These packages were installed now.
    Installed(Vec<String>),
}

/// Installs whichever of `packages` is missing.
pub fn ensure(packages: &[&str]) -> anyhow::Result<Outcome> {
    let mut missing = Vec::new();
    for package in packages {
        if !is_installed(package)? {
            missing.push((*package).to_owned());
        }
    }
    if missing.is_empty() {
        return Ok(Outcome::AllInstalled);
    }
    let install_line = format!(
        "apt-get update && apt-get install -y --no-install-recommends {}",
        missing.join(" ")
    );
    if !running_as_root()? {
        bail!(
            "missing Debian packages: {}. Install them as root, then run `cargo xtask tools` again:\n    sudo sh -c '{install_line}'",
            missing.join(" ")
        );
    }
    // A fresh container has no package lists at all; otherwise try the lists we have and only
    // refresh them when apt cannot find a package (saves a network round trip on most runs).
    let mut updated = false;
    if !has_package_lists() {
        apt_get(&["update"])?;
        updated = true;
    }
    let mut install_args = vec!["install", "-y", "--no-install-recommends"];
    install_args.extend(missing.iter().map(String::as_str));
    if let Err(error) = apt_get(&install_args) {
        if updated {
            return Err(error);
        }
        println!("    apt-get install failed ({error:#}); refreshing package lists and retrying");
        apt_get(&["update"])?;
        apt_get(&install_args)?;
    }
    Ok(Outcome::Installed(missing))
}

/// Whether dpkg knows `package` as installed.
fn is_installed(package: &str) -> anyhow::Result<bool> {
    let output = Command::new("dpkg-query")
        .args(["--show", "--showformat=${Status}", package])
        .output()
        .context("running dpkg-query: the tests need a Debian-based system (apt and dpkg)")?;
    Ok(
        output.status.success()
            && String::from_utf8_lossy(&output.stdout) == "install ok installed",
    )
}

/// Whether the effective user is root, from `/proc/self/status` (no libc call needed).
fn running_as_root() -> anyhow::Result<bool> {
    let status =
        std::fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    let effective_uid = status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .context("no Uid line in /proc/self/status")?;
    Ok(effective_uid == "0")
}

fn has_package_lists() -> bool {
    std::fs::read_dir(Path::new("/var/lib/apt/lists"))
        .map(|entries| {
            entries
                .flatten()
                .any(|entry| entry.file_name().to_string_lossy().contains("_Packages"))
        })
        .unwrap_or(false)
}

fn apt_get(args: &[&str]) -> anyhow::Result<()> {
    println!("    apt-get {}", args.join(" "));
    let status = Command::new("apt-get")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .context("running apt-get")?;
    if !status.success() {
        bail!("`apt-get {}` failed ({status})", args.join(" "));
    }
    Ok(())
}
