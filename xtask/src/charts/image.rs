//! A chart's image, checked without a container engine: its Dockerfile's `ENGINE_TOOLS` (which
//! the image build verifies with `command -v`) names every external tool the operator's source
//! calls (`find_tool("…")` and `tool_command("…")`, read from the source, not from a list), and
//! the binary the chart runs is built, copied and made the entrypoint, as a non-root user.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{Context, ensure};

use super::ChartEntry;
use crate::workspace_root;

/// The calls whose first argument names an external tool.
const TOOL_CALLS: [&str; 2] = ["find_tool(\"", "tool_command(\""];

/// Checks `chart`'s Dockerfile against its operator's source.
pub fn check(chart: &ChartEntry) -> anyhow::Result<()> {
    let path = workspace_root().join(chart.dockerfile);
    let dockerfile =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut called = BTreeSet::new();
    for dir in chart.tool_sources {
        called.extend(tools_called_under(&workspace_root().join(dir))?);
    }
    ensure!(
        !called.is_empty(),
        "no tool calls found under {:?}",
        chart.tool_sources
    );
    let problems = dockerfile_problems(&dockerfile, &called, chart.binary);
    ensure!(
        problems.is_empty(),
        "{}: {}",
        path.display(),
        problems.join("; ")
    );
    Ok(())
}

/// The tools called by the `.rs` files under `dir` (test modules excluded).
fn tools_called_under(dir: &Path) -> anyhow::Result<BTreeSet<String>> {
    let mut tools = BTreeSet::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            tools.extend(tools_called_under(&path)?);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            tools.extend(tools_called(&std::fs::read_to_string(&path)?));
        }
    }
    Ok(tools)
}

/// The tool names in `source`'s [`TOOL_CALLS`], before its `#[cfg(test)]` module (by the
/// project's convention the last item of a file).
pub fn tools_called(source: &str) -> BTreeSet<String> {
    let code = source.split("#[cfg(test)]").next().unwrap_or_default();
    let mut tools = BTreeSet::new();
    for call in TOOL_CALLS {
        for (start, _) in code.match_indices(call) {
            let rest = &code[start + call.len()..];
            if let Some(end) = rest.find('"') {
                tools.insert(rest[..end].to_owned());
            }
        }
    }
    tools
}

