//! Tests of the open-options parser: every name and form, bad types,
//! unknown names, out-of-range values.

use std::time::Duration;

use mss_core::{ErrorKind, StoreOptions};
use serde_json::{Value, json};

use super::*;

const MS: DurationUnit = DurationUnit::Milliseconds;
const S: DurationUnit = DurationUnit::Seconds;

fn parse(value: Value, unit: DurationUnit) -> OpenOptions {
    OpenOptions::from_value(&value, unit).unwrap_or_else(|e| panic!("{value}: {}", e.message()))
}

/// The message of the `InvalidInput` error that `value` gives.
fn invalid(value: Value, unit: DurationUnit) -> String {
    let e = OpenOptions::from_value(&value, unit).expect_err(&value.to_string());
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{value}");
    e.message().to_owned()
}

#[test]
fn no_options_is_the_defaults() {
    assert_eq!(parse(json!({}), MS), OpenOptions::default());
    assert_eq!(parse(Value::Null, MS), OpenOptions::default());
    assert_eq!(
        OpenOptions::default().to_store_options(),
        StoreOptions::default()
    );
}

#[test]
fn c_json_names() {
    let o = OpenOptions::from_json(
        r#"{"ttl_ms": 1800000, "max_events_per_session": 1000, "max_payload_bytes": 1048576,
            "max_sessions": 10000, "poll_interval_ms": 250}"#,
    )
    .unwrap();
    assert_eq!(o.ttl, Some(Duration::from_secs(1800)));
    assert_eq!(o.max_events_per_session, Some(1000));
    assert_eq!(o.max_payload_bytes, Some(1_048_576));
    assert_eq!(o.max_sessions, Some(10_000));
    assert_eq!(o.poll_interval, Some(Duration::from_millis(250)));
    let s = o.to_store_options();
    assert_eq!(s.ttl, Duration::from_secs(1800));
    assert_eq!(s.max_events_per_session, 1000);
    assert_eq!(s.max_payload_bytes, 1_048_576);
    assert_eq!(s.max_sessions, Some(10_000));
    assert_eq!(s.poll_interval, Duration::from_millis(250));
}

#[test]
fn c_json_text_errors() {
    for text in ["{not json", "", "{\"ttl_ms\": 1,}"] {
        let e = OpenOptions::from_json(text).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert!(
            e.message().starts_with("options is not valid JSON"),
            "{}",
            e.message()
        );
    }
    for text in ["[]", "null", "5", "\"ttl\""] {
        let e = OpenOptions::from_json(text).unwrap_err();
        assert!(
            e.message().starts_with("options has the wrong shape"),
            "{}",
            e.message()
        );
    }
}

#[test]
fn node_camel_case_names() {
    let o = parse(
        json!({"ttlMs": 60000, "maxEventsPerSession": 5, "maxPayloadBytes": 4096,
               "maxSessions": 3, "pollIntervalMs": 50}),
        MS,
    );
    assert_eq!(o.ttl, Some(Duration::from_secs(60)));
    assert_eq!(o.max_events_per_session, Some(5));
    assert_eq!(o.max_payload_bytes, Some(4096));
    assert_eq!(o.max_sessions, Some(3));
    assert_eq!(o.poll_interval, Some(Duration::from_millis(50)));
    // `ttl` is an alias of `ttlMs` in Node; strings are durations.
    assert_eq!(
        parse(json!({"ttl": 5000}), MS).ttl,
        Some(Duration::from_secs(5))
    );
    assert_eq!(
        parse(json!({"ttl": "5m"}), MS).ttl,
        Some(Duration::from_secs(300))
    );
    assert_eq!(
        parse(json!({"ttlMs": "90s"}), MS).ttl,
        Some(Duration::from_secs(90))
    );
    // JavaScript numbers may arrive as integral doubles.
    assert_eq!(
        parse(json!({"ttlMs": 1000.0}), MS).ttl,
        Some(Duration::from_secs(1))
    );
    assert_eq!(parse(json!({"maxSessions": 3.0}), MS).max_sessions, Some(3));
}

