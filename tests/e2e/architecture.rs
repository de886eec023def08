//! The invariants of ARCH.md that no compiler or lint holds: which crates
//! each program links, where `git` is started, and that handlers do not
//! call handlers. Each reads the workspace itself (`cargo tree`, the
//! sources), so a change that breaks an invariant fails here.

use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The packages `package` depends on through `edges` ("normal,build"...),
/// down to `depth` (None: all), by name; the package itself excluded.
fn dependencies(package: &str, edges: &str, depth: Option<u32>) -> Vec<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(workspace())
        .args(["tree", "--locked", "--offline", "--prefix", "none"])
        .args(["--format", "{p}", "-e", edges, "-p", package]);
    if let Some(depth) = depth {
        command.arg("--depth").arg(depth.to_string());
    }
    let out = command.output().expect("cargo tree");
    assert!(
        out.status.success(),
        "cargo tree -p {package}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| *name != package)
        .map(str::to_owned)
        .collect();
    names.sort();
    names.dedup();
    names
}

fn offending<'a>(deps: &'a [String], banned: &[&str]) -> Vec<&'a str> {
    deps.iter()
        .map(String::as_str)
        .filter(|d| banned.contains(d))
        .collect()
}

#[test]
fn only_the_webapp_crates_link_sqlite() {
    // lorry, the minion and the admin CLI (and the leaves they build on)
    // run where STATEDB is not: they must not build rusqlite or the
    // migrations (ARCH.md, Code map).
    for package in [
        "lc-lorry",
        "lc-minion",
        "lc-admin",
        "lc-base",
        "lc-api",
        "lc-git",
        "lc-startup",
    ] {
        let deps = dependencies(package, "normal,build", None);
        let bad = offending(&deps, &["rusqlite", "rusqlite_migration", "lc-core"]);
        assert!(bad.is_empty(), "{package} links {bad:?}");
    }
}

#[test]
fn lc_base_is_a_leaf_and_lc_core_knows_no_http_git_or_network() {
    let base = dependencies("lc-base", "normal,build", Some(1));
    let workspace_deps: Vec<&String> = base.iter().filter(|d| d.starts_with("lc-")).collect();
    assert!(
        workspace_deps.is_empty(),
        "lc-base depends on {workspace_deps:?}"
    );
    let core = dependencies("lc-core", "normal,build", None);
    let bad = offending(&core, &["axum", "hyper", "reqwest", "http", "git2", "mio"]);
    assert!(bad.is_empty(), "lc-core links {bad:?}");
}

#[test]
fn only_lc_web_depends_on_axum_and_hyper() {
    for package in [
        "lc-api",
        "lc-base",
        "lc-core",
        "lc-git",
        "lc-hosts",
        "lc-lorry",
        "lc-minion",
        "lc-admin",
        "lc-startup",
    ] {
        let direct = dependencies(package, "normal", Some(1));
        let bad = offending(&direct, &["axum", "hyper", "hyper-util"]);
        assert!(bad.is_empty(), "{package} depends on {bad:?} directly");
    }
    let web = dependencies("lc-web", "normal", Some(1));
    assert!(
        web.iter().any(|d| d == "axum"),
        "the scan sees lc-web's axum: {web:?}"
    );
}

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read_dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// A source file without its unit tests (everything from the first
/// `#[cfg(test)]` on, which is where this workspace keeps them).
fn non_test_source(file: &Path) -> String {
    let text = std::fs::read_to_string(file).expect("read source");
    match text.find("#[cfg(test)]") {
        Some(at) => text[..at].to_owned(),
        None => text,
    }
}

#[test]
fn git_is_started_only_by_lc_git() {
    // Clippy confines spawning to a few places (clippy.toml); this checks
    // that those outside lc-git never start git itself: the converters go
    // through lc_git::Git.
    let mut found = Vec::new();
    let mut scanned = 0;
    for crate_dir in std::fs::read_dir(workspace().join("crates")).expect("crates") {
        let crate_dir = crate_dir.expect("entry").path();
        if crate_dir.ends_with("lc-git") {
            continue;
        }
        for file in rust_files(&crate_dir.join("src")) {
            scanned += 1;
            let text: String = non_test_source(&file)
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect();
            for pattern in [
                "Command::new(\"git\"",
                "tool(\"git\"",
                "Command::new(\"git-",
            ] {
                if text.contains(pattern) {
                    found.push(format!("{}: {pattern}", file.display()));
                }
            }
        }
    }
    assert!(scanned > 50, "the scan read the sources ({scanned} files)");
    assert!(found.is_empty(), "git started outside lc-git: {found:#?}");
}

/// The handlers `router.rs` routes to, as (module, function).
fn routed_handlers(router: &str) -> Vec<(String, String)> {
    let mut handlers = Vec::new();
    for method in ["get(", "post("] {
        for piece in router.split(method).skip(1) {
            let target: String = piece
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            if let Some((module, function)) = target.rsplit_once("::") {
                handlers.push((module.to_owned(), function.to_owned()));
            }
        }
    }
    handlers
}

/// Whether `text` calls `function` as a free function: `function(` or
/// `module::function(`, but not `.function(`, `fn function(`,
/// `Type::function(` or `other_function(`.
fn calls(text: &str, function: &str) -> bool {
    let needle = format!("{function}(");
    text.match_indices(&needle).any(|(at, _)| {
        let before = &text[..at];
        if let Some(path) = before.strip_suffix("::") {
            let qualifier = path
                .rsplit(|c: char| !(c.is_alphanumeric() || c == '_'))
                .next()
                .unwrap_or("");
            return qualifier.starts_with(|c: char| c.is_lowercase());
        }
        let prev = before.chars().last();
        let word_start = !prev.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.');
        let is_definition = before.trim_end().ends_with("fn");
        word_start && !is_definition
    })
}

#[test]
fn handlers_do_not_call_handlers() {
    let src = workspace().join("crates/lc-web/src");
    let router = std::fs::read_to_string(src.join("router.rs")).expect("router.rs");
    let handlers = routed_handlers(&router);
    assert!(
        handlers.len() > 30,
        "the scan finds the routes: {handlers:?}"
    );
    let mut found = Vec::new();
    for file in rust_files(&src) {
        if file.ends_with("router.rs") || file.ends_with("tests.rs") {
            continue;
        }
        let text = non_test_source(&file);
        for (_, function) in &handlers {
            if calls(&text, function) {
                found.push(format!("{} calls handler {function}", file.display()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "handlers share helpers instead of calling each other (ARCH.md): {found:#?}"
    );
}

#[test]
fn the_call_scan_tells_calls_from_definitions_and_methods() {
    assert!(calls("let x = api::lorry(state, path);", "lorry"));
    assert!(calls("    status(state).await", "status"));
    assert!(!calls("pub async fn lorry(State(s): ..)", "lorry"));
    assert!(!calls("tx.lorry(&path)?", "lorry"));
    assert!(!calls("build_status(state)", "status"));
    assert!(!calls("StatusCode::status(x)", "status"));
}
