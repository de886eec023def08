//! Converters from other version control systems: `svn` (git-svn), `hg`
//! (git-remote-hg), `bzr` (brz fast-export into git fast-import), `cvs`
//! (git cvsimport into its own repository, then fetched from).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};

use lc_base::redact::redact;
use lc_git::{Git, GitError};

use super::download::tag_name;
use super::{ImportError, SpecRun, io};
use crate::Context;
use crate::source::SvnLayout;

/// Runs a converter that is not git, with HOME inside the spec's directory
/// so that no user configuration leaks in.
#[expect(
    clippy::disallowed_methods,
    reason = "the converters (git-svn, brz, git cvsimport...) are programs"
)]
fn tool(program: &'static str, package: &'static str, home: &Path) -> Result<Command, ImportError> {
    installed(program, package)?;
    std::fs::create_dir_all(home).map_err(io("create", home))?;
    let mut cmd = Command::new(program);
    cmd.env("HOME", home)
        .env("LC_ALL", "C")
        .env("HGPLAIN", "1")
        .env("BRZ_LOG", "/dev/null")
        .stdin(Stdio::null());
    Ok(cmd)
}

/// `program` is on PATH, or an error naming the Debian package to install.
fn installed(program: &'static str, package: &'static str) -> Result<(), ImportError> {
    let found = std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()));
    if found {
        Ok(())
    } else {
        Err(ImportError::MissingTool {
            tool: program,
            package,
        })
    }
}

fn run_tool(mut cmd: Command, name: &str) -> Result<std::process::Output, ImportError> {
    let output = cmd.output().map_err(|e| ImportError::Tool {
        tool: name.to_owned(),
        stderr: e.to_string(),
    })?;
    if !output.status.success() {
        return Err(ImportError::Tool {
            tool: name.to_owned(),
            stderr: redact(String::from_utf8_lossy(&output.stderr).trim()).into_owned(),
        });
    }
    Ok(output)
}

/// Whether a git subcommand (a script such as `git svn`) can run.
fn git_subcommand_works(git: &Git, args: &[&str]) -> bool {
    let mut cmd = git.command();
    cmd.args(args);
    matches!(cmd.output(), Ok(out) if out.status.success())
}

pub(super) fn import_svn(
    ctx: &mut Context<'_>,
    run: &SpecRun<'_>,
    url: &str,
    layout: &SvnLayout,
) -> Result<(), ImportError> {
    let (git, spec, repo) = (run.git, run.spec, run.repo);
    if !git_subcommand_works(git, &["svn", "--version"]) {
        return Err(ImportError::MissingTool {
            tool: "git svn",
            package: "git-svn",
        });
    }
    // Credentials in the URL go to git-svn through its askpass prompt
    // (environment), never in its argv or the mirror's configuration; HOME
    // is the spec's own and nothing is cached there.
    let home = run.dir.join("home");
    std::fs::create_dir_all(&home).map_err(io("create", &home))?;
    let (url, credentials) = match split_userinfo(url) {
        Some((bare, user, password)) => (bare, Some((user, password))),
        None => (url.to_owned(), None),
    };
    let url = url.as_str();
    let askpass = home.join("svn-askpass");
    if credentials.is_some() {
        write_askpass(&askpass)?;
    }
    let svn = |args: &[&str]| {
        let mut cmd = git.in_repo(repo);
        cmd.env("HOME", home.as_os_str());
        if let Some((user, password)) = &credentials {
            cmd.env("GIT_ASKPASS", askpass.as_os_str())
                .env("LORRY_SVN_USERNAME", user)
                .env("LORRY_SVN_PASSWORD", password);
        }
        cmd.arg("svn").args(args);
        cmd
    };
    let configured = {
        let mut cmd = git.in_repo(repo);
        cmd.args(["config", "--get", "svn-remote.svn.url"]);
        matches!(cmd.output(), Ok(out) if out.status.success())
    };
    if !configured {
        svn(&[
            "init",
            "--svn-remote=svn",
            "--no-minimize-url",
            "--no-auth-cache",
            "--",
            url,
        ])
        .run()?;
        let set = |key: &str, value: String| -> Result<(), GitError> {
            let mut cmd = git.in_repo(repo);
            cmd.args(["config", "--replace-all", key, &value]);
            cmd.run().map(|_| ())
        };
        set(
            "svn-remote.svn.fetch",
            format!("{}:refs/heads/master", layout.trunk),
        )?;
        if let Some(branches) = &layout.branches {
            set(
                "svn-remote.svn.branches",
                format!("{branches}:refs/heads/*"),
            )?;
        }
        if let Some(tags) = &layout.tags {
            set("svn-remote.svn.tags", format!("{tags}:refs/tags/*"))?;
        }
    }
    ctx.log
        .info(&format!("{}: git svn fetch from {url}", spec.name));
    let mut fetch = svn(&["fetch", "--no-auth-cache", "--quiet", "--quiet"]);
    fetch.env("GIT_DIR", repo.as_os_str());
    fetch.run()?;
    Ok(())
}

