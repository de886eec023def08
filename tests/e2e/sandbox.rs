//! The job sandbox and per-job limits (issue 18) with the real `bwrap`,
//! the machine's cgroups and the real minion, webapp and lorry: a hostile
//! stand-in lorry tries to read what it must not, to write outside its
//! directory and to signal the minion; jobs fork and allocate past their
//! limits; real mirrors (git, tarball, each converter, an ssh upstream
//! through the minion's agent) still succeed in the sandbox.
//!
//! Where a part cannot run (no working bwrap, no writable cgroup, not
//! root for sshd) the test says so on stderr, uncaptured, and fails under
//! `LORRY_TEST_SANDBOX=1`, which CI sets.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use lc_core::db::NewLorry;
use serde_json::{Value, json};

use crate::common::*;

const MINION: &str = env!("CARGO_BIN_EXE_lorry-controller-minion");
const LORRY: &str = env!("CARGO_BIN_EXE_lorry");

/// Says loudly that `part` could not run here and why; a failure when
/// `LORRY_TEST_SANDBOX=1`.
fn cannot_run(part: &str, why: &str) {
    if std::env::var_os("LORRY_TEST_SANDBOX").is_some_and(|v| v == "1") {
        panic!("{part} cannot run here: {why} (LORRY_TEST_SANDBOX=1 requires it)");
    }
    let _ = writeln!(
        std::io::stderr(),
        "NOT RUN {}: {part}: {why} (CI sets LORRY_TEST_SANDBOX=1 to require it)",
        std::thread::current().name().unwrap_or("a sandbox test"),
    );
}

