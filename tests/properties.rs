//! Property tests of everything that parses what users and minions write
//! (issue 12 item 8): durations, `lorry-controller.conf`, `.lorry` files,
//! refspecs, redaction and form bodies. Each parser must answer every
//! input, never panic, and name the problem when it rejects one.
//!
//! CI runs proptest's default 256 cases per property; a deep run:
//! `PROPTEST_CASES=100000 cargo test --release --test properties`.

use lc_core::config::parse_duration;
use proptest::prelude::*;
use serde_json::Value;

/// Any JSON value, a few levels deep, with keys and strings that look like
/// what conf and `.lorry` files hold.
fn json_value() -> impl Strategy<Value = Value> {
    let word = prop_oneof![
        Just("type".to_owned()),
        Just("url".to_owned()),
        Just("prefix".to_owned()),
        Just("interval".to_owned()),
        Just("globs".to_owned()),
        Just("refspecs".to_owned()),
        Just("lorries".to_owned()),
        Just("git".to_owned()),
        Just("trove".to_owned()),
        Just("gitlab".to_owned()),
        Just("protocol".to_owned()),
        Just("lorry-timeout".to_owned()),
        "[a-z/_.*-]{0,12}",
        ".{0,8}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        word.clone().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(word.clone(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn durations_never_panic_and_name_what_they_reject(text in ".{0,24}") {
        if let Err(why) = parse_duration(&text) {
            prop_assert!(why.contains(&format!("{text:?}")), "{why}");
        }
    }

    #[test]
    fn durations_with_units_are_exact(n in 0i64..1_000_000_000, unit in 0usize..8, blanks in " {0,2}") {
        let (suffix, factor) = [("", 1), ("s", 1), ("S", 1), ("m", 60), ("M", 60), ("h", 3600), ("H", 3600), ("d", 86400)][unit];
        let text = format!("{n}{blanks}{suffix}");
        prop_assert_eq!(parse_duration(&text), Ok(n * factor));
        prop_assert_eq!(parse_duration(&format!("PT{n}S")), Ok(n));
    }

    #[test]
    fn conf_text_never_panics_and_errors_name_the_file(text in ".{0,200}") {
        if let Err(err) = lc_core::config::parse_conf("lorry-controller.conf", &text) {
            prop_assert!(err.to_string().contains("lorry-controller.conf"), "{err}");
        }
    }

    #[test]
    fn conf_values_never_panic(value in json_value()) {
        let text = value.to_string();
        if let Err(err) = lc_core::config::parse_conf("c.conf", &text) {
            prop_assert!(err.to_string().contains("c.conf"), "{err}");
        }
        // A list of sections, as real files are.
        let list = Value::Array(vec![value]).to_string();
        let _ = lc_core::config::parse_conf("c.conf", &list);
    }

    #[test]
    fn lorry_files_never_panic(text in ".{0,200}") {
        let _ = lc_base::spec::parse_lorry_file(&text);
    }

    #[test]
    fn lorry_specs_round_trip_through_the_minion_text(
        name in "[a-z][a-z0-9_./-]{0,30}",
        value in json_value(),
    ) {
        let file = serde_json::json!({ name.clone(): value }).to_string();
        let entries = lc_base::spec::parse_lorry_file(&file);
        prop_assert!(entries.is_ok(), "a map is a .lorry file: {entries:?}");
        for (path, spec) in entries.unwrap_or_default() {
            match spec {
                Ok(spec) => {
                    let text = lc_base::spec::minion_text(&path, &spec);
                    let back = lc_base::spec::parse_minion_text(&text);
                    prop_assert_eq!(back, Ok((path, spec)));
                }
                Err(problem) => prop_assert!(!problem.to_string().is_empty()),
            }
        }
    }

    #[test]
    fn refspecs_never_panic_and_name_what_they_reject(text in ".{0,40}") {
        match lc_lorry::refspec::Refspec::parse(&text) {
            Ok(spec) => {
                // A valid refspec maps what it covers into refs/, never lorry's own.
                let mapped = spec.map("refs/heads/main");
                prop_assert!(mapped.is_none_or(|m| m.starts_with("refs/") && !m.starts_with("refs/lorry/")));
            }
            Err(err) => prop_assert!(err.to_string().contains(&format!("{text:?}")), "{err}"),
        }
    }

    #[test]
    fn redaction_never_panics(text in ".{0,120}") {
        let _ = lc_base::redact::redact(&text);
    }

    #[test]
    fn redaction_hides_url_passwords_and_tokens_wherever_they_stand(
        before in "[ -~]{0,30}",
        after in "[ -~]{0,30}",
        scheme in "(https?|git|ssh|svn)",
        user in "[a-z]{1,8}",
        secret in "[A-Za-z0-9]{12,24}",
        host in "[a-z]{1,10}\\.example",
    ) {
        prop_assume!(!before.contains(&secret) && !after.contains(&secret));
        let url = format!("{before} {scheme}://{user}:{secret}@{host}/repo.git {after}");
        let shown = lc_base::redact::redact(&url);
        prop_assert!(!shown.contains(&secret), "{url} -> {shown}");
        let query = format!("{before} https://{host}/x?private_token={secret} {after}");
        let shown = lc_base::redact::redact(&query);
        prop_assert!(!shown.contains(&secret), "{query} -> {shown}");
    }

    #[test]
    fn form_bodies_never_panic_and_rejections_name_the_field(
        body in prop::collection::vec(any::<u8>(), 0..200),
        name in "(job_id|pid|exit|host|path|now|max_jobs|disk_usage)",
    ) {
        let fields = lc_web::Fields::parse(&body);
        for answer in [
            fields.required(&name).map(|_| ()),
            fields.required_int(&name).map(|_| ()),
            fields.optional_int(&name).map(|_| ()),
        ] {
            if let Err(err) = answer {
                let parts = err.parts();
                prop_assert!(parts.status.is_client_error(), "{:?}", parts.status);
                prop_assert!(parts.message.contains(&name), "{}", parts.message);
            }
        }
    }
}
