//! The demo's PostgreSQL database: a small shop (customers, products, orders, their lines and
//! reviews; a few thousand rows with non-ASCII names), the login the examples use, and the row
//! counts that show a restore equals its source.

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use vertice_testkit::services::postgres::Postgres;

/// The database the `VerticeBackup` example backs up.
pub const SOURCE_DATABASE: &str = "shop";
/// The login of the examples (`spec.target.user`).
pub const LOGIN: &str = "backup";

/// The seeded schema and rows, run as [`LOGIN`] inside [`SOURCE_DATABASE`] so the login owns
/// what it dumps and may create and rename the restore target (in production a backup role
/// would rather get `pg_read_all_data` and `CREATEDB`). Deterministic: the same rows each run.
const SEED_SQL: &str = r#"
CREATE TABLE customers (
    id bigint PRIMARY KEY,
    name text NOT NULL,
    email text NOT NULL UNIQUE,
    country char(2) NOT NULL,
    created_at timestamptz NOT NULL
);
INSERT INTO customers
SELECT n,
       (ARRAY['José', 'Zoë', 'Søren', 'Łukasz', 'Ana María', 'Chloé', 'Nguyễn Văn An', 'O''Brien', '李小龍', 'Ağa'])[1 + n % 10]
           || ' #' || n,
       'customer' || n || '@example.' || (ARRAY['es', 'de', 'jp', 'br'])[1 + n % 4],
       (ARRAY['ES', 'DE', 'JP', 'BR', 'PL', 'FR', 'VN', 'IE'])[1 + n % 8],
       timestamptz '2025-01-01 00:00:00+00' + n * interval '37 minutes'
FROM generate_series(1, 1200) AS n;

CREATE TABLE products (
    id integer PRIMARY KEY,
    sku text NOT NULL UNIQUE,
    title text NOT NULL,
    price_cents integer NOT NULL CHECK (price_cents > 0),
    tags text[] NOT NULL DEFAULT '{}'
);
INSERT INTO products
SELECT n,
       'SKU-' || lpad(n::text, 5, '0'),
       (ARRAY['Café de Colombia', 'Crème brûlée kit', 'Smørrebrød board', 'Jalapeño salsa', 'Matcha 抹茶'])[1 + n % 5]
           || ' (' || n || ')',
       199 + (n * 733) % 9800,
       ARRAY[(ARRAY['food', 'gift', 'kitchen', 'bio'])[1 + n % 4]]
FROM generate_series(1, 250) AS n;

CREATE TABLE orders (
    id bigint PRIMARY KEY,
    customer_id bigint NOT NULL REFERENCES customers,
    placed_at timestamptz NOT NULL,
    status text NOT NULL CHECK (status IN ('pending', 'paid', 'shipped', 'cancelled'))
);
INSERT INTO orders
SELECT n,
       1 + (n * 7) % 1200,
       timestamptz '2025-06-01 00:00:00+00' + n * interval '11 minutes',
       (ARRAY['pending', 'paid', 'shipped', 'cancelled'])[1 + n % 4]
FROM generate_series(1, 2500) AS n;

CREATE TABLE order_lines (
    order_id bigint NOT NULL REFERENCES orders ON DELETE CASCADE,
    line smallint NOT NULL,
    product_id integer NOT NULL REFERENCES products,
    quantity integer NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (order_id, line)
);
INSERT INTO order_lines
SELECT o, l, 1 + (o * 13 + l * 29) % 250, 1 + (o + l) % 4
FROM generate_series(1, 2500) AS o, generate_series(1, 1 + o % 3) AS l;

CREATE SCHEMA "opiniones";
CREATE TABLE "opiniones"."Reseñas ⭐" (
    "cliente" bigint NOT NULL REFERENCES customers,
    "producto" integer NOT NULL REFERENCES products,
    "puntuación" smallint NOT NULL CHECK ("puntuación" BETWEEN 1 AND 5),
    "texto" text,
    "detalles" jsonb NOT NULL
);
INSERT INTO "opiniones"."Reseñas ⭐"
SELECT 1 + (n * 17) % 1200,
       1 + (n * 3) % 250,
       1 + n % 5,
       CASE WHEN n % 9 = 0 THEN NULL ELSE '¡Muy bueno! ' || repeat('★', 1 + n % 5) || E'\nline two' END,
       jsonb_build_object('idioma', 'es', 'útil', n % 7, 'tags', jsonb_build_array('demo', n))