/// Whether the real bwrap makes a sandbox here.
fn bwrap_works() -> bool {
    let ok = Command::new("bwrap")
        .args(["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"])
        .args(["--unshare-pid", "--", "true"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        cannot_run(
            "the bwrap sandbox",
            "bwrap is missing or fails (Debian package bubblewrap)",
        );
    }
    ok
}

/// Whether the minion can make a cgroup per job (its start-up log says so).
fn cgroups_in(log: &str) -> bool {
    let ok = log.contains("cgroup v1") || log.contains("cgroup v2");
    if !ok {
        cannot_run(
            "per-job cgroups",
            "no writable cgroup (the minion's log says why)",
        );
    }
    ok
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// A running minion, killed when dropped.
struct Minion {
    child: Child,
    log: PathBuf,
}

impl Minion {
    fn start(app: &Webapp, dir: &Path, lorry: &Path, extra: &[String]) -> Minion {
        let log = dir.join("minion.log");
        let child = Command::new(MINION)
            .args([
                "--webapp-host=127.0.0.1".to_owned(),
                format!("--webapp-port={}", app.port),
                "--sleep=0.1".into(),
                "--update-interval=0.2".into(),
                "--kill-grace=1".into(),
                "--sandbox=bwrap".into(),
                format!("--lorry-path={}", lorry.display()),
                format!("--log={}", log.display()),
                "--log-level=debug".into(),
            ])
            .args(extra)
            // Secrets of the minion's own that no job may see.
            .env("LORRY_CONTROLLER_MINION_TOKEN_UNUSED", "env-secret-1")
            .env("http_proxy", "http://webapp-proxy.invalid:3128")
            .stdin(Stdio::null())
            .spawn()
            .expect("start minion");
        let minion = Minion { child, log };
        wait_for("the minion's start", READY_TIMEOUT, || {
            minion.log().contains("minion started").then_some(())
        });
        minion
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Stops the minion with SIGTERM, as systemd does.
    fn stop(&mut self) {
        let status = terminate(&mut self.child);
        assert!(
            status.success(),
            "minion exited with {status} after SIGTERM"
        );
    }
}

impl Drop for Minion {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn lorry_of(path: &str, spec: Value) -> NewLorry {
    NewLorry {
        path: path.to_owned(),
        text: json!({ path: spec }).to_string(),
        from_host: String::new(),
        from_path: String::new(),
        interval: 3600,
        lorry_timeout: 600,
    }
}

/// The first ended job of `path`.
fn ended_job(app: &Webapp, path: &str, limit: Duration) -> Value {
    wait_for(&format!("the end of a job of {path}"), limit, || {
        let ids: Vec<i64> =
            serde_json::from_value(app.get_ok("/1.0/list-jobs")["job_ids"].clone()).ok()?;
        ids.into_iter()
            .map(|id| app.get_ok(&format!("/1.0/job/{id}")))
            .find(|job| job["path"] == path && job["exit"] != "no")
    })
}

fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let file = dir.join(name);
    std::fs::write(&file, format!("#!/bin/sh\n{body}")).expect("write script");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    file
}

/// A lorry configuration with the working area, a local downstream and
/// local upstreams allowed.
fn lorry_conf(dir: &Path) -> PathBuf {
    let file = dir.join("lorry.conf");
    std::fs::write(
        &file,
        format!(
            "[config]\nworking-area = {}\nmirror-base-url-push = file://{}\nallow-local-upstreams = yes\ntarball = never\nbundle = never\n",
            dir.join("wa").display(),
            dir.join("downstream").display()
        ),
    )
    .expect("write lorry.conf");
    file
}

#[test]
fn a_hostile_job_cannot_read_write_or_signal_outside_its_sandbox() {
    if !bwrap_works() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let app = Webapp::init(d).start();
    let conf = lorry_conf(d);
    // What the job must not reach: another lorry's working directory, the
    // minion's configuration file and token file, an ssh private key.
    let other = d.join("wa/other%2Florry");
    std::fs::create_dir_all(&other).expect("mkdir");
    std::fs::write(other.join("secret"), "other-lorry-secret").expect("write");
    let token = d.join("minion.token");
    std::fs::write(&token, "token-secret-2").expect("write");
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let minion_conf = d.join("minion.conf");
    std::fs::write(&minion_conf, "[config]\n# conf-secret-3\n").expect("write");
    let key = d.join("id_ed25519");
    let made = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "key-secret-4", "-f"])
        .arg(&key)
        .status()
        .expect("ssh-keygen");
    assert!(made.success());
    let outside = d.join("written-from-the-job");
    let stand_in = d.join("hostile-lorry");
    let minion = Minion::start(
        &app,
        d,
        &stand_in,
        &[
            format!("--config={}", minion_conf.display()),
            format!("--webapp-token-file={}", token.display()),
            format!("--lorry-config={}", conf.display()),
            format!("--ssh-key={}", key.display()),
            format!("--ssh-known-hosts={}", d.join("known_hosts").display()),
        ],
    );
    // Each attempt prints LEAK when it succeeds, "blocked" when it fails.
    let own = d.join("wa/e2e%2Fhostile");
    let body = format!(
        r#"try() {{ what=$1; shift; if "$@" >/dev/null 2>&1; then echo "LEAK: $what"; else echo "blocked: $what"; fi; }}
try other-lorry cat {other}/secret
try other-lorry-list ls {other}
try minion-config cat {conf}
try token cat {token}
try ssh-key cat {key}
try write-home touch "$HOME/planted"
try write-var-tmp touch /var/tmp/planted-by-job
# The test's directory is under /tmp, the job's private /tmp: a write
# there lands in the sandbox only (checked from outside below).
touch {outside} 2>/dev/null
try write-working-area touch {area}/planted
try write-etc touch /etc/planted-by-job
try signal-minion kill -0 {pid}
try minion-in-proc test -e /proc/{pid}/environ
if env | grep -q 'secret-1\|webapp-proxy'; then echo "LEAK: environment"; else echo "blocked: environment"; fi
touch {own}/mine && echo "own directory writable"
echo "agent: $SSH_AUTH_SOCK" ; ssh-add -l >/dev/null 2>&1 && echo "agent answers"
exit 0
"#,
        other = other.display(),
        conf = minion_conf.display(),
        token = token.display(),
        key = key.display(),
        outside = outside.display(),
        area = d.join("wa").display(),
        pid = minion.pid(),
        own = own.display(),
    );
    script(d, "hostile-lorry", &body);
    app.seed(&[lorry_of(
        "e2e/hostile",
        json!({"type": "git", "url": "https://example.invalid/x.git"}),
    )]);
    let job = ended_job(&app, "e2e/hostile", READY_TIMEOUT);
    let output = job["output"].as_str().unwrap_or_default().to_owned();
    assert_eq!(job["exit"], "0", "{output}\nminion log:\n{}", minion.log());
    assert!(
        output.starts_with("lorry-controller-minion: isolation: bwrap + "),
        "{output}"
    );
    assert!(!output.contains("LEAK"), "{output}");
    for what in [
        "other-lorry",
        "other-lorry-list",
        "minion-config",
        "token",
        "ssh-key",
        "write-home",
        "write-var-tmp",
        "write-working-area",
        "write-etc",
        "signal-minion",
        "minion-in-proc",
        "environment",
    ] {
        assert!(
            output.contains(&format!("blocked: {what}\n")),
            "{what}: {output}"
        );
    }
    for secret in [
        "other-lorry-secret",
        "token-secret-2",
        "conf-secret-3",
        "key-secret-4",
    ] {
        assert!(!output.contains(secret), "{secret}: {output}");
    }
    assert!(output.contains("own directory writable"), "{output}");
    assert!(output.contains("agent answers"), "{output}");
    assert!(!outside.exists() && !d.join("wa/planted").exists());
    assert!(!Path::new("/var/tmp/planted-by-job").exists());
    assert!(
        own.join("mine").exists(),
        "the job's own directory is the real one"
    );
    // The minion goes on: the status page names how it isolates jobs.
    let status = app.get("/1.0/status-html").text;
    assert!(status.contains("bwrap + "), "the Minions table");
    let mut minion = minion;
    assert!(minion.is_running());
}

#[test]
fn jobs_past_tasks_memory_or_cpu_limits_end_naming_the_limit() {
    if !bwrap_works() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let app = Webapp::init(d).start();
    let conf = lorry_conf(d);
    // The stand-in does what its spec's name says.
    let stand_in = script(
        d,
        "greedy-lorry",
        r#"for a; do spec=$a; done
case "$(cat "$spec")" in
*e2e/forks*) i=0; while [ $i -lt 100 ]; do sleep 5 & i=$((i+1)); done; wait; echo forked;;
*e2e/eats*) head -c 400M /dev/zero | tail -c 400M > /dev/null || { echo "allocation failed"; exit 9; }; echo ate;;
*e2e/spins*) while :; do :; done;;
*) echo fine;;
esac
"#,
    );
    let mut minion = Minion::start(
        &app,
        d,
        &stand_in,
        &[
            format!("--lorry-config={}", conf.display()),
            "--job-memory-max=1073741824".into(),
            "--job-tasks-max=1000".into(),
            "--job-cpu-seconds=2".into(),
        ],
    );
    if !cgroups_in(&minion.log()) {
        return;
    }
    let git = |extra: Value| {
        let mut spec = json!({"type": "git", "url": "https://example.invalid/x.git"});
        if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
            spec.extend(extra.clone());
        }
        spec
    };
    app.seed(&[
        // A spec may lower the minion's limits...
        lorry_of("e2e/forks", git(json!({"tasks-max": 20}))),
        lorry_of("e2e/eats", git(json!({"memory-max": "64M"}))),
        // ... never raise them: 100 GiB stays at the minion's 1 GiB, and
        // CPU seconds are the minion's.
        lorry_of("e2e/spins", git(json!({"memory-max": "100G"}))),
    ]);
    let limit = Duration::from_secs(120);
    let forks = ended_job(&app, "e2e/forks", limit);
    let out = forks["output"].as_str().unwrap_or_default();
    assert!(out.contains("tasks-max 20"), "{out}");
    assert!(out.contains("reached its tasks-max limit (20"), "{out}");
    let eats = ended_job(&app, "e2e/eats", limit);
    let out = eats["output"].as_str().unwrap_or_default();
    assert_ne!(eats["exit"], "0", "{out}");
    assert!(
        out.contains("reached its memory-max limit (67108864 bytes)"),
        "{out}"
    );
    let spins = ended_job(&app, "e2e/spins", limit);
    let out = spins["output"].as_str().unwrap_or_default();
    assert!(out.contains("memory-max 1073741824"), "{out}");
    assert_ne!(spins["exit"], "0", "{out}");
    assert!(out.contains("cpu-seconds limit (2 CPU seconds)"), "{out}");
    // The minion goes on, and a lorry's next run is unaffected.
    assert!(minion.is_running());
    app.seed(&[lorry_of("e2e/fine", git(json!({})))]);
    let fine = ended_job(&app, "e2e/fine", READY_TIMEOUT);
    assert_eq!(fine["exit"], "0", "{fine}");
    // The jobs took turns in the minion's one cgroup (the limits of the
    // ones before neither stay nor count against it).
    let out = fine["output"].as_str().unwrap_or_default();
    assert!(!out.contains("reached its"), "{out}");
    assert!(
        out.contains("memory-max 1073741824, tasks-max 1000"),
        "{out}"
    );
    let pid = minion.pid();
    let job_cgroups = || -> Vec<String> {
        let found = Command::new("sh")
            .args([
                "-c",
                "find /sys/fs/cgroup -maxdepth 6 -name 'lorry-job-*' -type d",
            ])
            .output()
            .expect("find");
        String::from_utf8_lossy(&found.stdout)
            .lines()
            .filter(|l| l.contains(&format!("lorry-job-{pid}-")))
            .map(str::to_owned)
            .collect()
    };
    let mine = job_cgroups();
    assert!(!mine.is_empty(), "the minion keeps its slot");
    assert!(
        mine.iter()
            .all(|d| d.ends_with(&format!("lorry-job-{pid}-slot"))),
        "{mine:?}"
    );
    assert!(!minion.log().contains("not ready"), "{}", minion.log());
    // A minion that stops leaves no job cgroup behind.
    minion.stop();
    let mine = job_cgroups();
    assert!(mine.is_empty(), "{mine:?}");
}