#[test]
fn python_seconds() {
    let o = parse(
        json!({"ttl": 1.5, "poll_interval": 0.05, "max_events_per_session": 10,
               "max_payload_bytes": 64, "max_sessions": 2}),
        S,
    );
    assert_eq!(o.ttl, Some(Duration::from_millis(1500)));
    assert_eq!(o.poll_interval, Some(Duration::from_millis(50)));
    assert_eq!(o.max_events_per_session, Some(10));
    assert_eq!(o.max_payload_bytes, Some(64));
    assert_eq!(o.max_sessions, Some(2));
    assert_eq!(
        parse(json!({"ttl": 3600}), S).ttl,
        Some(Duration::from_secs(3600))
    );
    // timedelta(milliseconds=500).total_seconds()
    assert_eq!(
        parse(json!({"ttl": 0.5}), S).ttl,
        Some(Duration::from_millis(500))
    );
    // `*_ms` names stay milliseconds whatever the unit.
    assert_eq!(
        parse(json!({"ttl_ms": 1500}), S).ttl,
        Some(Duration::from_millis(1500))
    );
    // Python's None leaves the default.
    let o = parse(
        json!({"ttl": null, "max_sessions": null, "poll_interval": null}),
        S,
    );
    assert_eq!(o, OpenOptions::default());
}

#[test]
fn elixir_keyword_lists() {
    let pairs = vec![
        ("ttl", json!("30m")),
        ("max_events_per_session", json!(100)),
        ("max_payload_bytes", json!(2048)),
        ("max_sessions", Value::Null),
        ("poll_interval", json!(20)),
    ];
    let o = OpenOptions::from_pairs(pairs, MS).unwrap();
    assert_eq!(o.ttl, Some(Duration::from_secs(1800)));
    assert_eq!(o.max_events_per_session, Some(100));
    assert_eq!(o.max_payload_bytes, Some(2048));
    assert_eq!(o.max_sessions, None);
    assert_eq!(o.poll_interval, Some(Duration::from_millis(20)));
    // Integers are milliseconds; every unit of the core's durations.
    for (text, ms) in [
        ("500ms", 500),
        ("90s", 90_000),
        ("2h", 7_200_000),
        ("7d", 604_800_000),
    ] {
        let o = OpenOptions::from_pairs([("ttl", json!(text))], MS).unwrap();
        assert_eq!(o.ttl, Some(Duration::from_millis(ms)), "{text}");
    }
    // A name given twice: the later value wins (as in a keyword list).
    let o = OpenOptions::from_pairs([("ttl", json!(1)), ("ttl", json!(2))], MS).unwrap();
    assert_eq!(o.ttl, Some(Duration::from_millis(2)));
    // Borrowed values work too.
    let v = json!(7);
    let o = OpenOptions::from_pairs([("max_sessions".to_owned(), &v)], MS).unwrap();
    assert_eq!(o.max_sessions, Some(7));
}