/// `scheme://user:password@rest` → (`scheme://rest`, user, password),
/// percent-decoded; `None` when the URL carries no password.
fn split_userinfo(url: &str) -> Option<(String, String, String)> {
    let (scheme, rest) = url.split_once("://")?;
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (userinfo, host) = rest[..authority_end].rsplit_once('@')?;
    let (user, password) = userinfo.split_once(':')?;
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    Some((
        format!("{scheme}://{host}{}", &rest[authority_end..]),
        decode(user),
        decode(password),
    ))
}

/// The askpass program git-svn asks for the user name and the password: it
/// answers from the environment, so neither is in an argv or a file.
fn write_askpass(file: &Path) -> Result<(), ImportError> {
    let script = "#!/bin/sh\ncase \"$1\" in\n[Uu]sername*) printf '%s\\n' \"$LORRY_SVN_USERNAME\" ;;\n*) printf '%s\\n' \"$LORRY_SVN_PASSWORD\" ;;\nesac\n";
    write_mode(file, script, 0o700)
}

/// Writes `text` to a new `file` that only this user may read.
fn write_private(file: &Path, text: impl AsRef<[u8]>) -> Result<(), ImportError> {
    write_mode(file, text, 0o600)
}

fn write_mode(file: &Path, text: impl AsRef<[u8]>, mode: u32) -> Result<(), ImportError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::remove_file(file);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(file)
        .and_then(|mut f| f.write_all(text.as_ref()))
        .map_err(io("write", file))
}

pub(super) fn import_hg(
    ctx: &mut Context<'_>,
    run: &SpecRun<'_>,
    url: &str,
) -> Result<(), ImportError> {
    let (git, spec, dir, repo) = (run.git, run.spec, run.dir, run.repo);
    installed("hg", "mercurial")?;
    installed("git-remote-hg", "git-remote-hg")?;
    let home = dir.join("home");
    std::fs::create_dir_all(&home).map_err(io("create", &home))?;
    ctx.log.info(&format!("{}: fetching hg::{url}", spec.name));
    // Credentials in the URL go to Mercurial through an [auth] section of
    // the spec's own (private) ~/.hgrc for the length of the fetch, never
    // in an argv or in git-remote-hg's clone, which gets the bare URL.
    let hgrc = home.join(".hgrc");
    let _ = std::fs::remove_file(&hgrc);
    let url = match split_userinfo(url) {
        Some((bare, user, password)) => {
            if [&bare, &user, &password]
                .iter()
                .any(|s| s.contains(['\n', '\r']))
            {
                return Err(ImportError::Tool {
                    tool: "hg".into(),
                    stderr: "a line break in the URL's credentials".into(),
                });
            }
            write_private(
                &hgrc,
                format!(
                    "[auth]\nlorry.prefix = {bare}\nlorry.username = {user}\nlorry.password = {password}\n"
                ),
            )?;
            bare
        }
        None => url.to_owned(),
    };
    let mut fetch = git.in_repo(repo);
    fetch.env("HOME", home.as_os_str()).env("HGPLAIN", "1");
    fetch.args([
        "fetch",
        "--prune",
        "--no-tags",
        "--quiet",
        &format!("hg::{url}"),
        "+refs/heads/*:refs/heads/*",
        "+refs/tags/*:refs/tags/*",
    ]);
    let fetched = fetch.run();
    let _ = std::fs::remove_file(&hgrc);
    fetched?;
    Ok(())
}

