//! Values of options and arguments that clap cannot parse alone.

use reqwest::Url;

/// An argument of `set-max-jobs`: a number of jobs, or no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxJobsArg(pub Option<u32>);

impl MaxJobsArg {
    /// The `max_jobs` form field: the number, or empty for no limit.
    pub fn form_value(self) -> String {
        self.0.map(|n| n.to_string()).unwrap_or_default()
    }
}

/// `N` or `none`.
pub fn max_jobs(text: &str) -> Result<MaxJobsArg, String> {
    if text.eq_ignore_ascii_case("none") {
        return Ok(MaxJobsArg(None));
    }
    text.parse()
        .map(|n| MaxJobsArg(Some(n)))
        .map_err(|_| format!("expected a number of jobs or \"none\", not {text:?}"))
}

/// A span of time in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seconds(pub i64);

/// `3d`, `12h`, `90min`, `90m`, `45s`, `2w`, plain seconds, or a sum such as
/// `1d12h` or `1h 30min`.
pub fn seconds(text: &str) -> Result<Seconds, String> {
    let bad = || {
        format!("expected an age such as 3d, 12h, 90min, 45s or a number of seconds, not {text:?}")
    };
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total: i64 = 0;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(bad());
        }
        let number: i64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = rest[digits..].trim_start();
        let unit_len = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "" | "s" | "sec" | "secs" | "second" | "seconds" => 1,
            "m" | "min" | "mins" | "minute" | "minutes" => 60,
            "h" | "hour" | "hours" => 3_600,
            "d" | "day" | "days" => 86_400,
            "w" | "week" | "weeks" => 7 * 86_400,
            _ => return Err(bad()),
        };
        rest = rest[unit_len..].trim_start();
        total = number
            .checked_mul(unit)
            .and_then(|n| total.checked_add(n))
            .ok_or_else(bad)?;
    }
    Ok(Seconds(total))
}

/// An `http` or `https` URL with a host.
pub fn webapp_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|err| format!("{text:?} is not a URL: {err}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "{text:?}: only http and https URLs are served by the webapp"
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("{text:?} has no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("{text:?}: a base URL takes no query or fragment"));
    }
    Ok(url)
}

/// An event type name the webapp knows (`lc_api::EventType`).
pub fn event_type(text: &str) -> Result<String, String> {
    match lc_api::EventType::parse(text) {
        Some(t) => Ok(t.name().to_owned()),
        None => {
            let known: Vec<&str> = lc_api::EventType::ALL.iter().map(|t| t.name()).collect();
            Err(format!(
                "no event type {text:?}; the types are {}",
                known.join(", ")
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages() {
        assert_eq!(seconds("3d"), Ok(Seconds(3 * 86_400)));
        assert_eq!(seconds("3600"), Ok(Seconds(3600)));
        assert_eq!(seconds("90min"), Ok(Seconds(5400)));
        assert_eq!(seconds("90m"), Ok(Seconds(5400)));
        assert_eq!(seconds("1d12h"), Ok(Seconds(129_600)));
        assert_eq!(seconds(" 1h 30min "), Ok(Seconds(5400)));
        assert_eq!(seconds("0"), Ok(Seconds(0)));
        for bad in [
            "",
            "d",
            "-1d",
            "3x",
            "1.5h",
            "99999999999999999999",
            "9223372036854775807w",
        ] {
            assert!(seconds(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn max_jobs_values() {
        assert_eq!(max_jobs("4"), Ok(MaxJobsArg(Some(4))));
        assert_eq!(max_jobs("NONE"), Ok(MaxJobsArg(None)));
        assert_eq!(MaxJobsArg(None).form_value(), "");
        assert!(max_jobs("-1").is_err());
        assert!(max_jobs("many").is_err());
    }

    #[test]
    fn webapp_urls() {
        assert!(webapp_url("http://h:1/lc/").is_ok());
        assert!(webapp_url("ftp://h/").is_err());
        assert!(webapp_url("localhost:12765").is_err());
        assert!(webapp_url("http://h/?x=1").is_err());
        assert!(webapp_url("not a url").is_err());
    }
}
