//! The charts as the pages print them, parsed as XML: marks, their
//! numbers, the text table, and escaping.

use askama::Template;
use roxmltree::{Document, Node};

use super::*;

/// 2023-11-14 22:00 UTC.
const H0: i64 = 1_699_999_200;

fn render(chart: &Chart) -> String {
    ChartFragment { chart }.render().expect("render")
}

fn class_has(node: &Node<'_, '_>, class: &str) -> bool {
    node.attribute("class")
        .is_some_and(|c| c.split_whitespace().any(|w| w == class))
}

/// Elements named `name` with class `class`, in document order.
fn all<'a, 'i>(doc: &'a Document<'i>, name: &str, class: &str) -> Vec<Node<'a, 'i>> {
    doc.descendants()
        .filter(|n| n.is_element() && n.tag_name().name() == name && class_has(n, class))
        .collect()
}

fn text_of(node: &Node<'_, '_>) -> String {
    node.descendants()
        .filter(|n| n.is_text())
        .filter_map(|n| n.text())
        .collect()
}

fn title_of(node: &Node<'_, '_>) -> String {
    node.children()
        .find(|c| c.tag_name().name() == "title")
        .map(|t| text_of(&t))
        .unwrap_or_default()
}

fn num(node: &Node<'_, '_>, attr: &str) -> i64 {
    node.attribute(attr)
        .unwrap_or_else(|| panic!("no {attr}"))
        .parse()
        .expect("a number")
}

/// The data-values of the bars, in order.
fn bar_values(doc: &Document<'_>) -> Vec<i64> {
    all(doc, "rect", "bar")
        .iter()
        .map(|b| num(b, "data-value"))
        .collect()
}

/// The cells of the text table, row by row.
fn table(doc: &Document<'_>) -> Vec<Vec<String>> {
    doc.descendants()
        .filter(|n| n.tag_name().name() == "tr")
        .filter(|tr| tr.children().any(|c| c.tag_name().name() == "td"))
        .map(|tr| {
            tr.children()
                .filter(|c| c.tag_name().name() == "td")
                .map(|td| text_of(&td))
                .collect()
        })
        .collect()
}

/// The chart is an image to assistive technology, named by its title and
/// described by its desc.
fn assert_accessible(doc: &Document<'_>, id: &str) {
    let svg = doc
        .descendants()
        .find(|n| n.tag_name().name() == "svg")
        .expect("an svg");
    assert_eq!(svg.attribute("role"), Some("img"));
    assert_eq!(
        svg.attribute("aria-labelledby"),
        Some(format!("{id}-title {id}-desc").as_str())
    );
    for (suffix, name) in [("-title", "title"), ("-desc", "desc")] {
        let node = doc
            .descendants()
            .find(|n| n.attribute("id") == Some(&format!("{id}{suffix}")))
            .unwrap_or_else(|| panic!("no #{id}{suffix}"));
        assert_eq!(node.tag_name().name(), name);
        assert!(!text_of(&node).is_empty());
    }
    let hatched = format!("url(#{id}-hatch)");
    for bar in all(doc, "rect", "bar") {
        if let Some(fill) = bar.attribute("fill") {
            assert_eq!(fill, hatched);
        }
        assert!(!title_of(&bar).is_empty(), "a bar without a title");
    }
}

fn hour(i: i64, succeeded: i64, failed: i64) -> JobCounts {
    JobCounts {
        start: H0 + i * 3600,
        succeeded,
        failed,
    }
}

#[test]
fn jobs_per_hour_stacks_failures_hatched_on_successes() {
    let mut hours: Vec<JobCounts> = (0..24).map(|i| hour(i, 0, 0)).collect();
    hours[0] = hour(0, 4, 0);
    hours[5] = hour(5, 2, 2);
    hours[23] = hour(23, 0, 1);
    let html = render(&jobs_per_hour(&hours));
    let doc = Document::parse(&html).expect("well-formed");
    assert_accessible(&doc, "chart-jobs");
    assert_eq!(bar_values(&doc), [4, 2, 2, 1]);
    let bars = all(&doc, "rect", "bar");
    let titles: Vec<String> = bars.iter().map(title_of).collect();
    assert_eq!(
        titles,
        [
            "22:00–23:00 UTC: 4 succeeded",
            "03:00–04:00 UTC: 2 succeeded",
            "03:00–04:00 UTC: 2 failed",
            "21:00–22:00 UTC: 1 failed",
        ]
    );
    // Failures are hatched; successes are not.
    let hatched: Vec<bool> = bars.iter().map(|b| b.has_attribute("fill")).collect();
    assert_eq!(hatched, [false, false, true, true]);
    // The tallest stack (4 jobs) fills the plot; 2 + 2 stack to the same
    // height, the failed part on top.
    let (h, y) = (
        |b: &Node<'_, '_>| num(b, "height"),
        |b: &Node<'_, '_>| num(b, "y"),
    );
    assert_eq!(h(&bars[0]), 110);
    assert_eq!(h(&bars[1]) + h(&bars[2]), 110);
    assert_eq!(y(&bars[2]) + h(&bars[2]), y(&bars[1]));
    assert_eq!(y(&bars[0]) + h(&bars[0]), y(&bars[1]) + h(&bars[1]));
    // The same numbers as text: a row for every hour.
    let rows = table(&doc);
    assert_eq!(rows.len(), 24);
    assert_eq!(rows[0], ["2023-11-14 22:00", "4", "0"]);
    assert_eq!(rows[5], ["2023-11-15 03:00", "2", "2"]);
    assert_eq!(rows[23], ["2023-11-15 21:00", "0", "1"]);
    let desc = doc
        .descendants()
        .find(|n| n.tag_name().name() == "desc")
        .map(|d| text_of(&d))
        .expect("desc");
    assert_eq!(
        desc,
        "Over the last 24 hours, 6 jobs succeeded and 3 failed; the busiest hour had 4 jobs."
    );
    // The legend says which is which, in words.
    let legend: Vec<String> = all(&doc, "text", "legend").iter().map(text_of).collect();
    assert_eq!(legend, ["succeeded", "failed (hatched)"]);
}