/// Credentials in the branches' URLs go to brz through the spec's private
/// `~/.config/breezy/authentication.conf`, present only while brz runs; brz
/// gets the bare URLs, so no argv and no branch configuration holds them.
pub(super) fn import_bzr(
    ctx: &mut Context<'_>,
    run: &SpecRun<'_>,
    branches: &BTreeMap<String, String>,
) -> Result<(), ImportError> {
    let auth_file = run.dir.join("home/.config/breezy/authentication.conf");
    let _ = std::fs::remove_file(&auth_file);
    let mut sections = String::new();
    let mut bare = BTreeMap::new();
    for (i, (branch, url)) in branches.iter().enumerate() {
        let Some((url, user, password)) = split_userinfo(url) else {
            bare.insert(branch.clone(), url.clone());
            continue;
        };
        let (scheme, rest) = url.split_once("://").unwrap_or(("", &url));
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => (host, Some(port)),
            _ => (authority, None),
        };
        if [&url, &user, &password]
            .iter()
            .any(|s| s.contains(['\n', '\r']))
        {
            return Err(ImportError::Tool {
                tool: "brz".into(),
                stderr: "a line break in the URL's credentials".into(),
            });
        }
        sections.push_str(&format!(
            "[lorry{i}]\nscheme = {scheme}\nhost = {host}\n{}user = {user}\npassword = {password}\n\n",
            port.map(|p| format!("port = {p}\n")).unwrap_or_default()
        ));
        bare.insert(branch.clone(), url);
    }
    if !sections.is_empty() {
        if let Some(parent) = auth_file.parent() {
            private_dirs(parent)?;
        }
        write_private(&auth_file, sections)?;
    }
    let result = import_bzr_branches(ctx, run, &bare);
    let _ = std::fs::remove_file(&auth_file);
    result
}

/// Creates `dir` and its missing parents with mode 0700.
fn private_dirs(dir: &Path) -> Result<(), ImportError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io("create", dir))
}

fn import_bzr_branches(
    ctx: &mut Context<'_>,
    run: &SpecRun<'_>,
    branches: &BTreeMap<String, String>,
) -> Result<(), ImportError> {
    let (git, spec, dir, repo) = (run.git, run.spec, run.dir, run.repo);
    let home = dir.join("home");
    let bzr_dir = dir.join("bzr");
    for (branch, url) in branches {
        let safe = tag_name(branch);
        let local = bzr_dir.join(&safe);
        let mut get = tool("brz", "brz", &home)?;
        if local.join(".bzr").is_dir() {
            get.args(["pull", "--quiet", "--overwrite", "-d"])
                .arg(&local)
                .arg(url);
        } else {
            std::fs::create_dir_all(&bzr_dir).map_err(io("create", &bzr_dir))?;
            get.args(["branch", "--quiet", "--no-tree", url])
                .arg(&local);
        }
        ctx.log
            .info(&format!("{}: brz {branch} from {url}", spec.name));
        run_tool(get, "brz")?;

        // brz 3.3's fast-export fails on incremental runs with marks
        // (KeyError b'null:'), so every run exports the whole branch; the
        // commits come out identical, so unchanged history keeps its ids.
        let mut export = tool("brz", "brz", &home)?;
        export
            .arg("fast-export")
            .arg("--quiet")
            .arg(format!("--git-branch={branch}"))
            .arg(&local)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut exporter = export.spawn().map_err(|e| ImportError::Tool {
            tool: "brz fast-export".into(),
            stderr: e.to_string(),
        })?;
        let Some(stream) = exporter.stdout.take() else {
            return Err(ImportError::Tool {
                tool: "brz fast-export".into(),
                stderr: "no output pipe".into(),
            });
        };
        let mut import = git.in_repo(repo);
        import.args(["fast-import", "--quiet", "--force"]);
        let child = import.spawn_with_stdin(Stdio::from(stream))?;
        let imported = import.wait(child);
        let exported = exporter.wait_with_output().map_err(|e| ImportError::Tool {
            tool: "brz fast-export".into(),
            stderr: e.to_string(),
        })?;
        if !exported.status.success() {
            let stderr = String::from_utf8_lossy(&exported.stderr).into_owned();
            if stderr.contains("Unable to import library \"fastimport\"") {
                return Err(ImportError::MissingTool {
                    tool: "the fastimport module of brz fast-export",
                    package: "python3-fastimport",
                });
            }
            if !brz_plugin_present(&home) {
                return Err(ImportError::MissingTool {
                    tool: "brz fast-export",
                    package: "brz",
                });
            }
            return Err(ImportError::Tool {
                tool: "brz fast-export".into(),
                stderr: redact(stderr.trim()).into_owned(),
            });
        }
        imported?;
    }
    Ok(())
}

