//! tarball, zip, gzip and raw-file specs against a local HTTP server.

use std::io::Write;

use serde_json::json;
use sha2::{Digest, Sha256};

use crate::common::*;
use crate::http::HttpServer;

const NAME: &str = "archives/pkg";

fn tar_gz(top: &str, version: &str) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut add = |path: &str, mode: u32, data: &[u8]| {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(mode);
        header.set_mtime(1_700_000_000);
        header.set_entry_type(tar::EntryType::Regular);
        builder
            .append_data(&mut header, format!("{top}/{path}"), data)
            .expect("append");
    };
    add("README", 0o644, format!("version {version}\n").as_bytes());
    add("bin/run", 0o755, b"#!/bin/sh\n");
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Symlink);
    header.set_size(0);
    header.set_mode(0o777);
    builder
        .append_link(&mut header, format!("{top}/link"), "README")
        .expect("link");
    let tar = builder.into_inner().expect("tar");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).expect("gz");
    gz.finish().expect("gz finish")
}

/// `git ls-tree -r` of a ref: path → (mode, content).
fn tree(repo: &std::path::Path, rev: &str) -> Vec<(String, String, String)> {
    git(repo, &["ls-tree", "-r", rev])
        .lines()
        .map(|line| {
            let (meta, path) = line.split_once('\t').expect("tab");
            let mut parts = meta.split_whitespace();
            let mode = parts.next().expect("mode").to_owned();
            let _kind = parts.next();
            let oid = parts.next().expect("oid");
            let content = git(repo, &["cat-file", "-p", oid]);
            (path.to_owned(), mode, content)
        })
        .collect()
}

#[test]
fn tarballs_are_imported_once_as_tagged_commits() {
    let area = Area::new();
    let server = HttpServer::start();
    server.put("/dl/pkg-1.0.tar.gz", tar_gz("pkg-1.0", "1.0"));
    server.put("/dl/pkg-1.1.tar.gz", tar_gz("pkg-1.1", "1.1"));
    let down = area.downstream(NAME);
    let spec = |v: &str| json!({ NAME: { "type": "tarball", "url": server.url(&format!("/dl/pkg-{v}.tar.gz")) } });
    let file = area.lorry_file("t.lorry", &spec("1.0"));

    let run = area.run(&[&file], &[]);
    assert_eq!(run.code, 0, "{}", run.all_output());
    let refs = heads_and_tags(&down);
    assert_eq!(
        refs.keys().collect::<Vec<_>>(),
        vec!["refs/heads/master", "refs/tags/pkg-1.0.tar.gz"]
    );
    // The same summary as for git.
    let last = run.out.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("lorry: summary: importer=tarball ok=yes refs_updated=2 refs_deleted=0 refs_preserved=0 bytes_received=")
            && last.ends_with(&format!(" pushed=yes lfs_bytes_received=0 submodules=0 name={NAME}")),
        "{last}"
    );
    assert_eq!(
        tree(&down, "master"),
        vec![
            ("README".into(), "100644".into(), "version 1.0".into()),
            ("bin/run".into(), "100755".into(), "#!/bin/sh".into()),
            ("link".into(), "120000".into(), "README".into()),
        ]
    );
    assert_eq!(server.hits("/dl/pkg-1.0.tar.gz"), 1);

    // Already imported: not fetched again, nothing pushed.
    let run = area.run(&[&file], &[]);
    assert_eq!(run.code, 0, "{}", run.all_output());
    assert_eq!(server.hits("/dl/pkg-1.0.tar.gz"), 1);
    assert!(!ran(&run, "push"), "{:?}", run.git);

    // A new version becomes a child commit with its own tag.
    let first = refs["refs/heads/master"].clone();
    let file = area.lorry_file("t.lorry", &spec("1.1"));
    let run = area.run(&[&file], &[]);
    assert_eq!(run.code, 0, "{}", run.all_output());
    assert_eq!(git(&down, &["rev-parse", "master^"]), first);
    assert_eq!(
        git(&down, &["cat-file", "-p", "pkg-1.1.tar.gz:README"]),
        "version 1.1"
    );
    assert!(heads_and_tags(&down).contains_key("refs/tags/pkg-1.0.tar.gz"));
}

#[test]
fn zip_and_gzip_archives_are_imported() {
    let area = Area::new();
    let server = HttpServer::start();
    let zip_bytes = {
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .unix_permissions(0o644);
        zip.start_file("src/main.c", options).expect("start");
        zip.write_all(b"int main(void) { return 0; }\n")
            .expect("write");
        zip.start_file("Makefile", options).expect("start");
        zip.write_all(b"all:\n").expect("write");
        zip.finish().expect("finish").into_inner()
    };
    server.put("/z/tool.zip", zip_bytes);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(b"plain data\n").expect("gz");
    server.put("/g/data.txt.gz", gz.finish().expect("gz"));
    let zdown = area.downstream("z/tool");
    let gdown = area.downstream("g/data");
    let file = area.lorry_file(
        "zg.lorry",
        &json!({
            "z/tool": { "type": "zip", "url": server.url("/z/tool.zip") },
            "g/data": { "type": "gzip", "url": server.url("/g/data.txt.gz") },
        }),
    );
    let run = area.run(&[&file], &[]);
    assert_eq!(run.code, 0, "{}", run.all_output());
    assert_eq!(
        git(&zdown, &["cat-file", "-p", "tool.zip:src/main.c"]),
        "int main(void) { return 0; }"
    );
    assert_eq!(git(&zdown, &["cat-file", "-p", "master:Makefile"]), "all:");
    assert_eq!(
        git(&gdown, &["cat-file", "-p", "data.txt.gz:data.txt"]),
        "plain data"
    );
}

