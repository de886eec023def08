//! The admin pages in a real browser: headless Chromium driven over
//! WebDriver against the real webapp binary with real data.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`/usr/bin/chromium`,
//! `/usr/bin/chromedriver`); CI installs them, and without them this test
//! fails, naming the packages. Screenshots of every page go to
//! `target/screenshots/`.
//!
//! The WebDriver client is the few W3C commands we use (session, navigate,
//! find, click, text, script, screenshot, and chromedriver's log endpoint)
//! spoken with the blocking reqwest the other end-to-end tests already use:
//! the same thing a client crate would send, without its dependency tree.

use crate::common;
use crate::doubles::gitlab_v4::GitlabV4;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine;
use common::{READY_TIMEOUT, Webapp, git_lorry, wait_for};
use serde_json::{Value, json};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const T0: i64 = 1_700_000_000;

/// The W3C name of an element reference in WebDriver answers.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A chromedriver process, killed when dropped.
struct ChromeDriver {
    child: Child,
    url: String,
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ChromeDriver {
    fn start(dir: &Path) -> ChromeDriver {
        for program in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(program).exists(),
                "{program} is missing: the browser tests need the Debian packages \
                 `chromium` and `chromium-driver` (apt-get install chromium chromium-driver)"
            );
        }
        // chromedriver cannot report a port it picked; take a free one.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg(format!(
                "--log-path={}",
                dir.join("chromedriver.log").display()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let driver = ChromeDriver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let http = client();
        wait_for("chromedriver to be ready", READY_TIMEOUT, || {
            let status: Value = http
                .get(format!("{}/status", driver.url))
                .send()
                .ok()?
                .json()
                .ok()?;
            status["value"]["ready"].as_bool().filter(|r| *r)
        });
        driver
    }

    fn session(&self, profile: &Path) -> Browser {
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--window-size=1280,900",
            &format!("--user-data-dir={}", profile.display()),
        ];
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
            "goog:loggingPrefs": {"browser": "ALL"},
        }}});
        let http = client();
        let answer = command(
            &http,
            reqwest::Method::POST,
            &format!("{}/session", self.url),
            Some(capabilities),
        );
        let id = answer["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session id in {answer}"))
            .to_owned();
        Browser {
            http,
            base: format!("{}/session/{id}", self.url),
        }
    }
}

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .expect("http client")
}

/// Sends one WebDriver command; its `value`, or a panic naming the error.
fn command(
    http: &reqwest::blocking::Client,
    method: reqwest::Method,
    url: &str,
    body: Option<Value>,
) -> Value {
    try_command(http, method.clone(), url, body).unwrap_or_else(|e| panic!("{method} {url}: {e}"))
}

/// Sends one WebDriver command; its `value`, or the error.
fn try_command(
    http: &reqwest::blocking::Client,
    method: reqwest::Method,
    url: &str,
    body: Option<Value>,
) -> Result<Value, String> {
    let mut request = http.request(method, url);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().map_err(|e| e.to_string())?;
    let status = response.status();
    let answer: Value = response.json().map_err(|e| e.to_string())?;
    if status.is_success() {
        Ok(answer["value"].clone())
    } else {
        Err(format!("{status} {answer}"))
    }
}

/// One browser session, ended when dropped.
struct Browser {
    http: reqwest::blocking::Client,
    base: String,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.http.delete(&self.base).send();
    }
}

impl Browser {
    fn cmd(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        command(&self.http, method, &format!("{}{path}", self.base), body)
    }

    fn goto(&self, url: &str) {
        self.cmd(reqwest::Method::POST, "/url", Some(json!({ "url": url })));
    }

