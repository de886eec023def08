//! `--config FILE`: options from an INI file, as the original's cliapp read them.
//!
//! The file has a `[config]` section whose keys are long option names
//! (`statedb = /var/lib/lorry/state.db`). Its settings come before those of
//! the command line, so the command line wins. A boolean option takes
//! `yes`/`no`, `true`/`false`, `on`/`off` or `1`/`0`; `no` turns into the
//! option's `--no-...` form when the program has one.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{ArgAction, Command};

/// How the keys of a configuration file may spell a long option name.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KeySpelling {
    /// Exactly as the option: `mirror-base-url-push`.
    #[default]
    Exact,
    /// As the option, or with underscores for its dashes:
    /// `mirror_base_url_push` (what `lorry`'s files may say).
    UnderscoresToo,
}

/// Expands every `--config FILE` in `args` into the options the file sets.
///
/// `command` is the program's clap definition: it says which keys exist and
/// which are flags. An unknown key, a bad boolean or an unreadable file is an
/// error naming the file and the key. A key given more than once gives its
/// option once for each, in order (for repeatable options).
pub fn args_with_config_file(
    args: impl IntoIterator<Item = OsString>,
    command: &Command,
) -> anyhow::Result<Vec<OsString>> {
    args_with_config_file_spelled(args, command, KeySpelling::Exact)
}

/// [`args_with_config_file`], with keys spelled as `spelling` allows.
pub fn args_with_config_file_spelled(
    args: impl IntoIterator<Item = OsString>,
    command: &Command,
    spelling: KeySpelling,
) -> anyhow::Result<Vec<OsString>> {
    let args: Vec<OsString> = args.into_iter().collect();
    let mut files = Vec::new();
    let mut iter = args.iter().skip(1);
    while let Some(arg) = iter.next() {
        let Some(text) = arg.to_str() else { continue };
        if text == "--" {
            break;
        } else if text == "--config" {
            if let Some(file) = iter.next() {
                files.push(PathBuf::from(file));
            }
        } else if let Some(file) = text.strip_prefix("--config=") {
            files.push(PathBuf::from(file));
        }
    }
    let mut expanded: Vec<OsString> = args.iter().take(1).cloned().collect();
    for file in &files {
        expanded.extend(options_from_file(file, command, spelling)?);
    }
    expanded.extend(args.into_iter().skip(1));
    Ok(expanded)
}

fn options_from_file(
    file: &Path,
    command: &Command,
    spelling: KeySpelling,
) -> anyhow::Result<Vec<OsString>> {
    let ini = ini::Ini::load_from_file(file)
        .with_context(|| format!("cannot read configuration file {}", file.display()))?;
    let mut options = Vec::new();
    for (section, properties) in ini.iter() {
        match section {
            Some("config") => {}
            Some(other) => {
                tracing::debug!(file = %file.display(), section = other, "section ignored");
                continue;
            }
            None if properties.is_empty() => continue,
            None => bail!(
                "{}: settings must be in a [config] section, found {:?} before it",
                file.display(),
                properties.iter().next().map(|(k, _)| k).unwrap_or_default()
            ),
        }
        for (key, value) in properties.iter() {
            let key = match spelling {
                KeySpelling::Exact => key.to_owned(),
                KeySpelling::UnderscoresToo => key.replace('_', "-"),
            };
            options.extend(option_for(file, command, &key, value)?);
        }
    }
    Ok(options)
}

