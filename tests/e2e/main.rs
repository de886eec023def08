//! The end-to-end tests: one binary (one link, one run), each module a
//! part of the system driven through the real binaries. `common` starts
//! them; `doubles` plays the hosts they talk to.

#![expect(
    clippy::disallowed_methods,
    reason = "end-to-end tests start the real binaries, git, git daemon, promtool..."
)]

mod activity;
mod admin;
mod api;
mod architecture;
mod backup;
mod batch;
mod browser;
mod common;
mod confgit;
mod crash;
mod demo;
mod disk;
mod doubles;
mod events;
mod faults;
mod fuzz;
mod grokmirror;
mod hosts;
mod limits;
mod longpoll;
mod lorry_cli;
mod mail;
mod metrics;
mod migrations;
mod minion;
mod mqtt;
mod package;
mod provenance;
mod samples;
mod sandbox;
mod security;
mod status;
mod traces;
mod units;
mod webhooks;
