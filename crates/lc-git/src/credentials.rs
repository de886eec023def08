//! Credentials in `http(s)` URLs, handed to git through its environment.

use crate::Git;

impl Git {
    /// For an `http(s)` URL that carries credentials (`https://user:pass@host/`):
    /// the URL without them, and a `Git` that hands them to git through its
    /// environment, with a credential helper that reads two variables. So
    /// they appear neither in a command line, which every user of the
    /// machine can read, nor in a repository's configuration. Any other URL
    /// comes back as it is, with this `Git`.
    pub fn with_url_credentials(&self, url: &str) -> (Git, String) {
        let Some((bare, user, password)) = split_credentials(url) else {
            return (self.clone(), url.to_owned());
        };
        let git = self
            .clone()
            .config("credential.helper", "")
            .config(
                "credential.helper",
                "!f() { test \"$1\" = get || exit 0; \
                 printf 'username=%s\\npassword=%s\\n' \"$LORRY_GIT_USERNAME\" \"$LORRY_GIT_PASSWORD\"; }; f",
            )
            .env("LORRY_GIT_USERNAME", user)
            .env("LORRY_GIT_PASSWORD", password);
        (git, bare)
    }
}

/// Splits the credentials off an `http(s)` URL: the URL without them, the
/// user name and the password, percent-decoded. `None` when there are none.
fn split_credentials(url: &str) -> Option<(String, String, String)> {
    let scheme_end = url.find("://")?;
    let scheme = &url[..scheme_end];
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return None;
    }
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let at = authority.rfind('@')?;
    let (user, password) = match authority[..at].split_once(':') {
        Some((user, password)) => (user, password),
        None => (&authority[..at], ""),
    };
    let bare = format!(
        "{scheme}://{}{}",
        &authority[at + 1..],
        &rest[authority_end..]
    );
    Some((bare, percent_decode(user), percent_decode(password)))
}

fn percent_decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_split_off_http_urls_only() {
        let split = |url: &str| split_credentials(url);
        assert_eq!(
            split("https://alice:s%40cret@git.example.com:8443/a/b.git?x=1"),
            Some((
                "https://git.example.com:8443/a/b.git?x=1".into(),
                "alice".into(),
                "s@cret".into()
            ))
        );
        assert_eq!(
            split("HTTP://tok@h/x"),
            Some(("HTTP://h/x".into(), "tok".into(), String::new()))
        );
        assert_eq!(
            split("https://h/path@with-at"),
            None,
            "an @ after the host is not userinfo"
        );
        assert_eq!(split("ssh://git@h/x"), None);
        assert_eq!(split("git://h/x"), None);
        assert_eq!(split("/local/path"), None);
        assert_eq!(percent_decode("a%2Fb%zz%4"), "a/b%zz%4");
    }

    #[test]
    fn credentials_go_through_the_environment() {
        let (git, url) = Git::new().with_url_credentials("https://u:pw@h/x.git");
        assert_eq!(url, "https://h/x.git");
        let cmd = git.command();
        let env: Vec<(String, String)> = cmd
            .cmd
            .get_envs()
            .filter_map(|(k, v)| Some((k.to_str()?.to_owned(), v?.to_str()?.to_owned())))
            .collect();
        assert!(env.contains(&("LORRY_GIT_PASSWORD".into(), "pw".into())));
        assert!(env.contains(&("LORRY_GIT_USERNAME".into(), "u".into())));
        assert!(
            env.iter().any(
                |(k, v)| k.starts_with("GIT_CONFIG_VALUE_") && v.contains("LORRY_GIT_PASSWORD")
            )
        );
        assert!(
            !cmd.cmd
                .get_args()
                .any(|a| a.to_string_lossy().contains("pw"))
        );
        let shown = format!("{git:?}");
        assert!(
            shown.contains("LORRY_GIT_PASSWORD") && !shown.contains("pw\""),
            "{shown}"
        );
    }
}
