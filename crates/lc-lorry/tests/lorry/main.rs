//! The integration tests of `lorry`: one binary, real upstreams and a real
//! downstream in temp dirs.

#![expect(
    clippy::disallowed_methods,
    reason = "the tests run real upstreams: git, git daemon, openssl s_server, converters"
)]

mod archives;
mod common;
mod converters;
mod git;
mod http;
mod lean;
mod lfs;
mod refs;
mod tls;