/// Without bwrap's PID namespace, a job can leave a process outside its
/// process group and without its marker: the job's cgroup still holds it,
/// and it dies with the job, before the next job takes the cgroup.
#[test]
fn a_process_escaping_its_job_dies_with_the_jobs_cgroup() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let app = Webapp::init(d).start();
    let conf = lorry_conf(d);
    let pids = d.join("escaped");
    std::fs::create_dir_all(&pids).expect("mkdir");
    let stand_in = script(
        d,
        "escaping-lorry",
        &format!(
            r#"for a; do spec=$a; done
name=$(basename "$(dirname "$spec")")$$
setsid env -i /bin/sh -c 'echo $$ > "$0.tmp"; mv "$0.tmp" "$0"; exec sleep 300' "{}/$name" </dev/null >/dev/null 2>&1 &
while [ ! -s "{}/$name" ]; do sleep 0.05; done
echo left one behind
"#,
            pids.display(),
            pids.display()
        ),
    );
    let mut minion = Minion::start(
        &app,
        d,
        &stand_in,
        &[
            format!("--lorry-config={}", conf.display()),
            "--sandbox=none".into(),
        ],
    );
    if !cgroups_in(&minion.log()) {
        return;
    }
    let spec = json!({"type": "git", "url": "https://example.invalid/x.git"});
    for path in ["e2e/first", "e2e/second"] {
        app.seed(&[lorry_of(path, spec.clone())]);
        let job = ended_job(&app, path, READY_TIMEOUT);
        assert_eq!(job["exit"], "0", "{job}");
    }
    let escaped: Vec<i32> = std::fs::read_dir(&pids)
        .expect("pids")
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path()).ok()?.trim().parse().ok())
        .collect();
    assert_eq!(escaped.len(), 2, "{escaped:?}");
    for pid in escaped {
        wait_for(
            &format!("the end of escaped process {pid}"),
            READY_TIMEOUT,
            || {
                // Gone, or a zombie its new parent has not reaped yet.
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                let state = stat.rsplit(") ").next().and_then(|r| r.chars().next());
                matches!(state, None | Some('Z')).then_some(())
            },
        );
    }
    assert!(minion.is_running());
}

