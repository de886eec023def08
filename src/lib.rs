//! The binaries of Lorry Controller live in `src/bin/`; the end-to-end tests
//! that start them in `tests/`. What the binaries share comes from `lc-startup`,
//! re-exported here.

pub use lc_startup::{args_with_config_file, logging, options, token};
