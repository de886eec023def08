//! Charts drawn on the server: numbers in, a [`Chart`] out, printed as
//! inline SVG by `templates/chart.html`, which askama escapes like every
//! page (a lorry path in a title is text, never markup). No JavaScript.
//!
//! Readable without colour: failed jobs are hatched as well as red, bars
//! carry their number as text or their category below them, and the legend
//! says which is which. Every mark has a `<title>` with its number (a
//! tooltip) and a `data-value`; the SVG is `role="img"` with a `<title>`
//! and a `<desc>` summing it up; and the same numbers follow as a table in
//! a `<details>`, for screen readers, `curl` and copying.
//!
//! Coordinates are whole pixels of the SVG's own viewBox.

#[cfg(test)]
use askama::Template;
use lc_base::timefmt;
use lc_core::db::JobCounts;
use lc_core::db::status::{Freshness, JobSummary};

/// One chart, ready for `templates/chart.html`.
pub struct Chart {
    /// The `id` of its `<figure>`; ids inside the SVG start with it.
    pub id: String,
    pub title: String,
    /// A sentence or two summing up the numbers.
    pub desc: String,
    pub width: i64,
    pub height: i64,
    /// The baseline, from `(x1, y)` to `(x2, y)`.
    pub axis: (i64, i64, i64),
    pub marks: Vec<Mark>,
    /// `points` of a polyline through the marks, or empty for none.
    pub line: String,
    pub texts: Vec<Label>,
    pub legend: Vec<Legend>,
    pub table: Table,
}

/// A bar, or a point (a circle of radius `w` at `(x, y)`).
pub struct Mark {
    pub point: bool,
    pub x: i64,
    pub y: i64,
    pub w: i64,
    pub h: i64,
    /// A CSS class for its colour: `ok`, `failed`, `point`, `fresh-1`...
    pub class: &'static str,
    /// Filled with the chart's hatch pattern instead of a colour.
    pub hatched: bool,
    pub value: i64,
    /// Its tooltip: what it is and its number.
    pub title: String,
}

pub struct Label {
    pub x: i64,
    pub y: i64,
    /// `start`, `middle` or `end`.
    pub anchor: &'static str,
    pub class: &'static str,
    pub text: String,
}

/// A swatch in the legend and what it stands for.
pub struct Legend {
    pub x: i64,
    pub y: i64,
    pub class: &'static str,
    pub hatched: bool,
    pub label: String,
}

/// The chart's numbers as a table.
pub struct Table {
    pub caption: String,
    pub head: Vec<&'static str>,
    pub rows: Vec<Vec<String>>,
}

/// One chart alone, as the pages include it: for the tests, which parse
/// exactly what the pages print.
#[cfg(test)]
#[derive(Template)]
#[template(path = "chart.html")]
pub struct ChartFragment<'a> {
    pub chart: &'a Chart,
}

/// Room around the plot: left (labels of the y axis), top (legend and
/// numbers over the tallest bar), right, bottom (labels of the x axis).
struct Frame {
    left: i64,
    top: i64,
    plot_w: i64,
    plot_h: i64,
}

impl Frame {
    const RIGHT: i64 = 8;
    const BOTTOM: i64 = 22;

    fn width(&self) -> i64 {
        self.left + self.plot_w + Frame::RIGHT
    }

    fn height(&self) -> i64 {
        self.top + self.plot_h + Frame::BOTTOM
    }

    /// The y of the baseline.
    fn base(&self) -> i64 {
        self.top + self.plot_h
    }

    fn axis(&self) -> (i64, i64, i64) {
        (self.left, self.left + self.plot_w, self.base())
    }

    /// The height of `value` on a plot whose top is `max`: at least 1 for
    /// any positive value, so that nothing counted is invisible.
    fn height_of(&self, value: i64, max: i64) -> i64 {
        if value <= 0 || max <= 0 {
            return 0;
        }
        let h =
            (i128::from(value) * i128::from(self.plot_h) + i128::from(max) / 2) / i128::from(max);
        i64::try_from(h)
            .unwrap_or(self.plot_h)
            .clamp(1, self.plot_h)
    }

    /// A label under the baseline.
    fn x_label(&self, x: i64, anchor: &'static str, text: String) -> Label {
        Label {
            x,
            y: self.base() + 15,
            anchor,
            class: "tick",
            text,
        }
    }