fn option_for(
    file: &Path,
    command: &Command,
    key: &str,
    value: &str,
) -> anyhow::Result<Vec<OsString>> {
    if key == "config" {
        bail!(
            "{}: key config: a configuration file cannot name another",
            file.display()
        );
    }
    let Some(arg) = command.get_arguments().find(|a| a.get_long() == Some(key)) else {
        bail!("{}: unknown key {key:?}: no option --{key}", file.display());
    };
    let takes_value = matches!(arg.get_action(), ArgAction::Set | ArgAction::Append);
    if takes_value {
        return Ok(vec![format!("--{key}={value}").into()]);
    }
    let on = match value.trim().to_ascii_lowercase().as_str() {
        "yes" | "true" | "on" | "1" => true,
        "no" | "false" | "off" | "0" => false,
        other => bail!(
            "{}: key {key}: expected yes or no, not {other:?}",
            file.display()
        ),
    };
    let negated = format!("no-{key}");
    let has_negation = command
        .get_arguments()
        .any(|a| a.get_long() == Some(negated.as_str()));
    match (on, has_negation) {
        (true, _) => Ok(vec![format!("--{key}").into()]),
        (false, true) => Ok(vec![format!("--{negated}").into()]),
        (false, false) => Ok(Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Arg, ArgAction};

    fn command() -> Command {
        Command::new("t")
            .arg(Arg::new("statedb").long("statedb"))
            .arg(Arg::new("config").long("config").action(ArgAction::Append))
            .arg(
                Arg::new("debug-real-confgit")
                    .long("debug-real-confgit")
                    .action(ArgAction::SetTrue),
            )
            .arg(
                Arg::new("no-debug-real-confgit")
                    .long("no-debug-real-confgit")
                    .action(ArgAction::SetTrue),
            )
            .arg(
                Arg::new("publish-failures")
                    .long("publish-failures")
                    .action(ArgAction::SetTrue),
            )
    }

    fn expand(ini: &str, cli: &[&str]) -> anyhow::Result<Vec<String>> {
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("x.conf");
        std::fs::write(&file, ini)?;
        let mut args: Vec<OsString> = vec!["t".into(), "--config".into(), file.clone().into()];
        args.extend(cli.iter().map(OsString::from));
        let out = args_with_config_file(args, &command())?;
        Ok(out
            .into_iter()
            .skip(1)
            .map(|a| {
                a.to_string_lossy()
                    .replace(&*file.to_string_lossy(), "FILE")
            })
            .collect())
    }

    #[test]
    fn file_settings_come_before_the_command_line() {
        let out = expand(
            "[config]\nstatedb = /a.db\ndebug-real-confgit = no\npublish-failures = yes\n",
            &["--statedb", "/b.db"],
        )
        .expect("expand");
        assert_eq!(
            out,
            [
                "--statedb=/a.db",
                "--no-debug-real-confgit",
                "--publish-failures",
                "--config",
                "FILE",
                "--statedb",
                "/b.db"
            ]
        );
    }

    #[test]
    fn unknown_keys_and_bad_booleans_name_the_file_and_key() {
        let err = expand("[config]\nstate-db = x\n", &[]).expect_err("unknown");
        assert!(
            err.to_string().contains("unknown key \"state-db\""),
            "{err}"
        );
        let err = expand("[config]\npublish-failures = maybe\n", &[]).expect_err("bad bool");
        assert!(err.to_string().contains("key publish-failures"), "{err}");
    }

    #[test]
    fn repeated_keys_repeat_their_option() {
        let command = command().arg(
            Arg::new("push-option")
                .long("push-option")
                .action(ArgAction::Append),
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("x.conf");
        std::fs::write(&file, "[config]\npush-option = a\npush-option = b\n").expect("write");
        let args = vec![OsString::from("t"), "--config".into(), file.into()];
        let out = args_with_config_file(args, &command).expect("expand");
        assert_eq!(out[1..3], ["--push-option=a", "--push-option=b"]);
    }

    #[test]
    fn underscores_only_where_the_program_allows_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("x.conf");
        std::fs::write(&file, "[config]\ndebug_real_confgit = no\n").expect("write");
        let args = || vec![OsString::from("t"), "--config".into(), file.clone().into()];
        let err = args_with_config_file(args(), &command()).expect_err("exact by default");
        assert!(err.to_string().contains("debug_real_confgit"), "{err}");
        let out = args_with_config_file_spelled(args(), &command(), KeySpelling::UnderscoresToo)
            .expect("expand");
        assert_eq!(out[1], "--no-debug-real-confgit");
    }

    #[test]
    fn unreadable_file_is_an_error() {
        let args = vec![OsString::from("t"), "--config=/nonexistent/x.conf".into()];
        let err = args_with_config_file(args, &command()).expect_err("missing");
        assert!(format!("{err:#}").contains("/nonexistent/x.conf"));
    }
}
