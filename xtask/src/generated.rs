//! A folder of generated files (`crds/`, `dashboards/`, `docs/reference/`): written by the
//! generator's `cargo xtask <command>`, checked by `--check` (missing, stale and left-over
//! files all fail, naming the command that fixes them).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::bail;

use crate::workspace_root;

/// One generated folder.
pub struct GeneratedDir {
    /// Its path from the workspace root, e.g. `docs/reference`.
    pub relative: &'static str,
    /// The extension of the files the generator owns there (others are left alone).
    pub extension: &'static str,
    /// The xtask command that regenerates it, e.g. `docs`.
    pub command: &'static str,
    /// What produces each file, for the left-over message, e.g. `a CRD`.
    pub source: &'static str,
}

impl GeneratedDir {
    fn dir(&self) -> PathBuf {
        workspace_root().join(self.relative)
    }

    /// Writes `wanted` (file name → text) when `check` is false, else checks the folder holds
    /// exactly that.
    pub fn write_or_check(
        &self,
        wanted: &BTreeMap<String, String>,
        check: bool,
    ) -> anyhow::Result<()> {
        if check {
            self.check(wanted)
        } else {
            self.write(wanted)
        }
    }

    /// The generated files now in the folder, by name.
    fn existing(&self) -> anyhow::Result<BTreeMap<String, String>> {
        let dir = self.dir();
        let mut files = BTreeMap::new();
        if !dir.exists() {
            return Ok(files);
        }
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == self.extension) {
                files.insert(file_name(&path), std::fs::read_to_string(&path)?);
            }
        }
        Ok(files)
    }

    fn check(&self, wanted: &BTreeMap<String, String>) -> anyhow::Result<()> {
        let have = self.existing()?;
        let folder = self.relative;
        let mut problems = Vec::new();
        for (name, text) in wanted {
            match have.get(name) {
                None => problems.push(format!("missing {folder}/{name}")),
                Some(current) if current != text => problems.push(format!("stale {folder}/{name}")),
                Some(_) => {}
            }
        }
        for name in have.keys().filter(|n| !wanted.contains_key(*n)) {
            problems.push(format!(
                "left-over {folder}/{name} (no {} generates it)",
                self.source
            ));
        }
        if !problems.is_empty() {
            bail!(
                "{}\nrun `cargo xtask {}` and commit the result",
                problems.join("\n"),
                self.command
            );
        }
        println!("{folder}/ is up to date ({} files)", wanted.len());
        Ok(())
    }

    fn write(&self, wanted: &BTreeMap<String, String>) -> anyhow::Result<()> {
        let dir = self.dir();
        std::fs::create_dir_all(&dir)?;
        for name in self.existing()?.keys().filter(|n| !wanted.contains_key(*n)) {
            std::fs::remove_file(dir.join(name))?;
            println!("removed {}/{name}", self.relative);
        }
        for (name, text) in wanted {
            std::fs::write(dir.join(name), text)?;
            println!("wrote {}/{name}", self.relative);
        }
        Ok(())
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}