    fn current_url(&self) -> String {
        self.cmd(reqwest::Method::GET, "/url", None)
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    fn script(&self, script: &str) -> Value {
        self.cmd(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
    }

    /// Elements matching a CSS selector.
    fn find_all(&self, css: &str) -> Vec<String> {
        self.cmd(
            reqwest::Method::POST,
            "/elements",
            Some(json!({"using": "css selector", "value": css})),
        )
        .as_array()
        .map(|all| {
            all.iter()
                .filter_map(|e| e[ELEMENT].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
    }

    fn find(&self, css: &str) -> String {
        self.find_all(css)
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("no element {css} on {}", self.current_url()))
    }

    /// The text of `css`, or `None` while it is missing or the page is
    /// being replaced (a reload makes found elements stale): for polling.
    fn try_text(&self, css: &str) -> Option<String> {
        let found = try_command(
            &self.http,
            reqwest::Method::POST,
            &format!("{}/element", self.base),
            Some(json!({"using": "css selector", "value": css})),
        )
        .ok()?;
        let id = found[ELEMENT].as_str()?;
        let text = try_command(
            &self.http,
            reqwest::Method::GET,
            &format!("{}/element/{id}/text", self.base),
            None,
        )
        .ok()?;
        text.as_str().map(str::to_owned)
    }

    /// Polls until the text of `css` contains `wanted`.
    fn wait_for_text(&self, css: &str, wanted: &str) {
        wait_for(&format!("{wanted:?} in {css}"), READY_TIMEOUT, || {
            self.try_text(css)
                .filter(|text| text.contains(wanted))
                .map(|_| ())
        });
    }

    fn text(&self, css: &str) -> String {
        let id = self.find(css);
        self.cmd(reqwest::Method::GET, &format!("/element/{id}/text"), None)
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Clicks `css` and waits for the page it leads to.
    fn click(&self, css: &str) {
        let id = self.find(css);
        // Marks the old document, to tell it from the one the click loads.
        self.script("window.lcOldPage = true");
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{id}/click"),
            Some(json!({})),
        );
        wait_for("the next page to load", READY_TIMEOUT, || {
            let loaded = try_command(
                &self.http,
                reqwest::Method::POST,
                &format!("{}/execute/sync", self.base),
                Some(json!({
                    "script": "return !window.lcOldPage && document.readyState === 'complete'",
                    "args": [],
                })),
            );
            (loaded.ok()? == true).then_some(())
        });
    }

    fn resize(&self, width: u32, height: u32) {
        self.cmd(
            reqwest::Method::POST,
            "/window/rect",
            Some(json!({"width": width, "height": height})),
        );
    }

    fn screenshot(&self, name: &str) {
        let png = self.cmd(reqwest::Method::GET, "/screenshot", None);
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().expect("base64 PNG"))
            .expect("valid base64");
        let dir = screenshots();
        std::fs::create_dir_all(&dir).expect("create target/screenshots");
        std::fs::write(dir.join(format!("{name}.png")), bytes).expect("write screenshot");
    }

    /// A PNG of the element `css` alone, to `target/screenshots/NAME.png`.
    fn element_screenshot(&self, css: &str, name: &str) {
        let id = self.find(css);
        // Chromium crops an element's shot to the viewport.
        self.script(&format!(
            "document.querySelector({css:?}).scrollIntoView({{block: 'center'}})"
        ));
        let png = self.cmd(
            reqwest::Method::GET,
            &format!("/element/{id}/screenshot"),
            None,
        );
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().expect("base64 PNG"))
            .expect("valid base64");
        let dir = screenshots();
        std::fs::create_dir_all(&dir).expect("create target/screenshots");
        std::fs::write(dir.join(format!("{name}.png")), bytes).expect("write screenshot");
    }

    /// The console errors since the last call.
    fn console_errors(&self) -> Vec<Value> {
        let log = self.cmd(
            reqwest::Method::POST,
            "/se/log",
            Some(json!({"type": "browser"})),
        );
        log.as_array()
            .expect("log entries")
            .iter()
            .filter(|e| e["level"] == "SEVERE")
            .cloned()
            .collect()
    }

    /// Fails unless every console error since the last call contains
    /// `expected` (and there is at least one).
    fn assert_console_errors_only(&self, page: &str, expected: &str) {
        let errors = self.console_errors();
        assert!(!errors.is_empty(), "expected a console error on {page}");
        for e in &errors {
            let message = e["message"].as_str().unwrap_or_default();
            assert!(
                message.contains(expected),
                "console errors on {page}: {errors:?}"
            );
        }
    }

    /// Fails on any console error since the last call.
    fn assert_no_console_errors(&self, page: &str) {
        let errors = self.console_errors();
        assert!(errors.is_empty(), "console errors on {page}: {errors:?}");
    }
}

fn screenshots() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots")
}

/// A job through give-me-job, with `output` reported and, if `exit` is given, ended.
fn job(app: &Webapp, output: &str, exit: Option<i64>) -> (i64, String) {
    let job = app.post_ok("/1.0/give-me-job", &[("host", "minion-1"), ("pid", "4242")]);
    let id = job["job_id"].as_i64().expect("a job was handed out");
    let exit = exit.map_or_else(|| "no".to_owned(), |e| e.to_string());
    app.post_ok(
        "/1.0/job-update",
        &[
            ("job_id", &id.to_string()),
            ("exit", &exit),
            ("stdout", output),
            ("disk_usage", "1843200"),
        ],
    );
    (id, job["path"].as_str().expect("path").to_owned())
}

#[test]
fn admin_pages_work_in_a_real_browser() {
    let dir = tempfile::tempdir().expect("tempdir");
    let status_file = dir.path().join("www/status.html");
    std::fs::create_dir_all(status_file.parent().expect("www")).expect("mkdir");
    let app = Webapp::init(dir.path())
        .with_args(&[
            "--publish-failures",
            &format!("--status-html={}", status_file.display()),
        ])
        .start();
    app.pretend_time(T0);
    let mut lorries = vec![
        git_lorry("upstream/linux", 3600, 600),
        git_lorry("upstream/gcc", 3600, 600),
        git_lorry("upstream/<b>not bold</b>", 3600, 600),
        git_lorry("baserock/morph", 7200, 600),
    ];
    lorries.extend((0..40).map(|i| git_lorry(&format!("mirrors/project-{i:02}"), 86_400, 600)));
    app.seed(&lorries);

    // Real jobs: one fails, one succeeds, one is still running.
    let (failed, failed_path) = job(
        &app,
        "fatal: unable to access 'https://example.invalid/': Could not resolve host\n",
        Some(128),
    );
    let (_ok, _) = job(&app, "Fetching...\nPushing refs\n", Some(0));
    let (running, _) = job(&app, "Counting objects: 42% <done?>\n", None);
    app.pretend_time(T0 + 95);

    let driver = ChromeDriver::start(dir.path());
    let browser = driver.session(&dir.path().join("chromium-profile"));
    let page = |path: &str| app.url(path);

    // Status page: counts, failures first, the escaped lorry name.
    browser.goto(&page("/1.0/status-html"));
    assert_eq!(
        browser.script("return document.title"),
        "Status · Lorry Controller"
    );
    let first_row = browser.text("table.queue tbody tr td.path");
    assert_eq!(first_row, failed_path, "failed lorry comes first");
    assert!(
        browser
            .text("table.queue")
            .contains("upstream/<b>not bold</b>")
    );
    assert!(
        browser.find_all("table.queue b").is_empty(),
        "HTML in a path rendered"
    );
    assert!(
        browser
            .text("pre.output")
            .contains("Could not resolve host")
    );
    assert!(browser.text(".pill").contains("Queue running"));
    assert!(
        !browser
            .find_all("form[action='/1.0/read-configuration'] button")
            .is_empty()
    );
    assert!(
        !browser
            .find_all("form[action='/1.0/force-ls-troves'] button")
            .is_empty()
    );
    browser.screenshot("status");
    browser.assert_no_console_errors("the status page");

    // On a phone-sized window the page does not scroll sideways: wide
    // tables scroll inside their own box.
    browser.resize(420, 900);
    browser.goto(&page("/1.0/status-html"));
    assert_eq!(
        browser.script("return document.documentElement.scrollWidth <= window.innerWidth"),
        true,
        "the status page overflows a narrow window"
    );
    browser.screenshot("status-narrow");
    browser.resize(1280, 900);

    // Stop the queue and start it again with the buttons.
    browser.click("form[action='/1.0/stop-queue'] button");
    assert_eq!(app.get_ok("/1.0/status")["running_queue"], false);
    assert_eq!(browser.current_url(), page("/1.0/status-html"));
    assert!(browser.text(".pill").contains("Queue stopped"));
    browser.screenshot("status-queue-stopped");
    browser.click("form[action='/1.0/start-queue'] button");
    assert_eq!(app.get_ok("/1.0/status")["running_queue"], true);
    assert!(browser.text(".pill").contains("Queue running"));

    // Filtering with the form, and paging.
    let prefix = browser.find("input[name='prefix']");
    browser.cmd(
        reqwest::Method::POST,
        &format!("/element/{prefix}/value"),
        Some(json!({"text": "mirrors/"})),
    );
    browser.click("form.filter button");
    assert!(browser.current_url().contains("prefix=mirrors%2F"));
    let rows = browser.find_all("table.queue tbody tr td.path");
    assert_eq!(rows.len(), 40);
    browser.screenshot("status-filtered");
    browser.goto(&page("/1.0/status-html?state=failed"));
    assert_eq!(browser.find_all("table.queue tbody tr td.path").len(), 1);
    browser.assert_no_console_errors("the filtered status page");

    // The lorry page: Move to top.
    let target = "mirrors/project-39";
    assert_ne!(app.queue()[0], target);
    browser.goto(&page(&format!("/1.0/lorry-html/{target}")));
    assert!(browser.text("h1").contains(target));
    assert!(
        browser
            .text("dl")
            .contains("git://example.invalid/mirrors/project-39")
    );
    browser.screenshot("lorry");
    browser.click("form[action='/1.0/move-to-top'] button");
    assert_eq!(app.queue()[0], target);
    assert_eq!(
        browser.current_url(),
        page(&format!("/1.0/lorry-html/{target}"))
    );
    browser.assert_no_console_errors("the lorry page");

    // The failed lorry's page shows its error.
    browser.goto(&page(&format!("/1.0/lorry-html/{failed_path}")));
    assert!(
        browser
            .text("pre.output")
            .contains("Could not resolve host")
    );
    browser.screenshot("lorry-failed");

    // A running job's page: output arrives live, then Stop job.
    browser.goto(&page(&format!("/1.0/job-html/{running}")));
    assert!(
        browser
            .text("#output")
            .contains("Counting objects: 42% <done?>")
    );
    browser.wait_for_text("#live", "live");
    app.post_ok(
        "/1.0/job-update",
        &[
            ("job_id", &running.to_string()),
            ("exit", "no"),
            ("stdout", "Counting objects: 100% <done>\n"),
        ],
    );
    browser.wait_for_text("#output", "Counting objects: 100% <done>");
    browser.screenshot("job-running");
    browser.assert_no_console_errors("the running job's page");
    browser.click("form[action='/1.0/stop-job'] button");
    assert_eq!(app.get_ok(&format!("/1.0/job/{running}"))["kill_job"], true);
    assert!(browser.text("#job-state").contains("stopping"));
    // The minion ends the job; the open page notices and reloads itself.
    browser.wait_for_text("#live", "live");
    app.post_ok(
        "/1.0/job-update",
        &[
            ("job_id", &running.to_string()),
            ("exit", "143"),
            ("stderr", "killed by the webapp\n"),
        ],
    );
    browser.wait_for_text("#job-state", "exit 143");
    assert!(browser.find_all("form[action='/1.0/stop-job']").is_empty());
    browser.screenshot("job-ended");
    browser.assert_no_console_errors("the ended job's page");

    // The job list.
    browser.goto(&page("/1.0/list-jobs-html"));
    assert_eq!(browser.find_all("table.jobs tbody tr").len(), 3);
    assert!(browser.text("table.jobs").contains(&format!("#{failed}")));
    browser.screenshot("jobs");
    browser.assert_no_console_errors("the job list");

    // Unknown things are pages too.
    browser.goto(&page("/1.0/job-html/999"));
    assert!(browser.text("main").contains("no job"));
    browser.assert_console_errors_only(
        "the missing job's page",
        "job-html/999 - Failed to load resource: the server responded with a status of 404",
    );

    // The status file, opened from disk, is styled and shows the fleet.
    browser.goto(&format!("file://{}", status_file.display()));
    assert!(browser.text("table.queue").contains("upstream/linux"));
    let background = browser
        .script("return getComputedStyle(document.querySelector('header.bar')).backgroundColor");
    assert_eq!(background, "rgb(29, 36, 48)", "inline stylesheet applied");
    browser.screenshot("status-file");

    // Re-read configuration, last: CONFGIT (not a real one here: the
    // configuration directory as it is) replaces the seeded lorries.
    let confgit = dir.path().join("confgit");
    std::fs::create_dir_all(confgit.join("lorries")).expect("mkdir confgit");
    std::fs::write(
        confgit.join("lorry-controller.conf"),
        r#"[{"type": "lorries", "prefix": "conf", "interval": "1h", "globs": ["lorries/*.lorry"]}]"#,
    )
    .expect("conf");
    std::fs::write(
        confgit.join("lorries/new.lorry"),
        "fresh: {type: git, url: 'https://git.example.org/fresh.git'}\n",
    )
    .expect("lorry");
    browser.goto(&page("/1.0/status-html"));
    browser.click("form[action='/1.0/read-configuration'] button");
    assert_eq!(browser.current_url(), page("/1.0/status-html"));
    assert!(browser.text(".pill").contains("Queue running"));
    let queue = app.get_ok("/1.0/list-queue");
    assert_eq!(
        queue["queue"],
        json!(["conf/fresh"]),
        "CONFGIT read: {queue}"
    );
    browser.wait_for_text("table.queue", "conf/fresh");
    browser.screenshot("status-after-read-configuration");
    browser.assert_no_console_errors("the status page after re-reading CONFGIT");
}

/// A job of `path` through the API: moved to the top, handed out at
/// `start`, ended `took` seconds later with `exit` and `disk` bytes.
fn timed_job(app: &Webapp, path: &str, start: i64, took: i64, exit: i64, disk: i64) {
    app.pretend_time(start);
    app.post_ok("/1.0/move-to-top", &[("path", path)]);
    let job = app.post_ok("/1.0/give-me-job", &[("host", "minion-1"), ("pid", "4242")]);
    assert_eq!(job["path"], path, "{job}");
    let id = job["job_id"].as_i64().expect("a job was handed out");
    app.pretend_time(start + took);
    app.post_ok(
        "/1.0/job-update",
        &[
            ("job_id", &id.to_string()),
            ("exit", &exit.to_string()),
            ("disk_usage", &disk.to_string()),
        ],
    );
}

/// The `data-value`s of the marks matching `css`, in document order.
fn values(browser: &Browser, css: &str) -> Value {
    browser.script(&format!(
        "return Array.from(document.querySelectorAll({css:?})).map(e => Number(e.getAttribute('data-value')))"
    ))
}

/// The charts in a real browser, from a known history made through the
/// API: each is drawn (it has a size), has the right number of bars or
/// points with the right numbers, failures are hatched (the pattern, not a
/// colour, fills them), a hostile lorry path is text, and no page logs a
/// console error. Element screenshots go to `target/screenshots/chart-*`.
#[test]
fn charts_show_a_known_history_in_a_real_browser() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = Webapp::init(dir.path()).start();
    let hour0 = T0 - T0 % 3600;
    let hostile = r#"up/<b>bold</b>&"q'"#;
    let mut hosted = git_lorry("up/hosted", 3600, 600);
    hosted.from_host = "git.example.org".into();
    app.seed(&[
        hosted,
        git_lorry(hostile, 3600, 600),
        git_lorry("up/never", 3600, 600),
    ]);
    timed_job(&app, "up/hosted", hour0 - 5 * 3600, 60, 0, 1000);
    timed_job(&app, "up/hosted", hour0 - 5 * 3600 + 100, 60, 128, 1000);
    timed_job(&app, hostile, hour0 - 2 * 3600, 30, 0, 2048);
    timed_job(&app, hostile, hour0 - 3600, 90, 1, 4096);
    timed_job(&app, hostile, hour0 + 10, 60, 0, 3072);
    app.pretend_time(T0);