/// What the Dockerfile lacks: a tool missing from `ENGINE_TOOLS`, the binary not built, copied
/// or the entrypoint, or a root user.
pub fn dockerfile_problems(
    dockerfile: &str,
    tools: &BTreeSet<String>,
    binary: &str,
) -> Vec<String> {
    let mut problems = Vec::new();
    let listed: BTreeSet<&str> = dockerfile
        .lines()
        .find_map(|line| line.trim().strip_prefix("ARG ENGINE_TOOLS="))
        .map(|value| value.trim_matches('"').split_whitespace().collect())
        .unwrap_or_default();
    if listed.is_empty() {
        problems.push("no `ARG ENGINE_TOOLS=\"…\"` line".to_owned());
    }
    let missing: Vec<&String> = tools
        .iter()
        .filter(|tool| !listed.contains(tool.as_str()))
        .collect();
    if !missing.is_empty() {
        problems.push(format!(
            "ENGINE_TOOLS lacks {missing:?}, which the source calls"
        ));
    }
    if !dockerfile.contains("for tool in ${ENGINE_TOOLS}") {
        problems.push(
            "the runtime stage does not verify ENGINE_TOOLS with `for tool in ${ENGINE_TOOLS}`"
                .to_owned(),
        );
    }
    if !dockerfile.contains(&format!("--bin {binary}")) {
        problems.push(format!("no stage builds `--bin {binary}`"));
    }
    let installed = format!("/usr/local/bin/{binary}");
    if !dockerfile
        .lines()
        .any(|line| line.starts_with("COPY --from=") && line.trim_end().ends_with(&installed))
    {
        problems.push(format!("the binary is not copied to {installed}"));
    }
    if !dockerfile
        .lines()
        .any(|line| line.trim() == format!("ENTRYPOINT [\"{installed}\"]"))
    {
        problems.push(format!("the entrypoint is not {installed}"));
    }
    let user = dockerfile
        .lines()
        .rev()
        .find_map(|line| line.trim().strip_prefix("USER "));
    let non_root = user.is_some_and(|user| {
        let uid = user.split(':').next().unwrap_or_default();
        uid.parse::<u32>().is_ok_and(|uid| uid != 0)
    });
    if !non_root {
        problems.push(format!(
            "the final USER is not a numeric non-root user: {user:?}"
        ));
    }
    let stages = dockerfile
        .lines()
        .filter(|line| line.starts_with("FROM "))
        .count();
    if stages < 2 {
        problems.push("not a multi-stage build".to_owned());
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_names_come_from_the_calls_outside_tests() {
        let source = r#"
            let a = find_tool("pg_dump", bin, &[]);
            let b = self.tool_command("psql", None)?;
            let c = find_tool("redis-cli", None, &[]); let d = tool_command("mariadb-dump", x);
            let not_a_call = "pg_restore";
            #[cfg(test)]
            mod tests { fn t() { find_tool("only-in-tests", None, &[]); } }
        "#;
        let tools: Vec<String> = tools_called(source).into_iter().collect();
        assert_eq!(tools, ["mariadb-dump", "pg_dump", "psql", "redis-cli"]);
    }

    fn tools(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|name| (*name).to_owned()).collect()
    }

    const GOOD: &str = "FROM rust AS build\nRUN cargo build --bin op\nFROM debian\nARG ENGINE_TOOLS=\"a b\"\nRUN for tool in ${ENGINE_TOOLS}; do command -v $tool; done\nCOPY --from=build /out/op /usr/local/bin/op\nUSER 65532:65532\nENTRYPOINT [\"/usr/local/bin/op\"]\n";

    #[test]
    fn a_complete_dockerfile_passes() {
        assert!(dockerfile_problems(GOOD, &tools(&["a", "b"]), "op").is_empty());
    }

    #[test]
    fn each_kind_of_gap_is_reported() {
        let cases = [
            (GOOD.to_owned(), tools(&["a", "b", "c"]), "lacks [\"c\"]"),
            (
                GOOD.replace("ARG ENGINE_TOOLS=\"a b\"\n", ""),
                tools(&["a"]),
                "no `ARG ENGINE_TOOLS",
            ),
            (
                GOOD.replace("for tool in ${ENGINE_TOOLS}", "true"),
                tools(&["a"]),
                "does not verify",
            ),
            (
                GOOD.replace("--bin op", "--bin other"),
                tools(&["a"]),
                "builds `--bin op`",
            ),
            (
                GOOD.replace("/out/op /usr/local/bin/op", "/out/op /op"),
                tools(&["a"]),
                "not copied",
            ),
            (
                GOOD.replace(
                    "ENTRYPOINT [\"/usr/local/bin/op\"]",
                    "ENTRYPOINT [\"/bin/sh\"]",
                ),
                tools(&["a"]),
                "entrypoint",
            ),
            (
                GOOD.replace("USER 65532:65532", "USER 0"),
                tools(&["a"]),
                "non-root",
            ),
            (
                GOOD.replace("USER 65532:65532", "USER root"),
                tools(&["a"]),
                "non-root",
            ),
            (
                GOOD.replace("FROM rust AS build\n", ""),
                tools(&["a"]),
                "multi-stage",
            ),
        ];
        for (dockerfile, called, expected) in cases {
            let problems = dockerfile_problems(&dockerfile, &called, "op");
            assert!(
                problems.iter().any(|problem| problem.contains(expected)),
                "{expected}: {problems:?}"
            );
        }
    }
}
