//! Glue shared by the binaries of Lorry Controller: option files and logging.
//!
//! The binaries themselves (`src/bin/`) are thin: they parse options with
//! clap, call [`args_with_config_file`] first so that `--config FILE` works
//! as it did in the original, set up logging, and call into the library crates.

pub mod logging;
pub mod options;

pub use options::args_with_config_file;