#[test]
fn without_cgroups_the_limits_are_rlimits_and_still_named() {
    if !bwrap_works() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let app = Webapp::init(d).start();
    let conf = lorry_conf(d);
    // lorry itself spins: RLIMIT_CPU is per process.
    let stand_in = script(d, "spinning-lorry", "while :; do :; done\n");
    let mut minion = Minion::start(
        &app,
        d,
        &stand_in,
        &[
            format!("--lorry-config={}", conf.display()),
            "--no-job-cgroups".into(),
            "--job-cpu-seconds=1".into(),
        ],
    );
    assert!(
        minion.log().contains("isolation=bwrap + rlimits only"),
        "{}",
        minion.log()
    );
    app.seed(&[lorry_of(
        "e2e/spins",
        json!({"type": "git", "url": "https://example.invalid/x.git"}),
    )]);
    let job = ended_job(&app, "e2e/spins", Duration::from_secs(60));
    let out = job["output"].as_str().unwrap_or_default();
    assert!(out.starts_with("lorry-controller-minion: isolation: bwrap + rlimits only (memory-max none, tasks-max none, cpu-seconds 1)"), "{out}");
    // Killed by SIGXCPU (24), or by SIGKILL past the hard limit.
    assert_eq!(job["exit"], "152", "{out}");
    assert!(out.contains("cpu-seconds limit (RLIMIT_CPU)"), "{out}");
    assert!(minion.is_running());
}

