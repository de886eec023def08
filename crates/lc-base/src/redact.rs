//! Hiding credentials in text before it is printed or logged.
//!
//! A URL such as `https://user:token@host/repo` carries its credential in the
//! user-info part; [`redact`] replaces that part with `***` wherever a URL
//! appears in a line, and also hides the values of query parameters whose
//! names say they hold a secret (`private_token=...`, `password=...`).

use std::borrow::Cow;

/// What replaces a credential.
pub const MASK: &str = "***";

/// Query parameter names whose values are secrets.
const SECRET_PARAMS: &[&str] = &[
    "access_token",
    "private_token",
    "token",
    "password",
    "passwd",
    "secret",
    "api_key",
    "apikey",
    "key",
];

/// Returns `text` with every credential in a URL replaced by `***`.
///
/// Text without credentials is returned unchanged (and not copied).
pub fn redact(text: &str) -> Cow<'_, str> {
    if !text.contains("://") && !text.contains('=') {
        return Cow::Borrowed(text);
    }
    let userinfo_done = redact_userinfo(text);
    match redact_query(&userinfo_done) {
        Cow::Borrowed(_) => userinfo_done,
        Cow::Owned(s) => Cow::Owned(s),
    }
}

/// Whether `c` cannot be part of a URL as written (RFC 3986 has no place
/// for it unencoded), so it ends the URL it follows: whitespace, controls,
/// `"`, `<`, `>`, `\`, `^`, `` ` ``, `{`, `|`, `}`. The character itself is
/// kept: a masked value never takes the quote or bracket after it.
fn ends_url(c: char) -> bool {
    c.is_whitespace()
        || c.is_control()
        || matches!(c, '"' | '<' | '>' | '\\' | '^' | '`' | '{' | '|' | '}')
}

/// `scheme://user:pass@host` → `scheme://***@host`.
fn redact_userinfo(text: &str) -> Cow<'_, str> {
    let mut out = String::new();
    let mut copied = 0;
    let mut search = 0;
    while let Some(found) = text[search..].find("://") {
        let authority_start = search + found + 3;
        let rest = &text[authority_start..];
        // The authority ends at the first '/', '?', '#' or a character no
        // URL holds unencoded (a quote or bracket around it in JSON or HTML).
        let authority_len = rest
            .find(|c: char| c == '/' || c == '?' || c == '#' || ends_url(c))
            .unwrap_or(rest.len());
        let authority = &rest[..authority_len];
        if let Some(at) = authority.rfind('@')
            && at > 0
        {
            out.push_str(&text[copied..authority_start]);
            out.push_str(MASK);
            copied = authority_start + at;
        }
        search = authority_start + authority_len;
        if search >= text.len() {
            break;
        }
    }
    if copied == 0 {
        Cow::Borrowed(text)
    } else {
        out.push_str(&text[copied..]);
        Cow::Owned(out)
    }
}

/// `?private_token=abc&x=1` → `?private_token=***&x=1`.
fn redact_query(text: &str) -> Cow<'_, str> {
    let mut out = String::new();
    let mut copied = 0;
    for (eq, _) in text.match_indices('=') {
        let before = &text[..eq];
        let name_start = before.rfind(['?', '&', ';']).map(|i| i + 1);
        let Some(name_start) = name_start else {
            continue;
        };
        if name_start < copied {
            continue;
        }
        let name = &text[name_start..eq];
        if !SECRET_PARAMS
            .iter()
            .any(|secret| name.eq_ignore_ascii_case(secret))
        {
            continue;
        }
        let value_start = eq + 1;
        let value_len = text[value_start..]
            .find(|c: char| c == '&' || c == '#' || c == ';' || ends_url(c))
            .unwrap_or(text.len() - value_start);
        if value_len == 0 {
            continue;
        }
        out.push_str(&text[copied..value_start]);
        out.push_str(MASK);
        copied = value_start + value_len;
    }
    if copied == 0 {
        Cow::Borrowed(text)
    } else {
        out.push_str(&text[copied..]);
        Cow::Owned(out)
    }
}

