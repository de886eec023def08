//! Pieces of the pages' view models: plain strings for the templates.

use lc_api::LorryInfo;
use lc_base::redact::redact;
use lc_base::timefmt;
use lc_core::db::status::JobSummary;

/// What every page has: its title, when it was made, and (for the status
/// file only) the stylesheet inlined.
pub struct Chrome {
    pub title: String,
    pub updated: When,
    pub inline_css: Option<&'static str>,
}

impl Chrome {
    pub fn new(title: &str, now: i64) -> Chrome {
        Chrome {
            title: title.to_owned(),
            updated: When::ago(now, now),
            inline_css: None,
        }
    }
}

/// A moment: readable text, plus absolute UTC and ISO 8601 for `<time>`.
pub struct When {
    pub known: bool,
    pub text: String,
    pub utc: String,
    pub iso: String,
}

impl When {
    fn at(unix: i64, text: String) -> When {
        When {
            known: true,
            text,
            utc: timefmt::utc(unix),
            iso: jiff::Timestamp::from_second(unix)
                .map(|t| t.to_string())
                .unwrap_or_default(),
        }
    }

    /// Nothing to show; `text` says why.
    pub fn unknown(text: &str) -> When {
        When {
            known: false,
            text: text.to_owned(),
            utc: String::new(),
            iso: String::new(),
        }
    }

    /// `3 min ago`; `never` for 0.
    pub fn ago(unix: i64, now: i64) -> When {
        if unix <= 0 {
            When::unknown("never")
        } else {
            When::at(unix, timefmt::ago(unix, now))
        }
    }

    /// When a lorry runs next: `in 1 h 5 min`, `now, waited 3 min`, `running`.
    pub fn due(lorry: &LorryInfo, now: i64) -> When {
        if lorry.running_job.is_some() {
            When::unknown("running")
        } else if lorry.last_run <= 0 {
            When::unknown("now (never ran)")
        } else if lorry.due <= now {
            let text = if lorry.due == now {
                "now".to_owned()
            } else {
                format!(
                    "now, waited {}",
                    timefmt::span(now.saturating_sub(lorry.due))
                )
            };
            When::at(lorry.due, text)
        } else {
            When::at(lorry.due, timefmt::due(lorry.due, now))
        }
    }

    /// A future moment: `in 5 min`, or `now` once it has come.
    pub fn until(unix: i64, now: i64) -> When {
        When::at(unix, timefmt::due(unix, now))
    }
}

/// A lorry's last check without a job (its host said it was unchanged).
pub struct CheckedWithoutJob {
    pub when: When,
    /// `unchanged per manifest` or `unchanged per host activity`.
    pub how: String,
    /// When its latest real job started.
    pub last_job: When,
    /// The check is the lorry's latest run: no job has started since.
    pub latest: bool,
}

impl CheckedWithoutJob {
    /// `None` when the lorry was never checked without a job.
    pub fn of(lorry: &LorryInfo, now: i64) -> Option<CheckedWithoutJob> {
        let when = lorry.last_checked_without_job?;
        let last_job = lorry.last_job_run.unwrap_or(0);
        Some(CheckedWithoutJob {
            when: When::ago(when, now),
            how: lorry
                .checked_without_job_how
                .clone()
                .unwrap_or_else(|| "unchanged".into()),
            last_job: When::ago(last_job, now),
            latest: lorry.running_job.is_none() && when > last_job,
        })
    }
}

/// A job in a table.
pub struct JobRow {
    pub id: i64,
    pub path: String,
    pub href: String,
    pub minion: String,
    pub started: When,
    pub took: String,
    pub state: &'static str,
    pub exit: String,
    pub disk: String,
}

impl JobRow {
    pub fn new(job: &JobSummary, now: i64) -> JobRow {
        let running = job.ended.is_none();
        let (state, exit) = job_state(running, job.kill, job.exit.as_deref());
        JobRow {
            id: job.job_id,
            path: job.path.clone(),
            href: encode_path(&job.path),
            minion: format!("{}:{}", job.host, job.pid),
            started: When::ago(job.started, now),
            took: timefmt::span(job.ended.unwrap_or(now).saturating_sub(job.started)),
            state,
            exit,
            disk: timefmt::bytes(job.disk_usage),
        }
    }
}

