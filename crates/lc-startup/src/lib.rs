//! Glue shared by the binaries of Lorry Controller: option files, logging and traces.
//!
//! Every binary parses its options with clap, calls
//! [`args_with_config_file`] first so that `--config FILE` works as it did
//! in the original, and sets up logging with [`logging`].

pub mod logging;
pub mod options;
pub mod size;
pub mod token;
pub mod traces;

pub use options::args_with_config_file;
pub use size::parse_size;
