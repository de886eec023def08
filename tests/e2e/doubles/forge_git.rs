//! The real git repositories behind a forge double, and the forge's clock,
//! so that a double reports a repository's activity time (GitHub's
//! `pushed_at`, Gitea's `updated_at`, GitLab's `last_activity_at`) from
//! real pushes, by the rules of the forge it stands for.
//!
//! Each bare repository gets a `post-receive` hook that appends to a log
//! the forge's time of the push (read from the clock file, so tests can
//! set it as they set the webapp's pretended time) and each ref it
//! updated, with the committer time of the new tip. A double derives its
//! activity field from that log whenever it answers, as the forge would
//! have recorded it at each push: [`github_pushed_at`], [`gitea_updated_at`]
//! and [`gitlab_last_activity_at`] say which rule each follows and why.

use std::path::{Path, PathBuf};

/// One push, as the hook saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Push {
    /// The forge's time of the push.
    pub at: i64,
    /// Each ref updated: name, and the committer time of its new tip
    /// (`None` when the ref was deleted).
    pub refs: Vec<(String, Option<i64>)>,
}

/// Bare repositories under one directory, `<owner>/<name>.git`.
#[derive(Debug)]
pub struct ForgeGit {
    root: PathBuf,
}

fn real_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl ForgeGit {
    pub fn new(root: &Path) -> ForgeGit {
        std::fs::create_dir_all(root).expect("mkdir forge");
        let forge = ForgeGit {
            root: root.to_owned(),
        };
        forge.set_clock(real_now());
        forge
    }

    fn clock_file(&self) -> PathBuf {
        self.root.join("clock")
    }

    /// The forge's clock from now on (seconds since the epoch).
    pub fn set_clock(&self, now: i64) {
        std::fs::write(self.clock_file(), now.to_string()).expect("write clock");
    }

    pub fn now(&self) -> i64 {
        std::fs::read_to_string(self.clock_file())
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or_else(real_now)
    }

    /// The bare repository of `full_name` (`owner/name`).
    pub fn repo(&self, full_name: &str) -> PathBuf {
        self.root.join(format!("{full_name}.git"))
    }

    fn log(&self, full_name: &str) -> PathBuf {
        self.repo(full_name).join("double-pushes.log")
    }

    /// Creates the empty bare repository of `full_name`, with the hook.
    pub fn create(&self, full_name: &str) -> PathBuf {
        let repo = self.repo(full_name);
        std::fs::create_dir_all(&repo).expect("mkdir repo");
        crate::common::git(&repo, &["init", "-q", "--bare", "-b", "main"]);
        let hook = repo.join("hooks/post-receive");
        let quote = |p: &Path| format!("'{}'", p.display().to_string().replace('\'', "'\\''"));
        std::fs::write(
            &hook,
            format!(
                "#!/bin/sh\n\
                 now=$(cat {clock} 2>/dev/null || date +%s)\n\
                 {{\n\
                   echo \"push $now\"\n\
                   while read old new ref; do\n\
                     case $new in\n\
                       *[!0]*) ct=$(git log -1 --format=%ct \"$new\" 2>/dev/null || echo -) ;;\n\
                       *) ct=- ;;\n\
                     esac\n\
                     echo \"ref $ct $ref\"\n\
                   done\n\
                 }} >> {log}\n",
                clock = quote(&self.clock_file()),
                log = quote(&self.log(full_name)),
            ),
        )
        .expect("write hook");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        repo
    }

    /// Every push into `full_name` so far, oldest first.
    pub fn pushes(&self, full_name: &str) -> Vec<Push> {
        let text = std::fs::read_to_string(self.log(full_name)).unwrap_or_default();
        let mut pushes: Vec<Push> = Vec::new();
        for line in text.lines() {
            if let Some(at) = line.strip_prefix("push ") {
                pushes.push(Push {
                    at: at.trim().parse().expect("push time"),
                    refs: Vec::new(),
                });
            } else if let Some(rest) = line.strip_prefix("ref ") {
                let (ct, name) = rest.split_once(' ').expect("ref line");
                pushes
                    .last_mut()
                    .expect("a push")
                    .refs
                    .push((name.to_owned(), ct.parse().ok()));
            }
        }
        pushes
    }
}

/// The forge's clock: the backing's when attached, else the real one.
pub fn forge_now(git: Option<&std::sync::Arc<ForgeGit>>) -> i64 {
    git.map_or_else(real_now, |g| g.now())
}

/// GitHub's `pushed_at`: the time of the last push. GitHub documents the
/// field only as a date-time
/// (<https://docs.github.com/en/rest/repos/repos#list-organization-repositories>);
/// GitHub support says it moves "any time a commit is pushed to any of the
/// repository's branches"
/// (<https://github.com/orgs/community/discussions/24442>). Nothing says a
/// push of tags alone moves it, so this double, to be no kinder than the
/// real one, moves it only for pushes that update a branch. A new
/// repository's is its creation time.
pub fn github_pushed_at(created: i64, pushes: &[Push]) -> i64 {
    pushes
        .iter()
        .filter(|p| {
            p.refs
                .iter()
                .any(|(name, _)| name.starts_with("refs/heads/"))
        })
        .map(|p| p.at)
        .fold(created, i64::max)
}

