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
use lc_core::db::StateDb;
use lc_hosts::Downstream;
use lc_hosts::downstream::Local;
use lc_web::{AppState, WebConfig};
use tower::ServiceExt;

#[allow(
    clippy::disallowed_methods,
    reason = "the shared module also starts binaries; this bench only seeds with it"
)]
mod common;

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
        common::seed_status_fleet(&db, n, NOW - 600);
        db.set_pretend_time(NOW);
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