    let driver = ChromeDriver::start(dir.path());
    let browser = driver.session(&dir.path().join("chromium-profile"));

    browser.goto(&app.url("/1.0/status-html"));
    for id in ["chart-freshness", "chart-jobs", "chart-host-0"] {
        let size = browser.script(&format!(
            "const r = document.querySelector('#{id} svg').getBoundingClientRect(); \
             return r.width > 50 && r.height > 30"
        ));
        assert_eq!(size, true, "{id} is not drawn");
        assert_eq!(
            browser.script(&format!(
                "return document.querySelector('#{id} svg').getAttribute('role')"
            )),
            "img"
        );
    }
    // Five hours ago one success and one failure, then one job in each of
    // the last three hours.
    assert_eq!(
        values(&browser, "#chart-jobs rect.bar"),
        json!([1, 1, 1, 1, 1])
    );
    assert_eq!(
        browser.find_all("#chart-jobs table tbody tr").len(),
        24,
        "a row per hour"
    );
    // Last success: up/hosted 5 h ago (over 4× its hour), the hostile one
    // this hour, up/never never.
    assert_eq!(
        values(&browser, "#chart-freshness rect.bar"),
        json!([1, 1, 1])
    );
    assert_eq!(values(&browser, "#chart-host-0 rect.bar"), json!([1]));
    assert!(
        browser
            .text("#chart-host-0 figcaption")
            .starts_with("git.example.org: failed jobs per day")
    );
    // Failures are filled by the hatch pattern, not by a style's colour.
    let fills = browser.script(
        "return Array.from(document.querySelectorAll('#chart-jobs rect.bar.failed')) \
         .map(e => getComputedStyle(e).fill)",
    );
    assert_eq!(
        fills.as_array().map(Vec::len),
        Some(2),
        "two failed hours: {fills}"
    );
    for fill in fills.as_array().into_iter().flatten() {
        assert!(
            fill.as_str()
                .unwrap_or_default()
                .contains("chart-jobs-hatch"),
            "{fill}"
        );
    }
    browser.assert_no_console_errors("the status page with charts");
    browser.screenshot("charts-status");
    browser.element_screenshot("section.charts", "chart-status-fleet");