/// Runs a tool for making an upstream; panics with its stderr on failure.
fn tool(dir: &Path, program: &str, args: &[&str]) {
    let home = dir.join("tool-home");
    std::fs::create_dir_all(&home).expect("home");
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .env("HOME", &home)
        .env("HGPLAIN", "1")
        .env("BRZ_EMAIL", "Test <test@example.com>")
        .env("LC_ALL", "C")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .expect("spawn tool");
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Whether `check` (a shell command) succeeds; if not, says the converter
/// could not be tried.
fn have(converter: &str, check: &str, package: &str) -> bool {
    let ok = Command::new("sh")
        .args(["-c", check])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        cannot_run(
            &format!("the {converter} mirror in the sandbox"),
            &format!("install the Debian package {package}"),
        );
    }
    ok
}

/// The refs of the downstream repository of `path`.
fn downstream_refs(d: &Path, path: &str) -> String {
    git(
        &d.join("downstream").join(format!("{path}.git")),
        &["for-each-ref", "--format=%(refname)"],
    )
}

#[test]
fn git_tarball_and_every_converter_mirror_in_the_sandbox() {
    if !bwrap_works() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let up = d.join("up");
    std::fs::create_dir_all(&up).expect("mkdir");
    let app = Webapp::init(d).start();
    let conf = lorry_conf(d);
    let mut lorries = Vec::new();
    let file_url = |p: &Path| format!("file://{}", p.display());

    tool(&up, "git", &["init", "-q", "-b", "main", "gitrepo"]);
    std::fs::write(up.join("gitrepo/a.txt"), "a\n").expect("write");
    tool(&up.join("gitrepo"), "git", &["add", "a.txt"]);
    tool(
        &up.join("gitrepo"),
        "git",
        &[
            "-c",
            "user.name=T",
            "-c",
            "user.email=t@e",
            "commit",
            "-q",
            "-m",
            "one",
        ],
    );
    lorries.push((
        "sb/git",
        json!({"type": "git", "url": file_url(&up.join("gitrepo"))}),
    ));

    std::fs::create_dir_all(up.join("pkg-1.0")).expect("mkdir");
    std::fs::write(up.join("pkg-1.0/README"), "pkg\n").expect("write");
    tool(&up, "tar", &["czf", "pkg-1.0.tar.gz", "pkg-1.0"]);
    // lorry fetches archives over HTTP(S) only: a plain file server.
    let http_port = free_port();
    let _http = Sshd(
        Command::new("python3")
            .args(["-m", "http.server", "--bind", "127.0.0.1"])
            .arg(http_port.to_string())
            .current_dir(&up)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 -m http.server"),
    );
    wait_for("the file server", READY_TIMEOUT, || {
        std::net::TcpStream::connect(("127.0.0.1", http_port)).ok()
    });
    lorries.push((
        "sb/tarball",
        json!({"type": "tarball", "url": format!("http://127.0.0.1:{http_port}/pkg-1.0.tar.gz")}),
    ));

    if have(
        "svn",
        "svnadmin --version --quiet && git svn --version",
        "subversion git-svn",
    ) {
        tool(&up, "svnadmin", &["create", "svnrepo"]);
        for sub in ["trunk", "branches", "tags"] {
            std::fs::create_dir_all(up.join("layout").join(sub)).expect("mkdir");
        }
        std::fs::write(up.join("layout/trunk/hello.txt"), "hello\n").expect("write");
        let url = file_url(&up.join("svnrepo"));
        tool(&up, "svn", &["import", "-q", "-m", "init", "layout", &url]);
        lorries.push((
            "sb/svn",
            json!({"type": "svn", "url": url, "layout": "standard"}),
        ));
    }
    if have(
        "hg",
        "hg --version --quiet && git-remote-hg --help >/dev/null 2>&1 || hg --version --quiet",
        "mercurial git-remote-hg",
    ) {
        tool(&up, "hg", &["init", "hgrepo"]);
        std::fs::write(up.join("hgrepo/a.txt"), "a\n").expect("write");
        tool(&up.join("hgrepo"), "hg", &["add", "-q", "a.txt"]);
        tool(
            &up.join("hgrepo"),
            "hg",
            &["commit", "-q", "-u", "T <t@e>", "-m", "one"],
        );
        lorries.push((
            "sb/hg",
            json!({"type": "hg", "url": file_url(&up.join("hgrepo"))}),
        ));
    }
    if have("bzr", "brz version && brz help fast-export", "brz") {
        tool(&up, "brz", &["init", "-q", "bzrbranch"]);
        std::fs::write(up.join("bzrbranch/a.txt"), "a\n").expect("write");
        tool(&up.join("bzrbranch"), "brz", &["add", "-q", "a.txt"]);
        tool(&up.join("bzrbranch"), "brz", &["commit", "-q", "-m", "one"]);
        lorries.push((
            "sb/bzr",
            json!({"type": "bzr", "url": file_url(&up.join("bzrbranch"))}),
        ));
    }
    if have(
        "cvs",
        "cvs --version && command -v cvsps && git cvsimport -h 2>&1 | grep -q usage:",
        "cvs cvsps git-cvs",
    ) {
        let root = up.join("cvsroot");
        let root_s = root.to_str().expect("utf8").to_owned();
        tool(&up, "cvs", &["-Q", "-d", &root_s, "init"]);
        std::fs::create_dir_all(up.join("import")).expect("mkdir");
        std::fs::write(up.join("import/a.txt"), "a\n").expect("write");
        tool(
            &up.join("import"),
            "cvs",
            &[
                "-Q", "-d", &root_s, "import", "-m", "init", "mod", "vendor", "start",
            ],
        );
        lorries.push((
            "sb/cvs",
            json!({"type": "cvs", "url": root_s, "module": "mod"}),
        ));
    }
    // The upstreams are only readable in the sandbox: a job that wrote to
    // them would fail; their contents must not change.
    let before = tree_listing(&up);

    let minion = Minion::start(
        &app,
        d,
        Path::new(LORRY),
        &[format!("--lorry-config={}", conf.display())],
    );
    app.seed(
        &lorries
            .iter()
            .map(|(path, spec)| lorry_of(path, spec.clone()))
            .collect::<Vec<_>>(),
    );
    for (path, _) in &lorries {
        let job = ended_job(&app, path, Duration::from_secs(180));
        let output = job["output"].as_str().unwrap_or_default();
        assert_eq!(
            job["exit"],
            "0",
            "{path}: {output}\nminion log:\n{}",
            minion.log()
        );
        assert!(
            output.starts_with("lorry-controller-minion: isolation: bwrap + "),
            "{output}"
        );
        assert!(
            !downstream_refs(d, path).trim().is_empty(),
            "{path}: nothing pushed"
        );
    }
    assert_eq!(before, tree_listing(&up), "the upstreams were written to");
}

