//! `POST /1.0/read-configuration`: fetch CONFGIT into the webapp's copy
//! (a repository in the configuration directory, no working tree), read
//! the fetched commit's files, and sync STATEDB with them (or, on a dry
//! run, say what would change).
//!
//! A working tree left in the configuration directory by an older version
//! (the Python Lorry Controller kept a checkout there) is not read; it is
//! brought to the fetched commit after each read that applies, for
//! scripts that read it, by `lc_git::confgit::keep_checkout`, which never
//! loses a local change: when one stands in the way the checkout stays as
//! it is, and a config problem (file `.`) says so on the status page and
//! in the read's answer until it is resolved.
//!
//! A conf file that does not parse or validate is the caller's problem (400,
//! naming file, section and problem) and leaves STATEDB untouched. A CONFGIT
//! that cannot be fetched is 503, naming the URL with credentials hidden.

use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use lc_api::{ConfigProblem, Message, ReadConfigurationSummary};
use lc_core::config::{
    BlobCache, ConfError, ConfigTree, LoadedConfig, LorryFileCache, TreeFile, load_config_cached,
    load_config_tree,
};
use lc_core::db::StateDb;
use lc_git::confgit::{
    Checkout, ConfgitError, ConfgitTree, TreeEntry, keep_checkout, update_confgit,
};

use crate::api::Reply;
use crate::error::ApiError;
use crate::form::Fields;
use crate::{AppState, WebConfig};

/// One read of CONFGIT at a time (two would race on the repository), and
/// none refused: a read asked for while one runs is coalesced into a single
/// further read after it, so that a push landing during a timer's read is
/// never lost, and no request waits (nor holds a thread) for a running read.
#[derive(Debug, Default)]
pub struct ReadGate {
    state: Mutex<GateState>,
    /// The configuration last loaded from CONFGIT, with the id of the
    /// git tree it was loaded from: a read that fetches the same tree
    /// loads the same, so it is not loaded again.
    last: Mutex<Option<(String, Arc<LoadedConfig>)>>,
    /// The `.lorry` files of the trees read, parsed, by blob id.
    blobs: BlobCache,
}

#[derive(Debug, Default)]
struct GateState {
    running: bool,
    again: bool,
}

/// What [`ReadGate::begin`] decided.
#[derive(Debug, PartialEq, Eq)]
enum Begin {
    /// The caller reads now and must call [`ReadGate::end`] afterwards.
    Read,
    /// A read runs; one more will follow it.
    Coalesced,
    /// A read runs and the caller asked for a dry run, which cannot wait.
    Busy,
}

