//! The integration tests of `lorry`: one binary, real upstreams and a real
//! downstream in temp dirs.

mod common;
mod git;
