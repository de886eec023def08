//! Reading `.lorry` files into [`Spec`]s, with [`lc_base::spec`]: the
//! project's one parser of them, so `lorry` takes JSON or YAML and checks
//! names and specs as the webapp does.
//!
//! A file that cannot be read or parsed, or holds no spec, fails as a whole;
//! a single bad spec fails alone, named.

use std::path::Path;

use lc_base::spec::{self, SpecFileError, SpecProblem};

use crate::source::{Source, Spec, bzr_branches};

#[derive(Debug, thiserror::Error)]
pub enum SpecsError {
    #[error("cannot read: {0}")]
    Read(#[from] std::io::Error),
    #[error("not a valid .lorry file: {0}")]
    File(#[from] SpecFileError),
    #[error("not a valid .lorry file: no specs")]
    Empty,
}

/// A spec, or the name of a bad one and what is wrong with it.
pub type SpecResult = Result<Spec, (String, String)>;

/// Reads every spec in `file`.
pub fn load(file: &Path) -> Result<Vec<SpecResult>, SpecsError> {
    let text = std::fs::read_to_string(file)?;
    parse(&text)
}

/// Parses the text of a `.lorry` file.
pub fn parse(text: &str) -> Result<Vec<SpecResult>, SpecsError> {
    let value = spec::parse_json_or_yaml(text).map_err(SpecFileError::Syntax)?;
    let entries = spec::parse_lorry_value(value)?;
    if entries.is_empty() {
        return Err(SpecsError::Empty);
    }
    Ok(entries
        .into_iter()
        .map(|(name, checked)| {
            let problem = match checked {
                Ok(parsed) => match &parsed.source {
                    Source::Bzr { url, branches }
                        if bzr_branches(url.as_deref(), branches.as_ref()).is_empty() =>
                    {
                        SpecProblem::Missing {
                            kind: "bzr".into(),
                            key: "url or branches",
                        }
                    }
                    _ => return Ok(Spec::new(name, parsed)),
                },
                Err(problem) => problem,
            };
            Err((name, problem.to_string()))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{OnRewrite, RawFileUrl, SvnLayout};

    fn problems(text: &str) -> Vec<(String, String)> {
        parse(text)
            .expect("parse")
            .into_iter()
            .filter_map(Result::err)
            .collect()
    }

    #[test]
    fn every_type_parses() {
        let specs = parse(
            r#"{
              "a/git": {"type": "git", "url": "https://h/x.git", "refspecs": ["master"], "on-rewrite": "refuse", "check-certificates": false},
              "a/tar": {"type": "tarball", "url": "http://h/x-1.tar.gz"},
              "a/raw": {"type": "raw-file", "urls": [{"url": "http://h/f", "destination": "d", "sha256sum": "00"}]},
              "a/svn": {"type": "svn", "url": "file:///r", "layout": {"trunk": "t", "branches": "b/*"}},
              "a/bzr": {"type": "bzr", "url": "file:///m", "branches": {"dev": "file:///b"}},
              "a/cvs": {"type": "cvs", "url": ":local:/c", "module": "m"},
              "a/hg": {"type": "hg", "url": "file:///h"}
            }"#,
        )
        .expect("parse");
        assert_eq!(specs.len(), 7);
        let specs: Vec<Spec> = specs.into_iter().map(|s| s.expect("valid")).collect();
        let find = |name: &str| specs.iter().find(|s| s.name == name).expect(name);
        let git = find("a/git");
        assert_eq!(git.on_rewrite, OnRewrite::Refuse);
        assert_eq!(git.check_certificates, Some(false));
        assert_eq!(find("a/tar").on_rewrite, OnRewrite::Preserve);
        let Source::RawFile { urls } = &find("a/raw").source else {
            panic!("raw-file")
        };
        assert_eq!(
            urls,
            &[RawFileUrl {
                url: "http://h/f".into(),
                destination: Some("d".into()),
                sha256sum: Some("00".into())
            }]
        );
        let Source::Svn { layout, .. } = &find("a/svn").source else {
            panic!("svn")
        };
        let layout = SvnLayout::of(layout.as_ref());
        assert_eq!(
            (
                layout.trunk.as_str(),
                layout.branches.as_deref(),
                layout.tags
            ),
            ("t", Some("b/*"), None)
        );
        let Source::Bzr { url, branches } = &find("a/bzr").source else {
            panic!("bzr")
        };
        let branches = bzr_branches(url.as_deref(), branches.as_ref());
        assert_eq!(
            branches.keys().map(String::as_str).collect::<Vec<_>>(),
            ["dev", "master"]
        );
    }

    #[test]
    fn yaml_files_parse_like_json_ones() {
        let json = parse(r#"{"a/git": {"type": "git", "url": "https://h/x.git", "refspecs": ["+refs/heads/*"]}}"#)
            .expect("json");
        let yaml = parse(
            "a/git:\n  type: git\n  url: https://h/x.git\n  refspecs:\n    - '+refs/heads/*'\n",
        )
        .expect("yaml");
        assert_eq!(json.len(), 1);
        assert_eq!(json, yaml);
        assert_eq!(SvnLayout::of(None), SvnLayout::standard());
    }

    #[test]
    fn bad_specs_fail_alone_and_say_why() {
        let errors = problems(
            r#"{"ok": {"type": "git", "url": "u"},
                "nourl": {"type": "git"},
                "odd": {"type": "darcs", "url": "u"},
                "rw": {"type": "git", "url": "u", "on-rewrite": "sometimes"},
                "bzr": {"type": "bzr", "branches": {}},
                "../up": {"type": "git", "url": "u"}}"#,
        );
        assert_eq!(errors.len(), 5, "{errors:?}");
        let why = |name: &str| {
            errors
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, e)| e.as_str())
                .expect(name)
        };
        assert!(why("nourl").contains("missing url"), "{errors:?}");
        assert!(why("odd").contains("darcs"), "{errors:?}");
        assert!(why("rw").contains("on-rewrite \"sometimes\""), "{errors:?}");
        assert!(why("bzr").contains("url or branches"), "{errors:?}");
        assert!(why("../up").contains(".."), "{errors:?}");
    }

    #[test]
    fn values_of_the_wrong_kind_name_their_field() {
        let errors = problems(
            r#"{"url": {"type": "git", "url": 5, "module": 7},
                "refspecs": {"type": "git", "url": "u", "refspecs": ["a", 5]},
                "urls": {"type": "raw-file", "urls": [{"destination": "d"}]},
                "layout": {"type": "svn", "url": "u", "layout": ["t"]},
                "branches": {"type": "bzr", "branches": {"dev": 1}},
                "cc": {"type": "git", "url": "u", "check-certificates": "yes"}}"#,
        );
        assert_eq!(errors.len(), 6, "{errors:?}");
        for (name, why) in &errors {
            let named = if name == "cc" {
                why.contains("check-certificates")
            } else {
                why.contains(&format!("field {name}:"))
            };
            assert!(named, "{name}: {why}");
        }
    }

    #[test]
    fn bad_files_fail_whole() {
        assert!(parse("").is_err());
        assert!(parse("[1]").is_err());
        assert!(parse("{}").is_err());
        assert!(parse("{\"a\": ").is_err());
        assert!(parse("just text").is_err());
        let err = parse("{ this is not json").expect_err("garbage");
        assert!(
            err.to_string().starts_with("not a valid .lorry file"),
            "{err}"
        );
    }
}

#[cfg(test)]
mod garbage_tests {
    use super::*;
    use crate::refspec::Refspec;

