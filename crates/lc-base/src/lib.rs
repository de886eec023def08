//! What every lorry-controller program shares and that holds no state: the
//! `.lorry` format ([`spec`]), hiding secrets before text is shown
//! ([`redact`]), readable times and sizes ([`timefmt`]), `proxy.conf`
//! ([`proxy`]) and an error's causes as one line ([`errors`]).
//!
//! A leaf crate: no database, no network, no processes. `lorry`, the
//! minion and the admin CLI build on it without building STATEDB.

pub mod errors;
pub mod proxy;
pub mod redact;
pub mod spec;
pub mod timefmt;
