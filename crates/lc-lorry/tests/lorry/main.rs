//! The integration tests of `lorry`: one binary, real upstreams and a real
//! downstream in temp dirs.

mod archives;
mod common;
mod converters;
mod git;
mod http;
mod tls;