/// A URL (or other text) that may carry credentials: its `Debug` and
/// `Display` show it with them masked. [`SecretUrl::expose`] gives the real
/// value, for passing to a program, never for printing.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretUrl(String);

impl SecretUrl {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The real value.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", redact(&self.0))
    }
}

impl std::fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&redact(&self.0))
    }
}

/// A token or password. `Debug` and `Display` show only [`MASK`]; only
/// [`Secret::expose`] gives the value, at the one place it is sent.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value itself, for the header or URL it is sent in.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Secret, Self::Err> {
        Ok(Secret::new(s))
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret({MASK})")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(MASK)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_is_masked() {
        assert_eq!(
            redact("fetching https://alice:s3cret@example.com/a/b.git now"),
            "fetching https://***@example.com/a/b.git now"
        );
        assert_eq!(
            redact("ssh://git@example.com:22/x"),
            "ssh://***@example.com:22/x"
        );
        assert_eq!(
            redact("a http://tok@h/x and http://u:p@h2"),
            "a http://***@h/x and http://***@h2"
        );
    }

    #[test]
    fn password_with_at_sign_is_masked_whole() {
        assert_eq!(
            redact("https://user:p@ss@example.com/x"),
            "https://***@example.com/x"
        );
    }

    #[test]
    fn text_without_credentials_is_untouched() {
        for text in [
            "https://example.com/a@b",
            "git://example.com/x.git",
            "plain text",
            "a=b c=d",
            "https://example.com/?q=1",
            "://@",
            "",
        ] {
            assert!(matches!(redact(text), Cow::Borrowed(_)), "{text}");
        }
    }

    #[test]
    fn secret_query_parameters_are_masked() {
        assert_eq!(
            redact("https://h/api?private_token=abc&page=2"),
            "https://h/api?private_token=***&page=2"
        );
        assert_eq!(
            redact("https://u:p@h/x?password=zz"),
            "https://***@h/x?password=***"
        );
    }

    #[test]
    fn secret_debug_and_display_redact() {
        let s = SecretUrl::new("https://u:tok@h/x");
        assert_eq!(s.to_string(), "https://***@h/x");
        assert!(!format!("{s:?}").contains("tok"));
        assert_eq!(s.expose(), "https://u:tok@h/x");
    }

    #[test]
    fn odd_input_does_not_panic() {
        for text in ["://", "x://", "é://ü@", "a=", "?=", "?token=", "&token=é"] {
            let _ = redact(text);
        }
    }

    #[test]
    fn secret_debug_and_display_hide_the_value() {
        let s = Secret::new("glpat-very-secret");
        assert_eq!(format!("{s}"), "***");
        assert_eq!(format!("{s:?}"), "Secret(***)");
        assert_eq!(format!("{:?}", Some(&s)), "Some(Secret(***))");
        assert_eq!(s.expose(), "glpat-very-secret");
    }

    #[test]
    fn the_text_after_a_masked_value_is_kept() {
        for (text, want) in [
            (r#"{"url": "https://u:p@h"}"#, r#"{"url": "https://***@h"}"#),
            (
                r#"{"url": "https://h/x?token=abc"}"#,
                r#"{"url": "https://h/x?token=***"}"#,
            ),
            (
                r#"{"url":"https://h/x?private_token=abc","type":"git"}"#,
                r#"{"url":"https://h/x?private_token=***","type":"git"}"#,
            ),
            (
                r#"{"url":"https://h","mail":"a@b"}"#,
                r#"{"url":"https://h","mail":"a@b"}"#,
            ),
            ("<https://h/?token=abc>", "<https://h/?token=***>"),
            ("'https://u:p@h'", "'https://***@h'"),
        ] {
            assert_eq!(redact(text), want, "{text}");
        }
    }
}
