//! STATEDB upgrades: a STATEDB of each released schema version, with data
//! in every table (`tests/fixtures/statedb/`, made by its `make` from the
//! migrations of that version), opened by the current webapp: migrated at
//! start-up, its data intact and in use.

use crate::common::Webapp;

use std::collections::BTreeSet;

use serde_json::{Value, json};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/statedb");

/// Every released schema version with a fixture; add one per release.
const RELEASED: &[u32] = &[1, 2, 3];

#[test]
fn statedb_of_every_released_version_is_upgraded_with_its_data() {
    for &version in RELEASED {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::copy(
            format!("{FIXTURES}/statedb-v{version}.db"),
            dir.path().join("webapp.db"),
        )
        .unwrap_or_else(|e| panic!("fixture of version {version}: {e}"));
        let app = Webapp::init(dir.path()).start();
        let v = format!("version {version}");

        let queue: BTreeSet<String> = app.queue().into_iter().collect();
        let want: BTreeSet<String> = [
            "conf/fail",
            "conf/moved",
            "conf/running",
            "conf/ünï cöde",
            "mirror/up/one",
        ]
        .map(String::from)
        .into();
        assert_eq!(queue, want, "{v}");
        // The moved lorry is still moved to the top.
        assert_eq!(app.queue()[0], "conf/moved", "{v}");

        let status = app.get_ok("/1.0/status");
        assert_eq!(status["running_queue"], false, "{v}: {status}");
        assert_eq!(
            app.get_ok("/1.0/get-max-jobs"),
            json!({"max_jobs": 4}),
            "{v}"
        );
        let text = status.to_string();
        assert!(
            text.contains("not a mapping"),
            "{v}: config problem kept: {text}"
        );
        assert!(!text.contains("glpat-fixture-secret"), "{v}: {text}");
        let host = app.host_status("git.example.com");
        assert_eq!(host["ls_last_run"], 1_700_000_000, "{v}: {host}");

        let one = app.get_ok("/1.0/lorry/mirror/up/one");
        assert_eq!(one["from_host"], "git.example.com", "{v}: {one}");
        assert_eq!(one["from_path"], "up/one", "{v}");
        assert_eq!(one["disk_usage"], 12345, "{v}");
        assert_eq!(one["last_run_exit"], "0", "{v}");
        assert_eq!(one["jobs"], json!([1]), "{v}");
        let fail = app.get_ok("/1.0/lorry/conf/fail");
        assert_eq!(fail["last_run_exit"], "1", "{v}: {fail}");
        assert_eq!(fail["last_run_error"], "cannot reach upstream", "{v}");
        // Migration 2 added the failure streak: 0 before it, kept after.
        let streak = if version >= 2 { 2 } else { 0 };
        assert_eq!(fail["consecutive_failures"], streak, "{v}: {fail}");
        let unicode = app.get_ok("/1.0/lorry/conf/ünï cöde");
        assert_eq!(unicode["path"], "conf/ünï cöde", "{v}: {unicode}");

        assert_eq!(app.job(1)["output"], "mirrored\n", "{v}");
        assert_eq!(app.job(2)["exit"], "1", "{v}");
        let running = app.job(3);
        assert_eq!(running["exit"], "no", "{v}: {running}");
        assert_eq!(running["output"], "fetching\nstill fetching\n", "{v}");
        assert_eq!(
            app.get_ok("/1.0/list-running-jobs"),
            json!({"running_jobs": [3]}),
            "{v}"
        );

        // In use: the running job ends, and new jobs get new ids.
        app.finish(3, 0);
        let freed = app.get_ok("/1.0/lorry/conf/running");
        assert_eq!(freed["running_job"], Value::Null, "{v}: {freed}");
        assert_eq!(freed["last_run_exit"], "0", "{v}");
        app.post_ok("/1.0/start-queue", &[]);
        let (id, path) = app.give_me_job().expect("a job");
        assert_eq!((id, path.as_str()), (4, "conf/moved"), "{v}");
        app.stop();
    }
}
