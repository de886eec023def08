//! `lorry`'s options, with the original's names, from the command line and
//! from `--config FILE` (INI, a `[config]` section whose keys are long option
//! names, dashes or underscores), read by [`lc_startup::options`] as for the
//! other binaries. A file's settings come before the command line's, so the
//! command line wins; booleans take yes/no/true/false/on/off/1/0 and become
//! `--x`/`--no-x`; a repeatable option's key may be given more than once.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{ArgAction, CommandFactory, Parser, ValueEnum};
use lc_startup::options::{KeySpelling, args_with_config_file_spelled};

#[derive(Debug, thiserror::Error)]
pub enum OptionsError {
    /// A `--config` file that cannot be read or sets what `lorry` does not
    /// have; the message names the file and the key.
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    Usage(String),
    /// `--help`: the text to print, and a successful exit.
    #[error("{0}")]
    Help(String),
}

/// When to write a bundle or a tarball of a mirror.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum When {
    /// Only when none exists yet.
    First,
    Never,
    /// After every run that changed the mirror.
    Always,
}

#[derive(Clone, Debug, Parser)]
#[command(
    name = "lorry",
    about = "Mirror upstream source (git, svn, hg, bzr, cvs, archives) into git and push it downstream",
    disable_version_flag = true
)]
pub struct Options {
    /// Where the mirrors live between runs.
    #[arg(long, short = 'w', value_name = "DIR", overrides_with = "working_area")]
    pub working_area: Option<PathBuf>,
    /// Base URL to push to; a spec named NAME goes to BASE/NAME.git.
    /// Required unless --pull-only.
    #[arg(long, value_name = "URL", overrides_with = "mirror_base_url_push")]
    pub mirror_base_url_push: Option<String>,
    /// Base URL the mirrors are fetched from; names bundles and tarballs.
    #[arg(long, value_name = "URL", overrides_with = "mirror_base_url_fetch")]
    pub mirror_base_url_fetch: Option<String>,
    /// Update the working area only; push nothing.
    #[arg(long, overrides_with = "no_pull_only")]
    pub pull_only: bool,
    #[arg(long, overrides_with = "pull_only", hide = true)]
    pub no_pull_only: bool,
    /// Print progress on stdout.
    #[arg(long, short = 'v', overrides_with = "no_verbose")]
    pub verbose: bool,
    #[arg(long, overrides_with = "verbose", hide = true)]
    pub no_verbose: bool,
    /// Repack a mirror when its pack count grows (the default).
    #[arg(long, overrides_with = "no_repack")]
    pub repack: bool,
    /// Never repack.
    #[arg(long, overrides_with = "repack")]
    pub no_repack: bool,
    /// When to write a git bundle of each mirror.
    #[arg(
        long,
        value_enum,
        default_value = "first",
        value_name = "WHEN",
        overrides_with = "bundle"
    )]
    pub bundle: When,
    /// Directory for bundles.
    #[arg(long, value_name = "DIR", overrides_with = "bundle_dest")]
    pub bundle_dest: Option<PathBuf>,
    /// When to write a tarball of each bare mirror.
    #[arg(
        long,
        value_enum,
        default_value = "first",
        value_name = "WHEN",
        overrides_with = "tarball"
    )]
    pub tarball: When,
    /// Directory for tarballs.
    #[arg(long, value_name = "DIR", overrides_with = "tarball_dest")]
    pub tarball_dest: Option<PathBuf>,
    /// Passed to `git push --push-option`; repeatable.
    #[arg(long, value_name = "OPTION", action = ArgAction::Append)]
    pub push_option: Vec<String>,
    /// Verify TLS certificates (the default); a spec may override it.
    #[arg(long, overrides_with = "no_check_certificates")]
    pub check_certificates: bool,
    /// Do not verify TLS certificates unless a spec asks to.
    #[arg(long, overrides_with = "check_certificates")]
    pub no_check_certificates: bool,
    /// Keep what every failed run fetched, under
    /// refs/lorry/post-fail/<timestamp>/ (otherwise only the latest).
    #[arg(long, overrides_with = "no_keep_multiple_backups")]
    pub keep_multiple_backups: bool,
    #[arg(long, overrides_with = "keep_multiple_backups", hide = true)]
    pub no_keep_multiple_backups: bool,
    /// Allow upstreams on this machine (file:// URLs and paths), which a
    /// spec from CONFGIT or a host listing could otherwise use to read the
    /// minion's disk. For demos and tests.
    #[arg(long, overrides_with = "no_allow_local_upstreams")]
    pub allow_local_upstreams: bool,
    #[arg(long, overrides_with = "allow_local_upstreams", hide = true)]
    pub no_allow_local_upstreams: bool,
    /// Mirror the Git LFS objects of git specs unless a spec says
    /// `lfs: false`.
    #[arg(long, overrides_with = "no_lfs_default")]
    pub lfs_default: bool,
    #[arg(long, overrides_with = "lfs_default", hide = true)]
    pub no_lfs_default: bool,
    /// After each spec, print one `lorry: timings:` line: the wall time of
    /// each step of its run and the git commands each step started.
    #[arg(long, overrides_with = "no_timings")]
    pub timings: bool,
    #[arg(long, overrides_with = "timings", hide = true)]
    pub no_timings: bool,
    /// How long the last run's record of the downstream is trusted: a run
    /// pushes only what moved upstream, without listing the downstream,
    /// while the downstream was listed within this time; after it, the
    /// run lists the downstream and repairs any drift, even when nothing
    /// changed upstream. Seconds, or a number with s, m, h or d; 0 lists
    /// it on every run.
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "24h",
        value_parser = parse_duration,
        overrides_with = "downstream_check_every"
    )]
    pub downstream_check_every: u64,
    /// The file is a batch check (lc_api::BatchSpec, as the minion writes
    /// it): list each upstream's heads and tags, in parallel, with bounded
    /// `git ls-remote`s, and write their digests (lc_api::BatchResult) to
    /// --result-file. Needs no working area and pushes nothing.
    #[arg(long)]
    pub check_refs: bool,
    /// Write what the run did, as JSON (lc_api::JobResult), to this file.
    #[arg(long, value_name = "FILE", overrides_with = "result_file")]
    pub result_file: Option<PathBuf>,
    /// Read options from this INI file's [config] section (repeatable).
    #[arg(long, value_name = "FILE", action = ArgAction::Append)]
    pub config: Vec<PathBuf>,
    /// The .lorry files to mirror.
    #[arg(value_name = "LORRY_FILE", required = true)]
    pub files: Vec<PathBuf>,
}