#[test]
fn missing_and_corrupt_archives_fail_clearly() {
    let area = Area::new();
    let server = HttpServer::start();
    server.put("/bad.tar.gz", b"\x1f\x8bthis is not gzip".to_vec());
    area.downstream("a/missing");
    area.downstream("a/corrupt");
    let file = area.lorry_file(
        "x.lorry",
        &json!({
            "a/missing": { "type": "tarball", "url": server.url("/nope.tar.gz") },
            "a/corrupt": { "type": "tarball", "url": server.url("/bad.tar.gz") },
        }),
    );
    let run = area.run(&[&file], &[]);
    assert_eq!(run.code, 1);
    assert!(
        run.err.contains("Error mirroring a/missing") && run.err.contains("404"),
        "{}",
        run.err
    );
    assert!(
        run.err.contains("Error mirroring a/corrupt") && run.err.contains("bad.tar.gz"),
        "{}",
        run.err
    );
    assert!(heads_and_tags(&area.mirror("a/corrupt")).is_empty());
    // A bad download is not kept: the next run fetches it again.
    assert!(
        !area
            .working_area()
            .join("a%2Fcorrupt/archives/bad.tar.gz")
            .exists()
    );
    assert_eq!(server.hits("/bad.tar.gz"), 1);
    assert_eq!(area.run(&[&file], &[]).code, 1);
    assert_eq!(server.hits("/bad.tar.gz"), 2);
}

#[test]
fn raw_files_are_checked_and_committed_under_their_destination() {
    let area = Area::new();
    let server = HttpServer::start();
    let blob = b"firmware image\n".to_vec();
    let sum: String = Sha256::digest(&blob)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    server.put("/fw/image.bin", blob);
    server.put("/doc/notes.txt", b"notes\n".to_vec());
    let down = area.downstream("raw/fw");
    let file = area.lorry_file(
        "r.lorry",
        &json!({ "raw/fw": { "type": "raw-file", "urls": [
            { "url": server.url("/fw/image.bin"), "destination": "firmware", "sha256sum": sum },
            { "url": server.url("/doc/notes.txt") },
        ] } }),
    );
    let run = area.run(&[&file], &[]);
    assert_eq!(run.code, 0, "{}", run.all_output());
    assert_eq!(
        git(&down, &["cat-file", "-p", "master:firmware/image.bin"]),
        "firmware image"
    );
    assert_eq!(git(&down, &["cat-file", "-p", "master:notes.txt"]), "notes");

    // Not downloaded again.
    let run = area.run(&[&file], &[]);
    assert_eq!(run.code, 0, "{}", run.all_output());
    assert_eq!(server.hits("/fw/image.bin"), 1);
    assert!(!ran(&run, "push"));

    // A wrong checksum fails and commits nothing.
    let before = heads_and_tags(&down);
    server.put("/fw/other.bin", b"tampered".to_vec());
    let bad = area.lorry_file(
        "bad.lorry",
        &json!({ "raw/fw": { "type": "raw-file", "urls": [
            { "url": server.url("/fw/other.bin"), "sha256sum": "00".repeat(32) },
        ] } }),
    );
    let run = area.run(&[&bad], &[]);
    assert_eq!(run.code, 1);
    assert!(
        run.err.contains("sha256sum") && run.err.contains(&"00".repeat(32)),
        "{}",
        run.err
    );
    assert_eq!(heads_and_tags(&down), before);
}

/// `program -c` of `data`, e.g. xz or bzip2.
fn compress(program: &str, data: &[u8]) -> Vec<u8> {
    let mut child = std::process::Command::new(program)
        .arg("-c")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program} is needed ({e})"));
    let mut stdin = child.stdin.take().expect("stdin");
    let input = data.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().expect("wait");
    writer.join().expect("join").expect("write");
    assert!(out.status.success());
    out.stdout
}

#[test]
fn plain_xz_and_bzip2_tarballs_are_streamed_in() {
    let area = Area::new();
    let server = HttpServer::start();
    let tar = {
        let gz = tar_gz("top", "x");
        let mut plain = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut plain)
            .expect("gunzip");
        plain
    };
    server.put("/p.tar", tar.clone());
    server.put("/p.tar.xz", compress("xz", &tar));
    server.put("/p.tar.bz2", compress("bzip2", &tar));
    let mut truncated = compress("xz", &tar);
    truncated.truncate(truncated.len() / 2);
    server.put("/broken.tar.xz", truncated);
    let mut specs = serde_json::Map::new();
    for (name, path) in [
        ("k/plain", "/p.tar"),
        ("k/xz", "/p.tar.xz"),
        ("k/bz2", "/p.tar.bz2"),
        ("k/broken", "/broken.tar.xz"),
    ] {
        area.downstream(name);
        specs.insert(
            name.to_owned(),
            json!({ "type": "tarball", "url": server.url(path) }),
        );
    }
    let file = area.lorry_file("k.lorry", &serde_json::Value::Object(specs));
    let run = area.run(&[&file], &[]);
    assert_eq!(run.code, 1, "{}", run.all_output());
    assert_eq!(run.err.lines().count(), 1, "{}", run.err);
    assert!(
        run.err.starts_with("Error mirroring k/broken"),
        "{}",
        run.err
    );
    for name in ["k/plain", "k/xz", "k/bz2"] {
        let down = area.downstream(name);
        assert_eq!(
            git(&down, &["cat-file", "-p", "master:README"]),
            "version x",
            "{name}"
        );
    }
    assert!(heads_and_tags(&area.mirror("k/broken")).is_empty());
}
