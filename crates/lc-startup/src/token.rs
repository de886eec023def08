//! Reading the webapp's access tokens: from a file or the environment,
//! never from the command line (which every user of the machine can read).
//!
//! A token file holds the token alone, or the header line
//! `Authorization: Bearer TOKEN`, so that one file serves both the webapp
//! and `curl -H @FILE` in the units and CONFGIT's hook. A file that other
//! users may read or write is refused, as is an empty one.

use std::path::Path;

/// Why a token could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("{file}: cannot read the token file: {problem}")]
    Unreadable { file: String, problem: String },
    #[error(
        "{file}: other users may read or change this token file (mode {mode:04o}); \
         make it private, e.g. chmod 600"
    )]
    Public { file: String, mode: u32 },
    #[error("{file}: the token file is empty")]
    Empty { file: String },
    #[error("environment variable {0} is set but empty")]
    EmptyEnv(String),
}

/// The token in `file`.
pub fn from_file(file: &Path) -> Result<String, TokenError> {
    use std::os::unix::fs::PermissionsExt;
    let name = file.display().to_string();
    let unreadable = |e: std::io::Error| TokenError::Unreadable {
        file: name.clone(),
        problem: e.to_string(),
    };
    let meta = std::fs::metadata(file).map_err(unreadable)?;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o007 != 0 {
        return Err(TokenError::Public { file: name, mode });
    }
    let text = std::fs::read_to_string(file).map_err(unreadable)?;
    parse(&text).ok_or(TokenError::Empty { file: name })
}

/// The token in the environment variable `var`, when set.
pub fn from_env(var: &str) -> Result<Option<String>, TokenError> {
    match std::env::var(var) {
        Ok(value) => parse(&value)
            .map(Some)
            .ok_or_else(|| TokenError::EmptyEnv(var.to_owned())),
        Err(_) => Ok(None),
    }
}

/// The token of `file` when given, else of the environment variable `var`.
pub fn from_file_or_env(file: Option<&Path>, var: &str) -> Result<Option<String>, TokenError> {
    match file {
        Some(file) => from_file(file).map(Some),
        None => from_env(var),
    }
}

/// A token alone or in an `Authorization: Bearer` line, without blanks.
fn parse(text: &str) -> Option<String> {
    let text = text.trim();
    let token = match text.split_once(':') {
        Some((name, value)) if name.trim().eq_ignore_ascii_case("authorization") => {
            let value = value.trim();
            match value.split_once(' ') {
                Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
                _ if value.eq_ignore_ascii_case("bearer") => "",
                _ => value,
            }
        }
        _ => text,
    };
    (!token.is_empty()).then(|| token.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn plain_tokens_and_header_lines() {
        assert_eq!(parse("abc\n").as_deref(), Some("abc"));
        assert_eq!(parse("Authorization: Bearer abc\n").as_deref(), Some("abc"));
        assert_eq!(parse("authorization:bearer  abc").as_deref(), Some("abc"));
        assert_eq!(parse(" \n"), None);
        assert_eq!(parse("Authorization: Bearer "), None);
    }

    #[test]
    fn files_others_can_read_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("token");
        std::fs::write(&file, "s3cret\n").expect("write");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        assert_eq!(from_file(&file).as_deref(), Ok("s3cret"));
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let err = from_file(&file).expect_err("world-readable");
        assert!(err.to_string().contains("0644"), "{err}");
        assert!(!err.to_string().contains("s3cret"), "{err}");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o602)).expect("chmod");
        assert!(matches!(from_file(&file), Err(TokenError::Public { .. })));
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        std::fs::write(&file, "\n").expect("write");
        assert!(matches!(from_file(&file), Err(TokenError::Empty { .. })));
        assert!(matches!(
            from_file(&dir.path().join("missing")),
            Err(TokenError::Unreadable { .. })
        ));
    }
}
