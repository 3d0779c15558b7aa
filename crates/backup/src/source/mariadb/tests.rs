//! Unit tests of the MariaDB source: quoting of identifiers, literals and option values, restore
//! targets and re-keyed row counts.

use super::*;

#[test]
fn identifiers_double_their_backticks() {
    assert_eq!(quote_ident("a`b; DROP"), "`a``b; DROP`");
}

#[test]
fn hex_round_trip() {
    let name = "weird 'db'; \"x\" \\ ünï`";
    let literal = hex_literal(name);
    assert_eq!(decode_hex_field(literal.trim_matches('\'')).unwrap(), name);
}

#[test]
fn option_values_are_escaped() {
    assert_eq!(quote_option("p\"a\\s#s"), "\"p\\\"a\\\\s#s\"");
}

#[test]
fn restore_targets_follow_the_dump() {
    let one = MariadbRestoreOptions {
        database: Some("new".into()),
        dumped_databases: vec!["old".into()],
        ..Default::default()
    };
    assert_eq!(restore_targets(&one).unwrap(), ["new"]);
    let many = MariadbRestoreOptions {
        database: Some("new".into()),
        dumped_databases: vec!["a".into(), "b".into()],
        ..Default::default()
    };
    assert!(restore_targets(&many).is_err());
}

#[test]
fn rekey_changes_only_the_database() {
    let tables = |n| BTreeMap::from([("t".to_owned(), n), ("x.y".to_owned(), n + 1)]);
    let counts = BTreeMap::from([
        ("new".to_owned(), tables(3)),
        ("new.t".to_owned(), tables(7)),
        ("other".to_owned(), tables(1)),
    ]);
    let rekeyed = rekey_database(counts, "new", "old");
    assert_eq!(rekeyed.get("old"), Some(&tables(3)));
    assert_eq!(
        rekeyed.get("new.t"),
        Some(&tables(7)),
        "a dotted name is its own database"
    );
    assert_eq!(rekeyed.get("other"), Some(&tables(1)));
    assert!(!rekeyed.contains_key("new"));
}