/// Every file under `dir` with its size, sorted.
fn tree_listing(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir").flatten() {
            let meta = entry.metadata().expect("stat");
            if meta.is_dir() {
                todo.push(entry.path());
            } else if !entry.path().starts_with(dir.join("tool-home")) {
                found.push((entry.path(), meta.len()));
            }
        }
    }
    found.sort();
    found
}

/// A free TCP port on the loopback interface.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A server (sshd, a file server) on the loopback interface, killed when
/// dropped.
struct Sshd(Child);

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn an_ssh_upstream_mirrors_through_the_minions_agent_and_known_hosts() {
    if !bwrap_works() {
        return;
    }
    let sshd = Path::new("/usr/sbin/sshd");
    if !is_root() || !sshd.is_file() {
        cannot_run(
            "the ssh upstream through the agent",
            "needs root and sshd (Debian package openssh-server)",
        );
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let keygen = |file: &Path| {
        let ok = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(file)
            .status()
            .expect("ssh-keygen");
        assert!(ok.success());
    };
    let host_key = d.join("host_key");
    let user_key = d.join("id_ed25519");
    keygen(&host_key);
    keygen(&user_key);
    std::fs::copy(d.join("id_ed25519.pub"), d.join("authorized_keys")).expect("copy");
    std::fs::create_dir_all("/run/sshd").expect("sshd's privilege separation directory");
    let port = free_port();
    let config = d.join("sshd_config");
    std::fs::write(
        &config,
        format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nAuthorizedKeysFile {}\nStrictModes no\nUsePAM no\nPidFile none\nPermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n",
            host_key.display(),
            d.join("authorized_keys").display()
        ),
    )
    .expect("write sshd_config");
    let _sshd = Sshd(
        Command::new(sshd)
            .arg("-D")
            .arg("-e")
            .arg("-f")
            .arg(&config)
            .stderr(std::fs::File::create(d.join("sshd.log")).expect("log"))
            .spawn()
            .expect("start sshd"),
    );
    wait_for("sshd to listen", READY_TIMEOUT, || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    });
    // The upstream, and the host key the minion keeps for the jobs; a
    // wrong one first: ssh in the job must refuse the host.
    tool(d, "git", &["init", "-q", "--bare", "-b", "main", "up.git"]);
    tool(d, "git", &["init", "-q", "-b", "main", "work"]);
    std::fs::write(d.join("work/a.txt"), "a\n").expect("write");
    tool(&d.join("work"), "git", &["add", "a.txt"]);
    tool(
        &d.join("work"),
        "git",
        &[
            "-c",
            "user.name=T",
            "-c",
            "user.email=t@e",
            "commit",
            "-q",
            "-m",
            "one",
        ],
    );
    tool(&d.join("work"), "git", &["push", "-q", "../up.git", "main"]);
    let other_key = d.join("other_key");
    keygen(&other_key);
    let known = |key: &Path| {
        let public = std::fs::read_to_string(key.with_extension("pub")).expect("pub");
        let mut words = public.split_whitespace();
        let (kind, blob) = (words.next().expect("kind"), words.next().expect("blob"));
        format!("[127.0.0.1]:{port} {kind} {blob}\n")
    };
    let known_hosts = d.join("known_hosts");
    std::fs::write(&known_hosts, known(&other_key)).expect("write");
    let conf = lorry_conf(d);
    let app = Webapp::init(d).start();
    let minion = Minion::start(
        &app,
        d,
        Path::new(LORRY),
        &[
            format!("--lorry-config={}", conf.display()),
            format!("--ssh-key={}", user_key.display()),
            format!("--ssh-known-hosts={}", known_hosts.display()),
        ],
    );
    let url = format!("ssh://root@127.0.0.1:{port}{}", d.join("up.git").display());
    app.seed(&[lorry_of("sb/ssh-mitm", json!({"type": "git", "url": url}))]);
    let job = ended_job(&app, "sb/ssh-mitm", Duration::from_secs(60));
    let output = job["output"].as_str().unwrap_or_default();
    assert_ne!(job["exit"], "0", "{output}");
    assert!(
        output.contains("Host key verification failed")
            || output.contains("REMOTE HOST IDENTIFICATION HAS CHANGED"),
        "{output}"
    );
    // The right key: the mirror goes through, with the key from the agent.
    std::fs::write(&known_hosts, known(&host_key)).expect("write");
    app.seed(&[lorry_of("sb/ssh", json!({"type": "git", "url": url}))]);
    let job = ended_job(&app, "sb/ssh", Duration::from_secs(60));
    let output = job["output"].as_str().unwrap_or_default();
    assert_eq!(
        job["exit"],
        "0",
        "{output}\nminion log:\n{}\nsshd log:\n{}",
        minion.log(),
        std::fs::read_to_string(d.join("sshd.log")).unwrap_or_default()
    );
    assert!(downstream_refs(d, "sb/ssh").contains("refs/heads/main"));
}

