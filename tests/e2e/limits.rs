//! Bounded resources (issue 12): a job writing far more output than
//! `--job-output-max` is stored capped, head and tail kept, and neither
//! job-update answers nor `/1.0/status` grow with it.

use crate::common;

use common::{Webapp, git_lorry};

const KIB: usize = 1024;

#[test]
fn runaway_output_is_stored_capped_with_head_tail_and_a_marker() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = Webapp::init(dir.path())
        .with_args(&["--job-output-max=64KiB", "--publish-failures"])
        .start();
    let mut lorries: Vec<_> = (0..50)
        .map(|i| git_lorry(&format!("quiet/{i:02}"), 3600, 600))
        .collect();
    lorries.push(git_lorry("aaa/runaway", 3600, 600));
    app.seed(&lorries);
    let job = app.post_ok("/1.0/give-me-job", &[("host", "m"), ("pid", "1")]);
    assert_eq!(job["path"], "aaa/runaway");
    let job_id = job["job_id"].to_string();

    // 4 MiB in 8 KiB updates (stdout and stderr), non-ASCII included, as a
    // minion sends them; the first and last lines are recognisable.
    let mut written = 0;
    let mut send = |stdout: &str, stderr: &str, exit: &str| {
        written += stdout.len() + stderr.len();
        let answer = app.post(
            "/1.0/job-update",
            &[
                ("job_id", &job_id),
                ("exit", exit),
                ("stdout", stdout),
                ("stderr", stderr),
            ],
        );
        assert_eq!(answer.status, 200, "{}", answer.text);
        assert!(
            answer.text.len() < 2 * KIB,
            "a job-update answer of {} bytes",
            answer.text.len()
        );
    };
    send("FIRST LINE\n", "", "no");
    let line = format!("{}ä€\n", "x".repeat(120));
    let chunk = line.repeat(8 * KIB / line.len());
    for _ in 0..256 {
        send(&chunk, &chunk, "no");
    }
    send("", "LAST LINE\n", "1");

    let output = app.get_ok(&format!("/1.0/job/{job_id}"))["output"]
        .as_str()
        .expect("output")
        .to_owned();
    assert!(output.starts_with("FIRST LINE\n"), "head kept");
    assert!(output.ends_with("LAST LINE\n"), "tail kept");
    let marker = output
        .lines()
        .find(|l| l.starts_with("[lorry-controller: "))
        .expect("a marker line");
    let dropped: usize = marker["[lorry-controller: ".len()..]
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .expect("dropped bytes in the marker");
    let kept = output.len() - marker.len() - 2;
    // The cap, less what cuts between characters cost (at most 3 bytes at each end).
    assert!(
        (64 * KIB - 6..=64 * KIB).contains(&kept),
        "{kept} bytes kept: {marker}"
    );
    assert_eq!(dropped, written - kept, "{marker}");

    // The status shows the end of the failure, capped.
    let status = app.get("/1.0/status");
    assert_eq!(status.status, 200);
    let entry = status.body["run_queue"]
        .as_array()
        .expect("queue")
        .iter()
        .find(|e| e["path"] == "aaa/runaway")
        .expect("entry")
        .clone();
    let error = entry["last_run_error"].as_str().expect("last_run_error");
    assert!(error.len() <= 64 * KIB && error.ends_with("LAST LINE\n"));
    assert!(
        status.text.len() < 64 * KIB + 51 * 2 * KIB,
        "status of {} bytes",
        status.text.len()
    );
}
