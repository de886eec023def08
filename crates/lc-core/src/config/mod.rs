//! CONFGIT: `lorry-controller.conf` (or Lorry 2's `lorry-configuration.conf`)
//! and the `.lorry` files its `lorries` sections name.
//!
//! A conf file that does not parse or validate fails the whole read
//! ([`ConfError`]): nothing is applied. A `.lorry` file or spec that is bad is
//! skipped and recorded as a [`ConfigProblem`](lc_api::ConfigProblem); the
//! rest still loads.
//!
//! `conf` parses the conf file, `load` reads a checkout, `cache` keeps
//! parsed `.lorry` files between reads, `check` is `--check-config`.

mod cache;
mod check;
mod conf;
mod load;
mod tree;

pub use cache::{LorryFileCache, RACY_MARGIN};
pub use check::{CheckReport, check_config};
pub use conf::{
    ConfError, DEFAULT_INTERVAL, DEFAULT_LORRY_TIMEOUT, DEFAULT_LS_INTERVAL, HostSpec, HostType,
    LorriesSection, Section, parse_conf, parse_duration,
};
pub use load::{CONF_FILES, LoadedConfig, load_config, load_config_cached, load_config_tree};
pub use tree::{BlobCache, BlobReader, ConfigTree, TreeFile};

#[cfg(test)]
pub(crate) mod tests {
    use std::path::Path;

    /// Writes `text` to `rel` under `dir`, making directories as needed.
    pub(crate) fn write(dir: &Path, rel: &str, text: &str) {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(path, text).expect("write");
    }
}
