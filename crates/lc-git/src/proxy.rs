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

/// Relays `input` to `stream` and `stream` to `output`, flushing each
/// piece, with Nagle's algorithm off on `stream`, until either the server
/// closes or `input` ends. git closes its ends of the proxy's pipes only
/// when its conversation is over (listings and fetches; pushes do not come
/// here), so the end of `input` ends the relay even when the server keeps
/// the connection open: a server that never hangs up cannot keep git, and
/// the run, waiting. The input side runs on a thread of its own.
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
        // Both ways: the read below returns at once.
        let _ = up.shutdown(Shutdown::Both);
    });
    let mut down = stream;
    let mut buf = vec![0; 64 * 1024];
    loop {
        let n = match down.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            // Shut down by the input side.
            Err(e) if e.kind() == std::io::ErrorKind::NotConnected => break,
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

    /// The relay in a thread of its own, its input and output through
    /// socket pairs; answers the test's ends and the relay's outcome.
    fn relay_on(
        port: u16,
    ) -> (
        std::os::unix::net::UnixStream,
        std::os::unix::net::UnixStream,
        std::sync::mpsc::Receiver<std::io::Result<bool>>,
    ) {
        use std::os::unix::net::UnixStream;
        let (to_relay, input) = UnixStream::pair().expect("pair");
        let (output, from_relay) = UnixStream::pair().expect("pair");
        let (done, outcome) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
            let result = relay(&stream, input, output);
            let _ = done.send(result.map(|()| stream.nodelay().unwrap_or(false)));
        });
        (to_relay, from_relay, outcome)
    }

    /// A hang guard, not a timing: a relay that never ends fails here.
    const ENDS_WITHIN: std::time::Duration = std::time::Duration::from_secs(30);

    #[test]
    fn relays_both_ways_until_the_server_closes() {
        let (port, server) = upper_server();
        let (mut to_relay, mut from_relay, outcome) = relay_on(port);
        to_relay.write_all(b"want abc\n").expect("write");
        let mut answer = [0; 9];
        from_relay.read_exact(&mut answer).expect("answer");
        assert_eq!(&answer, b"WANT ABC\n");
        to_relay.write_all(b"0000done\n").expect("write");
        let mut answer = [0; 9];
        from_relay.read_exact(&mut answer).expect("answer");
        assert_eq!(&answer, b"0000DONE\n");
        drop(to_relay);
        let nodelay = outcome.recv_timeout(ENDS_WITHIN).expect("ended");
        assert!(nodelay.expect("relay"));
        // The server saw the end of the input.
        assert!(server.join().expect("server"));
    }

    /// git done with a server that never hangs up nor answers: the relay
    /// ends all the same.
    #[test]
    fn the_end_of_gits_input_ends_the_relay_even_if_the_server_stays() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let held = std::thread::spawn(move || {
            let (conn, _) = listener.accept().expect("accept");
            // Held open, never answered, for as long as the test runs.
            std::thread::sleep(ENDS_WITHIN * 2);
            drop(conn);
        });
        let (mut to_relay, _from_relay, outcome) = relay_on(port);
        to_relay.write_all(b"0000").expect("write");
        drop(to_relay);
        outcome
            .recv_timeout(ENDS_WITHIN)
            .expect("the relay ended")
            .expect("relay");
        drop(held);
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