#[test]
fn freshness_has_a_labelled_bar_per_category_with_lorries() {
    let f = Freshness {
        within_1x: 70,
        within_2x: 20,
        within_4x: 0,
        beyond_4x: 7,
        never: 3,
    };
    let html = render(&freshness(&f, ""));
    let doc = Document::parse(&html).expect("well-formed");
    assert_accessible(&doc, "chart-freshness");
    assert_eq!(bar_values(&doc), [70, 20, 7, 3]);
    let classes: Vec<&str> = all(&doc, "rect", "bar")
        .iter()
        .filter_map(|b| b.attribute("class"))
        .collect();
    assert_eq!(
        classes,
        [
            "mark bar fresh-1",
            "mark bar fresh-2",
            "mark bar fresh-old",
            "mark bar fresh-never"
        ]
    );
    // Every category is named and counted in text, the empty one too.
    let values: Vec<String> = all(&doc, "text", "value").iter().map(text_of).collect();
    assert_eq!(values, ["70", "20", "0", "7", "3"]);
    let ticks: Vec<String> = all(&doc, "text", "tick").iter().map(text_of).collect();
    assert_eq!(
        ticks,
        ["within 1×", "within 2×", "within 4×", "over 4×", "never"]
    );
    assert_eq!(
        table(&doc),
        [
            ["within 1 interval", "70"],
            ["within 2 intervals", "20"],
            ["within 4 intervals", "0"],
            ["more than 4 intervals ago", "7"],
            ["never", "3"],
        ]
    );
    let bars = all(&doc, "rect", "bar");
    assert_eq!(num(&bars[0], "height"), 100);
    assert_eq!(num(&bars[1], "height"), 29);
    let scoped = render(&freshness(&f, "upstream/"));
    assert!(scoped.contains("Freshness under upstream/:"), "{scoped}");
}

fn job(job_id: i64, started: i64, took: i64, exit: &str, disk: Option<i64>) -> JobSummary {
    JobSummary {
        job_id,
        path: "up/a".into(),
        host: "m".into(),
        pid: 1,
        started,
        ended: Some(started + took),
        exit: Some(exit.into()),
        kill: false,
        disk_usage: disk,
    }
}

/// Jobs as the lorry page reads them: newest first, the newest running.
fn history() -> Vec<JobSummary> {
    let mut jobs = vec![
        job(1, H0, 60, "0", Some(1_000)),
        job(2, H0 + 3600, 120, "0", Some(3_000)),
        job(3, H0 + 7200, 30, "128", None),
        job(4, H0 + 10_800, 0, "0", Some(2_000)),
        job(5, H0 + 14_400, 90, "1", Some(4_000)),
    ];
    jobs.push(JobSummary {
        ended: None,
        exit: None,
        ..job(6, H0 + 18_000, 0, "", Some(9_999))
    });
    jobs.reverse();
    jobs
}

#[test]
fn durations_show_each_ended_job_oldest_first_with_failed_exit_codes() {
    let chart = job_durations("up/a", &history()).expect("a chart");
    let html = render(&chart);
    let doc = Document::parse(&html).expect("well-formed");
    assert_accessible(&doc, "chart-durations");
    assert_eq!(bar_values(&doc), [60, 120, 30, 0, 90]);
    let bars = all(&doc, "rect", "bar");
    let hatched: Vec<bool> = bars.iter().map(|b| b.has_attribute("fill")).collect();
    assert_eq!(hatched, [false, false, true, false, true]);
    assert_eq!(
        title_of(&bars[2]),
        "job #3, started 2023-11-15 00:00:00 UTC: took 30 s, exit 128"
    );
    // The longest fills the plot; a job of 0 s is still a sliver.
    let heights: Vec<i64> = bars.iter().map(|b| num(b, "height")).collect();
    assert_eq!(heights, [50, 100, 25, 1, 75]);
    // The exit codes of failed jobs are written over their bars.
    let exits: Vec<String> = all(&doc, "text", "exit").iter().map(text_of).collect();
    assert_eq!(exits, ["128", "1"]);
    let rows = table(&doc);
    assert_eq!(rows.len(), 5);
    assert_eq!(
        rows[2],
        ["#3", "2023-11-15 00:00:00 UTC", "30 s", "30", "128"]
    );
    // Only running jobs: no chart.
    assert!(job_durations("up/a", &history()[..1]).is_none());
}