FROM generate_series(1, 900) AS n;

CREATE VIEW order_totals AS
SELECT o.id, o.customer_id, sum(l.quantity * p.price_cents) AS total_cents
FROM orders o JOIN order_lines l ON l.order_id = o.id JOIN products p ON p.id = l.product_id
GROUP BY o.id, o.customer_id;
"#;

/// Rows per table of a database, by schema-qualified, quoted name (`public.customers`,
/// `opiniones."Reseñas ⭐"`).
pub type RowCounts = BTreeMap<String, u64>;

/// Creates [`LOGIN`] with `password` and [`SOURCE_DATABASE`] owned by it, and seeds it.
///
/// Errors: any statement failed (psql's message is in the error).
pub async fn seed(postgres: &Postgres, password: &str) -> anyhow::Result<RowCounts> {
    postgres
        .sql(&format!(
            "CREATE ROLE {} LOGIN CREATEDB PASSWORD {}",
            quote_identifier(LOGIN),
            quote_literal(password)
        ))
        .await
        .context("creating the demo's login")?;
    postgres
        .sql(&format!(
            "CREATE DATABASE {} OWNER {}",
            quote_identifier(SOURCE_DATABASE),
            quote_identifier(LOGIN)
        ))
        .await
        .context("creating the demo database")?;
    let seed = format!("SET ROLE {};\n{SEED_SQL}", quote_identifier(LOGIN));
    postgres
        .sql_in(SOURCE_DATABASE, &seed)
        .await
        .context("seeding the demo database")?;
    row_counts(postgres, SOURCE_DATABASE).await
}

/// Counts the rows of every table of `database` (every schema but the system ones).
///
/// Errors: the database does not exist or psql failed.
pub async fn row_counts(postgres: &Postgres, database: &str) -> anyhow::Result<RowCounts> {
    // `format('%I')` quotes each name by the server's own rules; `query_to_xml` runs one count
    // per table inside a single statement.
    let output = postgres
        .sql_in(
            database,
            "SELECT format('%I.%I', table_schema, table_name), \
                    (xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %I.%I', \
                        table_schema, table_name), false, true, '')))[1]::text \
             FROM information_schema.tables \
             WHERE table_type = 'BASE TABLE' \
               AND table_schema NOT IN ('pg_catalog', 'information_schema') \
             ORDER BY 1",
        )
        .await
        .with_context(|| format!("counting the rows of database {database}"))?;
    parse_row_counts(&output)
}

/// Parses psql's unaligned `name|count` lines (the count is the last field: a name may hold `|`).
fn parse_row_counts(output: &str) -> anyhow::Result<RowCounts> {
    let mut counts = RowCounts::new();
    for line in output.lines().filter(|line| !line.trim().is_empty()) {
        let Some((table, count)) = line.rsplit_once('|') else {
            bail!("unexpected row-count line {line:?}");
        };
        let count = count
            .trim()
            .parse()
            .with_context(|| format!("unexpected row count in {line:?}"))?;
        counts.insert(table.to_owned(), count);
    }
    Ok(counts)
}

/// The sum of all tables' rows.
pub fn total_rows(counts: &RowCounts) -> u64 {
    counts.values().sum()
}

/// `name` as a PostgreSQL identifier: in double quotes, inner quotes doubled.
pub fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `value` as a PostgreSQL string literal: in single quotes, inner quotes doubled (the server
/// runs with `standard_conforming_strings`, so backslashes are plain characters).
pub fn quote_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_counts_parse_names_with_separators_and_unicode() {
        let counts = parse_row_counts(
            "public.customers|1200\nopiniones.\"Reseñas ⭐\"|900\npublic.\"a|b\"|0\n\n",
        )
        .unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(counts["public.customers"], 1200);
        assert_eq!(counts["opiniones.\"Reseñas ⭐\""], 900);
        assert_eq!(counts["public.\"a|b\""], 0);
        assert_eq!(total_rows(&counts), 2100);
    }

    #[test]
    fn row_counts_refuse_lines_without_a_number() {
        for bad in [
            "public.customers",
            "public.customers|",
            "public.customers|12x",
        ] {
            assert!(parse_row_counts(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn quoting_doubles_the_quote_character() {
        assert_eq!(quote_identifier("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_identifier("Reseñas ⭐"), "\"Reseñas ⭐\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(quote_literal("back\\slash"), "'back\\slash'");
    }
}
