//! A stand-in `ssh` for Gerrit's and Gitano's ssh commands, put first on
//! the webapp's PATH.
//!
//! Like ssh, it takes options, a destination and a command line, which it
//! splits as a POSIX shell would (the remote side of Gerrit and Gitano
//! honours the same quoting). State lives in files of its directory:
//! `log` (one line per call: destination, port, words; tab-separated),
//! `gerrit-projects`, `gerrit-heads`, `gerrit-descriptions`,
//! `gitano-repos`, `gitano-config`, and `fail` (when present, every call
//! fails as an unreachable host would, with its text on stderr).
//!
//! Gerrit (per its ssh command reference): `gerrit ls-projects [--type T]
//! [--prefix P]`, `gerrit create-project [--parent P] [--description D]
//! [--branch B]... NAME` (a `.git` suffix is dropped; an existing name is
//! "fatal: Project already exists"; the first `--branch` is HEAD, recorded
//! in `gerrit-heads`, the description in `gerrit-descriptions`)
//! (<https://gerrit-review.googlesource.com/Documentation/cmd-create-project.html>),
//! `gerrit set-head NAME --new-head REF`, refused while the branch does not
//! exist (no line `NAME<TAB>BRANCH` in `gerrit-refs`: nothing was pushed)
//! (<https://gerrit-review.googlesource.com/Documentation/cmd-set-head.html>),
//! `gerrit set-project NAME [--description D]`. Gitano: `ls`, `create
//! REPO` (an existing repository is refused, in words that vary between
//! versions: here they avoid "exists" on purpose), `config REPO set KEY
//! VALUE`. Git over ssh: `git-upload-pack` and `git-receive-pack` of the
//! repositories under `git-root/`.

use std::path::{Path, PathBuf};

const SCRIPT: &str = r#"#!/bin/bash
set -u
dir="$SSH_DOUBLE_DIR"
port=""
while [ $# -gt 0 ]; do
  case "$1" in
    -p) port="$2"; shift 2 ;;
    -o|-i|-l|-F) shift 2 ;;
    -*) shift ;;
    *) break ;;
  esac
done
dest="$1"; shift
line="$*"
eval "set -- $line"
{ printf '%s\t%s' "$dest" "$port"; for w in "$@"; do printf '\t%s' "$w"; done; printf '\n'; } >> "$dir/log"
if [ -f "$dir/fail" ]; then cat "$dir/fail" >&2; exit 255; fi
touch "$dir/gerrit-projects" "$dir/gitano-repos"
has() { grep -qxF -- "$2" "$dir/$1"; }
case "${1:-}" in
gerrit)
  sub="${2:-}"; shift 2
  case "$sub" in
  ls-projects)
    prefix=""
    while [ $# -gt 0 ]; do
      case "$1" in
        --prefix|-p) prefix="$2"; shift 2 ;;
        --type|-t|--format|--limit|-n|--show-branch|-b) shift 2 ;;
        *) shift ;;
      esac
    done
    while IFS= read -r p; do
      [[ "$p" == "$prefix"* ]] && printf '%s\n' "$p"
    done < "$dir/gerrit-projects"
    exit 0 ;;
  create-project)
    parent=""; name=""; branch=""; desc=""
    while [ $# -gt 0 ]; do
      case "$1" in
        --parent|-p) parent="$2"; shift 2 ;;
        --branch|-b) [ -n "$branch" ] || branch="$2"; shift 2 ;;
        --description|-d) desc="$2"; shift 2 ;;
        --owner|-o|--submit-type|-t) shift 2 ;;
        -*) shift ;;
        *) name="$1"; shift ;;
      esac
    done
    [ -n "$name" ] || { echo 'fatal: Argument "NAME" is required' >&2; exit 1; }
    name="${name%.git}"
    if has gerrit-projects "$name"; then echo "fatal: Project already exists" >&2; exit 1; fi
    if [ -n "$parent" ] && ! has gerrit-projects "$parent"; then
      echo "fatal: Parent project \"$parent\" not found" >&2; exit 1
    fi
    printf '%s\n' "$name" >> "$dir/gerrit-projects"
    [ -z "$branch" ] || printf '%s\t%s\n' "$name" "$branch" >> "$dir/gerrit-heads"
    [ -z "$desc" ] || printf '%s\t%s\n' "$name" "$desc" >> "$dir/gerrit-descriptions"
    exit 0 ;;
  set-head)
    name="$1"; shift; head=""
    while [ $# -gt 0 ]; do case "$1" in --new-head) head="$2"; shift 2 ;; *) shift ;; esac; done
    has gerrit-projects "$name" || { echo "fatal: project $name not found" >&2; exit 1; }
    touch "$dir/gerrit-refs"
    has gerrit-refs "$name	${head#refs/heads/}" || { echo "fatal: Ref Not Found: refs/heads/${head#refs/heads/}" >&2; exit 1; }
    printf '%s\t%s\n' "$name" "$head" >> "$dir/gerrit-heads"
    exit 0 ;;
  set-project)
    name="$1"; shift; desc=""
    while [ $# -gt 0 ]; do case "$1" in --description|-d) desc="$2"; shift 2 ;; *) shift ;; esac; done
    has gerrit-projects "$name" || { echo "fatal: project $name not found" >&2; exit 1; }
    printf '%s\t%s\n' "$name" "$desc" >> "$dir/gerrit-descriptions"
    exit 0 ;;
  *) echo "fatal: gerrit: $sub: not found" >&2; exit 1 ;;
  esac ;;