impl ReadGate {
    fn state(&self) -> std::sync::MutexGuard<'_, GateState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn last(&self) -> std::sync::MutexGuard<'_, Option<(String, Arc<LoadedConfig>)>> {
        self.last
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn begin(&self, dry_run: bool) -> Begin {
        let mut state = self.state();
        match (state.running, dry_run) {
            (false, _) => {
                state.running = true;
                Begin::Read
            }
            (true, false) => {
                state.again = true;
                Begin::Coalesced
            }
            (true, true) => Begin::Busy,
        }
    }

    /// Ends a read: true when another was asked for meanwhile, which the
    /// caller must now run (the gate stays taken).
    fn end(&self) -> bool {
        let mut state = self.state();
        if state.again {
            state.again = false;
        } else {
            state.running = false;
        }
        state.running
    }
}

/// The answer to a read asked for while one runs.
pub const COALESCED: &str = "a read of CONFGIT is running: this request is coalesced \
    into one more read after the current one";

#[derive(Debug, thiserror::Error)]
enum ReadError {
    #[error(transparent)]
    Fetch(#[from] ConfgitError),
    #[error(transparent)]
    Conf(#[from] ConfError),
    #[error(transparent)]
    Db(#[from] lc_core::Error),
}

impl From<ReadError> for ApiError {
    fn from(err: ReadError) -> ApiError {
        match err {
            ReadError::Fetch(e) => ApiError::Unavailable(e.to_string()),
            ReadError::Conf(e) => ApiError::BadRequest(e.to_string()),
            ReadError::Db(e) => ApiError::from(e),
        }
    }
}

fn read_blocking(
    db: &StateDb,
    config: &WebConfig,
    cache: &LorryFileCache,
    gate: &ReadGate,
    dry_run: bool,
) -> Result<ReadConfigurationSummary, ReadError> {
    let dir = &config.configuration_directory;
    let head = match (&config.confgit_url, config.debug_real_confgit) {
        (Some(url), true) => Some(update_confgit(
            url,
            &config.confgit_branch,
            dir,
            config.confgit_timeout,
        )?),
        _ => None,
    };
    let checkout = match &head {
        Some(_) if !dry_run => Some(keep_checkout(
            dir,
            &config.confgit_branch,
            config.confgit_timeout,
        )),
        _ => None,
    };
    let checkout_problem = checkout.and_then(|checkout| checkout_problem(dir, checkout));
    let same_tree = head.as_ref().and_then(|head| {
        gate.last()
            .as_ref()
            .filter(|(tree, _)| *tree == head.tree)
            .map(|(_, loaded)| Arc::clone(loaded))
    });
    let same_tree_reused = same_tree.is_some();
    let loaded = match (same_tree, head) {
        (Some(loaded), _) => loaded,
        (None, Some(head)) => {
            // Read from the fetched tree: no checkout.
            let tree = Arc::new(ConfgitTree::read(dir, &head.tree)?);
            let files = tree
                .files
                .iter()
                .map(|(path, entry)| {
                    let file = match entry {
                        TreeEntry::Blob(id) => TreeFile::Blob(id.clone()),
                        TreeEntry::Outside(path) => TreeFile::Outside(path.clone()),
                    };
                    (path.clone(), file)
                })
                .collect();
            let tree = ConfigTree {
                shown: dir.display().to_string(),
                files,
                read: Box::new(move |id: &str| tree.read_blob(id)),
            };
            let loaded = Arc::new(load_config_tree(&tree, &gate.blobs)?);
            *gate.last() = Some((head.tree, Arc::clone(&loaded)));
            loaded
        }
        (None, None) => Arc::new(load_config_cached(dir, cache)?),
    };
    let loaded = match checkout_problem {
        Some(problem) => {
            let mut with_problem = LoadedConfig::clone(&loaded);
            with_problem.problems.push(problem);
            Arc::new(with_problem)
        }
        None => loaded,
    };
    let summary = if dry_run {
        db.read(|tx| Ok(tx.plan_config(&loaded)?.summary))?
    } else {
        db.write(|tx| tx.apply_config(&loaded))?
    };
    tracing::info!(
        dry_run,
        files = loaded.files_read,
        parsed = loaded.files_parsed,
        same_tree_reused,
        added = summary.lorries_added.len(),
        changed = summary.lorries_changed.len(),
        removed = summary.lorries_removed.len(),
        problems = summary.problems.len(),
        "read configuration"
    );
    Ok(summary)
}

/// Logs what [`keep_checkout`] did with a checkout left in `dir` by an
/// older version; the config problem to show when it could not follow.
fn checkout_problem(dir: &Path, checkout: Checkout) -> Option<ConfigProblem> {
    let dir = dir.display();
    match checkout {
        Checkout::None | Checkout::UpToDate => None,
        Checkout::Updated { from, to } => {
            tracing::info!(
                %dir,
                from = from.as_deref().unwrap_or("none"),
                %to,
                "the checkout left by an older version follows CONFGIT's fetched commit"
            );
            None
        }
        Checkout::Kept { to, why } => {
            tracing::warn!(%dir, %to, %why, "the checkout left by an older version was not updated");
            Some(ConfigProblem {
                file: ".".to_owned(),
                item: None,
                problem: format!(
                    "the checkout in {dir}, left by an older version, was not brought to \
                     CONFGIT's commit {to}, so its files are stale (the webapp reads the \
                     fetched commit, not them): {why}. Undo the local changes there, or \
                     remove the directory to stop keeping a checkout (the next read \
                     fetches CONFGIT again)"
                ),
            })
        }
    }
}

/// Reads CONFGIT and syncs STATEDB (or only plans, when `dry_run`), on a
/// blocking thread. The caller holds the gate.
async fn read_now(state: &AppState, dry_run: bool) -> Result<ReadConfigurationSummary, ApiError> {
    let db = Arc::clone(&state.db);
    let config = Arc::clone(&state.config);
    let cache = Arc::clone(&state.lorry_files);
    let gate = Arc::clone(&state.confgit);
    let summary =
        tokio::task::spawn_blocking(move || read_blocking(&db, &config, &cache, &gate, dry_run))
            .await
            .map_err(ApiError::internal)?
            .map_err(ApiError::from)?;
    if !dry_run {
        // Lorries may have been added or rescheduled: waiting give-me-jobs look.
        state.queue.wake();
    }
    Ok(summary)
}

/// Runs the read the caller began, in a task of its own (a caller that
/// goes away does not stop it), then the reads coalesced meanwhile, in the
/// background.
async fn read_configuration(
    state: &AppState,
    dry_run: bool,
) -> Result<ReadConfigurationSummary, ApiError> {
    let task_state = state.clone();
    let read = tokio::spawn(async move {
        let result = read_now(&task_state, dry_run).await;
        if task_state.confgit.end() {
            tokio::spawn(async move {
                loop {
                    match read_now(&task_state, false).await {
                        Ok(_) => {}
                        Err(err) => {
                            tracing::warn!(error = ?err, "coalesced read of CONFGIT failed")
                        }
                    }
                    if !task_state.confgit.end() {
                        break;
                    }
                }
            });
        }
        result
    });
    read.await.map_err(ApiError::internal)?
}

fn truthy(value: Option<&str>) -> Result<bool, ApiError> {
    match value {
        None | Some("" | "0" | "false" | "no") => Ok(false),
        Some("1" | "true" | "yes") => Ok(true),
        Some(other) => Err(ApiError::BadRequest(format!(
            "field dry_run must be 1 or 0, not {other:?}"
        ))),
    }
}

/// The handler: `dry_run` and `redirect` come from the form body;
/// `dry_run` may also be given in the query string.
pub async fn handler(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    fields: Fields,
) -> Result<Read, ApiError> {
    let query = Fields::parse(query.unwrap_or_default().as_bytes());
    let dry_run = truthy(fields.optional("dry_run"))? || truthy(query.optional("dry_run"))?;
    let redirect = fields.redirect()?.map(str::to_owned);
    match state.confgit.begin(dry_run) {
        Begin::Read => {}
        Begin::Coalesced => {
            tracing::info!("read-configuration coalesced into the next read");
            return Ok(Read::Coalesced(Reply::new(
                redirect.as_deref(),
                Message {
                    message: COALESCED.to_owned(),
                },
            )));
        }
        Begin::Busy => {
            return Err(ApiError::Conflict(
                "a read of CONFGIT is running; ask for the dry run again when it has finished"
                    .to_owned(),
            ));
        }
    }
    let summary = read_configuration(&state, dry_run).await?;
    Ok(Read::Done(Reply::new(redirect.as_deref(), summary)))
}

/// A read's answer: its summary, or 202 when it was coalesced.
pub enum Read {
    Done(Reply<ReadConfigurationSummary>),
    Coalesced(Reply<Message>),
}

impl IntoResponse for Read {
    fn into_response(self) -> Response {
        match self {
            Read::Done(reply) => reply.into_response(),
            Read::Coalesced(Reply::Json(message)) => {
                (StatusCode::ACCEPTED, Json(message)).into_response()
            }
            Read::Coalesced(redirect) => redirect.into_response(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use axum::body::Body;
    use axum::http::Request;
    use axum::http::{StatusCode, header};
    use axum::response::Response;
    use tower::ServiceExt;

    use super::*;
    use lc_hosts::Downstream;
    use lc_hosts::downstream::Local;

    use crate::router;

    fn state(dir: &Path) -> AppState {
        let db = StateDb::open(&dir.join("state.db")).expect("open");
        AppState::new(
            db,
            WebConfig {
                debug_real_confgit: false,
                ghost_timeout: 3600,
                job_max_age: 86_400,
                publish_failures: true,
                allow_pretend_time: true,
                ..WebConfig::new(
                    dir.join("confgit"),
                    Downstream::Local(Local::new(dir.join("downstream"))),
                )
            },
        )
    }

    fn write(dir: &Path, rel: &str, text: &str) {
        let path = dir.join("confgit").join(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }

    async fn post(state: &AppState, uri: &str, body: &str) -> (StatusCode, Response) {
        let response = router(state.clone())
            .oneshot(
                Request::post(uri)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(Body::from(body.to_owned()))
                    .expect("request"),
            )
            .await
            .expect("response");
        (response.status(), response)
    }

    async fn json(response: Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("body");
        serde_json::from_slice(&bytes).expect("json")
    }

    #[tokio::test]
    async fn dry_run_then_apply_then_bad_conf_leaves_statedb_alone() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let d = tmp.path();
        let state = state(d);
        write(
            d,
            "lorry-controller.conf",
            r#"[{"type": "lorries", "prefix": "p", "globs": ["*.lorry"]},
                {"type": "gitlab", "host": "gl", "protocol": "https", "prefixmap": {},
                 "private-token": "SECRET-TOKEN"}]"#,
        );
        write(
            d,
            "a.lorry",
            "a: {type: git, url: 'https://u:pw@x/a'}\nb: {type: nope}\n",
        );

        let (status, resp) = post(&state, "/1.0/read-configuration?dry_run=1", "").await;
        assert_eq!(status, StatusCode::OK);
        let body = json(resp).await;
        assert_eq!(body["dry_run"], true);
        assert_eq!(body["lorries_added"], serde_json::json!(["p/a"]));
        assert!(
            state
                .db
                .read(|tx| tx.lorry_paths())
                .expect("paths")
                .is_empty()
        );

        let (status, resp) = post(&state, "/1.0/read-configuration", "").await;
        assert_eq!(status, StatusCode::OK);
        let body = json(resp).await;
        assert_eq!(body["dry_run"], false);
        assert_eq!(body["hosts_added"], serde_json::json!(["gl"]));
        assert_eq!(body["problems"][0]["file"], "a.lorry");
        assert!(!body.to_string().contains("SECRET"), "{body}");
        assert_eq!(
            state.db.read(|tx| tx.lorry_paths()).expect("paths"),
            ["p/a"]
        );

        let (status, resp) = post(&state, "/1.0/read-configuration", "redirect=/").await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert_eq!(resp.headers()[header::LOCATION], "/");

        write(
            d,
            "lorry-controller.conf",
            r#"[{"type": "lorries", "globs": []}]"#,
        );
        let (status, resp) = post(&state, "/1.0/read-configuration", "").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let body = json(resp).await;
        assert_eq!(
            body["error"],
            "lorry-controller.conf: section 0 (type lorries): missing prefix"
        );
        assert_eq!(
            state.db.read(|tx| tx.lorry_paths()).expect("paths"),
            ["p/a"]
        );

        let (status, _) = post(&state, "/1.0/read-configuration", "dry_run=maybe").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn the_gate_runs_one_read_and_coalesces_the_rest_into_one() {
        let gate = ReadGate::default();
        assert_eq!(gate.begin(false), Begin::Read);
        assert_eq!(gate.begin(true), Begin::Busy);
        assert_eq!(gate.begin(false), Begin::Coalesced);
        assert_eq!(gate.begin(false), Begin::Coalesced);
        assert!(gate.end(), "one more read follows");
        assert_eq!(gate.begin(false), Begin::Coalesced);
        assert!(gate.end(), "asked for during the second read");
        assert!(!gate.end(), "nothing asked for during the third");
        assert_eq!(gate.begin(true), Begin::Read);
        assert!(!gate.end());
    }
}
