//! Which keys a copy takes: `include` and `exclude` globs on the key relative to the copied
//! prefix.
//!
//! Globs are compiled by `globset` (the matcher of ripgrep): it is maintained, has no
//! unsafe code of its own, and compiles many patterns into one automaton, so a key is matched
//! against all patterns at once — what listings of 10,000+ keys need.
//!
//! Rules (as `.gitignore` users expect): `*` and `?` never match `/`; `**` matches any number
//! of whole segments; `[...]` and `{a,b}` work as in a shell. A pattern without `/` is matched
//! against the key's last segment (`*.tmp` excludes `a/b/c.tmp`); a pattern with `/` is
//! matched against the whole relative key (`thumbs/**` only at the top, `**/thumbs/**`
//! anywhere). Keys are matched as the source spells them: spaces, `+`, `%` and unicode are
//! ordinary characters.

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};

use crate::error::BackupError;

/// The compiled `include`/`exclude` globs of one copy.
#[derive(Clone, Debug)]
pub struct KeyFilter {
    include: Option<Patterns>,
    exclude: Option<Patterns>,
}

#[derive(Clone, Debug)]
struct Patterns {
    /// Patterns with a `/`, matched against the whole key.
    whole: GlobSet,
    /// Patterns without one, matched against the last segment.
    last: GlobSet,
}

impl KeyFilter {
    /// Compiles the globs. Errors: `Config` naming the first invalid pattern.
    pub fn new(include: &[String], exclude: &[String]) -> Result<Self, BackupError> {
        Ok(KeyFilter {
            include: Patterns::compile(include, "include")?,
            exclude: Patterns::compile(exclude, "exclude")?,
        })
    }

    /// Whether `key` (relative to the copied prefix) is copied: it matches an `include`
    /// pattern (or there is none) and no `exclude` pattern.
    pub fn accepts(&self, key: &str) -> bool {
        let included = self
            .include
            .as_ref()
            .is_none_or(|patterns| patterns.matches(key));
        let excluded = self
            .exclude
            .as_ref()
            .is_some_and(|patterns| patterns.matches(key));
        included && !excluded
    }
}

impl Patterns {
    fn compile(patterns: &[String], what: &str) -> Result<Option<Self>, BackupError> {
        if patterns.is_empty() {
            return Ok(None);
        }
        let mut whole = GlobSetBuilder::new();
        let mut last = GlobSetBuilder::new();
        for pattern in patterns {
            let glob = compile_one(pattern).map_err(|error| {
                BackupError::Config(format!("invalid {what} pattern {pattern:?}: {error}"))
            })?;
            if pattern.contains('/') {
                whole.add(glob);
            } else {
                last.add(glob);
            }
        }
        let build = |builder: GlobSetBuilder| {
            builder
                .build()
                .map_err(|error| BackupError::Config(format!("invalid {what} patterns: {error}")))
        };
        Ok(Some(Patterns {
            whole: build(whole)?,
            last: build(last)?,
        }))
    }

    fn matches(&self, key: &str) -> bool {
        let name = key.rsplit('/').next().unwrap_or(key);
        self.whole.is_match(key) || self.last.is_match(name)
    }
}

fn compile_one(pattern: &str) -> Result<Glob, globset::Error> {
    GlobBuilder::new(pattern)
        .literal_separator(true)
        .backslash_escape(true)
        .empty_alternates(true)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(include: &[&str], exclude: &[&str]) -> KeyFilter {
        let strings = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        KeyFilter::new(&strings(include), &strings(exclude)).unwrap()
    }

    #[test]
    fn excludes_by_name_anywhere_and_by_path_where_anchored() {
        let filter = filter(&[], &["*.tmp", "**/thumbnails/**", "cache/**"]);
        for taken in [
            "a.txt",
            "docs/report 2024.pdf",
            "x/cache/y",
            "tmp",
            "a.tmp.txt",
            "naïve +%20 file",
        ] {
            assert!(filter.accepts(taken), "{taken}");
        }
        for left in [
            "a.tmp",
            "deep/er/still/b.tmp",
            "thumbnails/a.png",
            "img/thumbnails/2024/a.png",
            "cache/z",
            "with space.tmp",
        ] {
            assert!(!filter.accepts(left), "{left}");
        }
    }

    #[test]
    fn include_narrows_and_exclude_wins() {
        let filter = filter(&["*.pdf", "docs/**"], &["docs/private/**"]);
        assert!(filter.accepts("a/b.pdf"));
        assert!(filter.accepts("docs/x.txt"));
        assert!(!filter.accepts("a/b.txt"));
        assert!(!filter.accepts("docs/private/x.pdf"));
    }

    #[test]
    fn special_characters_are_literal_and_bad_patterns_are_config_errors() {
        let filter = filter(&[], &["100% done+?.txt", "ünï*"]);
        assert!(!filter.accepts("x/100% done+1.txt"));
        assert!(filter.accepts("x/100% done+12.txt"));
        assert!(!filter.accepts("ünïcode"));
        let error = KeyFilter::new(&["[a".into()], &[]).unwrap_err();
        assert!(
            matches!(error, BackupError::Config(ref m) if m.contains("[a")),
            "{error}"
        );
    }
}