    /// The y axis's top (`max`) and 0, left of the plot.
    fn y_labels(&self, max: String) -> [Label; 2] {
        [
            Label {
                x: self.left - 4,
                y: self.top + 4,
                anchor: "end",
                class: "tick",
                text: max,
            },
            Label {
                x: self.left - 4,
                y: self.base(),
                anchor: "end",
                class: "tick",
                text: "0".into(),
            },
        ]
    }
}

/// `22:00` (UTC).
fn hh_mm(unix: i64) -> String {
    strftime(unix, "%H:%M")
}

/// `2023-11-14 22:00` (UTC).
fn date_hh_mm(unix: i64) -> String {
    strftime(unix, "%Y-%m-%d %H:%M")
}

fn strftime(unix: i64, format: &str) -> String {
    jiff::Timestamp::from_second(unix)
        .map(|t| t.strftime(format).to_string())
        .unwrap_or_else(|_| format!("@{unix}"))
}

fn plural(n: i64, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

/// Freshness of the lorries counted in `f` (those under `scope`, a path
/// prefix, or all when empty): five bars, each with its count above and
/// its category below.
pub fn freshness(f: &Freshness, scope: &str) -> Chart {
    let bars = [
        ("within 1×", "within 1 interval", "fresh-1", f.within_1x),
        ("within 2×", "within 2 intervals", "fresh-2", f.within_2x),
        ("within 4×", "within 4 intervals", "fresh-4", f.within_4x),
        (
            "over 4×",
            "more than 4 intervals ago",
            "fresh-old",
            f.beyond_4x,
        ),
        ("never", "never", "fresh-never", f.never),
    ];
    let (slot, bar) = (72, 52);
    let frame = Frame {
        left: 8,
        top: 18,
        plot_w: slot * bars.len() as i64,
        plot_h: 100,
    };
    let max = bars.iter().map(|b| b.3).max().unwrap_or(0).max(1);
    let total: i64 = bars.iter().map(|b| b.3).sum();
    let mut marks = Vec::new();
    let mut texts = Vec::new();
    for (i, (short, long, class, n)) in bars.iter().enumerate() {
        let x = frame.left + i as i64 * slot + (slot - bar) / 2;
        let h = frame.height_of(*n, max);
        let mid = x + bar / 2;
        texts.push(Label {
            x: mid,
            y: frame.base() - h - 4,
            anchor: "middle",
            class: "value",
            text: n.to_string(),
        });
        texts.push(frame.x_label(mid, "middle", (*short).to_owned()));
        if h > 0 {
            marks.push(Mark {
                point: false,
                x,
                y: frame.base() - h,
                w: bar,
                h,
                class,
                hatched: false,
                value: *n,
                title: format!("last success {long}: {}", plural(*n, "lorry", "lorries")),
            });
        }
    }
    let whose = if scope.is_empty() {
        String::new()
    } else {
        format!(" under {scope}")
    };
    Chart {
        id: "chart-freshness".into(),
        title: format!(
            "Freshness{whose}: when each lorry was last mirrored successfully, in its own intervals"
        ),
        desc: format!(
            "Of {}{whose}, {} within 1 interval, {} within 2, {} within 4, \
             {} longer ago, {} never.",
            plural(total, "lorry", "lorries"),
            f.within_1x,
            f.within_2x,
            f.within_4x,
            f.beyond_4x,
            f.never
        ),
        width: frame.width(),
        height: frame.height(),
        axis: frame.axis(),
        marks,
        line: String::new(),
        texts,
        legend: Vec::new(),
        table: Table {
            caption: format!("Lorries{whose} by their last successful mirror"),
            head: vec!["Last success", "Lorries"],
            rows: bars
                .iter()
                .map(|(_, long, _, n)| vec![(*long).to_owned(), n.to_string()])
                .collect(),
        },
    }
}

/// The legend of charts with succeeded and failed jobs, at the top left.
fn ok_failed_legend(left: i64) -> Vec<Legend> {
    vec![
        Legend {
            x: left,
            y: 4,
            class: "ok",
            hatched: false,
            label: "succeeded".into(),
        },
        Legend {
            x: left + 84,
            y: 4,
            class: "failed",
            hatched: true,
            label: "failed (hatched)".into(),
        },
    ]
}

/// Jobs ended per hour, oldest first: stacked bars, succeeded below and
/// failed (hatched) above.
pub fn jobs_per_hour(hours: &[JobCounts]) -> Chart {
    let (slot, bar) = (18, 14);
    let frame = Frame {
        left: 36,
        top: 24,
        plot_w: slot * hours.len().max(1) as i64,
        plot_h: 110,
    };
    let max = hours
        .iter()
        .map(|h| h.succeeded + h.failed)
        .max()
        .unwrap_or(0)
        .max(1);
    let mut marks = Vec::new();
    let mut texts: Vec<Label> = frame.y_labels(max.to_string()).into();
    for (i, h) in hours.iter().enumerate() {
        let x = frame.left + i as i64 * slot + (slot - bar) / 2;
        let when = format!("{}–{} UTC", hh_mm(h.start), hh_mm(h.start + 3600));
        let ok_h = frame.height_of(h.succeeded, max);
        let all_h = frame.height_of(h.succeeded + h.failed, max);
        if h.succeeded > 0 {
            marks.push(Mark {
                point: false,
                x,
                y: frame.base() - ok_h,
                w: bar,
                h: ok_h,
                class: "ok",
                hatched: false,
                value: h.succeeded,
                title: format!("{when}: {} succeeded", h.succeeded),
            });
        }
        if h.failed > 0 {
            let failed_h = (all_h - ok_h).max(1);
            marks.push(Mark {
                point: false,
                x,
                y: frame.base() - ok_h - failed_h,
                w: bar,
                h: failed_h,
                class: "failed",
                hatched: true,
                value: h.failed,
                title: format!("{when}: {} failed", h.failed),
            });
        }
        if i % 6 == 0 {
            texts.push(frame.x_label(x, "start", hh_mm(h.start)));
        }
    }
    let succeeded: i64 = hours.iter().map(|h| h.succeeded).sum();
    let failed: i64 = hours.iter().map(|h| h.failed).sum();
    let span = plural(hours.len() as i64, "hour", "hours");
    Chart {
        id: "chart-jobs".into(),
        title: format!("Jobs ended per hour over the last {span} (UTC)"),
        desc: format!(
            "Over the last {span}, {} succeeded and {} failed; the busiest hour had {}.",
            plural(succeeded, "job", "jobs"),
            failed,
            if succeeded + failed == 0 {
                "none".to_owned()
            } else {
                plural(max, "job", "jobs")
            }
        ),
        width: frame.width(),
        height: frame.height(),
        axis: frame.axis(),
        marks,
        line: String::new(),
        texts,
        legend: ok_failed_legend(frame.left),
        table: Table {
            caption: format!("Jobs ended per hour, last {span}"),
            head: vec!["Hour (UTC)", "Succeeded", "Failed"],
            rows: hours
                .iter()
                .map(|h| {
                    vec![
                        date_hh_mm(h.start),
                        h.succeeded.to_string(),
                        h.failed.to_string(),
                    ]
                })
                .collect(),
        },
    }
}

/// Failed jobs of Upstream Host `host` per day, oldest first: a small chart
/// with `id`, one hatched bar per day with failures.
pub fn host_failures(id: String, host: &str, days: &[JobCounts]) -> Chart {
    let (slot, bar) = (16, 12);
    let frame = Frame {
        left: 28,
        top: 10,
        plot_w: slot * days.len().max(1) as i64,
        plot_h: 40,
    };
    let max = days.iter().map(|d| d.failed).max().unwrap_or(0).max(1);
    let mut marks = Vec::new();
    let mut texts: Vec<Label> = frame.y_labels(max.to_string()).into();
    let day_text = |d: &JobCounts| {
        format!(
            "{} to {} UTC",
            date_hh_mm(d.start),
            date_hh_mm(d.start + 86_400)
        )
    };
    for (i, d) in days.iter().enumerate() {
        let x = frame.left + i as i64 * slot + (slot - bar) / 2;
        let h = frame.height_of(d.failed, max);
        if h > 0 {
            marks.push(Mark {
                point: false,
                x,
                y: frame.base() - h,
                w: bar,
                h,
                class: "failed",
                hatched: true,
                value: d.failed,
                title: format!(
                    "{}: {} of {} failed",
                    day_text(d),
                    d.failed,
                    plural(d.failed + d.succeeded, "job", "jobs")
                ),
            });
        }
    }
    if let (Some(first), Some(last)) = (days.first(), days.last()) {
        texts.push(frame.x_label(frame.left, "start", strftime(first.start, "%m-%d")));
        texts.push(frame.x_label(
            frame.left + frame.plot_w,
            "end",
            strftime(last.start + 86_400, "%m-%d"),
        ));
    }
    let failed: i64 = days.iter().map(|d| d.failed).sum();
    let all: i64 = days.iter().map(|d| d.failed + d.succeeded).sum();
    let span = plural(days.len() as i64, "day", "days");
    Chart {
        title: format!("{host}: failed jobs per day, last {span}"),
        desc: format!(
            "{failed} of {} from {host} failed in the last {span}.",
            plural(all, "job", "jobs")
        ),
        width: frame.width(),
        height: frame.height(),
        axis: frame.axis(),
        marks,
        line: String::new(),
        texts,
        legend: Vec::new(),
        table: Table {
            caption: format!("Jobs from {host} per day, last {span}"),
            head: vec!["24 hours from (UTC)", "Failed", "Jobs"],
            rows: days
                .iter()
                .map(|d| {
                    vec![
                        date_hh_mm(d.start),
                        d.failed.to_string(),
                        (d.failed + d.succeeded).to_string(),
                    ]
                })
                .collect(),
        },
        id,
    }
}

/// The ended jobs among `jobs` (newest first, as the lorry page reads
/// them), oldest first.
fn ended_oldest_first(jobs: &[JobSummary]) -> Vec<(&JobSummary, i64)> {
    jobs.iter()
        .rev()
        .filter_map(|j| j.ended.map(|ended| (j, ended)))
        .collect()
}

/// How long each of the ended `jobs` of lorry `path` took: a bar per job,
/// oldest first, failed ones hatched with their exit code above. `None`
/// when none has ended.
pub fn job_durations(path: &str, jobs: &[JobSummary]) -> Option<Chart> {
    let ended = ended_oldest_first(jobs);
    if ended.is_empty() {
        return None;
    }
    let (slot, bar) = (18, 12);
    let frame = Frame {
        left: 64,
        top: 30,
        plot_w: slot * (ended.len() as i64).max(12),
        plot_h: 100,
    };
    let took = |j: &JobSummary, ended: i64| (ended - j.started).max(0);
    let max = ended.iter().map(|(j, e)| took(j, *e)).max().unwrap_or(0);
    let mut marks = Vec::new();
    let mut texts: Vec<Label> = frame.y_labels(timefmt::span(max)).into();
    let mut failures = 0;
    for (i, (j, e)) in ended.iter().enumerate() {
        let seconds = took(j, *e);
        let exit = j.exit.clone().unwrap_or_default();
        let failed = exit != "0";
        failures += i64::from(failed);
        let x = frame.left + i as i64 * slot + (slot - bar) / 2;
        // A job of 0 s still shows: a sliver.
        let h = frame.height_of(seconds, max).max(1);
        marks.push(Mark {
            point: false,
            x,
            y: frame.base() - h,
            w: bar,
            h,
            class: if failed { "failed" } else { "ok" },
            hatched: failed,
            value: seconds,
            title: format!(
                "job #{}, started {}: took {}, exit {exit}",
                j.job_id,
                timefmt::utc(j.started),
                timefmt::span(seconds)
            ),
        });
        if failed {
            texts.push(Label {
                x: x + bar / 2,
                y: frame.base() - h - 3,
                anchor: "middle",
                class: "exit",
                text: exit,
            });
        }
    }
    // The first and the last job's ids, under their bars.
    let under = |i: usize| frame.left + i as i64 * slot + slot / 2;
    if let Some((first, _)) = ended.first() {
        texts.push(frame.x_label(under(0), "middle", format!("#{}", first.job_id)));
    }
    if let (true, Some((last, _))) = (ended.len() > 1, ended.last()) {
        texts.push(frame.x_label(
            under(ended.len() - 1),
            "middle",
            format!("#{}", last.job_id),
        ));
    }
    let n = ended.len() as i64;
    Some(Chart {
        id: "chart-durations".into(),
        title: format!(
            "How long the last {} of {path} took (failed ones hatched, with their exit code)",
            plural(n, "job", "jobs")
        ),
        desc: format!(
            "{}, oldest first: {failures} failed; the longest took {}.",
            plural(n, "job", "jobs"),
            timefmt::span(max)
        ),
        width: frame.width(),
        height: frame.height(),
        axis: frame.axis(),
        marks,
        line: String::new(),
        texts,
        legend: ok_failed_legend(frame.left),
        table: Table {
            caption: format!("Recent jobs of {path}"),
            head: vec!["Job", "Started (UTC)", "Took", "Seconds", "Exit"],
            rows: ended
                .iter()
                .map(|(j, e)| {
                    vec![
                        format!("#{}", j.job_id),
                        timefmt::utc(j.started),
                        timefmt::span(took(j, *e)),
                        took(j, *e).to_string(),
                        j.exit.clone().unwrap_or_default(),
                    ]
                })
                .collect(),
        },
    })
}

/// The disk usage the ended `jobs` of lorry `path` reported: a point per
/// job placed by when it ended, joined by a line. `None` when no job
/// reported one.
pub fn disk_usage(path: &str, jobs: &[JobSummary]) -> Option<Chart> {
    let measured: Vec<(&JobSummary, i64, i64)> = ended_oldest_first(jobs)
        .into_iter()
        .filter_map(|(j, ended)| j.disk_usage.map(|bytes| (j, ended, bytes.max(0))))
        .collect();
    let (first, last) = (measured.first()?, measured.last()?);
    let frame = Frame {
        left: 64,
        top: 12,
        plot_w: 420,
        plot_h: 100,
    };
    let max = measured.iter().map(|m| m.2).max().unwrap_or(0);
    let (t0, t1) = (first.1, last.1);
    let x_of = |t: i64| {
        if t1 <= t0 {
            frame.left + frame.plot_w / 2
        } else {
            let dx = i128::from(t - t0) * i128::from(frame.plot_w) / i128::from(t1 - t0);
            frame.left + i64::try_from(dx).unwrap_or(0)
        }
    };
    let marks: Vec<Mark> = measured
        .iter()
        .map(|(j, ended, bytes)| Mark {
            point: true,
            x: x_of(*ended),
            y: frame.base() - frame.height_of(*bytes, max),
            w: 3,
            h: 0,
            class: "point",
            hatched: false,
            value: *bytes,
            title: format!(
                "job #{}, ended {}: {} ({bytes} bytes)",
                j.job_id,
                timefmt::utc(*ended),
                timefmt::bytes(Some(*bytes))
            ),
        })
        .collect();
    let line = marks
        .iter()
        .map(|m| format!("{},{}", m.x, m.y))
        .collect::<Vec<_>>()
        .join(" ");
    let mut texts: Vec<Label> = frame.y_labels(timefmt::bytes(Some(max))).into();
    texts.push(frame.x_label(frame.left, "start", date_hh_mm(t0)));
    if t1 > t0 {
        texts.push(frame.x_label(frame.left + frame.plot_w, "end", date_hh_mm(t1)));
    }
    Some(Chart {
        id: "chart-disk".into(),
        title: format!("Disk usage of {path} after each of its recent jobs"),
        desc: format!(
            "{} from {} to {} UTC: {} after the last, at most {}.",
            plural(measured.len() as i64, "measurement", "measurements"),
            date_hh_mm(t0),
            date_hh_mm(t1),
            timefmt::bytes(Some(last.2)),
            timefmt::bytes(Some(max))
        ),
        width: frame.width(),
        height: frame.height(),
        axis: frame.axis(),
        marks,
        line,
        texts,
        legend: Vec::new(),
        table: Table {
            caption: format!("Disk usage of {path} after each job"),
            head: vec!["Job", "Ended (UTC)", "Disk usage", "Bytes"],
            rows: measured
                .iter()
                .map(|(j, ended, bytes)| {
                    vec![
                        format!("#{}", j.job_id),
                        timefmt::utc(*ended),
                        timefmt::bytes(Some(*bytes)),
                        bytes.to_string(),
                    ]
                })
                .collect(),
        },
    })
}

#[cfg(test)]
mod tests;
