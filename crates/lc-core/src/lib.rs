//! The domain of Lorry Controller: STATEDB and every scheduling decision,
//! and readable times.
//!
//! This crate knows nothing of HTTP, HTML or git. The webapp calls into
//! [`db::StateDb`]; every state transition there is one SQLite transaction.

pub mod config;
pub mod db;
pub mod error;
pub mod proxy;
pub mod redact;
pub mod spec;
pub mod timefmt;

pub use error::{Error, Result};
