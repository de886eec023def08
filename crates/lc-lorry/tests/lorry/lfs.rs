//! Git LFS against the real git-lfs: an upstream served by `git
//! http-backend` with a small LFS batch-API server beside it, mirrored to a
//! local downstream (git-lfs's standalone file transfer), then cloned from
//! there with every LFS file checked.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::*;

const NAME: &str = "big/assets";
const AUTH: &str = "lfsuser:s3cret-lfs";

/// Smart HTTP through `git http-backend`, and the LFS API of each served
/// repository, as git-lfs's docs/api/batch.md and basic-transfers.md
/// describe it. Every request needs HTTP basic authentication with
/// `BRIDGE_AUTH`. Each object download is appended to `<root>/downloads`.
const SERVER: &str = r#"
import base64, hashlib, http.server, json, os, re, subprocess, sys
root, port_file = sys.argv[1], sys.argv[2]
auth = 'Basic ' + base64.b64encode(os.environ['BRIDGE_AUTH'].encode()).decode()
LFS = 'application/vnd.git-lfs+json'
OID = re.compile(r'^[0-9a-f]{64}$')
def store(repo, oid):
    return os.path.join(root, repo, 'lfs', 'objects', oid[0:2], oid[2:4], oid)
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    def reply(self, status, body, ctype, extra=()):
        self.send_response(status)
        self.send_header('Content-Type', ctype)
        for k, v in extra:
            self.send_header(k, v)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def lfs_error(self, status, message, extra=()):
        # batch.md "Response Errors": a JSON body with `message`, no `objects`.
        self.reply(status, json.dumps({'message': message}).encode(), LFS, extra)
    def handle_one(self):
        path, _, query = self.path.partition('?')
        length = int(self.headers.get('Content-Length') or 0)
        body = self.rfile.read(length) if length else b''
        if self.headers.get('Authorization') != auth:
            if '/info/lfs/' in path or path.startswith('/lfs-blob/'):
                # batch.md: 401 with LFS-Authenticate; git-lfs then asks
                # git's credential helpers and retries.
                return self.lfs_error(401, 'Credentials needed',
                                      [('LFS-Authenticate', 'Basic realm="Git LFS"')])
            return self.reply(401, b'', 'text/plain', [('WWW-Authenticate', 'Basic realm="git"')])
        m = re.match(r'^/(.+\.git)/info/lfs/objects/batch$', path)
        if m:
            return self.batch(m.group(1), body)
        m = re.match(r'^/lfs-blob/(.+\.git)/([0-9a-f]{64})$', path)
        if m:
            return self.blob(m.group(1), m.group(2), body)
        if '/info/lfs' in path:
            return self.lfs_error(404, 'Not found')
        env = dict(os.environ, GIT_PROJECT_ROOT=root, GIT_HTTP_EXPORT_ALL='1',
                   REQUEST_METHOD=self.command, PATH_INFO=path, QUERY_STRING=query,
                   CONTENT_TYPE=self.headers.get('Content-Type') or '',
                   CONTENT_LENGTH=str(len(body)), REMOTE_ADDR='127.0.0.1',
                   GIT_PROTOCOL=self.headers.get('Git-Protocol') or '')
        out = subprocess.run(['git', 'http-backend'], input=body, env=env,
                             capture_output=True).stdout
        head, _, payload = out.partition(b'\r\n\r\n')
        status, headers = 200, []
        for line in head.split(b'\r\n'):
            k, _, v = line.decode().partition(':')
            if k.lower() == 'status':
                status = int(v.strip().split()[0])
            elif k and k.lower() != 'content-length':
                headers.append((k, v.strip()))
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header('Content-Length', str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
    def batch(self, repo, body):
        # batch.md: POST only, with Accept and Content-Type both
        # application/vnd.git-lfs+json (406 for a wrong Accept).
        if self.command != 'POST':
            return self.lfs_error(501, 'batch is POST only')
        if not (self.headers.get('Accept') or '').startswith(LFS):
            return self.lfs_error(406, 'Accept must be ' + LFS)
        if not (self.headers.get('Content-Type') or '').startswith(LFS):
            return self.lfs_error(422, 'Content-Type must be ' + LFS)
        if not os.path.isdir(os.path.join(root, repo)):
            return self.lfs_error(404, 'Not found')
        try:
            req = json.loads(body)
        except ValueError:
            return self.lfs_error(422, 'body is not JSON')
        op = req.get('operation')
        if op not in ('download', 'upload'):
            return self.lfs_error(422, 'operation must be download or upload')
        # batch.md: transfers omitted means basic; only basic is served here.
        if 'basic' not in req.get('transfers', ['basic']):
            return self.lfs_error(422, 'only the basic transfer adapter')
        if req.get('hash_algo', 'sha256') != 'sha256':
            return self.lfs_error(409, 'sha256 only')
        objects = req.get('objects')
        if not isinstance(objects, list) or not objects:
            return self.lfs_error(422, 'objects must be a non-empty list')
        host = self.headers.get('Host')
        out = []
        for o in objects:
            oid, size = o.get('oid'), o.get('size')
            item = {'oid': oid, 'size': size}
            if not isinstance(oid, str) or not OID.match(oid) or not isinstance(size, int) or size < 0:
                item['error'] = {'code': 422, 'message': 'bad oid or size'}
            elif op == 'download':
                f = store(repo, oid)
                if not os.path.isfile(f):
                    # batch.md: a per-object 404 in a 200 answer.
                    item['error'] = {'code': 404, 'message': 'Object does not exist'}
                elif os.path.getsize(f) != size:
                    item['error'] = {'code': 422, 'message': 'size mismatch'}
                else:
                    item['actions'] = {'download': {
                        'href': 'http://%s/lfs-blob/%s/%s' % (host, repo, oid), 'expires_in': 3600}}
            elif not os.path.isfile(store(repo, oid)):
                # batch.md: no `actions` for an object the server has.
                item['actions'] = {'upload': {
                    'href': 'http://%s/lfs-blob/%s/%s' % (host, repo, oid), 'expires_in': 3600}}
            out.append(item)
        self.reply(200, json.dumps({'transfer': 'basic', 'objects': out,
                                    'hash_algo': 'sha256'}).encode(), LFS)
    def blob(self, repo, oid, body):
        f = store(repo, oid)
        if self.command == 'GET':
            if not os.path.isfile(f):
                return self.lfs_error(404, 'Object does not exist')
            with open(os.path.join(root, 'downloads'), 'a') as log:
                log.write(oid + '\n')
            with open(f, 'rb') as data:
                return self.reply(200, data.read(), 'application/octet-stream')
        if self.command == 'PUT':
            # basic-transfers.md: the body is the object; its sha256 is its oid.
            if hashlib.sha256(body).hexdigest() != oid:
                return self.lfs_error(422, 'content does not match the oid')
            os.makedirs(os.path.dirname(f), exist_ok=True)
            with open(f, 'wb') as data:
                data.write(body)
            return self.reply(200, b'', 'text/plain')
        return self.lfs_error(501, 'GET or PUT')
    do_GET = handle_one
    do_POST = handle_one
    do_PUT = handle_one
    def log_message(self, *a):
        pass
s = http.server.ThreadingHTTPServer(('127.0.0.1', 0), H)
with open(port_file + '.tmp', 'w') as f:
    f.write(str(s.server_address[1]))
os.rename(port_file + '.tmp', port_file)
s.serve_forever()
"#;

struct LfsServer {
    child: Child,
    port: u16,
    root: PathBuf,
}

impl LfsServer {
    fn start(root: &Path) -> Self {
        let port_file = root.join("port");
        let child = Command::new("python3")
            .args(["-c", SERVER])
            .arg(root)
            .arg(&port_file)
            .env("BRIDGE_AUTH", AUTH)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .stdin(Stdio::null())
            .spawn()
            .expect("python3");
        let deadline = Instant::now() + Duration::from_secs(30);
        let port = loop {
            if let Some(port) = std::fs::read_to_string(&port_file)
                .ok()
                .and_then(|p| p.trim().parse().ok())
            {
                break port;
            }
            assert!(Instant::now() < deadline, "LFS server did not start");
            std::thread::sleep(Duration::from_millis(20));
        };
        Self {
            child,
            port,
            root: root.to_owned(),
        }
    }

    fn url(&self, repo: &str) -> String {
        format!("http://{AUTH}@127.0.0.1:{}/{repo}", self.port)
    }

    /// The oids downloaded so far, in order.
    fn downloads(&self) -> Vec<String> {
        std::fs::read_to_string(self.root.join("downloads"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for LfsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A work tree whose `*.bin` files are in LFS; `files` remembers every
/// version written (path at a commit → content).
struct LfsUpstream {
    work: PathBuf,
    counter: u64,
}

impl LfsUpstream {
    fn new(dir: PathBuf) -> Self {
        std::fs::create_dir_all(&dir).expect("mkdir");
        git(&dir, &["init", "-q", "-b", "main"]);
        git(&dir, &["lfs", "install", "--local"]);
        git(&dir, &["lfs", "track", "*.bin"]);
        git(&dir, &["add", ".gitattributes"]);
        git(&dir, &["commit", "-q", "-m", "track"]);
        Self {
            work: dir,
            counter: 0,
        }
    }

    /// Content no two calls share.
    fn content(&mut self, size: usize) -> Vec<u8> {
        self.counter += 1;
        let seed = self.counter;
        (0..size)
            .map(|i| ((i as u64).wrapping_mul(2654435761) ^ seed.wrapping_mul(40503)) as u8)
            .collect()
    }

    fn write(&mut self, path: &str, size: usize) -> Vec<u8> {
        let data = self.content(size);
        let file = self.work.join(path);
        std::fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
        std::fs::write(&file, &data).expect("write");
        git(&self.work, &["add", path]);
        data
    }

    fn commit(&self, message: &str) {
        git(&self.work, &["commit", "-q", "-m", message]);
    }

    /// The oids git-lfs stored for the work tree.
    fn lfs_oids(&self) -> Vec<String> {
        let mut oids: Vec<String> = walk(&self.work.join(".git/lfs/objects"))
            .iter()
            .filter_map(|p| p.file_name()?.to_str().map(str::to_owned))
            .collect();
        oids.sort();
        oids
    }

    /// Serves the repository as `<root>/<name>`: a bare clone with the LFS
    /// objects in its store.
    fn publish(&self, root: &Path, name: &str) -> PathBuf {
        let bare = root.join(name);
        if bare.exists() {
            git(
                &bare,
                &[
                    "fetch",
                    "-q",
                    "--prune",
                    &self.work.display().to_string(),
                    "+refs/*:refs/*",
                ],
            );
        } else {
            git(
                root,
                &[
                    "clone",
                    "-q",
                    "--bare",
                    &self.work.display().to_string(),
                    name,
                ],
            );
        }
        for file in walk(&self.work.join(".git/lfs/objects")) {
            let rel = file
                .strip_prefix(self.work.join(".git"))
                .expect("under .git");
            let dest = bare.join(rel);
            std::fs::create_dir_all(dest.parent().expect("parent")).expect("mkdir");
            std::fs::copy(&file, &dest).expect("copy");
        }
        bare
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out
}

fn lfs_store_oids(bare: &Path) -> Vec<String> {
    let mut oids: Vec<String> = walk(&bare.join("lfs/objects"))
        .iter()
        .filter_map(|p| p.file_name()?.to_str().map(str::to_owned))
        .collect();
    oids.sort();
    oids
}

/// Clones `down` with git-lfs's filters and checks, on every branch, that
/// each file of `expect` has its content.
fn check_clone(area: &Area, down: &Path, expect: &BTreeMap<&str, BTreeMap<&str, Vec<u8>>>) {
    let clone = area.path().join("clone");
    let _ = std::fs::remove_dir_all(&clone);
    let lfs_filters = [
        "-c",
        "filter.lfs.process=git-lfs filter-process",
        "-c",
        "filter.lfs.smudge=git-lfs smudge -- %f",
        "-c",
        "filter.lfs.clean=git-lfs clean -- %f",
        "-c",
        "filter.lfs.required=true",
    ];
    let url = format!("file://{}", down.display());
    let mut args: Vec<&str> = lfs_filters.to_vec();
    args.extend(["clone", "-q", &url, "clone"]);
    git(area.path(), &args);
    for (branch, files) in expect {
        let origin = format!("origin/{branch}");
        let mut args: Vec<&str> = lfs_filters.to_vec();
        args.extend(["checkout", "-q", "-B", branch, &origin]);
        git(&clone, &args);
        for (path, content) in files {
            let got = std::fs::read(clone.join(path)).expect("read checked-out file");
            assert!(
                got == *content,
                "{branch}:{path}: {} bytes checked out, not the {} bytes written (a pointer file?)",
                got.len(),
                content.len()
            );
        }
    }
}

#[test]
fn lfs_objects_reach_the_downstream_before_the_refs_and_clone_whole() {
    let area = Area::new();
    let served = area.path().join("served");
    std::fs::create_dir_all(&served).expect("mkdir");
    let mut up = LfsUpstream::new(area.path().join("work"));
    let old_a = up.write("a.bin", 200_000);
    up.commit("a");
    let a = up.write("a.bin", 150_000);
    let b = up.write("data/b.bin", 3_000);
    up.commit("a again, and b");
    git(&up.work, &["tag", "-a", "-m", "v1", "v1"]);
    git(&up.work, &["checkout", "-q", "-b", "feature"]);
    let c = up.write("c.bin", 70_000);
    up.commit("c");
    git(&up.work, &["checkout", "-q", "main"]);
    up.publish(&served, "assets.git");
    let server = LfsServer::start(&served);
    let down = area.downstream(NAME);
    let file = area.lorry_file(
        "p.lorry",
        &json!({ NAME: { "type": "git", "url": server.url("assets.git"), "lfs": true }}),
    );

    let result_file = area.path().join("result.json");
    let option = format!("--result-file={}", result_file.display());
    let result = || -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(&result_file).expect("result")).expect("json")
    };
    let run = area.run(&[&file], &[&option]);
    assert_eq!(run.code, 0, "{}", run.all_output());
    assert!(!run.all_output().contains("s3cret"), "{}", run.all_output());
    // The LFS bytes are counted: every version of every file.
    let all_lfs = (200_000 + 150_000 + 3_000 + 70_000) as u64;
    assert_eq!(result()["specs"][0]["lfs_bytes_received"], all_lfs);
    assert_eq!(result()["specs"][0]["lfs_bytes"], all_lfs);
    assert!(
        run.out.contains(&format!(" lfs_bytes_received={all_lfs} ")),
        "{}",
        run.out
    );
    assert!(
        !run.git.iter().any(|l| l.contains("s3cret")),
        "{:?}",
        run.git
    );
    let oids = up.lfs_oids();
    assert_eq!(
        oids.len(),
        4,
        "every version of every file, the old a.bin too"
    );
    assert_eq!(lfs_store_oids(&area.mirror(NAME)), oids);
    assert_eq!(lfs_store_oids(&down), oids);
    // The LFS push came before the first ref push.
    let lfs_push = run
        .git
        .iter()
        .position(|l| l.contains("lfs push"))
        .expect("lfs push");
    let ref_push = run
        .git
        .iter()
        .position(|l| l.starts_with("push"))
        .expect("push");
    assert!(lfs_push < ref_push, "{:?}", run.git);
    assert!(run.out.contains("LFS: 4 objects"), "{}", run.out);

    let main = BTreeMap::from([("a.bin", a.clone()), ("data/b.bin", b.clone())]);
    let feature = BTreeMap::from([("a.bin", a), ("data/b.bin", b), ("c.bin", c)]);
    check_clone(
        &area,
        &down,
        &BTreeMap::from([("main", main), ("feature", feature)]),
    );
    // The old version is there too (history, not only tips).
    let clone = area.path().join("clone");
    git(
        &clone,
        &[
            "-c",
            "filter.lfs.process=git-lfs filter-process",
            "-c",
            "filter.lfs.required=true",
            "checkout",
            "-q",
            "v1~1",
        ],
    );
    assert!(std::fs::read(clone.join("a.bin")).expect("old a") == old_a);

    // One more commit: only its object is downloaded.
    let before = server.downloads().len();
    assert_eq!(before, 4, "{:?}", server.downloads());
    let d = up.write("d.bin", 10_000);
    up.commit("d");
    up.publish(&served, "assets.git");
    let run = area.run(&[&file], &[&option]);
    assert_eq!(run.code, 0, "{}", run.all_output());
    assert_eq!(result()["specs"][0]["lfs_bytes_received"], 10_000);
    assert_eq!(result()["specs"][0]["lfs_bytes"], all_lfs + 10_000);
    let downloads = server.downloads();
    assert_eq!(downloads.len(), 5, "{downloads:?}");
    assert_eq!(lfs_store_oids(&down).len(), 5);
    let main = BTreeMap::from([("d.bin", d)]);
    check_clone(&area, &down, &BTreeMap::from([("main", main)]));
}

#[test]
fn an_lfs_object_missing_upstream_fails_the_run_and_no_ref_is_pushed() {
    let area = Area::new();
    let served = area.path().join("served");
    std::fs::create_dir_all(&served).expect("mkdir");
    let mut up = LfsUpstream::new(area.path().join("work"));
    up.write("a.bin", 5_000);
    up.commit("a");
    let bare = up.publish(&served, "assets.git");
    let server = LfsServer::start(&served);
    let down = area.downstream(NAME);
    let file = area.lorry_file(
        "p.lorry",
        &json!({ NAME: { "type": "git", "url": server.url("assets.git"), "lfs": true }}),
    );
    let run = area.run(&[&file], &[]);
    assert_eq!(run.code, 0, "{}", run.all_output());
    let good = refs(&down);

    // A new commit whose object the upstream's LFS store lost.
    up.write("b.bin", 6_000);
    up.commit("b");
    let lost: Vec<String> = {
        let before = lfs_store_oids(&bare);
        up.publish(&served, "assets.git");
        lfs_store_oids(&bare)
            .into_iter()
            .filter(|o| !before.contains(o))
            .collect()
    };
    assert_eq!(lost.len(), 1);
    for path in walk(&bare.join("lfs/objects")) {
        if path.ends_with(&lost[0]) {
            std::fs::remove_file(path).expect("remove");
        }
    }
    let run = area.run(&[&file], &[]);
    assert_eq!(run.code, 1, "{}", run.all_output());
    assert!(run.err.contains(NAME), "{}", run.err);
    assert!(
        !run.git.iter().any(|l| l.starts_with("push")),
        "{:?}",
        run.git
    );
    assert_eq!(refs(&down), good, "the downstream did not move");
    assert!(!lfs_store_oids(&down).contains(&lost[0]));
    // The next run tries again (no stale record makes it skip).
    let run = area.run(&[&file], &[]);
    assert_eq!(run.code, 1, "{}", run.all_output());
}

#[test]
fn lfs_default_is_harmless_for_repositories_without_lfs_and_a_spec_can_turn_it_off() {
    let area = Area::new();
    let up = Upstream::new(area.path().join("up"));
    let down = area.downstream(NAME);
    let file = area.lorry_file(
        "p.lorry",
        &json!({ NAME: { "type": "git", "url": up.url() }}),
    );
    let run = area.run(&[&file], &["--lfs-default"]);
    assert_eq!(run.code, 0, "{}", run.all_output());
    assert!(
        run.git.iter().any(|l| l.contains("lfs fetch")),
        "{:?}",
        run.git
    );
    assert_eq!(heads_and_tags(&down), up.heads_and_tags());
    let other = "big/other";
    area.downstream(other);
    let file = area.lorry_file(
        "q.lorry",
        &json!({ other: { "type": "git", "url": up.url(), "lfs": false }}),
    );
    let run = area.run(&[&file], &["--lfs-default"]);
    assert_eq!(run.code, 0, "{}", run.all_output());
    assert!(!run.git.iter().any(|l| l.contains("lfs")), "{:?}", run.git);
}

#[test]
fn raw_files_with_lfs_are_stored_in_lfs_and_clone_whole() {
    use sha2::{Digest, Sha256};
    let area = Area::new();
    let server = crate::http::HttpServer::start();
    let image: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let notes = b"notes\n".to_vec();
    let hex = |data: &[u8]| -> String {
        Sha256::digest(data)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    server.put("/fw/image.bin", image.clone());
    server.put("/doc/notes.txt", notes.clone());
    let name = "raw/fw";
    let down = area.downstream(name);
    let file = area.lorry_file(
        "r.lorry",
        &json!({ name: { "type": "raw-file", "lfs": true, "urls": [
            { "url": server.url("/fw/image.bin"), "destination": "firmware", "sha256sum": hex(&image) },
            { "url": server.url("/doc/notes.txt") },
        ] } }),
    );
    let result_file = area.path().join("result.json");
    let option = format!("--result-file={}", result_file.display());
    let run = area.run(&[&file], &[&option]);
    assert_eq!(run.code, 0, "{}", run.all_output());
    // git holds pointers; the mirror's and the downstream's LFS stores
    // hold the files.
    let pointer = git(&down, &["cat-file", "-p", "master:firmware/image.bin"]);
    assert_eq!(
        pointer,
        format!(
            "version https://git-lfs.github.com/spec/v1\noid sha256:{}\nsize {}",
            hex(&image),
            image.len()
        )
    );
    assert_eq!(
        git(&down, &["cat-file", "-p", "master:.gitattributes"]),
        "/firmware/image.bin filter=lfs diff=lfs merge=lfs -text\n\
         /notes.txt filter=lfs diff=lfs merge=lfs -text"
    );
    let mut oids = vec![hex(&image), hex(&notes)];
    oids.sort();
    assert_eq!(lfs_store_oids(&area.mirror(name)), oids);
    assert_eq!(lfs_store_oids(&down), oids);
    let result: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&result_file).expect("result"))
            .expect("json");
    let bytes = (image.len() + notes.len()) as u64;
    assert_eq!(result["specs"][0]["lfs_bytes"], bytes);
    // The LFS objects were pushed before the ref.
    let lfs_push = run.git.iter().position(|l| l.contains("lfs push"));
    let ref_push = run.git.iter().position(|l| l.starts_with("push"));
    assert!(
        matches!((lfs_push, ref_push), (Some(l), Some(r)) if l < r),
        "{:?}",
        run.git
    );
    check_clone(
        &area,
        &down,
        &BTreeMap::from([(
            "master",
            BTreeMap::from([
                ("firmware/image.bin", image.clone()),
                ("notes.txt", notes.clone()),
            ]),
        )]),
    );

    // A file added later joins the store; the old ones are not fetched again.
    let more = b"more data\n".to_vec();
    server.put("/doc/more.txt", more.clone());
    let file = area.lorry_file(
        "r.lorry",
        &json!({ name: { "type": "raw-file", "lfs": true, "urls": [
            { "url": server.url("/fw/image.bin"), "destination": "firmware", "sha256sum": hex(&image) },
            { "url": server.url("/doc/notes.txt") },
            { "url": server.url("/doc/more.txt") },
        ] } }),
    );
    let run = area.run(&[&file], &[&option]);
    assert_eq!(run.code, 0, "{}", run.all_output());
    assert_eq!(server.hits("/fw/image.bin"), 1);
    assert_eq!(lfs_store_oids(&down).len(), 3);
    check_clone(
        &area,
        &down,
        &BTreeMap::from([(
            "master",
            BTreeMap::from([("firmware/image.bin", image), ("more.txt", more)]),
        )]),
    );
}

/// A raw-file mirror that turns `lfs` on keeps its earlier files as
/// ordinary blobs, and `.gitattributes` names only the LFS ones, so
/// git-lfs finds every file what its attributes say it is.
#[test]
fn raw_files_turning_lfs_on_later_keep_their_old_files_plain() {
    let area = Area::new();
    let server = crate::http::HttpServer::start();
    let old = b"old plain file\n".to_vec();
    let new = b"new large file\n".to_vec();
    server.put("/old.txt", old.clone());
    server.put("/new.bin", new.clone());
    let name = "raw/mixed";
    let down = area.downstream(name);
    let spec = |lfs: bool, urls: &[&str]| {
        let urls: Vec<serde_json::Value> = urls
            .iter()
            .map(|u| json!({ "url": server.url(u) }))
            .collect();
        area.lorry_file(
            "m.lorry",
            &json!({ name: { "type": "raw-file", "lfs": lfs, "urls": urls } }),
        )
    };
    let run = area.run(&[&spec(false, &["/old.txt"])], &[]);
    assert_eq!(run.code, 0, "{}", run.all_output());
    let run = area.run(&[&spec(true, &["/old.txt", "/new.bin"])], &[]);
    assert_eq!(run.code, 0, "{}", run.all_output());
    assert_eq!(
        git(&down, &["cat-file", "-p", "master:old.txt"]),
        "old plain file"
    );
    assert_eq!(
        git(&down, &["cat-file", "-p", "master:.gitattributes"]),
        "/new.bin filter=lfs diff=lfs merge=lfs -text"
    );
    check_clone(
        &area,
        &down,
        &BTreeMap::from([(
            "master",
            BTreeMap::from([("old.txt", old), ("new.bin", new)]),
        )]),
    );
    // git-lfs finds nothing amiss: every pointer where the attributes
    // say, and no plain file where they ask for one.
    let clone = area.path().join("clone");
    let fsck = git(&clone, &["lfs", "fsck", "--pointers"]);
    assert!(!fsck.contains("should have been"), "{fsck}");
}

/// The attribute line of an awkward name matches that name, and only it,
/// as git reads it.
#[test]
fn lfs_attribute_lines_match_exactly_their_path() {
    let area = Area::new();
    let repo = area.path().join("attrs");
    std::fs::create_dir_all(&repo).expect("mkdir");
    git(&repo, &["init", "-q"]);
    let awkward = "dir/my file [1]*?.bin";
    std::fs::write(
        repo.join(".gitattributes"),
        format!("{}\n", lc_lorry::lfs::attribute_line(awkward)),
    )
    .expect("write");
    let filter = |path: &str| git(&repo, &["check-attr", "filter", "--", path]);
    assert!(
        filter(awkward).ends_with(": filter: lfs"),
        "{}",
        filter(awkward)
    );
    for other in [
        "dir/my file 1x.bin",
        "dir/my_file [1]*?.bin",
        "x/dir/my file [1]*?.bin",
    ] {
        assert!(
            filter(other).ends_with(": filter: unspecified"),
            "{other}: {}",
            filter(other)
        );
    }
}