#[test]
fn serde_deserialize_reads_milliseconds() {
    let o: OpenOptions = serde_json::from_str(r#"{"ttl": 250, "maxSessions": 2}"#).unwrap();
    assert_eq!(o.ttl, Some(Duration::from_millis(250)));
    assert_eq!(o.max_sessions, Some(2));
    let e = serde_json::from_str::<OpenOptions>(r#"{"bogus": 1}"#).unwrap_err();
    assert!(e.to_string().contains("unknown option \"bogus\""), "{e}");
    assert!(serde_json::from_str::<OpenOptions>("[1]").is_err());
}

#[test]
fn unknown_names_are_refused_with_the_known_ones() {
    for name in [
        "bogus",
        "tll",
        "TTL",
        "ttlms",
        "max_session",
        "pollInterval_ms",
        "",
    ] {
        let m = invalid(json!({ name: 1 }), MS);
        assert!(m.starts_with(&format!("unknown option {name:?}")), "{m}");
        assert!(m.contains("ttl, ttl_ms, max_events_per_session"), "{m}");
    }
    let e = OpenOptions::from_pairs([("nope", json!(1))], S).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
}

#[test]
fn two_names_for_one_setting_are_refused() {
    for (a, b) in [
        ("ttl", "ttl_ms"),
        ("ttl_ms", "ttlMs"),
        ("poll_interval", "pollIntervalMs"),
        ("max_sessions", "maxSessions"),
        ("max_events_per_session", "maxEventsPerSession"),
        ("max_payload_bytes", "maxPayloadBytes"),
    ] {
        let m = invalid(json!({ a: 1, b: 1 }), MS);
        assert!(
            m.contains(a) && m.contains(b) && m.contains("give only one"),
            "{m}"
        );
    }
}

#[test]
fn counts_must_be_non_negative_integers() {
    for name in ["max_events_per_session", "maxPayloadBytes", "max_sessions"] {
        for bad in [
            json!(-1),
            json!(1.5),
            json!("10"),
            json!(true),
            json!([1]),
            json!({}),
            json!(-0.5),
            json!(1e300),
        ] {
            let m = invalid(json!({ name: bad.clone() }), MS);
            assert!(
                m.starts_with(&format!(
                    "option {name} must be a non-negative integer, got "
                )),
                "{m}"
            );
            // Same in seconds: counts have no unit.
            invalid(json!({ name: bad }), S);
        }
    }
    let m = invalid(json!({"max_sessions": -5}), S);
    assert_eq!(
        m,
        "option max_sessions must be a non-negative integer, got -5"
    );
    // The full u64 range of an integer.
    assert_eq!(
        parse(json!({"max_sessions": u64::MAX}), MS).max_sessions,
        Some(u64::MAX)
    );
    // A double above 2^53 - 1 is not an exact integer.
    invalid(json!({"maxSessions": 9_007_199_254_740_992.0}), MS);
}

#[test]
fn millisecond_durations_must_be_non_negative_integers_or_strings() {
    for name in [
        "ttl_ms",
        "ttlMs",
        "poll_interval_ms",
        "pollIntervalMs",
        "ttl",
        "poll_interval",
    ] {
        for bad in [
            json!(-1),
            json!(1.5),
            json!(true),
            json!([]),
            json!({"ms": 1}),
        ] {
            let m = invalid(json!({ name: bad }), MS);
            assert!(
                m.starts_with(&format!(
                    "option {name} must be a non-negative integer number of milliseconds"
                )),
                "{m}"
            );
        }
    }
}

#[test]
fn second_durations_must_be_finite_non_negative_numbers_or_strings() {
    for name in ["ttl", "poll_interval"] {
        for bad in [
            json!(-1),
            json!(-0.001),
            json!(1e300),
            json!(false),
            json!([]),
        ] {
            let m = invalid(json!({ name: bad }), S);
            assert!(
                m.starts_with(&format!(
                    "option {name} must be a finite, non-negative number of seconds"
                )),
                "{m}"
            );
        }
    }
}

#[test]
fn c_millisecond_names_take_numbers_only() {
    // C's `ttl_ms` and `poll_interval_ms` have always been integers; Node's
    // `ttlMs` / `pollIntervalMs` and the plain `ttl` / `poll_interval` also
    // take duration strings.
    for name in ["ttl_ms", "poll_interval_ms"] {
        let m = invalid(json!({ name: "30m" }), MS);
        assert_eq!(
            m,
            format!(
                "option {name} must be a non-negative integer number of milliseconds, got \"30m\""
            )
        );
        let e = OpenOptions::from_json(&format!(r#"{{"{name}": "30m"}}"#)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
    }
    for name in ["ttlMs", "pollIntervalMs", "ttl", "poll_interval"] {
        parse(json!({ name: "30m" }), MS);
    }
    assert_eq!(
        parse(json!({"pollIntervalMs": "2s"}), MS).poll_interval,
        Some(Duration::from_secs(2))
    );
}

#[test]
fn duration_strings_need_a_unit() {
    for (unit, bad) in [
        (MS, "10"),
        (MS, "forever"),
        (S, "abc"),
        (MS, "5 parsecs"),
        (S, "-5m"),
    ] {
        let m = invalid(json!({ "ttl": bad }), unit);
        assert!(m.starts_with("option ttl: invalid duration"), "{m}");
    }
    let m = invalid(json!({ "ttlMs": "10" }), MS);
    assert!(m.starts_with("option ttlMs: invalid duration"), "{m}");
    // An overflowing duration string.
    invalid(json!({ "ttl": "99999999999999999999d" }), MS);
}

#[test]
fn options_must_be_an_object() {
    for bad in [json!([]), json!(1), json!("ttl=5")] {
        let m = invalid(bad, MS);
        assert!(m.starts_with("options must be an object"), "{m}");
    }
}

#[test]
fn ranges_are_left_to_the_core() {
    // Zero passes the parser; the core refuses it when the store opens
    // (after the URL's parameters, which win, are applied).
    let o = parse(
        json!({"ttl": 0, "max_sessions": 0, "max_payload_bytes": 0}),
        MS,
    );
    let e = o.to_store_options().validate().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    for bad in [
        json!({"ttl": 0}),
        json!({"poll_interval": 0}),
        json!({"max_events_per_session": 0}),
        json!({"max_payload_bytes": 0}),
        json!({"max_payload_bytes": 300 * 1024 * 1024}),
        json!({"max_sessions": 0}),
    ] {
        assert!(
            parse(bad.clone(), MS)
                .to_store_options()
                .validate()
                .is_err(),
            "{bad}"
        );
    }
    let good = parse(
        json!({"ttl": "1h", "poll_interval": 5, "max_sessions": 1}),
        MS,
    );
    good.to_store_options().validate().unwrap();
}

#[test]
fn apply_to_keeps_what_is_not_given() {
    let base = StoreOptions::default()
        .with_max_sessions(Some(9))
        .with_max_events_per_session(7);
    let o = parse(json!({"maxEventsPerSession": 3}), MS).apply_to(base);
    assert_eq!(o.max_sessions, Some(9));
    assert_eq!(o.max_events_per_session, 3);
}

#[test]
fn names_lists_every_accepted_name() {
    let names: Vec<_> = OpenOptions::names().collect();
    assert_eq!(names.len(), 12);
    for name in names {
        // Each one parses.
        let value = if name.contains("max") || name.ends_with("_ms") {
            json!(1000)
        } else {
            json!("1s")
        };
        parse(json!({ name: value }), MS);
    }
}

#[test]
fn whole_number_is_nodes_integer_check() {
    assert_eq!(whole_number("seq", 3.0).unwrap(), 3);
    assert_eq!(
        whole_number("seq", 9_007_199_254_740_991.0).unwrap(),
        9_007_199_254_740_991
    );
    for bad in [-1.0, 0.5, f64::NAN, f64::INFINITY, 9_007_199_254_740_992.0] {
        let e = whole_number("limit", bad).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert!(
            e.message()
                .starts_with("limit must be a non-negative integer, got ")
        );
    }
}

#[test]
fn describe_values() {
    assert_eq!(describe(&json!(null)), "null");
    assert_eq!(describe(&json!("x")), "\"x\"");
    assert_eq!(describe(&json!(-2)), "-2");
    assert_eq!(describe(&json!([1])), "an array");
    assert_eq!(describe(&json!({})), "an object");
    assert!(describe(&json!("y".repeat(100))).ends_with('…'));
}
