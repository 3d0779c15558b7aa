//! Database names the engine makes up (a restore's default target, staging databases, drill
//! scratch databases) and the engines' limits on names.
//!
//! Limits, from the servers' sources: PostgreSQL keeps at most `NAMEDATALEN - 1` = 63 **bytes**
//! of a name (longer ones are truncated in SQL, and refused by some tools with "identifier too
//! long"); MariaDB/MySQL accept at most `NAME_CHAR_LEN` = 64 **characters**. A generated name
//! that would exceed the limit is shortened at a character boundary (never inside a multi-byte
//! UTF-8 sequence) and tagged with a short hash of the full base, so two long bases that share
//! their first characters still get different names.

use super::Engine;

/// How long a name may be on an engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdentifierLimit {
    /// At most this many UTF-8 bytes (PostgreSQL).
    Bytes(usize),
    /// At most this many characters (MariaDB).
    Chars(usize),
    /// No database names (Redis).
    Unlimited,
}

impl IdentifierLimit {
    /// The limit of `engine`'s database names.
    pub fn of(engine: Engine) -> Self {
        match engine {
            Engine::Postgres => IdentifierLimit::Bytes(63),
            Engine::Mariadb => IdentifierLimit::Chars(64),
            Engine::Redis => IdentifierLimit::Unlimited,
        }
    }

    /// The length of `name` in this limit's unit.
    fn measure(self, name: &str) -> usize {
        match self {
            IdentifierLimit::Bytes(_) => name.len(),
            IdentifierLimit::Chars(_) => name.chars().count(),
            IdentifierLimit::Unlimited => 0,
        }
    }

    /// The maximum, in this limit's unit.
    fn max(self) -> usize {
        match self {
            IdentifierLimit::Bytes(max) | IdentifierLimit::Chars(max) => max,
            IdentifierLimit::Unlimited => usize::MAX,
        }
    }

    /// Whether `name` fits.
    pub fn fits(self, name: &str) -> bool {
        self.measure(name) <= self.max()
    }

    /// A human description for error messages, e.g. `63 bytes`.
    pub fn describe(self) -> String {
        match self {
            IdentifierLimit::Bytes(max) => format!("{max} bytes"),
            IdentifierLimit::Chars(max) => format!("{max} characters"),
            IdentifierLimit::Unlimited => "no limit".to_owned(),
        }
    }
}

/// Characters of hex of the tag that keeps shortened names apart (32 bits: two long names
/// with the same first characters collide with probability 2⁻³²).
const TAG_HEX_LEN: usize = 8;

/// `base` followed by `suffix` (an ASCII suffix such as `_restore_20260101120000`), shortened
/// to fit `engine`'s name limit: when the whole does not fit, `base` is cut at a character
/// boundary and followed by `_` and 8 hex digits of the BLAKE3 hash of the full `base`, then
/// `suffix`. A name that fits is returned unchanged.
pub fn generated_name(engine: Engine, base: &str, suffix: &str) -> String {
    let limit = IdentifierLimit::of(engine);
    let whole = format!("{base}{suffix}");
    if limit.fits(&whole) {
        return whole;
    }
    let hash = blake3::hash(base.as_bytes()).to_hex();
    let tag = format!("_{}", &hash.as_str()[..TAG_HEX_LEN]);
    let room = limit
        .max()
        .saturating_sub(limit.measure(&tag) + limit.measure(suffix));
    let name = format!("{}{tag}{suffix}", longest_prefix(limit, base, room));
    // Only a suffix longer than the limit would not fit now; the engine's own never are.
    longest_prefix(limit, &name, limit.max()).to_owned()
}

/// The longest prefix of `text`, cut at a character boundary, that measures at most `room`.
fn longest_prefix(limit: IdentifierLimit, text: &str, room: usize) -> &str {
    let mut end = 0;
    for (index, c) in text.char_indices() {
        let next = index + c.len_utf8();
        if limit.measure(&text[..next]) > room {
            break;
        }
        end = next;
    }
    &text[..end]
}

/// Checks a database name the user gave against `engine`'s limit, so an over-long name is
/// refused before anything is created (PostgreSQL would otherwise truncate it silently in SQL
/// and fail later when a tool connects to the full name).
pub fn check_database_name(engine: Engine, name: &str) -> Result<(), String> {
    let limit = IdentifierLimit::of(engine);
    if name.is_empty() {
        return Err("a database name cannot be empty".to_owned());
    }
    if limit.fits(name) {
        Ok(())
    } else {
        Err(format!(
            "database name {name:?} is too long for {engine:?}: at most {} (it has {})",
            limit.describe(),
            match limit {
                IdentifierLimit::Chars(_) => format!("{} characters", name.chars().count()),
                _ => format!("{} bytes", name.len()),
            }
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUFFIX: &str = "_restore_20260101120000";

    #[test]
    fn short_names_are_unchanged() {
        assert_eq!(
            generated_name(Engine::Postgres, "shop", SUFFIX),
            "shop_restore_20260101120000"
        );
    }

    #[test]
    fn long_names_fit_every_engine_and_stay_apart() {
        let bases = [
            "a".repeat(46),
            "x".repeat(200),
            "ü".repeat(40),
            "表".repeat(30),
            format!("{}ü", "a".repeat(38)),
            "😀".repeat(20),
        ];
        for engine in [Engine::Postgres, Engine::Mariadb] {
            let limit = IdentifierLimit::of(engine);
            for base in &bases {
                let name = generated_name(engine, base, SUFFIX);
                assert!(limit.fits(&name), "{engine:?} {name:?}");
                assert!(name.ends_with(SUFFIX), "{name:?}");
                // Same first characters, different full names: different generated names.
                let other = generated_name(engine, &format!("{base}b"), SUFFIX);
                assert_ne!(name, other);
            }
        }
        let pg = generated_name(Engine::Postgres, &"a".repeat(46), SUFFIX);
        assert_eq!(pg.len(), 63, "{pg}");
        let mariadb = generated_name(Engine::Mariadb, &"表".repeat(60), SUFFIX);
        assert_eq!(mariadb.chars().count(), 64, "{mariadb}");
    }

    #[test]
    fn user_names_are_checked_in_the_engines_unit() {
        assert!(check_database_name(Engine::Postgres, &"a".repeat(63)).is_ok());
        assert!(check_database_name(Engine::Postgres, &"a".repeat(64)).is_err());
        // 32 characters, 64 bytes: too long for PostgreSQL, fine for MariaDB.
        assert!(check_database_name(Engine::Postgres, &"ü".repeat(32)).is_err());
        assert!(check_database_name(Engine::Mariadb, &"ü".repeat(64)).is_ok());
        assert!(check_database_name(Engine::Mariadb, &"ü".repeat(65)).is_err());
        assert!(check_database_name(Engine::Mariadb, "").is_err());
    }
}