/// Gitea's `updated_at` (`repository.updated_unix`): set to the time a
/// push is processed, whatever refs it updated (`pushUpdates` in
/// `services/repository/push.go` calls
/// `repo_model.UpdateRepositoryUpdatedTime(ctx, repo.ID, time.Now())`).
/// A pull mirror's sync instead sets it to the newest commit's time it
/// fetched, not the time of the sync
/// (<https://github.com/go-gitea/gitea/pull/3551>, and the review of
/// <https://github.com/go-gitea/gitea/pull/28712>: "Updated is being set
/// to latest commit date received, not the date of sync"): a push into a
/// `mirror` repository of this double stands for such a sync.
pub fn gitea_updated_at(created: i64, pushes: &[Push], mirror: bool) -> i64 {
    let mut updated = created;
    for push in pushes {
        updated = if mirror {
            push.refs
                .iter()
                .filter_map(|(_, ct)| *ct)
                .max()
                .unwrap_or(updated)
        } else {
            push.at
        };
    }
    updated
}

/// GitLab's `last_activity_at`: an event (a push makes one) moves it to
/// the event's time only when it is at least an hour old
/// (`Event#reset_project_activity` in `app/models/event.rb`: `where(
/// 'last_activity_at <= ?', RESET_PROJECT_ACTIVITY_INTERVAL.ago)`,
/// `RESET_PROJECT_ACTIVITY_INTERVAL = 1.hour`; from
/// <https://gitlab.com/gitlab-org/gitlab-foss/-/merge_requests/6391>,
/// "Restrict last_activity_at updates to one per hour"). So a push within
/// the hour after the last update leaves it where it was, and a client
/// can rely on nothing finer than an hour.
pub fn gitlab_last_activity_at(created: i64, pushes: &[Push]) -> i64 {
    let mut last = created;
    for push in pushes {
        if last <= push.at - 3_600 {
            last = push.at;
        }
    }
    last
}

/// `at` as RFC 3339 with the given offset from UTC (`Z` for none), with
/// milliseconds when asked (GitLab writes them).
pub fn rfc3339(at: i64, offset_hours: i64, millis: bool) -> String {
    let local = at + offset_hours * 3_600;
    let (days, secs) = (local.div_euclid(86_400), local.rem_euclid(86_400));
    // Days since 1970-01-01 to a civil date (H. Hinnant's civil_from_days).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let fraction = if millis { ".000" } else { "" };
    let zone = if offset_hours == 0 {
        "Z".to_owned()
    } else {
        format!(
            "{}{:02}:00",
            if offset_hours < 0 { '-' } else { '+' },
            offset_hours.abs()
        )
    };
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}{fraction}{zone}",
        secs / 3_600,
        secs % 3_600 / 60,
        secs % 60
    )
}

#[test]
fn the_forges_rules_for_activity() {
    let push = |at: i64, refs: &[(&str, Option<i64>)]| Push {
        at,
        refs: refs.iter().map(|(n, ct)| ((*n).to_owned(), *ct)).collect(),
    };
    let pushes = [
        push(1_000, &[("refs/heads/main", Some(900))]),
        push(2_000, &[("refs/tags/v1", Some(900))]),
        push(4_599, &[("refs/heads/main", Some(800))]),
        push(4_600, &[("refs/heads/x", None)]),
    ];
    assert_eq!(github_pushed_at(0, &pushes), 4_600);
    assert_eq!(github_pushed_at(0, &pushes[..2]), 1_000);
    assert_eq!(gitea_updated_at(0, &pushes[..2], false), 2_000);
    assert_eq!(gitea_updated_at(0, &pushes[..3], true), 800);
    // 1,000 moves it; 2,000 and 4,599 are within the hour; 4,600 is not.
    assert_eq!(gitlab_last_activity_at(-10_000, &pushes[..3]), 1_000);
    assert_eq!(gitlab_last_activity_at(-10_000, &pushes), 4_600);
    // A new project: its creation within the hour holds it back too.
    assert_eq!(gitlab_last_activity_at(0, &pushes[..2]), 0);
    assert_eq!(rfc3339(1_704_161_045, 0, true), "2024-01-02T02:04:05.000Z");
    assert_eq!(
        rfc3339(1_704_161_045, 2, false),
        "2024-01-02T04:04:05+02:00"
    );
    assert_eq!(rfc3339(951_782_400, -1, false), "2000-02-28T23:00:00-01:00");
    assert_eq!(rfc3339(0, 0, false), "1970-01-01T00:00:00Z");
}
