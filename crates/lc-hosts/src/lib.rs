//! Upstream and Downstream Hosts.
//!
//! * [`Downstream`]: where mirrors are pushed. Before each job the webapp
//!   asks it to [`Downstream::prepare`] the repository: create it if
//!   missing (with its groups or organisation), set its default branch and
//!   description from the upstream's metadata. An existing repository is
//!   left alone.
//! * [`upstream`]: listing the repositories of an Upstream Host (Trove,
//!   GitLab, Gitea, or a fake from a JSON file), and [`mapping`]: turning a
//!   listing into generated git lorries through `ignore` and `prefixmap`.
//! * [`Politeness`]: a per-host cap on API calls per second and backing off
//!   on 429/503, shared by every HTTP call of this crate.
//!
//! This crate does no SQL: the webapp stores what it produces through
//! `lc_core::db`. Secrets (tokens, passwords) are [`Secret`]s, whose `Debug`
//! and `Display` hide them; error messages never carry them.

mod api;
pub mod downstream;
pub mod mapping;
mod polite;
pub mod ssh;
pub mod upstream;

pub use downstream::{Downstream, PrepareError, Prepared, RepoMetadata};
pub use lc_base::redact::Secret;
pub use polite::{Backoff, Politeness};
