//! The tools we build from pinned Go modules with the machine's Go: kube-apiserver,
//! kube-controller-manager and kubectl (k8s.io/kubernetes), etcd and helm.
//!
//! Each tool is installed into `<tools dir>/<name>-<version>/bin/` and linked from
//! `<tools dir>/bin/`. A tool whose versioned binaries already exist is only re-linked, so a warm
//! run takes no Go time at all. Go's own module and build caches stay in their default places
//! (under `$HOME`), which is what makes a rebuild after a pin change take minutes, not tens.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use serde::Deserialize;

use super::pins;

/// What `ensure_*` did.
pub enum Outcome {
    /// The pinned binaries were already installed; only the links were refreshed.
    Cached,
    /// The binaries were built now.
    Built,
}

/// One tool: a name and version (its install folder) and the binaries it provides.
struct Tool {
    name: &'static str,
    version: &'static str,
    binaries: &'static [&'static str],
}

impl Tool {
    fn install_dir(&self, tools_dir: &Path) -> PathBuf {
        tools_dir.join(format!("{}-{}", self.name, self.version))
    }

    fn is_installed(&self, tools_dir: &Path) -> bool {
        let bin = self.install_dir(tools_dir).join("bin");
        self.binaries
            .iter()
            .all(|binary| bin.join(binary).is_file())
    }

    /// Builds (through `build`, which writes into the given empty `bin` folder) unless already
    /// installed, then links every binary into `<tools dir>/bin`.
    fn ensure(
        &self,
        tools_dir: &Path,
        build: impl FnOnce(&Path) -> anyhow::Result<()>,
    ) -> anyhow::Result<Outcome> {
        let outcome = if self.is_installed(tools_dir) {
            Outcome::Cached
        } else {
            // Built into a staging folder and renamed into place, so an interrupted build never
            // leaves a half-filled install folder that a later run would take for complete.
            let staging = tools_dir
                .join(".staging")
                .join(format!("{}-{}", self.name, self.version));
            remove_dir_if_exists(&staging)?;
            let staging_bin = staging.join("bin");
            fs::create_dir_all(&staging_bin)
                .with_context(|| format!("creating {}", staging_bin.display()))?;
            build(&staging_bin)?;
            for binary in self.binaries {
                if !staging_bin.join(binary).is_file() {
                    bail!(
                        "building {} {} did not produce {binary}",
                        self.name,
                        self.version
                    );
                }
            }
            let install_dir = self.install_dir(tools_dir);
            remove_dir_if_exists(&install_dir)?;
            fs::rename(&staging, &install_dir).with_context(|| {
                format!("moving {} to {}", staging.display(), install_dir.display())
            })?;
            Outcome::Built
        };
        for binary in self.binaries {
            link_binary(tools_dir, &self.install_dir(tools_dir), binary)?;
        }
        Ok(outcome)
    }
}

/// kube-apiserver, kube-controller-manager and kubectl from `k8s.io/kubernetes`.
pub fn ensure_kubernetes(tools_dir: &Path) -> anyhow::Result<Outcome> {
    let tool = Tool {
        name: "kubernetes",
        version: pins::KUBERNETES,
        binaries: &["kube-apiserver", "kube-controller-manager", "kubectl"],
    };
    tool.ensure(tools_dir, |out| build_kubernetes(tools_dir, out))
}

/// etcd from `go.etcd.io/etcd/server/v3`.
pub fn ensure_etcd(tools_dir: &Path) -> anyhow::Result<Outcome> {
    let tool = Tool {
        name: "etcd",
        version: pins::ETCD,
        binaries: &["etcd"],
    };
    tool.ensure(tools_dir, |out| build_etcd(tools_dir, out))
}

/// helm v3 from `helm.sh/helm/v3/cmd/helm`.
pub fn ensure_helm(tools_dir: &Path) -> anyhow::Result<Outcome> {
    let tool = Tool {
        name: "helm",
        version: pins::HELM,
        binaries: &["helm"],
    };
    tool.ensure(tools_dir, build_helm)
}