/// The processes whose command line mentions `needle`.
fn processes_naming(needle: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(needle) {
            found.push(pid);
        }
    }
    found
}

#[test]
fn the_minions_ssh_agent_ends_when_the_minion_is_killed() {
    // Debian's ssh-agent is set-gid, so a parent-death signal set before it
    // starts is cleared: a minion killed with SIGKILL used to leave its
    // agent running with the keys unlocked.
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let app = Webapp::init(d).start();
    let key = d.join("id_ed25519");
    let made = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .status()
        .expect("ssh-keygen (Debian package openssh-client)");
    assert!(made.success());
    let mut minion = Minion::start(
        &app,
        d,
        Path::new("/bin/true"),
        &[
            // The agent does not depend on the sandbox.
            "--sandbox=none".to_owned(),
            format!("--ssh-key={}", key.display()),
        ],
    );
    let log = minion.log();
    let socket = log
        .split("socket=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("the minion logs its agent's socket: {log}"))
        .to_owned();
    assert!(Path::new(&socket).exists(), "{socket}");
    assert!(
        !processes_naming(&socket).is_empty(),
        "the agent runs with its socket on its command line"
    );
    minion.child.kill().expect("SIGKILL the minion");
    minion.child.wait().expect("wait");
    // ssh-agent checks on its parent every 10 seconds.
    wait_for("the agent to end with the minion", READY_TIMEOUT, || {
        processes_naming(&socket).is_empty().then_some(())
    });
    assert!(!Path::new(&socket).exists(), "the agent removed its socket");
}