impl Options {
    /// Whether to repack (on unless `--no-repack` came last).
    pub fn repack_enabled(&self) -> bool {
        !self.no_repack
    }

    /// The global TLS verification setting.
    pub fn check_certificates_enabled(&self) -> bool {
        !self.no_check_certificates
    }

    /// Parses `args` (program name first), reading every `--config` file.
    pub fn parse(args: Vec<OsString>) -> Result<Self, OptionsError> {
        let expanded =
            args_with_config_file_spelled(args, &Options::command(), KeySpelling::UnderscoresToo)
                .map_err(|e| OptionsError::Config(format!("{e:#}")))?;
        Options::try_parse_from(expanded).map_err(|e| match e.kind() {
            clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                OptionsError::Help(e.to_string())
            }
            _ => OptionsError::Usage(e.to_string()),
        })
    }
}

/// A duration in seconds: a number with an optional unit `s`, `m`, `h` or
/// `d` (any case).
fn parse_duration(text: &str) -> Result<u64, String> {
    let bad = || format!("bad duration {text:?} (e.g. 3600, 30m, 24h, 1d)");
    let t = text.trim();
    let digits_end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(digits_end);
    let number: u64 = number.parse().map_err(|_| bad())?;
    let factor = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return Err(bad()),
    };
    number.checked_mul(factor).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<OsString> {
        std::iter::once("lorry")
            .chain(list.iter().copied())
            .map(OsString::from)
            .collect()
    }

    #[test]
    fn defaults() {
        let o = Options::parse(args(&["a.lorry"])).expect("parse");
        assert!(o.repack_enabled());
        assert!(o.check_certificates_enabled());
        assert_eq!(o.bundle, When::First);
        assert_eq!(o.tarball, When::First);
        assert!(!o.pull_only);
        assert!(!o.allow_local_upstreams);
        assert_eq!(o.downstream_check_every, 24 * 3600);
        assert_eq!(o.files, vec![PathBuf::from("a.lorry")]);
    }

    #[test]
    fn no_forms_and_last_wins() {
        let o = Options::parse(args(&["--no-repack", "--repack", "x"])).expect("parse");
        assert!(o.repack_enabled());
        let o = Options::parse(args(&["--repack", "--no-repack", "x"])).expect("parse");
        assert!(!o.repack_enabled());
        let o = Options::parse(args(&[
            "--push-option",
            "a",
            "--push-option=b",
            "--bundle",
            "never",
            "x",
        ]))
        .expect("parse");
        assert_eq!(o.push_option, vec!["a", "b"]);
        assert_eq!(o.bundle, When::Never);
        let o = Options::parse(args(&[
            "--bundle=never",
            "--bundle=always",
            "-w",
            "a",
            "-w",
            "b",
            "x",
        ]))
        .expect("repeated single-valued options: the last wins");
        assert_eq!(o.bundle, When::Always);
        assert_eq!(o.working_area, Some(PathBuf::from("b")));
    }

    #[test]
    fn config_file_sets_defaults_that_the_command_line_overrides() {
        let dir = tempfile::tempdir().expect("tempdir");
        let conf = dir.path().join("lorry.conf");
        std::fs::write(
            &conf,
            "[config]\nworking-area = /srv/wa\npull-only = yes\nallow-local-upstreams = yes\nlfs-default = yes\nrepack = no\ndownstream-check-every = 90m\nbundle = always\npush_option = ci.skip\npush-option = two\n",
        )
        .expect("write");
        let conf_arg = format!("--config={}", conf.display());
        let o = Options::parse(args(&[&conf_arg, "--repack", "x"])).expect("parse");
        assert_eq!(o.working_area, Some(PathBuf::from("/srv/wa")));
        assert!(o.pull_only);
        assert!(o.allow_local_upstreams);
        assert!(o.lfs_default);
        assert!(o.repack_enabled());
        assert_eq!(o.bundle, When::Always);
        assert_eq!(o.push_option, vec!["ci.skip", "two"]);
        assert_eq!(o.downstream_check_every, 90 * 60);
    }

    #[test]
    fn downstream_check_every_takes_units_and_refuses_the_rest() {
        for (text, secs) in [
            ("0", 0),
            ("45", 45),
            ("10s", 10),
            ("2H", 7200),
            ("1d", 86400),
        ] {
            let arg = format!("--downstream-check-every={text}");
            let o = Options::parse(args(&[&arg, "x"])).expect("parse");
            assert_eq!(o.downstream_check_every, secs, "{text}");
        }
        for text in ["", "-1", "1w", "h", "99999999999999999999d"] {
            let arg = format!("--downstream-check-every={text}");
            let err = Options::parse(args(&[&arg, "x"])).expect_err(text);
            assert!(err.to_string().contains("downstream-check-every"), "{err}");
        }
    }

    #[test]
    fn config_file_errors_name_file_and_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let conf = dir.path().join("bad.conf");
        std::fs::write(&conf, "[config]\nworking-aera = /x\n").expect("write");
        let err = Options::parse(args(&["--config", conf.to_str().expect("utf8"), "x"]))
            .expect_err("unknown key");
        let text = err.to_string();
        assert!(
            text.contains("bad.conf") && text.contains("working-aera"),
            "{text}"
        );

        std::fs::write(&conf, "[config]\nverbose = maybe\n").expect("write");
        let err = Options::parse(args(&["--config", conf.to_str().expect("utf8"), "x"]))
            .expect_err("bad bool");
        assert!(err.to_string().contains("maybe"), "{err}");

        let missing = dir.path().join("missing.conf");
        let err = Options::parse(args(&["--config", missing.to_str().expect("utf8"), "x"]))
            .expect_err("missing");
        assert!(err.to_string().contains("missing.conf"), "{err}");
    }

    #[test]
    fn at_least_one_lorry_file() {
        assert!(matches!(
            Options::parse(args(&[])),
            Err(OptionsError::Usage(_))
        ));
        assert!(matches!(
            Options::parse(args(&["--bundle", "sometimes", "x"])),
            Err(OptionsError::Usage(_))
        ));
    }
}
