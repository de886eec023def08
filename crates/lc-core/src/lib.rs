//! The webapp's state: STATEDB with every scheduling decision, and reading
//! CONFGIT into what STATEDB should hold.
//!
//! This crate knows nothing of HTTP, HTML or git. The webapp calls into
//! [`db::StateDb`]; every state transition there is one SQLite transaction.
//! The `.lorry` format, redaction and readable times are `lc_base`'s.

pub mod config;
pub mod db;
pub mod error;

pub use error::{Error, Result};