fn brz_plugin_present(home: &Path) -> bool {
    let Ok(mut cmd) = tool("brz", "brz", home) else {
        return false;
    };
    cmd.args(["help", "fast-export"]);
    matches!(cmd.output(), Ok(out) if out.status.success())
}

pub(super) fn import_cvs(
    ctx: &mut Context<'_>,
    run: &SpecRun<'_>,
    url: &str,
    module: &str,
) -> Result<(), ImportError> {
    let (git, spec, dir, repo) = (run.git, run.spec, run.dir, run.repo);
    installed("cvs", "cvs")?;
    installed("cvsps", "cvsps")?;
    if !git_subcommand_works(git, &["cvsimport", "-h"]) && !cvsimport_present(git) {
        return Err(ImportError::MissingTool {
            tool: "git cvsimport",
            package: "git-cvs",
        });
    }
    let home = dir.join("home");
    std::fs::create_dir_all(&home).map_err(io("create", &home))?;
    // A pserver password goes to git cvsimport (and the cvsps it runs)
    // through a scrambled ~/.cvspass in the spec's private HOME, present only
    // while the import runs; their argv carries the CVSROOT without it.
    let cvspass = home.join(".cvspass");
    let _ = std::fs::remove_file(&cvspass);
    let url = match pserver_password(url) {
        Some((bare, line)) => {
            write_private(&cvspass, line)?;
            bare
        }
        None => url.to_owned(),
    };
    // git cvsimport keeps its own repository (it only creates one that does
    // not exist yet, and reads its own refs for incremental runs); the
    // mirror then fetches from it like from any git upstream.
    let cvs_git = dir.join("cvs-git");
    ctx.log
        .info(&format!("{}: git cvsimport {module} from {url}", spec.name));
    let mut import = git.command();
    import
        .env("HOME", home.as_os_str())
        .env("CVS_RSH", "ssh")
        // A local repository is read without lock files: the minion's
        // sandbox shows it read-only, where cvs would wait for its own
        // lock forever.
        .env("CVSREADONLYFS", "1")
        .current_dir(dir);
    import.args(["cvsimport", "-i", "-a", "-o", "master", "-d", &url, "-C"]);
    import.arg(cvs_git.as_os_str()).arg(module);
    let imported = import.run();
    let _ = std::fs::remove_file(&cvspass);
    imported?;
    // A path, not a file:// URL: git would percent-decode the URL, and
    // working directory names contain '%'.
    let from = cvs_git.display().to_string();
    // It is ours, on this machine: the local transport is allowed here.
    git.clone().env("GIT_ALLOW_PROTOCOL", "file").fetch(
        repo,
        &from,
        &[
            "+refs/heads/*:refs/heads/*".to_owned(),
            "+refs/tags/*:refs/tags/*".to_owned(),
        ],
    )?;
    Ok(())
}

/// For a `:pserver[;options]:user:password@host[:port]/root` CVSROOT: the
/// CVSROOT without the password, and the `~/.cvspass` line (cvs 1.12's
/// format, which git cvsimport and cvsps read) holding it scrambled.
fn pserver_password(url: &str) -> Option<(String, Vec<u8>)> {
    let rest = url.strip_prefix(":pserver")?;
    let (options, rest) = rest.split_once(':')?;
    if options.contains(':') || !(options.is_empty() || options.starts_with(';')) {
        return None;
    }
    let slash = rest.find('/')?;
    let (userinfo, place) = rest[..slash].rsplit_once('@')?;
    let (user, password) = userinfo.split_once(':')?;
    let (host, port) = place.split_once(':').unwrap_or((place, ""));
    let root = &rest[slash..];
    let port_or_default = if port.is_empty() { "2401" } else { port };
    let mut line = format!("/1 :pserver:{user}@{host}:{port_or_default}{root} ").into_bytes();
    line.extend(cvs_scramble(password.as_bytes()));
    line.push(b'\n');
    Some((format!(":pserver{options}:{user}@{place}{root}"), line))
}

