//! Test doubles of the hosts Lorry Controller talks to, each following the
//! public API reference of the version it names.
//!
//! HTTP doubles run in-process on 127.0.0.1 ephemeral ports, each on its
//! own thread with a small tokio runtime, and record the requests they get.

pub mod forge_git;
pub mod gitea_v1;
pub mod github_rest;
pub mod gitlab_v4;
pub mod ssh;
pub mod trove_http;

use std::sync::{Arc, MutexGuard};

use serde_json::Value;

use forge_git::ForgeGit;
use gitlab_v4::decode;

/// An HTTP double serving a router until dropped.
pub struct Server {
    pub port: u16,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    pub fn start(router: axum::Router) -> Server {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                axum::serve(listener, router)
                    .with_graceful_shutdown(async {
                        let _ = rx.await;
                    })
                    .await
                    .expect("serve");
            });
        });
        Server {
            port,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `host:port`, as a CONFGIT host section names it.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One request a double received.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub query: String,
    pub body: Value,
}

impl Seen {
    /// `METHOD path` (decoded path, no query).
    pub fn line(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

impl Seen {
    /// Reads `request`'s body (at most 1 MiB, as the forges cap it well
    /// above anything Lorry Controller sends) and records it: the parts,
    /// the body to hand on, and what was seen.
    pub async fn record(
        request: axum::extract::Request,
    ) -> (axum::http::request::Parts, axum::body::Bytes, Seen) {
        let (parts, body) = request.into_parts();
        let bytes = axum::body::to_bytes(body, 1 << 20)
            .await
            .unwrap_or_default();
        let seen = Seen {
            method: parts.method.to_string(),
            path: decode(parts.uri.path()),
            query: parts.uri.query().unwrap_or("").to_owned(),
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        };
        (parts, bytes, seen)
    }
}

/// The state every forge double (GitLab, Gitea, GitHub) keeps besides its
/// own: the requests it got and the bare repositories behind it, if any.
pub trait ForgeState {
    fn seen(&self) -> &[Seen];
    fn set_git(&mut self, git: Arc<ForgeGit>);
}

/// What the forge doubles' handles share.
pub trait Forge {
    type State: ForgeState;

    fn lock_state(&self) -> MutexGuard<'_, Self::State>;

    /// Backs the double's repositories with bare git repositories under
    /// `dir` (create each with [`ForgeGit::create`]); the forge's activity
    /// field (GitLab `last_activity_at`, Gitea `updated_at`, GitHub
    /// `pushed_at`) then follows their pushes, by the forge clock the
    /// returned handle sets.
    fn attach_git(&self, dir: &std::path::Path) -> Arc<ForgeGit> {
        let git = Arc::new(ForgeGit::new(dir));
        self.lock_state().set_git(Arc::clone(&git));
        git
    }

    /// Every request the double got, in order.
    fn seen(&self) -> Vec<Seen> {
        self.lock_state().seen().to_vec()
    }

    /// The requests that changed something: `METHOD path` and the body.
    fn changes(&self) -> Vec<(String, Value)> {
        self.lock_state()
            .seen()
            .iter()
            .filter(|r| r.method != "GET")
            .map(|r| (r.line(), r.body.clone()))
            .collect()
    }
}

/// Implements [`ForgeState`] and [`Forge`] for a double whose handle has
/// `fn state(&self) -> MutexGuard<State>` and whose state has the fields
/// `seen: Vec<Seen>` and `git: Option<Arc<ForgeGit>>`.
macro_rules! forge_double {
    ($handle:ty, $state:ty) => {
        impl $crate::doubles::ForgeState for $state {
            fn seen(&self) -> &[$crate::doubles::Seen] {
                &self.seen
            }

            fn set_git(&mut self, git: ::std::sync::Arc<$crate::doubles::forge_git::ForgeGit>) {
                self.git = Some(git);
            }
        }

        impl $crate::doubles::Forge for $handle {
            type State = $state;

            fn lock_state(&self) -> ::std::sync::MutexGuard<'_, $state> {
                self.state()
            }
        }
    };
}
pub(crate) use forge_double;
