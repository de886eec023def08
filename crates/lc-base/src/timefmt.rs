//! Times and sizes as people read them.

use jiff::Timestamp;

/// `2014-04-15 13:29:27 UTC`, the original's format; `never` for 0.
pub fn utc(unix: i64) -> String {
    if unix <= 0 {
        return "never".to_owned();
    }
    match Timestamp::from_second(unix) {
        Ok(ts) => ts.strftime("%Y-%m-%d %H:%M:%S UTC").to_string(),
        Err(_) => format!("@{unix}"),
    }
}

/// A span of seconds in the largest two units: `1 d 2 h`, `1 h 5 min`, `40 s`.
pub fn span(seconds: i64) -> String {
    let mut text = String::new();
    // Writing to a String cannot fail.
    let _ = write_span(&mut text, seconds);
    text
}

/// Writes [`span`] of `seconds` to `out`, allocating nothing (ASCII
/// letters, digits and spaces only).
pub fn write_span(out: &mut impl std::fmt::Write, seconds: i64) -> std::fmt::Result {
    let s = seconds.unsigned_abs();
    let (d, h, m, sec) = (s / 86_400, s % 86_400 / 3_600, s % 3_600 / 60, s % 60);
    let mut written = 0;
    for (n, unit) in [(d, "d"), (h, "h"), (m, "min"), (sec, "s")]
        .into_iter()
        .filter(|(n, _)| *n > 0)
        .take(2)
    {
        if written > 0 {
            out.write_char(' ')?;
        }
        write!(out, "{n} {unit}")?;
        written += 1;
    }
    if written == 0 {
        out.write_str("0 s")?;
    }
    Ok(())
}

/// When something falls due: `now` when it already has, else `in 1 h 5 min`.
pub fn due(due: i64, now: i64) -> String {
    if due <= now {
        "now".to_owned()
    } else {
        format!("in {}", span(due.saturating_sub(now)))
    }
}

/// How long ago something happened: `3 min ago`, `never` for 0.
pub fn ago(then: i64, now: i64) -> String {
    if then <= 0 {
        "never".to_owned()
    } else if then >= now {
        "just now".to_owned()
    } else {
        format!("{} ago", span(now.saturating_sub(then)))
    }
}

/// Bytes in binary units: `304 KiB`, `1.5 GiB`; empty when unknown.
pub fn bytes(n: Option<i64>) -> String {
    let Some(n) = n else { return String::new() };
    if n < 0 {
        return String::new();
    }
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 || value >= 100.0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_use_two_largest_units() {
        assert_eq!(span(0), "0 s");
        assert_eq!(span(40), "40 s");
        assert_eq!(span(3_900), "1 h 5 min");
        assert_eq!(span(90_061), "1 d 1 h");
        assert_eq!(span(86_400), "1 d");
        assert_eq!(span(86_701), "1 d 5 min", "zero units are skipped");
        assert_eq!(span(-61), "1 min 1 s");
    }

    #[test]
    fn due_and_ago() {
        assert_eq!(due(100, 100), "now");
        assert_eq!(due(160, 100), "in 1 min");
        assert_eq!(ago(40, 100), "1 min ago");
        assert_eq!(ago(0, 100), "never");
    }

    #[test]
    fn utc_format_matches_original() {
        assert_eq!(utc(1_397_568_567), "2014-04-15 13:29:27 UTC");
        assert_eq!(utc(0), "never");
    }

    #[test]
    fn byte_sizes() {
        assert_eq!(bytes(None), "");
        assert_eq!(bytes(Some(512)), "512 B");
        assert_eq!(bytes(Some(311_296)), "304 KiB");
        assert_eq!(bytes(Some(1_610_612_736)), "1.5 GiB");
    }
}
