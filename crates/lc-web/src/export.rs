//! Snapshot manifests in formats other tools read: the `repo` tool's
//! manifest XML and `name commit url` text. Each lorry is one entry, at
//! its primary ref; the JSON manifest has every ref.

use std::collections::BTreeMap;

use lc_api::SnapshotManifest;

/// The ref a lorry's entry in an exported manifest is checked out at:
/// `refs/heads/main`, else `refs/heads/master`, else its first branch,
/// else its first ref.
fn primary_ref(refs: &BTreeMap<String, String>) -> Option<(&String, &String)> {
    ["refs/heads/main", "refs/heads/master"]
        .iter()
        .find_map(|name| refs.get_key_value(*name))
        .or_else(|| {
            refs.iter()
                .find(|(name, _)| name.starts_with("refs/heads/"))
        })
        .or_else(|| refs.iter().next())
}

/// `s` for an XML attribute value between double quotes.
fn xml_attr(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            _ => out.push(c),
        }
    }
    out
}

/// A snapshot as a `repo` tool manifest (docs/manifest-format.md of
/// git-repo): one remote, `fetch` the downstream's fetch base; one
/// project per lorry, named `<path>.git`, checked out at `<path>`, at the
/// commit of its primary ref (`upstream` names the ref).
pub fn repo_manifest(manifest: &SnapshotManifest, fetch_base: &str) -> String {
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<manifest>\n");
    xml.push_str(&format!(
        "  <notice>lorry-controller snapshot {} taken {}</notice>\n",
        xml_attr(&manifest.name),
        lc_base::timefmt::utc(manifest.taken)
    ));
    xml.push_str(&format!(
        "  <remote name=\"lorry\" fetch=\"{}\"/>\n  <default remote=\"lorry\"/>\n",
        xml_attr(fetch_base.trim_end_matches('/'))
    ));
    for (path, refs) in &manifest.lorries {
        if let Some((name, oid)) = primary_ref(refs) {
            xml.push_str(&format!(
                "  <project name=\"{}.git\" path=\"{}\" revision=\"{}\" upstream=\"{}\"/>\n",
                xml_attr(path),
                xml_attr(path),
                xml_attr(oid),
                xml_attr(name)
            ));
        }
    }
    xml.push_str("</manifest>\n");
    xml
}

/// A snapshot as text: one `name commit url` line per lorry, at its
/// primary ref (see [`repo_manifest`]).
pub fn text_manifest(manifest: &SnapshotManifest, fetch_base: &str) -> String {
    let base = fetch_base.trim_end_matches('/');
    manifest
        .lorries
        .iter()
        .filter_map(|(path, refs)| {
            primary_ref(refs).map(|(_, oid)| format!("{path} {oid} {base}/{path}.git\n"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_take_the_primary_ref_and_xml_is_escaped() {
        let refs = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        let manifest = SnapshotManifest {
            name: "r&d".into(),
            taken: 0,
            prefix: String::new(),
            lorries: BTreeMap::from([
                (
                    "a\"<b>&c".to_owned(),
                    refs(&[("refs/heads/dev", "1"), ("refs/heads/master", "2")]),
                ),
                ("only-tags".to_owned(), refs(&[("refs/tags/v1", "3")])),
                (
                    "branches".to_owned(),
                    refs(&[("refs/heads/x", "4"), ("refs/tags/a", "5")]),
                ),
                ("empty".to_owned(), BTreeMap::new()),
            ]),
        };
        let xml = repo_manifest(&manifest, "https://h/base/");
        assert!(
            xml.contains("<notice>lorry-controller snapshot r&amp;d taken"),
            "{xml}"
        );
        assert!(
            xml.contains("<remote name=\"lorry\" fetch=\"https://h/base\"/>"),
            "{xml}"
        );
        assert!(
            xml.contains("<project name=\"a&quot;&lt;b&gt;&amp;c.git\" path=\"a&quot;&lt;b&gt;&amp;c\" revision=\"2\" upstream=\"refs/heads/master\"/>"),
            "{xml}"
        );
        assert!(
            xml.contains("revision=\"3\" upstream=\"refs/tags/v1\""),
            "{xml}"
        );
        assert!(
            xml.contains("revision=\"4\" upstream=\"refs/heads/x\""),
            "{xml}"
        );
        assert!(!xml.contains("empty"), "{xml}");
        assert_eq!(
            text_manifest(&manifest, "file:///d"),
            "a\"<b>&c 2 file:///d/a\"<b>&c.git\nbranches 4 file:///d/branches.git\nonly-tags 3 file:///d/only-tags.git\n"
        );
    }
}
