//! A `core.gitProxy` for `git://` that turns Nagle's algorithm off.
//!
//! git writes its requests to `git daemon` as several small packets
//! (`want`, flush, then the `have`s and `done`; in protocol version 2 the
//! command, its capabilities and arguments). With Nagle's algorithm on,
//! the kernel holds each packet after the first until the first is
//! acknowledged, and the server delays that acknowledgement (about 40 ms
//! on Linux) because it is waiting for the rest of the request: every
//! exchange where the client speaks costs 40 ms, on loopback as across a
//! network. git's own connection has no way to set `TCP_NODELAY`; a
//! proxy command does (git runs it as `PROGRAM HOST PORT` and speaks the
//! protocol through its standard input and output). lorry names its own
//! program as the proxy, with [`CHILD_ENV`] set, and [`run`] relays.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};

/// Set in the environment of git commands whose `core.gitProxy` is the
/// calling program: that program, started with it, is the proxy.
pub const CHILD_ENV: &str = "LORRY_GIT_PROXY_CHILD";

/// Runs as git's proxy: `args` are the host and port git names (program
/// name not included). Connects, turns Nagle's algorithm off and relays
/// standard input to the server and the server to standard output until
/// the server closes. Returns the exit code; a failure is one line on
/// standard error, which git shows in its own.
pub fn run(args: &[OsString]) -> i32 {
    let [host, port] = args else {
        eprintln!(
            "git proxy: expected HOST PORT, got {} arguments",
            args.len()
        );
        return 2;
    };
    let host = host.to_string_lossy();
    let Ok(port) = port.to_string_lossy().parse::<u16>() else {
        eprintln!("git proxy: {:?} is not a port", port.to_string_lossy());
        return 2;
    };
    let stream = match TcpStream::connect((host.as_ref(), port)) {
        Ok(stream) => stream,
        Err(e) => {
            eprintln!("git proxy: cannot connect to {host}:{port}: {e}");
            return 1;
        }
    };
    match relay(&stream, std::io::stdin(), std::io::stdout()) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("git proxy: {host}:{port}: {e}");
            1
        }
    }
}

/// Relays `input` to `stream` (shutting its write side at the end of
/// `input`) and `stream` to `output`, flushing each piece, until `stream`
/// ends. Nagle's algorithm is off on `stream`. The input side runs on a
/// thread of its own, left behind when the server has closed (git may keep
/// its end open).
pub fn relay(
    stream: &TcpStream,
    mut input: impl Read + Send + 'static,
    mut output: impl Write,
) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut up = stream.try_clone()?;
    std::thread::spawn(move || {
        let mut buf = vec![0; 64 * 1024];
        loop {
            match input.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if up.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = up.shutdown(Shutdown::Write);
    });
    let mut down = stream;
    let mut buf = vec![0; 64 * 1024];
    loop {
        let n = match down.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        output.write_all(&buf[..n])?;
        output.flush()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A server that answers each piece it reads with it upper-cased, and
    /// closes after reading the end of its input.
    fn upper_server() -> (u16, std::thread::JoinHandle<bool>) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().expect("accept");
            let mut buf = [0; 1024];
            loop {
                match conn.read(&mut buf) {
                    Ok(0) => return true,
                    Ok(n) => conn
                        .write_all(&buf[..n].to_ascii_uppercase())
                        .expect("answer"),
                    Err(_) => return false,
                }
            }
        });
        (port, server)
    }

    #[test]
    fn relays_both_ways_until_the_server_closes() {
        let (port, server) = upper_server();
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        let mut output = Vec::new();
        relay(
            &stream,
            std::io::Cursor::new(b"want abc\n0000done\n".to_vec()),
            &mut output,
        )
        .expect("relay");
        assert!(stream.nodelay().expect("nodelay"));
        assert_eq!(output, b"WANT ABC\n0000DONE\n");
        // The server saw the end of the input (the write side shut).
        assert!(server.join().expect("server"));
    }

    #[test]
    fn bad_arguments_and_no_server_are_errors() {
        assert_eq!(run(&[]), 2);
        assert_eq!(run(&["h".into(), "no-port".into()]), 2);
        // A port nothing listens on: bind one, then free it.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        assert_eq!(run(&["127.0.0.1".into(), port.to_string().into()]), 1);
    }
}