/// cvs's trivial password scramble (`src/scramble.c`, method "A"): a fixed
/// byte substitution, so that a password is not readable at a glance. It is
/// not encryption: the file holding it stays private.
fn cvs_scramble(password: &[u8]) -> Vec<u8> {
    #[rustfmt::skip]
    const SHIFTS: [u8; 256] = [
          0,  1,  2,  3,  4,  5,  6,  7,  8,  9, 10, 11, 12, 13, 14, 15,
         16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31,
        114,120, 53, 79, 96,109, 72,108, 70, 64, 76, 67,116, 74, 68, 87,
        111, 52, 75,119, 49, 34, 82, 81, 95, 65,112, 86,118,110,122,105,
         41, 57, 83, 43, 46,102, 40, 89, 38,103, 45, 50, 42,123, 91, 35,
        125, 55, 54, 66,124,126, 59, 47, 92, 71,115, 78, 88,107,106, 56,
         36,121,117,104,101,100, 69, 73, 99, 63, 94, 93, 39, 37, 61, 48,
         58,113, 32, 90, 44, 98, 60, 51, 33, 97, 62, 77, 84, 80, 85,223,
        225,216,187,166,229,189,222,188,141,249,148,200,184,136,248,190,
        199,170,181,204,138,232,218,183,255,234,220,247,213,203,226,193,
        174,172,228,252,217,201,131,230,197,211,145,238,161,179,160,212,
        207,221,254,173,202,146,224,151,140,196,205,130,135,133,143,246,
        192,159,244,239,185,168,215,144,139,165,180,157,147,186,214,176,
        227,231,219,169,175,156,206,198,129,164,150,210,154,177,134,127,
        182,128,158,208,162,132,167,209,149,241,153,251,237,236,171,195,
        243,233,253,240,194,250,191,155,142,137,245,235,163,242,178,152,
    ];
    std::iter::once(b'A')
        .chain(password.iter().map(|b| SHIFTS[usize::from(*b)]))
        .collect()
}

/// `git cvsimport -h` exits non-zero even when installed; tell "not
/// installed" from "usage" by git's own message.
fn cvsimport_present(git: &Git) -> bool {
    let mut cmd = git.command();
    cmd.args(["cvsimport", "-h"]);
    match cmd.output() {
        Ok(out) => {
            let text = String::from_utf8_lossy(&out.stderr);
            !text.contains("is not a git command")
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tool_tests {
    use super::*;

    #[test]
    fn a_pserver_password_leaves_the_cvsroot_for_a_scrambled_cvspass_line() {
        let (bare, line) = pserver_password(":pserver:alice:s3cret@cvs.example.org:/cvsroot")
            .expect("has a password");
        assert_eq!(bare, ":pserver:alice@cvs.example.org:/cvsroot");
        // "s3cret" scrambled as cvs 1.12 writes it in ~/.cvspass.
        assert_eq!(
            line,
            b"/1 :pserver:alice@cvs.example.org:2401/cvsroot AZwh d,\n".to_vec()
        );
        let (bare, line) = pserver_password(":pserver:bob:p@ss@h:2402/r").expect("has a password");
        assert_eq!(bare, ":pserver:bob@h:2402/r");
        assert!(line.starts_with(b"/1 :pserver:bob@h:2402/r A"));
        assert_eq!(
            pserver_password(":pserver:anon@h:/cvs"),
            None,
            "no password, nothing to hide"
        );
        assert_eq!(pserver_password(":ext:me:pw@h:/cvs"), None);
        assert_eq!(pserver_password("/local/cvs"), None);
    }

    #[test]
    fn a_missing_converter_names_its_debian_package() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = tool("lorry-no-such-converter", "lorry-converter-pkg", dir.path())
            .expect_err("not installed");
        let text = err.to_string();
        assert!(text.contains("lorry-no-such-converter"), "{text}");
        assert!(
            text.contains("Debian package lorry-converter-pkg"),
            "{text}"
        );
    }
}