git-upload-pack|git-receive-pack)
  # A git server: repositories live under git-root/ of this directory.
  exec git "${1#git-}" "$dir/git-root$2" ;;
ls)
  while IFS= read -r r; do printf 'RW  %s\n' "$r"; done < "$dir/gitano-repos"
  printf '    %s\n' "(no access) hidden/repo"
  exit 0 ;;
create)
  name="$2"
  if has gitano-repos "$name"; then echo "create: cannot create $name: the path is in use" >&2; exit 1; fi
  printf '%s\n' "$name" >> "$dir/gitano-repos"
  exit 0 ;;
config)
  name="$2"
  has gitano-repos "$name" || { echo "Cannot find repository $name" >&2; exit 1; }
  [ "${3:-}" = set ] || { echo "config: unknown operation" >&2; exit 1; }
  printf '%s\t%s\t%s\n' "$name" "$4" "$5" >> "$dir/gitano-config"
  exit 0 ;;
*) echo "Unknown command: ${1:-}" >&2; exit 1 ;;
esac
"#;

/// The stand-in's directory: its `ssh` script and its state files.
pub struct SshDouble {
    pub dir: PathBuf,
}

impl SshDouble {
    pub fn new(dir: &Path) -> SshDouble {
        let dir = dir.join("ssh-double");
        std::fs::create_dir_all(dir.join("bin")).expect("mkdir");
        let script = dir.join("bin/ssh");
        std::fs::write(&script, SCRIPT).expect("write ssh");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        SshDouble { dir }
    }

    /// PATH and SSH_DOUBLE_DIR for the webapp.
    pub fn env(&self) -> Vec<(String, String)> {
        let path = std::env::var("PATH").unwrap_or_default();
        vec![
            (
                "PATH".into(),
                format!("{}:{path}", self.dir.join("bin").display()),
            ),
            ("SSH_DOUBLE_DIR".into(), self.dir.display().to_string()),
        ]
    }

    /// One state file's lines.
    pub fn lines(&self, file: &str) -> Vec<String> {
        std::fs::read_to_string(self.dir.join(file))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// The calls made: destination, port and words of each.
    pub fn calls(&self) -> Vec<Vec<String>> {
        self.lines("log")
            .iter()
            .map(|l| l.split('\t').map(str::to_owned).collect())
            .collect()
    }

    pub fn write(&self, file: &str, lines: &[&str]) {
        let mut text = lines.join("\n");
        if !text.is_empty() {
            text.push('\n');
        }
        std::fs::write(self.dir.join(file), text).expect("write");
    }
}
