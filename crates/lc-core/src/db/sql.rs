//! The statement cache: the one way the modules of `db` run SQL.
//!
//! [`Sql`] wraps a connection and offers only cached statements: each SQL
//! text is parsed once per connection and reused (the cache holds 256, more
//! than the webapp's distinct statements). rusqlite's uncached
//! `Connection::execute`, `prepare`, `query_row`... are refused by clippy in
//! lc-core (`crates/lc-core/clippy.toml`), so a statement that bypasses the
//! cache does not pass the lints.

use rusqlite::{CachedStatement, Connection, Params, Row};

/// A connection that runs SQL through its statement cache only.
pub(super) struct Sql<'c> {
    conn: &'c Connection,
}

impl<'c> Sql<'c> {
    pub(super) fn new(conn: &'c Connection) -> Sql<'c> {
        Sql { conn }
    }

    /// The prepared statement for `sql`, from the cache.
    pub(super) fn prepare(&self, sql: &str) -> rusqlite::Result<CachedStatement<'c>> {
        self.conn.prepare_cached(sql)
    }

    /// Runs `sql` and answers the number of rows changed.
    pub(super) fn execute(&self, sql: &str, params: impl Params) -> rusqlite::Result<usize> {
        self.prepare(sql)?.execute(params)
    }

    /// Runs `sql` and maps its first row with `f`; an error when there is none.
    pub(super) fn query_row<T>(
        &self,
        sql: &str,
        params: impl Params,
        f: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        self.prepare(sql)?.query_row(params, f)
    }

    /// The rowid of the last row inserted on this connection.
    pub(super) fn last_insert_rowid(&self) -> i64 {
        self.conn.last_insert_rowid()
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    /// SQL statements as this project writes them: an upper-case keyword
    /// and the word that must follow it (`""`: any identifier). The second
    /// word may come on a later line of the same literal.
    const STATEMENTS: [(&str, &[&str]); 8] = [
        ("SELECT", &["FROM"]),
        ("INSERT", &["INTO"]),
        ("UPDATE", &["SET"]),
        ("DELETE", &["FROM"]),
        ("CREATE", &["TABLE", "INDEX", "UNIQUE", "VIEW", "TRIGGER"]),
        ("DROP", &["TABLE", "INDEX", "VIEW", "TRIGGER"]),
        ("ALTER", &["TABLE"]),
        ("PRAGMA", &[""]),
    ];

    /// How far (in words) the second word may follow the first.
    const REACH: usize = 12;

    /// The SQL statements in `text` (Rust source, comments left out), as
    /// (line, first word).
    fn sql_in(text: &str) -> Vec<(usize, &'static str)> {
        let words: Vec<(usize, &str)> = text
            .lines()
            .enumerate()
            .filter(|(_, line)| !line.trim_start().starts_with("//"))
            .flat_map(|(n, line)| {
                line.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .filter(|w| !w.is_empty())
                    .map(move |w| (n + 1, w))
            })
            .collect();
        let mut found = Vec::new();
        for (i, (line, word)) in words.iter().enumerate() {
            let Some((first, seconds)) = STATEMENTS.iter().find(|(k, _)| k == word) else {
                continue;
            };
            let after = &words[i + 1..(i + 1 + REACH).min(words.len())];
            let sql = match seconds {
                [""] => after.first().is_some_and(|(l, w)| {
                    l == line && w.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                }),
                _ => after.iter().any(|(_, w)| seconds.contains(w)),
            };
            if sql {
                found.push((*line, *first));
            }
        }
        found
    }

    /// Files under `dir` whose name ends in `.rs` or `.sql`, skipping build
    /// output and version control.
    fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
        let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("entry").path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if path.is_dir() {
                if !(name.starts_with('.') || name.starts_with("target")) {
                    sources(&path, out);
                }
            } else if name.ends_with(".rs") || name.ends_with(".sql") {
                out.push(path);
            }
        }
    }

    #[test]
    fn the_scan_finds_sql_and_only_sql() {
        let sql = "let s = \"SELECT path FROM lorries\";\n\
                   conn.execute(\"UPDATE jobs SET kill = 1\");\n\
                   \"INSERT INTO t (a)\n VALUES (1)\"\n\
                   \"SELECT a,\n b\n FROM t\"\n\
                   \"PRAGMA query_only\"\n\
                   \"DELETE FROM jobs\" \"CREATE UNIQUE INDEX i ON t (a)\"\n";
        assert_eq!(
            sql_in(sql),
            [
                (1, "SELECT"),
                (2, "UPDATE"),
                (3, "INSERT"),
                (5, "SELECT"),
                (8, "PRAGMA"),
                (9, "DELETE"),
                (9, "CREATE"),
            ]
        );
        let prose = "// SELECT path FROM lorries: a comment\n\
                     /// DELETE FROM jobs in a doc comment\n\
                     let select = \"select the lorry from the list\";\n\
                     \"Delete from disk\"; \"UPDATE the mirror, then push\";\n\
                     \"CREATE a repository\"; Update { set: 1 }; PRAGMA: Foo;\n";
        assert_eq!(sql_in(prose), []);
    }

    /// Architecture invariant: SQL lives in `crates/lc-core/src/db/` (and
    /// the schema in `migrations/`), nowhere else in the workspace.
    #[test]
    fn no_sql_outside_db() {
        let lc_core = Path::new(env!("CARGO_MANIFEST_DIR"));
        let root = lc_core
            .join("../..")
            .canonicalize()
            .expect("workspace root");
        let db = root.join("crates/lc-core/src/db");
        let migrations = root.join("migrations");
        let mut files = Vec::new();
        sources(&root, &mut files);
        assert!(
            files
                .iter()
                .any(|f| f.ends_with("crates/lc-web/src/api.rs")),
            "the scan did not reach the workspace's sources"
        );
        let mut outside = Vec::new();
        for file in files {
            if file.starts_with(&db) || file.starts_with(&migrations) {
                continue;
            }
            let text = std::fs::read_to_string(&file).expect("read");
            let shown = file.strip_prefix(&root).unwrap_or(&file).display();
            if file.extension().is_some_and(|e| e == "sql") {
                outside.push(format!("{shown}: a SQL file"));
            }
            for (line, word) in sql_in(&text) {
                outside.push(format!("{shown}:{line}: {word} ..."));
            }
        }
        assert!(
            outside.is_empty(),
            "SQL outside crates/lc-core/src/db/ (move it into a db module):\n{}",
            outside.join("\n")
        );
    }
}