/// The machine's `go version` line; fails with what to install when Go is missing.
pub fn go_version() -> anyhow::Result<String> {
    let output = go_command()
        .arg("version")
        .output()
        .context("running `go version`: Go is needed to build the Kubernetes test binaries; install it from https://go.dev/dl/ and put `go` on PATH")?;
    if !output.status.success() {
        bail!(
            "`go version` failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// A `go` command that never downloads another toolchain: a module asking for a newer Go than
/// the machine's must fail loudly here rather than fetch a compiler behind our back.
fn go_command() -> Command {
    let mut command = Command::new("go");
    command.env("GOTOOLCHAIN", "local");
    command
}

/// A fresh wrapper-module folder for one tool (fresh, so no go.sum from an older pin lingers;
/// `go mod tidy` stays fast because Go's module cache is kept).
fn module_dir(tools_dir: &Path, name: &str, version: &str) -> anyhow::Result<PathBuf> {
    let dir = tools_dir.join(".build").join(format!("{name}-{version}"));
    remove_dir_if_exists(&dir)?;
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

fn build_kubernetes(tools_dir: &Path, out: &Path) -> anyhow::Result<()> {
    let dir = module_dir(tools_dir, "kubernetes", pins::KUBERNETES)?;
    let upstream_go_mod = download_go_mod(&dir, "k8s.io/kubernetes", pins::KUBERNETES)?;
    let staging_modules = staging_modules(&upstream_go_mod);
    if staging_modules.is_empty() {
        bail!("found no `./staging/` replace directives in k8s.io/kubernetes's go.mod");
    }
    println!(
        "    {} staging modules replaced with {}",
        staging_modules.len(),
        pins::KUBERNETES_STAGING
    );
    let go_directive = go_directive(&upstream_go_mod).unwrap_or_else(|| "1.26.0".to_owned());

    // `go install k8s.io/kubernetes/...@version` is refused because the module replaces its
    // staging modules with local paths; a wrapper module that requires it and points each staging
    // module at its published version builds the same code.
    let mut go_mod = format!(
        "module vertice.dev/k8s-tools\n\ngo {go_directive}\n\nrequire k8s.io/kubernetes {}\n\nreplace (\n",
        pins::KUBERNETES
    );
    for module in &staging_modules {
        go_mod.push_str(&format!(
            "\t{module} => {module} {}\n",
            pins::KUBERNETES_STAGING
        ));
    }
    go_mod.push_str(")\n");
    write(&dir.join("go.mod"), &go_mod)?;
    // The blank imports tell `go mod tidy` which packages the build needs.
    write(
        &dir.join("tools.go"),
        "//go:build tools\n\npackage tools\n\nimport (\n\t_ \"k8s.io/kubernetes/cmd/kube-apiserver\"\n\t_ \"k8s.io/kubernetes/cmd/kube-controller-manager\"\n\t_ \"k8s.io/kubernetes/cmd/kubectl\"\n)\n",
    )?;
    go_run(&dir, &["mod", "tidy"])?;

    let (major, minor) = major_minor(pins::KUBERNETES)?;
    let mut ldflags = vec!["-s".to_owned(), "-w".to_owned()];
    // Without these `/version` reports v0.0.0, and kubectl warns about version skew.
    for package in [
        "k8s.io/component-base/version",
        "k8s.io/client-go/pkg/version",
    ] {
        for (key, value) in [
            ("gitVersion", pins::KUBERNETES),
            ("gitMajor", major),
            ("gitMinor", minor),
            ("gitTreeState", "clean"),
        ] {
            ldflags.push(format!("-X {package}.{key}={value}"));
        }
    }
    let out_dir = format!("{}/", out.display());
    go_run(
        &dir,
        &[
            "build",
            // The wrapper module sits inside the project's git checkout (`.tools/`); stamping
            // that repository's state into the binary is useless and fails on some checkouts.
            "-buildvcs=false",
            "-ldflags",
            &ldflags.join(" "),
            "-o",
            &out_dir,
            "k8s.io/kubernetes/cmd/kube-apiserver",
            "k8s.io/kubernetes/cmd/kube-controller-manager",
            "k8s.io/kubernetes/cmd/kubectl",
        ],
    )
}

fn build_etcd(tools_dir: &Path, out: &Path) -> anyhow::Result<()> {
    let dir = module_dir(tools_dir, "etcd", pins::ETCD)?;
    // etcd's server module also carries replace directives, so it gets a wrapper main too.
    write(
        &dir.join("go.mod"),
        &format!(
            "module vertice.dev/etcd-tool\n\ngo 1.24.0\n\nrequire go.etcd.io/etcd/server/v3 {}\n",
            pins::ETCD
        ),
    )?;
    write(
        &dir.join("main.go"),
        "package main\n\nimport (\n\t\"os\"\n\n\t\"go.etcd.io/etcd/server/v3/etcdmain\"\n)\n\nfunc main() {\n\tetcdmain.Main(os.Args)\n}\n",
    )?;
    go_run(&dir, &["mod", "tidy"])?;
    let out_file = out.join("etcd");
    go_run(
        &dir,
        &[
            "build",
            // The wrapper module sits inside the project's git checkout (`.tools/`); stamping
            // that repository's state into the binary is useless and fails on some checkouts.
            "-buildvcs=false",
            "-ldflags",
            "-s -w",
            "-o",
            &out_file.display().to_string(),
            ".",
        ],
    )
}

fn build_helm(out: &Path) -> anyhow::Result<()> {
    let (major, minor) = major_minor(pins::KUBERNETES)?;
    // The chartutil/lint versions are what `helm template` and `helm lint` assume the cluster
    // runs; left at helm's default they claim Kubernetes 1.20.
    let ldflags = [
        "-s -w".to_owned(),
        format!("-X helm.sh/helm/v3/internal/version.version={}", pins::HELM),
        "-X helm.sh/helm/v3/internal/version.gitTreeState=clean".to_owned(),
        format!("-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor={major}"),
        format!("-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor={minor}"),
        format!("-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor={major}"),
        format!("-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor={minor}"),
    ]
    .join(" ");
    let package = format!("helm.sh/helm/v3/cmd/helm@{}", pins::HELM);
    let parent = out.parent().unwrap_or(out);
    let status = go_command()
        .current_dir(parent)
        .env("GOBIN", out)
        .args(["install", "-ldflags", &ldflags, &package])
        .status()
        .context("running `go install` for helm")?;
    if !status.success() {
        bail!("`go install {package}` failed ({status})");
    }
    Ok(())
}

/// Fetches `module@version` into Go's module cache and returns the text of its go.mod.
fn download_go_mod(dir: &Path, module: &str, version: &str) -> anyhow::Result<String> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Download {
        go_mod: Option<String>,
        error: Option<String>,
    }
    let query = format!("{module}@{version}");
    let output = go_command()
        .current_dir(dir)
        .args(["mod", "download", "-json", &query])
        .output()
        .with_context(|| format!("running `go mod download -json {query}`"))?;
    let download: Download = serde_json::from_slice(&output.stdout).with_context(|| {
        format!(
            "reading `go mod download -json {query}` output: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    })?;
    if let Some(error) = download.error {
        bail!("`go mod download {query}` failed: {error}");
    }
    let path = download
        .go_mod
        .with_context(|| format!("`go mod download -json {query}` printed no GoMod path"))?;
    fs::read_to_string(&path).with_context(|| format!("reading {path}"))
}

/// Every module that a go.mod replaces with a path under `./staging/`, in file order.
fn staging_modules(go_mod: &str) -> Vec<String> {
    go_mod
        .lines()
        .map(str::trim)
        .map(|line| line.strip_prefix("replace ").unwrap_or(line))
        .filter_map(|line| {
            let (from, to) = line.split_once("=>")?;
            if !to.trim().starts_with("./staging/") {
                return None;
            }
            from.split_whitespace().next().map(str::to_owned)
        })
        .collect()
}

/// The version in a go.mod's `go` directive.
fn go_directive(go_mod: &str) -> Option<String> {
    go_mod
        .lines()
        .find_map(|line| line.trim().strip_prefix("go "))
        .map(|version| version.trim().to_owned())
}

/// `v1.36.3` → (`1`, `36`).
fn major_minor(version: &str) -> anyhow::Result<(&str, &str)> {
    let mut parts = version.trim_start_matches('v').split('.');
    match (parts.next(), parts.next()) {
        (Some(major), Some(minor)) => Ok((major, minor)),
        _ => bail!("`{version}` is not a vMAJOR.MINOR.PATCH version"),
    }
}

/// Runs `go <args>` in `dir`, inheriting the terminal so the build's progress shows.
fn go_run(dir: &Path, args: &[&str]) -> anyhow::Result<()> {
    let status = go_command()
        .current_dir(dir)
        .args(args)
        .status()
        .with_context(|| format!("running `go {}`", args.join(" ")))?;
    if !status.success() {
        bail!(
            "`go {}` in {} failed ({status})",
            args.join(" "),
            dir.display()
        );
    }
    Ok(())
}

/// Points `<tools dir>/bin/<binary>` at the versioned binary, replacing any older link in one
/// rename so a test running meanwhile never sees the link missing.
fn link_binary(tools_dir: &Path, install_dir: &Path, binary: &str) -> anyhow::Result<()> {
    let bin_dir = tools_dir.join("bin");
    fs::create_dir_all(&bin_dir).with_context(|| format!("creating {}", bin_dir.display()))?;
    let link = bin_dir.join(binary);
    let target = install_dir.join("bin").join(binary);
    if fs::read_link(&link).is_ok_and(|current| current == target) {
        return Ok(());
    }
    let temporary = bin_dir.join(format!(".{binary}.link"));
    let _ = fs::remove_file(&temporary);
    std::os::unix::fs::symlink(&target, &temporary)
        .with_context(|| format!("linking {}", temporary.display()))?;
    fs::rename(&temporary, &link).with_context(|| format!("replacing {}", link.display()))
}

fn remove_dir_if_exists(dir: &Path) -> anyhow::Result<()> {
    match fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(error).with_context(|| format!("removing {}", dir.display())),
    }
}

fn write(path: &Path, contents: &str) -> anyhow::Result<()> {
    fs::write(path, contents).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staging_modules_come_from_replace_directives() {
        let go_mod = "module k8s.io/kubernetes\n\ngo 1.26.0\n\nrequire (\n\tk8s.io/api v0.0.0\n)\n\nreplace (\n\tk8s.io/api => ./staging/src/k8s.io/api\n\tk8s.io/kms => ./staging/src/k8s.io/kms\n\tgithub.com/x/y => github.com/x/y v1.0.0\n)\n\nreplace k8s.io/streaming => ./staging/src/k8s.io/streaming\n";
        assert_eq!(
            staging_modules(go_mod),
            ["k8s.io/api", "k8s.io/kms", "k8s.io/streaming"]
        );
        assert_eq!(go_directive(go_mod).as_deref(), Some("1.26.0"));
    }

    #[test]
    fn major_minor_splits_a_release() {
        assert_eq!(major_minor("v1.36.3").unwrap(), ("1", "36"));
    }
}
