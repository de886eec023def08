//! The systemd units in `units/` pass `systemd-analyze verify`, and the
//! timers' services reach a real webapp with the refresh token.

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn units_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("units")
}

#[test]
fn every_unit_passes_systemd_analyze_verify() {
    let analyze = Command::new("systemd-analyze").arg("--version").output();
    assert!(
        analyze.is_ok_and(|o| o.status.success()),
        "systemd-analyze is missing: install Debian's systemd package (.ci/run does)"
    );
    // Verify copies whose ExecStart points at the binaries just built, since
    // nothing is installed in /usr/bin here.
    let bin_dir = Path::new(common::WEBAPP).parent().expect("target dir");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut units = Vec::new();
    for entry in std::fs::read_dir(units_dir()).expect("units/") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let text = std::fs::read_to_string(&path).expect("read unit");
        let text = text.replace(
            "/usr/bin/lorry-controller-",
            &format!("{}/lorry-controller-", bin_dir.display()),
        );
        // A template is verified as one of its instances.
        let name = name.replace("@.service", "@1.service");
        std::fs::write(dir.path().join(&name), text).expect("write unit");
        units.push(name);
    }
    units.sort();
    assert!(units.len() >= 12, "units/ holds {units:?}");
    for unit in &units {
        let out = Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(unit)
            .current_dir(dir.path())
            .output()
            .expect("systemd-analyze");
        let stderr = String::from_utf8_lossy(&out.stderr);
        // Warnings about the host's own units are not ours.
        let ours: Vec<&str> = stderr
            .lines()
            .filter(|l| l.contains("lorry-controller"))
            .collect();
        assert!(out.status.success() && ours.is_empty(), "{unit}:\n{stderr}");
    }
}

#[test]
fn every_service_is_hardened_and_every_timer_has_its_service() {
    for entry in std::fs::read_dir(units_dir()).expect("units/") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let text = std::fs::read_to_string(&path).expect("read unit");
        if name.ends_with(".service") {
            for setting in [
                "User=lorry",
                "NoNewPrivileges=yes",
                "PrivateTmp=yes",
                "ProtectSystem=strict",
            ] {
                assert!(text.contains(setting), "{name} lacks {setting}");
            }
        } else if let Some(stem) = name.strip_suffix(".timer") {
            assert!(
                units_dir().join(format!("{stem}.service")).is_file(),
                "{name} has no service"
            );
        }
    }
}

/// Splits an ExecStart line into words as systemd does (systemd.service(5),
/// "Command lines"): blanks separate words, single or double quotes group
/// them; then in each word `$$` is a `$` and `${NAME}` the variable's value.
/// (The units use no backslash escapes and no unbraced `$NAME`.)
fn systemd_words(line: &str, env: &BTreeMap<String, String>) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    for c in line.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => word.push(c),
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                in_word = true;
            }
            None if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            None => {
                word.push(c);
                in_word = true;
            }
        }
    }
    assert!(quote.is_none(), "unbalanced quote in {line}");
    if in_word {
        words.push(word);
    }
    words
        .into_iter()
        .map(|word| {
            let mut out = String::new();
            let mut rest = word.as_str();
            while let Some(at) = rest.find('$') {
                out.push_str(&rest[..at]);
                let after = &rest[at + 1..];
                if let Some(tail) = after.strip_prefix('$') {
                    out.push('$');
                    rest = tail;
                } else if let Some(braced) = after.strip_prefix('{') {
                    let (name, tail) = braced.split_once('}').expect("closing brace");
                    out.push_str(env.get(name).map_or("", String::as_str));
                    rest = tail;
                } else {
                    panic!("unbraced variable in {word}");
                }
            }
            out.push_str(rest);
            out
        })
        .collect()
}