    browser.goto(&app.url(&format!("/1.0/lorry-html/{}", encode(hostile))));
    assert!(browser.text("h1").contains(hostile));
    assert_eq!(
        values(&browser, "#chart-durations rect.bar"),
        json!([30, 90, 60])
    );
    assert_eq!(
        browser.find_all("#chart-durations rect.bar[fill]").len(),
        1,
        "the failed job is hatched"
    );
    assert_eq!(browser.text("#chart-durations text.exit"), "1");
    assert_eq!(
        values(&browser, "#chart-disk circle.point"),
        json!([2048, 4096, 3072])
    );
    assert!(
        browser
            .text("#chart-durations figcaption")
            .contains(hostile)
    );
    assert!(
        browser.find_all("figure.chart b").is_empty(),
        "markup from the path"
    );
    browser.assert_no_console_errors("the lorry page with charts");
    browser.screenshot("charts-lorry");
    browser.element_screenshot("div.charts", "chart-lorry");
}

/// A lorry checked without a job says so in a real browser: its GitLab
/// host (the double, `"activity-hint": true`) reports no activity since
/// its job, so the next due run is a check without one. The status page's
/// row and the lorry page say how and when the last job ran; a lorry
/// whose latest run was a job says nothing of the kind.
#[test]
fn a_check_without_a_job_shows_on_the_pages_in_a_real_browser() {
    const HOUR: i64 = 3_600;
    // After the forge's stated activity below, as a pretended clock.
    const T: i64 = 1_800_000_000;
    let dir = tempfile::tempdir().expect("tempdir");
    let gitlab = GitlabV4::start("browser-double-token");
    for path in ["grp/quiet", "grp/busy"] {
        gitlab.add_project(path, Some("main"), None);
    }
    gitlab.state().activity_override = Some(Some(json!("2026-01-01T00:00:00Z")));
    let app = Webapp::init(dir.path()).start();
    let list_and_run = |now: i64| {
        app.pretend_time(now);
        app.post_ok("/1.0/force-ls-troves", &[]);
        let mut ran = Vec::new();
        while let Some((id, path)) = app.give_me_job() {
            app.finish(id, 0);
            ran.push(path);
        }
        ran.sort();
        ran
    };
    app.pretend_time(T);
    app.configure(&json!([{
        "type": "gitlab", "host": gitlab.server.host(), "protocol": "http",
        "private-token": "browser-double-token", "activity-hint": true,
        "interval": "1h", "prefixmap": {"grp": "gl"}
    }]));
    assert_eq!(list_and_run(T), ["gl/busy", "gl/quiet"]);
    // busy is moved to the top: a move always asks for a job.
    app.pretend_time(T + 2 * HOUR);
    app.post_ok("/1.0/move-to-top", &[("path", "gl/busy")]);
    assert_eq!(list_and_run(T + 2 * HOUR), ["gl/busy"]);

    let driver = ChromeDriver::start(dir.path());
    let browser = driver.session(&dir.path().join("chromium-profile"));
    browser.goto(&app.url("/1.0/status-html"));
    let how = "unchanged per host activity";
    let quiet = browser.script(
        "return Array.from(document.querySelectorAll('table.queue tbody tr')) \
         .map(r => [r.querySelector('td.path') && r.querySelector('td.path').innerText, \
                    r.querySelector('span.checked') && r.querySelector('span.checked').innerText, \
                    r.querySelector('span.checked') && r.querySelector('span.checked').title])",
    );
    let rows = quiet.as_array().expect("rows");
    let row = |path: &str| {
        rows.iter()
            .find(|r| r[0] == path)
            .unwrap_or_else(|| panic!("no row of {path}: {quiet}"))
            .clone()
    };
    assert_eq!(
        row("gl/quiet")[1],
        format!("no job: {how}; last job 2 h ago")
    );
    let title = row("gl/quiet")[2].as_str().unwrap_or_default().to_owned();
    assert!(
        title.contains(how) && title.contains("2027-01-15 08:00:00"),
        "{title}"
    );
    assert_eq!(row("gl/busy")[1], Value::Null, "its latest run was a job");
    browser.assert_no_console_errors("the status page with a check without a job");
    browser.screenshot("checked-without-job-status");

    browser.goto(&app.url("/1.0/lorry-html/gl/quiet"));
    assert_eq!(browser.text("span.badge.checked"), "no job");
    assert_eq!(
        browser.text("dd.checked-without-job"),
        format!("just now, {how}")
    );
    assert_eq!(browser.text("dd.last-job"), "2 h ago");
    browser.assert_no_console_errors("the lorry page with a check without a job");
    browser.screenshot("checked-without-job-lorry");
    browser.goto(&app.url("/1.0/lorry-html/gl/busy"));
    assert!(browser.find_all("span.badge.checked").is_empty());
    assert!(browser.find_all("dd.checked-without-job").is_empty());
}

/// A lorry path in a URL, each byte outside the unreserved set encoded.
fn encode(path: &str) -> String {
    path.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