    /// A small deterministic generator (xorshift), so failures replay.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    #[test]
    fn mutated_lorry_files_and_refspecs_never_panic() {
        let seed = r#"{"a/b": {"type": "git", "url": "https://u:p@h/x.git", "refspecs": ["refs/heads/*:refs/heads/*"], "on-rewrite": "refuse"},
                       "raw": {"type": "raw-file", "urls": [{"url": "http://h/f", "destination": "d", "sha256sum": "00"}]},
                       "s": {"type": "svn", "url": "file:///r", "layout": {"trunk": "t"}}}"#;
        let alphabet: Vec<char> = "{}[]\":,*/\\ .aZ09é\u{0}\n+^~:".chars().collect();
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for _ in 0..3000 {
            let mut text: Vec<char> = seed.chars().collect();
            for _ in 0..(rng.next() % 6 + 1) {
                let at = (rng.next() as usize) % text.len();
                match rng.next() % 3 {
                    0 => {
                        text.remove(at);
                    }
                    1 => text.insert(at, alphabet[(rng.next() as usize) % alphabet.len()]),
                    _ => text[at] = alphabet[(rng.next() as usize) % alphabet.len()],
                }
            }
            let text: String = text.into_iter().collect();
            let _ = parse(&text);
            for piece in text.split('"') {
                let _ = Refspec::parse(piece);
                let _ = lc_base::redact::redact(piece);
            }
        }
    }
}
