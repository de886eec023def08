//! The connection loop: HTTP/1.1 with limits that a hostile client cannot
//! talk its way around.
//!
//! * At most `max_connections` connections are served at once; more wait in
//!   the kernel's backlog until one closes.
//! * A request's header must arrive within `header_read_timeout` of its
//!   first byte (and a new connection's first request within that time of
//!   the connection): a flood of half-sent headers holds connections only
//!   that long.
//! * A keep-alive connection idle between requests is closed after
//!   `idle_timeout`.
//! * Neither clock runs while a request is being answered, so a streaming
//!   answer (server-sent events, a long poll) is never cut.
//!
//! The clocks are kept by [`Watched`], a wrapper around the socket that
//! fails a read when its deadline passes (hyper then closes the
//! connection), and a per-connection [`Activity`] that the service wrapper
//! updates: a request counts as answered when hyper drops its response body,
//! that is once the body is sent or the connection is gone.
//! * On shutdown, connections finish the request they are serving.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::{Instant, Sleep};

/// Connection limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
}

pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
        }
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then lets the
/// open connections finish their requests.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    // hyper's own header-read timeout would also run between requests;
    // `Watched` keeps both clocks instead.
    builder.timer(TokioTimer::new()).header_read_timeout(None);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors and the like: wait, then retry.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let activity = Arc::new(Mutex::new(Activity::new()));
        let service = {
            let (router, activity) = (router.clone(), Arc::clone(&activity));
            hyper::service::service_fn(move |request| {
                let guard = Answering::start(&activity);
                let service = TowerToHyperService::new(router.clone());
                async move {
                    let response = hyper::service::Service::call(&service, request).await;
                    response.map(|r| {
                        r.map(|body| {
                            Body::new(GuardedBody {
                                body,
                                _guard: guard,
                            })
                        })
                    })
                }
            })
        };
        let io = Watched::new(stream, activity, limits);
        let conn = builder.serve_connection(TokioIo::new(io), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(err) = conn.await {
                tracing::debug!(error = %err, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// What a connection is doing, for its clocks.
#[derive(Debug)]
struct Activity {
    /// Requests being answered (their response body not yet dropped).
    answering: usize,
    /// When the connection last started waiting for a request.
    waiting_since: Instant,
    /// Whether it has answered a request: then waiting is being idle.
    answered_one: bool,
    /// When the first byte of the next request arrived, if one has.
    header_since: Option<Instant>,
    /// The reader to wake when an answer ends and the clock starts again.
    reader: Option<std::task::Waker>,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            answering: 0,
            waiting_since: Instant::now(),
            answered_one: false,
            header_since: None,
            reader: None,
        }
    }

    /// When the connection is to be closed, or `None` while answering.
    fn deadline(&self, limits: &Limits) -> Option<Instant> {
        if self.answering > 0 {
            None
        } else if let Some(since) = self.header_since {
            Some(since + limits.header_read_timeout)
        } else if self.answered_one {
            Some(self.waiting_since + limits.idle_timeout)
        } else {
            Some(self.waiting_since + limits.header_read_timeout)
        }
    }
}

fn lock(activity: &Mutex<Activity>) -> std::sync::MutexGuard<'_, Activity> {
    activity.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A request being answered; dropped with its response body.
struct Answering(Arc<Mutex<Activity>>);

impl Answering {
    fn start(activity: &Arc<Mutex<Activity>>) -> Answering {
        let mut now = lock(activity);
        now.answering += 1;
        now.header_since = None;
        Answering(Arc::clone(activity))
    }
}

impl Drop for Answering {
    fn drop(&mut self) {
        let mut now = lock(&self.0);
        now.answering = now.answering.saturating_sub(1);
        now.answered_one = true;
        now.waiting_since = Instant::now();
        if let Some(reader) = now.reader.take() {
            reader.wake();
        }
    }
}

/// A response body that holds its request's [`Answering`].
struct GuardedBody {
    body: Body,
    _guard: Answering,
}

impl HttpBody for GuardedBody {
    type Data = <Body as HttpBody>::Data;
    type Error = <Body as HttpBody>::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The socket, whose reads fail with `TimedOut` once the connection's
/// deadline passes while it waits for a request.
struct Watched {
    stream: TcpStream,
    activity: Arc<Mutex<Activity>>,
    limits: Limits,
    sleep: Pin<Box<Sleep>>,
}

impl Watched {
    fn new(stream: TcpStream, activity: Arc<Mutex<Activity>>, limits: Limits) -> Watched {
        let first = lock(&activity).deadline(&limits);
        Watched {
            stream,
            activity,
            limits,
            sleep: Box::pin(tokio::time::sleep_until(first.unwrap_or_else(Instant::now))),
        }
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    let mut now = lock(&this.activity);
                    if now.answering == 0 && now.header_since.is_none() {
                        now.header_since = Some(Instant::now());
                    }
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(err)) => Poll::Ready(Err(err)),
            Poll::Pending => {
                let deadline = {
                    let mut now = lock(&this.activity);
                    now.reader = Some(cx.waker().clone());
                    now.deadline(&this.limits)
                };
                let Some(deadline) = deadline else {
                    return Poll::Pending;
                };
                if this.sleep.deadline() != deadline {
                    this.sleep.as_mut().reset(deadline);
                }
                match this.sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "no request within the time allowed",
                    ))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, data)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use axum::response::sse::{Event, Sse};
    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::sync::mpsc;

    use super::*;

    /// The harness's generous limit for an event that should come soon.
    const LIMIT: Duration = Duration::from_secs(60);

    /// Reads until `needle` has arrived; panics on EOF or after [`LIMIT`].
    async fn read_until(stream: &mut TcpStream, needle: &str) -> String {
        let mut seen = Vec::new();
        let mut chunk = [0u8; 4096];
        tokio::time::timeout(LIMIT, async {
            while !String::from_utf8_lossy(&seen).contains(needle) {
                let n = stream.read(&mut chunk).await.expect("read");
                assert!(
                    n > 0,
                    "closed before {needle:?}: {:?}",
                    String::from_utf8_lossy(&seen)
                );
                seen.extend_from_slice(&chunk[..n]);
            }
        })
        .await
        .expect("answer in time");
        String::from_utf8_lossy(&seen).into_owned()
    }

    /// An idle keep-alive connection is closed after `idle_timeout`, while a
    /// server-sent event stream and a long poll opened before it, quiet all
    /// that time, still deliver afterwards. The header-read timeout is far away, so it is the
    /// idle clock that closed the connection.
    #[tokio::test]
    async fn idle_keep_alive_is_closed_and_a_quiet_stream_is_not() {
        let (send, receive) = mpsc::unbounded_channel::<String>();
        let receive = Arc::new(tokio::sync::Mutex::new(Some(receive)));
        let answer = Arc::new(tokio::sync::Notify::new());
        let wait = Arc::clone(&answer);
        let router = Router::new()
            .route("/", get(|| async { "hello" }))
            .route(
                "/long-poll",
                get(move || {
                    let wait = Arc::clone(&wait);
                    async move {
                        wait.notified().await;
                        "answered"
                    }
                }),
            )
            .route(
                "/events",
                get(move || {
                    let receive = Arc::clone(&receive);
                    async move {
                        let receive = receive.lock().await.take().expect("one stream");
                        let stream =
                            futures_util::stream::unfold(receive, |mut receive| async move {
                                let text = receive.recv().await?;
                                Some((Ok::<_, Infallible>(Event::default().data(text)), receive))
                            });
                        Sse::new(stream)
                    }
                }),
            );
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let limits = Limits {
            max_connections: 16,
            header_read_timeout: Duration::from_secs(3600),
            idle_timeout: Duration::from_millis(300),
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, router, limits, async move {
            let _ = stopped.await;
        }));

        let mut events = TcpStream::connect(address).await.expect("connect");
        events
            .write_all(b"GET /events HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .expect("write");
        read_until(&mut events, "text/event-stream").await;
        let mut long_poll = TcpStream::connect(address).await.expect("connect");
        long_poll
            .write_all(b"GET /long-poll HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .expect("write");

        let mut idle = TcpStream::connect(address).await.expect("connect");
        idle.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .expect("write");
        read_until(&mut idle, "hello").await;
        // Now idle between requests: the server closes it (EOF).
        let mut rest = [0u8; 64];
        let n = tokio::time::timeout(LIMIT, idle.read(&mut rest))
            .await
            .expect("closed within the limit")
            .unwrap_or(0);
        assert_eq!(n, 0, "closed, nothing more sent");

        send.send("still-here".to_owned()).expect("stream open");
        read_until(&mut events, "data: still-here").await;
        answer.notify_one();
        read_until(&mut long_poll, "answered").await;

        let _ = stop.send(());
        drop(events);
        tokio::time::timeout(LIMIT, server)
            .await
            .expect("shut down")
            .expect("join")
            .expect("serve");
    }

    /// A request that arrives in time on a kept-alive connection is answered
    /// and restarts the idle clock.
    #[tokio::test]
    async fn a_second_request_on_a_kept_alive_connection_is_answered() {
        let router = Router::new().route("/", get(|| async { "hello" }));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let limits = Limits {
            max_connections: 16,
            header_read_timeout: Duration::from_secs(3600),
            idle_timeout: Duration::from_secs(3600),
        };
        tokio::spawn(serve(listener, router, limits, std::future::pending()));
        let mut conn = TcpStream::connect(address).await.expect("connect");
        for _ in 0..2 {
            conn.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
                .await
                .expect("write");
            read_until(&mut conn, "hello").await;
        }
    }
}