/// `KEY=VALUE` lines, as an EnvironmentFile or the values of Environment=.
fn assignments<'a>(lines: impl Iterator<Item = &'a str>) -> Vec<(String, String)> {
    lines
        .filter_map(|l| l.trim().split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// The timers' services send the refresh token from its file (`curl -H
/// @FILE`, so never on a command line): each one's ExecStart, run as systemd
/// would with the unit's Environment= and an EnvironmentFile naming this
/// webapp and the token file, succeeds against a webapp that needs tokens
/// for everything; with a wrong token in the file each fails with the
/// webapp's 401.
#[test]
fn timer_services_send_the_refresh_token_from_its_file() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let private = |name: &str, text: &str| {
        let file = dir.path().join(name);
        std::fs::write(&file, text).expect("write");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        file
    };
    let admin = private("admin.token", "admin-58b2aa\n");
    let minion = private("minion.token", "minion-d41c07\n");
    let refresh = private("refresh.token", "Authorization: Bearer refresh-0c5e1d\n");
    let wrong = private("wrong.token", "Authorization: Bearer not-the-token\n");
    let app = common::Webapp::init(dir.path())
        .with_args(&[
            format!("--admin-token-file={}", admin.display()),
            format!("--minion-token-file={}", minion.display()),
            format!("--refresh-token-file={}", refresh.display()),
            "--read-access=token".to_owned(),
        ])
        .start();
    // An empty CONFGIT configuration, for readconf to read.
    std::fs::write(dir.path().join("confgit/lorry-controller.conf"), "[]\n").expect("conf");

    let mut services = Vec::new();
    for entry in std::fs::read_dir(units_dir()).expect("units/") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let Some(stem) = name.strip_suffix(".service") else {
            continue;
        };
        if units_dir().join(format!("{stem}.timer")).exists() {
            let text = std::fs::read_to_string(&path).expect("read unit");
            if text.contains("curl") {
                services.push((name, text));
            }
        }
    }
    services.sort();
    let names: Vec<&str> = services.iter().map(|(n, _)| n.as_str()).collect();
    for wanted in [
        "readconf",
        "ls-troves",
        "remove-ghost-jobs",
        "remove-old-jobs",
        "status",
    ] {
        assert!(
            names.contains(&format!("lorry-controller-{wanted}.service").as_str()),
            "{names:?}"
        );
    }

    for (name, text) in &services {
        let key =
            |k: &str| -> Vec<&str> { text.lines().filter_map(|l| l.strip_prefix(k)).collect() };
        assert_eq!(
            key("EnvironmentFile="),
            ["-/etc/default/lorry-controller"],
            "{name}: the file this test stands in for"
        );
        let exec = key("ExecStart=");
        assert_eq!(exec.len(), 1, "{name}");
        for (token, good) in [(&refresh, true), (&wrong, false)] {
            // EnvironmentFile= is read after Environment= and wins.
            let default = dir.path().join("default");
            std::fs::write(
                &default,
                format!(
                    "LORRY_CONTROLLER_URL={}\nLORRY_CONTROLLER_TOKEN_FILE={}\n",
                    app.url(""),
                    token.display()
                ),
            )
            .expect("write");
            let mut env: BTreeMap<String, String> = assignments(key("Environment=").into_iter())
                .into_iter()
                .collect();
            let from_file = std::fs::read_to_string(&default).expect("read");
            env.extend(assignments(from_file.lines()));
            let words = systemd_words(exec[0], &env);
            assert!(
                !words.iter().any(|w| w.contains("refresh-0c5e1d")),
                "{name}: the token on a command line: {words:?}"
            );
            let out = Command::new(&words[0])
                .args(&words[1..])
                .env_clear()
                .env("PATH", "/usr/bin:/bin")
                .envs(&env)
                .current_dir(dir.path())
                .output()
                .expect("run ExecStart");
            let stderr = String::from_utf8_lossy(&out.stderr);
            if good {
                assert!(out.status.success(), "{name}: {stderr}");
            } else {
                assert!(!out.status.success(), "{name} passed with a wrong token");
                assert!(stderr.contains("401"), "{name}: {stderr}");
            }
        }
    }
}
