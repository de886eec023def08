//! Benchmark: rendering the status page (`GET /1.0/status-html`, first
//! page, no filter) with 10,000 and 100,000 lorries in a real STATEDB.
//!
//! Requests go through the webapp's whole router in-process (no socket), so
//! the time is the page's: its two queries, the view model and the template.
//! Baseline, measured in the same run on the same STATEDB: the JSON
//! `GET /1.0/status`, which reads and serialises the whole queue (after a
//! write each time, so that it is built again rather than served from
//! memory; `status_http` measures it from outside, cache included).
//! Targets: ≤ 50 ms at 10,000 lorries and ≤ 300 ms at 100,000.
//!
//! `cargo bench --bench status_page`; `LC_BENCH_SIZES=10000` picks sizes,
//! `LC_BENCH_ROUNDS` the timed renders per size (default 15).

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use lc_core::db::{JobUpdate, NewLorry, StateDb};
use lc_hosts::Downstream;
use lc_hosts::downstream::Local;
use lc_web::{AppState, WebConfig};
use tower::ServiceExt;

const NOW: i64 = 1_700_000_000;

fn config(dir: &std::path::Path) -> WebConfig {
    let downstream = Downstream::Local(Local::new(dir.join("downstream")));
    WebConfig {
        debug_real_confgit: false,
        ghost_timeout: 3600,
        job_max_age: 86_400,
        publish_failures: true,
        ..WebConfig::new(dir.join("confgit"), downstream)
    }
}

/// `n` lorries under 50 prefixes; one in 100 has a failed last job, one in
/// 500 a running one, the rest are due or fresh.
fn seed(db: &StateDb, n: usize) {
    db.set_pretend_time(NOW - 600);
    db.write(|tx| {
        for i in 0..n {
            let path = format!("upstream/group-{:02}/project-{i:06}", i % 50);
            tx.upsert_lorry(&NewLorry {
                text: format!(
                    "{{\"{path}\": {{\"type\": \"git\", \"url\": \"https://example.com/{path}.git\"}}}}"
                ),
                path,
                from_host: String::new(),
                from_path: String::new(),
                interval: if i % 3 == 0 { 300 } else { 86_400 },
                lorry_timeout: 3600,
            })?;
        }
        Ok(())
    })
    .expect("seed lorries");
    let jobs = n / 100 + n / 500;
    db.write(|tx| {
        for j in 0..jobs {
            let Some((id, _)) = tx.start_next_job("bench", 1)? else {
                break;
            };
            if j < n / 100 {
                tx.update_job(
                    id,
                    &JobUpdate {
                        exit: Some(1),
                        stderr: "fatal: repository not found\n".repeat(20),
                        ..JobUpdate::default()
                    },
                )?;
            }
        }
        Ok(())
    })
    .expect("seed jobs");
    db.set_pretend_time(NOW);
}

async fn get(state: &AppState, uri: &str) -> (Duration, usize) {
    let start = Instant::now();
    let response = lc_web::router(state.clone())
        .oneshot(Request::get(uri).body(Body::empty()).expect("request"))
        .await
        .expect("response");
    assert!(
        response.status().is_success(),
        "GET {uri}: {}",
        response.status()
    );
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body");
    (start.elapsed(), body.len())
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() {
    let sizes: Vec<usize> = std::env::var("LC_BENCH_SIZES")
        .unwrap_or_else(|_| "10000,100000".into())
        .split(',')
        .map(|s| s.trim().parse().expect("LC_BENCH_SIZES: numbers"))
        .collect();
    let rounds: usize = std::env::var("LC_BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(15)
        .max(1);
    let mut table = Vec::new();
    for n in sizes {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = StateDb::open(&dir.path().join("state.db")).expect("open STATEDB");
        seed(&db, n);
        let state = AppState::new(db, config(dir.path()));
        let target = if n <= 10_000 { 50 } else { 300 };
        let mut html = Vec::new();
        let mut json = Vec::new();
        let mut sizes = (0, 0);
        for round in 0..rounds + 2 {
            let (t_html, html_len) = get(&state, "/1.0/status-html").await;
            state
                .db
                .write(|tx| tx.set_max_jobs(Some(1 + round as i64 % 2)))
                .expect("a change");
            let (t_json, json_len) = get(&state, "/1.0/status").await;
            sizes = (html_len, json_len);
            if round >= 2 {
                html.push(t_html);
                json.push(t_json);
            }
        }
        let (h, j) = (median(html), median(json));
        table.push((n, h, target, j, sizes));
    }
    println!();
    println!(
        "{:>9} | {:>13} | {:>7} | {:>4} | {:>16} | {:>10} | {:>13}",
        "lorries", "status-html", "target", "met", "JSON /1.0/status", "html/json", "page / JSON"
    );
    println!("{}", "-".repeat(92));
    for (n, h, target, j, (html_len, json_len)) in table {
        println!(
            "{n:>9} | {:>13} | {:>7} | {:>4} | {:>16} | {:>10} | {:>13}",
            ms(h),
            format!("≤ {target} ms"),
            if h <= Duration::from_millis(target) {
                "yes"
            } else {
                "NO"
            },
            ms(j),
            format!("{:.3}", h.as_secs_f64() / j.as_secs_f64()),
            format!("{} KiB / {} KiB", html_len / 1024, json_len / 1024),
        );
    }
    println!("(median of {rounds} renders after 2 warm-up rounds; first page of 100 rows)");
}
