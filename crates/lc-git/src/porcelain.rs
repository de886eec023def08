//! Output of git's network commands (`ls-remote`, `fetch --porcelain`,
//! `push --porcelain`) parsed into typed values.

use crate::Oid;

/// A ref listed by `ls-remote`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteRef {
    pub name: String,
    pub oid: Oid,
}

/// One line of `ls-remote`: object name, tab, ref name.
pub(crate) fn parse_ls_remote_line(line: &str) -> Option<RemoteRef> {
    let (oid, name) = line.split_once('\t')?;
    if !is_oid(oid) {
        return None;
    }
    Some(RemoteRef {
        name: name.to_owned(),
        oid: oid.to_owned(),
    })
}

/// How `fetch --porcelain` says a local ref changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FetchStatus {
    FastForward,
    Forced,
    Pruned,
    TagUpdate,
    New,
    Rejected,
    UpToDate,
}

/// One line of `fetch --porcelain`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchedRef {
    pub status: FetchStatus,
    pub old: Oid,
    pub new: Oid,
    pub local: String,
}

pub(crate) fn parse_fetch_line(line: &str) -> Option<FetchedRef> {
    let flag = line.chars().next()?;
    let status = match flag {
        ' ' => FetchStatus::FastForward,
        '+' => FetchStatus::Forced,
        '-' => FetchStatus::Pruned,
        't' => FetchStatus::TagUpdate,
        '*' => FetchStatus::New,
        '!' => FetchStatus::Rejected,
        '=' => FetchStatus::UpToDate,
        _ => return None,
    };
    let rest = line.get(1..)?.strip_prefix(' ')?;
    let mut parts = rest.splitn(3, ' ');
    let old = parts.next()?;
    let new = parts.next()?;
    let local = parts.next()?;
    if !is_oid(old) || !is_oid(new) || local.is_empty() {
        return None;
    }
    Some(FetchedRef {
        status,
        old: old.to_owned(),
        new: new.to_owned(),
        local: local.to_owned(),
    })
}

/// How `push --porcelain` says a remote ref changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PushStatus {
    FastForward,
    Forced,
    Deleted,
    New,
    Rejected,
    UpToDate,
}

/// One ref line of `push --porcelain`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushedRef {
    pub status: PushStatus,
    pub local: String,
    pub remote: String,
    pub summary: String,
}

pub(crate) fn parse_push_line(line: &str) -> Option<PushedRef> {
    let mut chars = line.chars();
    let status = match chars.next()? {
        ' ' => PushStatus::FastForward,
        '+' => PushStatus::Forced,
        '-' => PushStatus::Deleted,
        '*' => PushStatus::New,
        '!' => PushStatus::Rejected,
        '=' => PushStatus::UpToDate,
        _ => return None,
    };
    let rest = line.get(1..)?.strip_prefix('\t')?;
    let (refs, summary) = rest.split_once('\t')?;
    let (local, remote) = refs.split_once(':')?;
    Some(PushedRef {
        status,
        local: local.to_owned(),
        remote: remote.to_owned(),
        summary: summary.to_owned(),
    })
}

/// Whether `s` looks like a full object name.
pub fn is_oid(s: &str) -> bool {
    (s.len() == 40 || s.len() == 64) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "1111111111111111111111111111111111111111";
    const B: &str = "2222222222222222222222222222222222222222";

    #[test]
    fn ls_remote_lines_parse() {
        let r = parse_ls_remote_line(&format!("{A}\trefs/tags/v1")).expect("ref");
        assert_eq!((r.oid.as_str(), r.name.as_str()), (A, "refs/tags/v1"));
        assert!(parse_ls_remote_line(&format!("{A} refs/tags/v1")).is_none());
        assert!(parse_ls_remote_line("nothex\trefs/heads/a").is_none());
    }

    #[test]
    fn fetch_porcelain_lines_parse() {
        let line = format!("  {A} {B} refs/heads/main");
        let r = parse_fetch_line(&line).expect("ff");
        assert_eq!(r.status, FetchStatus::FastForward);
        assert_eq!(r.local, "refs/heads/main");
        let r = parse_fetch_line(&format!("+ {A} {B} refs/x")).expect("forced");
        assert_eq!(r.status, FetchStatus::Forced);
        assert_eq!((r.old.as_str(), r.new.as_str()), (A, B));
        assert!(parse_fetch_line("? a b c").is_none());
        assert!(parse_fetch_line(&format!("* {A} nothex refs/x")).is_none());
        assert!(parse_fetch_line("").is_none());
    }

    #[test]
    fn push_porcelain_lines_parse() {
        let r = parse_push_line("*\trefs/heads/a:refs/heads/a\t[new branch]").expect("new");
        assert_eq!(r.status, PushStatus::New);
        assert_eq!(r.remote, "refs/heads/a");
        let r = parse_push_line("!\trefs/heads/b:refs/heads/b\t[rejected] (non-fast-forward)")
            .expect("rejected");
        assert_eq!(r.status, PushStatus::Rejected);
        let r = parse_push_line("-\t:refs/heads/c\t[deleted]").expect("deleted");
        assert_eq!((r.local.as_str(), r.remote.as_str()), ("", "refs/heads/c"));
        assert!(parse_push_line("x\ta:b\tc").is_none());
        assert!(parse_push_line("*").is_none());
    }
}
