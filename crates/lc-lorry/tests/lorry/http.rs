//! A tiny HTTP/1.0 file server on 127.0.0.1 for archive and raw-file specs:
//! serves fixed bodies by path and counts the requests for each.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

type Files = Arc<Mutex<HashMap<String, Vec<u8>>>>;
type Hits = Arc<Mutex<HashMap<String, usize>>>;

pub struct HttpServer {
    pub port: u16,
    files: Files,
    hits: Hits,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl HttpServer {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let files: Files = Arc::default();
        let hits: Hits = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (files, hits, stop) = (files.clone(), hits.clone(), stop.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Ok(stream) = stream {
                        serve(stream, &files, &hits);
                    }
                }
            })
        };
        Self {
            port,
            files,
            hits,
            stop,
            thread: Some(thread),
        }
    }

    pub fn put(&self, path: &str, body: Vec<u8>) {
        self.files
            .lock()
            .expect("lock")
            .insert(path.to_owned(), body);
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn hits(&self, path: &str) -> usize {
        self.hits
            .lock()
            .expect("lock")
            .get(path)
            .copied()
            .unwrap_or(0)
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(stream: TcpStream, files: &Files, hits: &Hits) {
    let mut reader = BufReader::new(match stream.try_clone() {
        Ok(s) => s,
        Err(_) => return,
    });
    let mut request = String::new();
    if reader.read_line(&mut request).is_err() {
        return;
    }
    loop {
        let mut header = String::new();
        match reader.read_line(&mut header) {
            Ok(0) | Err(_) => break,
            Ok(_) if header.trim().is_empty() => break,
            Ok(_) => {}
        }
    }
    let path = request.split_whitespace().nth(1).unwrap_or("/").to_owned();
    *hits.lock().expect("lock").entry(path.clone()).or_default() += 1;
    let body = files.lock().expect("lock").get(&path).cloned();
    let mut stream = stream;
    let _ = match body {
        Some(body) => stream
            .write_all(
                format!(
                    "HTTP/1.0 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                )
                .as_bytes(),
            )
            .and_then(|_| stream.write_all(&body)),
        None => stream
            .write_all(b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
    };
}
