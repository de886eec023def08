//! The binaries of Lorry Controller live in `src/bin/`; the end-to-end tests
//! that start them in `tests/`. What the binaries share comes from `lc-cli`,
//! re-exported here.

pub use lc_cli::{args_with_config_file, logging, options};
