//! `git http-backend` on loopback, behind a small CGI bridge in Python: a
//! real smart-HTTP git server for upstreams and CONFGITs in tests.

use std::path::Path;
use std::process::{Child, Command, Stdio};

use super::{READY_TIMEOUT, wait_for};

/// A CGI bridge to `git http-backend`, serving `root` on 127.0.0.1.
const CGI_BRIDGE: &str = r#"
import base64, http.server, os, subprocess, sys
root, port_file = sys.argv[1], sys.argv[2]
auth = os.environ.get('BRIDGE_AUTH')
class H(http.server.BaseHTTPRequestHandler):
    def handle_one(self):
        if auth and self.headers.get('Authorization') != 'Basic ' + base64.b64encode(auth.encode()).decode():
            self.send_response(401)
            self.send_header('WWW-Authenticate', 'Basic realm="git"')
            self.send_header('Content-Length', '0')
            self.end_headers()
            return
        path, _, query = self.path.partition('?')
        length = int(self.headers.get('Content-Length') or 0)
        body = self.rfile.read(length) if length else b''
        env = dict(os.environ, GIT_PROJECT_ROOT=root, GIT_HTTP_EXPORT_ALL='1',
                   REQUEST_METHOD=self.command, PATH_INFO=path, QUERY_STRING=query,
                   CONTENT_TYPE=self.headers.get('Content-Type') or '',
                   CONTENT_LENGTH=str(len(body)), REMOTE_ADDR='127.0.0.1',
                   GIT_PROTOCOL=self.headers.get('Git-Protocol') or '')
        out = subprocess.run(['git', 'http-backend'], input=body, env=env,
                             capture_output=True).stdout
        head, _, payload = out.partition(b'\r\n\r\n')
        status = 200
        headers = []
        for line in head.split(b'\r\n'):
            k, _, v = line.decode().partition(':')
            if k.lower() == 'status':
                status = int(v.strip().split()[0])
            elif k:
                headers.append((k, v.strip()))
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header('Content-Length', str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
    do_GET = handle_one
    do_POST = handle_one
    def log_message(self, *a):
        pass
s = http.server.ThreadingHTTPServer(('127.0.0.1', 0), H)
with open(port_file + '.tmp', 'w') as f:
    f.write(str(s.server_address[1]))
os.rename(port_file + '.tmp', port_file)
s.serve_forever()
"#;

/// The bridge's process, killed when dropped.
pub struct HttpServer(Child);

impl Drop for HttpServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Serves the repositories under `root` over HTTP (as
/// `http://127.0.0.1:PORT/<name>.git`); `dir` holds the port file.
pub fn serve_http(root: &Path, dir: &Path) -> (HttpServer, u16) {
    serve_http_with_auth(root, dir, None)
}

/// [`serve_http`], answering 401 unless a request carries HTTP basic
/// authentication with `user_password` (`user:password`).
pub fn serve_http_with_auth(
    root: &Path,
    dir: &Path,
    user_password: Option<&str>,
) -> (HttpServer, u16) {
    let port_file = dir.join("http.port");
    let _ = std::fs::remove_file(&port_file);
    let child = Command::new("python3")
        .args(["-c", CGI_BRIDGE])
        .env("BRIDGE_AUTH", user_password.unwrap_or(""))
        .arg(root)
        .arg(&port_file)
        .stdin(Stdio::null())
        .spawn()
        .expect("python3");
    let server = HttpServer(child);
    let port = wait_for("the HTTP server's port file", READY_TIMEOUT, || {
        std::fs::read_to_string(&port_file)
            .ok()?
            .trim()
            .parse()
            .ok()
    });
    (server, port)
}