/// A job's state as a CSS class and a label.
pub fn job_state(running: bool, kill: bool, exit: Option<&str>) -> (&'static str, String) {
    match (running, kill, exit) {
        (true, true, _) => ("stopping", "stopping".into()),
        (true, false, _) => ("running", "running".into()),
        (false, _, Some("0")) => ("ok", "exit 0".into()),
        (false, _, Some(code)) => ("failed", format!("exit {code}")),
        (false, _, None) => ("failed", "ended".into()),
    }
}

/// A link of a pager; an empty `href` is a gap (`…`).
pub struct PagerLink {
    pub label: String,
    pub href: String,
    pub current: bool,
}

/// Links to the first, last, and nearby pages of `total` rows.
pub fn pager(page: i64, total: i64, href: impl Fn(i64) -> String) -> Vec<PagerLink> {
    let pages = ((total + super::PAGE_SIZE - 1) / super::PAGE_SIZE).max(1);
    let mut links = Vec::new();
    if page > 1 {
        links.push(PagerLink {
            label: "‹ Previous".into(),
            href: href((page - 1).min(pages)),
            current: false,
        });
    }
    let mut last_shown = 0;
    for n in 1..=pages {
        let near = (n - page).abs() <= 2;
        if n == 1 || n == pages || near {
            if n > last_shown + 1 {
                links.push(PagerLink {
                    label: "…".into(),
                    href: String::new(),
                    current: false,
                });
            }
            links.push(PagerLink {
                label: n.to_string(),
                href: href(n),
                current: n == page,
            });
            last_shown = n;
        }
    }
    if page < pages {
        links.push(PagerLink {
            label: "Next ›".into(),
            href: href(page + 1),
            current: false,
        });
    }
    if links.len() == 1 { Vec::new() } else { links }
}

/// `Rows 101–200 of 10000`.
pub fn range_text(first: i64, shown: usize, total: i64, what: &str) -> String {
    if shown == 0 {
        format!("{total} {what}")
    } else {
        format!(
            "Showing {}–{} of {total} {what}",
            first + 1,
            first + shown as i64
        )
    }
}

/// A lorry path in a URL: each segment percent-encoded, slashes kept.
pub fn encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for byte in path.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                out.push(byte as char)
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// The upstream URL (credentials hidden) and type named by a lorry's spec.
pub fn spec_source(text: &str, path: &str) -> (String, String) {
    let Ok(serde_json::Value::Object(specs)) = serde_json::from_str(text) else {
        return (String::new(), String::new());
    };
    let spec = specs.get(path).or_else(|| specs.values().next());
    let field = |name| {
        spec.and_then(|s| s.get(name))
            .and_then(|v| v.as_str())
            .map(|v| redact(v).into_owned())
            .unwrap_or_default()
    };
    (field("url"), field("type"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_encoded_per_segment() {
        assert_eq!(encode_path("up/foo-1.x"), "up/foo-1.x");
        assert_eq!(encode_path("a b/c?d#e"), "a%20b/c%3Fd%23e");
        assert_eq!(encode_path("ü"), "%C3%BC");
    }

    #[test]
    fn pager_shows_ends_and_neighbours() {
        let labels = |page, total| {
            pager(page, total, |n| n.to_string())
                .into_iter()
                .map(|l| {
                    if l.current {
                        format!("[{}]", l.label)
                    } else {
                        l.label
                    }
                })
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(labels(1, 100), "");
        assert_eq!(labels(1, 250), "[1] 2 3 Next ›");
        assert_eq!(
            labels(10, 10_000),
            "‹ Previous 1 … 8 9 [10] 11 12 … 100 Next ›"
        );
    }

    #[test]
    fn spec_source_hides_credentials() {
        let text = r#"{"a": {"type": "git", "url": "https://me:hunter2@example.com/a.git"}}"#;
        let (url, kind) = spec_source(text, "a");
        assert_eq!(kind, "git");
        assert!(!url.contains("hunter2"), "{url}");
        assert_eq!(spec_source("not json", "a"), (String::new(), String::new()));
    }
}