#[test]
fn disk_usage_is_a_point_per_measured_job_placed_by_time() {
    let chart = disk_usage("up/a", &history()).expect("a chart");
    let html = render(&chart);
    let doc = Document::parse(&html).expect("well-formed");
    assert_accessible(&doc, "chart-disk");
    let points = all(&doc, "circle", "point");
    let values: Vec<i64> = points.iter().map(|p| num(p, "data-value")).collect();
    assert_eq!(values, [1_000, 3_000, 2_000, 4_000]);
    // Ended 1 min, 1 h 2 min, 3 h and 4 h 1.5 min after H0: 0, 3660,
    // 10740 and 14430 s after the first end, on 420 px from x = 64.
    let xs: Vec<i64> = points.iter().map(|p| num(p, "cx")).collect();
    assert_eq!(
        xs,
        [
            64,
            64 + 3660 * 420 / 14430,
            64 + 10740 * 420 / 14430,
            64 + 420
        ]
    );
    let ys: Vec<i64> = points.iter().map(|p| num(p, "cy")).collect();
    assert_eq!(ys, [112 - 25, 112 - 75, 112 - 50, 12]);
    let line = doc
        .descendants()
        .find(|n| n.tag_name().name() == "polyline")
        .and_then(|p| p.attribute("points"))
        .expect("a line");
    assert_eq!(line, "64,87 170,37 376,62 484,12");
    assert_eq!(
        title_of(&points[3]),
        "job #5, ended 2023-11-15 02:01:30 UTC: 3.9 KiB (4000 bytes)"
    );
    assert_eq!(
        table(&doc)[1],
        ["#2", "2023-11-14 23:02:00 UTC", "2.9 KiB", "3000"]
    );
    assert!(disk_usage("up/a", &[job(1, H0, 1, "0", None)]).is_none());
}

#[test]
fn host_failures_have_a_hatched_bar_per_day_with_failures() {
    let days: Vec<JobCounts> = (0..7)
        .map(|i| JobCounts {
            start: H0 + i * 86_400,
            succeeded: 10,
            failed: [0, 3, 0, 0, 1, 0, 6][i as usize],
        })
        .collect();
    let html = render(&host_failures(
        "chart-host-1".into(),
        "git.example.org",
        &days,
    ));
    let doc = Document::parse(&html).expect("well-formed");
    assert_accessible(&doc, "chart-host-1");
    assert_eq!(bar_values(&doc), [3, 1, 6]);
    assert!(
        all(&doc, "rect", "bar")
            .iter()
            .all(|b| b.has_attribute("fill"))
    );
    assert_eq!(
        title_of(&all(&doc, "rect", "bar")[0]),
        "2023-11-15 22:00 to 2023-11-16 22:00 UTC: 3 of 13 jobs failed"
    );
    let rows = table(&doc);
    assert_eq!(rows.len(), 7);
    assert_eq!(rows[6], ["2023-11-20 22:00", "6", "16"]);
    assert!(html.contains("10 of 80 jobs from git.example.org failed in the last 7 days."));
}

/// A lorry path is text in the SVG and the table, whatever it holds.
#[test]
fn a_hostile_path_is_escaped_everywhere_in_the_chart() {
    let path = r#"up/<b>x</b>&amp;"q'<script>alert(1)</script>]]>"#;
    let jobs: Vec<JobSummary> = history()
        .into_iter()
        .map(|j| JobSummary {
            path: path.into(),
            ..j
        })
        .collect();
    for chart in [
        job_durations(path, &jobs).expect("durations"),
        disk_usage(path, &jobs).expect("disk"),
        host_failures("chart-host-0".into(), path, &[hour(0, 1, 1)]),
    ] {
        let html = render(&chart);
        let doc = Document::parse(&html).unwrap_or_else(|e| panic!("{e}: {html}"));
        assert!(
            doc.descendants()
                .all(|n| !matches!(n.tag_name().name(), "b" | "script")),
            "markup from the path: {html}"
        );
        let caption = doc
            .descendants()
            .find(|n| n.tag_name().name() == "figcaption")
            .map(|c| text_of(&c))
            .expect("caption");
        assert!(caption.contains(path), "{caption}");
        let title = doc
            .descendants()
            .find(|n| n.tag_name().name() == "title")
            .map(|c| text_of(&c))
            .expect("title");
        assert_eq!(title, caption);
        let table_caption = doc
            .descendants()
            .find(|n| n.tag_name().name() == "caption")
            .map(|c| text_of(&c))
            .expect("table caption");
        assert!(table_caption.contains(path), "{table_caption}");
    }
}
