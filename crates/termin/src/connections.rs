//! Accepting and serving HTTP/1.1 connections: the peer address for handlers, a header-read
//! and an idle timeout, and graceful shutdown.
//!
//! hyper serves each connection; this module decides how long a connection may wait for the
//! client. While no request is being handled, a connection on which the client sends nothing
//! for `idle` (after connecting, between keep-alive requests, or while it does not read a
//! response) is closed, and a request head that has begun must be complete within
//! `header_read`. While a handler runs, neither applies. hyper's own header-read timeout does
//! not fit: it also runs while a keep-alive connection waits for its next request.

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use std::io;
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker, ready};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

/// More header fields than this hyper refuses by itself, with a bare 431. Well above the API's
/// limit, so that a request with too many headers gets the API's OperationOutcome.
const PARSER_MAX_HEADERS: usize = 4 * termin_api::limits::MAX_HEADERS;

/// How long a connection may wait for its client.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// From the first byte of a request head to its end.
    pub header_read: Duration,
    /// Without any byte from or to the client while no request is being handled.
    pub idle: Duration,
}

/// Serves `app` on `listener` until `shutdown` completes, then lets open connections finish
/// their requests.
pub async fn serve(listener: TcpListener, app: Router, timeouts: Timeouts, shutdown: impl Future<Output = ()>) {
    // Shutdown tells every connection to finish its request and close; each connection task
    // holds a clone of `open`, so `closed` ends when the last one has.
    let (stop, _) = tokio::sync::watch::channel(());
    let (open, mut closed) = tokio::sync::mpsc::channel::<()>(1);
    let mut shutdown = pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(connection) => connection,
            // The client gave up before it was accepted.
            Err(e) if matches!(e.kind(), io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset) => continue,
            Err(e) => {
                // Out of file descriptors or similar: give open connections time to close.
                tracing::error!(error = %e, "accepting a connection failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let activity = Arc::new(Mutex::new(Activity::new()));
        let service = {
            let activity = activity.clone();
            let app = app.clone();
            hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
                // Handlers see the peer as `into_make_service_with_connect_info` provides it.
                request.extensions_mut().insert(ConnectInfo(peer));
                let handling = Handling::start(activity.clone());
                let response = app.clone().oneshot(request);
                let activity = activity.clone();
                async move {
                    let response = response.await;
                    if response.as_ref().is_ok_and(|r| r.status() == hyper::StatusCode::SWITCHING_PROTOCOLS) {
                        lock(&activity).upgraded = true;
                    }
                    drop(handling);
                    response
                }
            })
        };
        let io = TokioIo::new(Watched::new(stream, activity, timeouts));
        let connection = http1::Builder::new()
            // The timeouts are this module's; hyper's own would also close idle keep-alive connections.
            .header_read_timeout(None)
            .max_headers(PARSER_MAX_HEADERS)
            .serve_connection(io, service)
            // Websockets (the Subscription websocket channel) take the connection over.
            .with_upgrades();
        let mut stopping = stop.subscribe();
        let open = open.clone();
        tokio::spawn(async move {
            let _open = open;
            let mut connection = pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                _ = stopping.changed() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection closed with an error");
            }
        });
    }
    drop(listener);
    let _ = stop.send(());
    drop(open);
    let _ = closed.recv().await;
}

/// What a connection is doing, shared by its IO (bytes) and its service (requests).
#[derive(Debug)]
struct Activity {
    /// Requests whose handler is running.
    handling: usize,
    /// When the current request head began, if one has begun while none is being handled.
    head_started: Option<Instant>,
    /// The last byte received or sent, or the end of the last handler.
    last: Instant,
    /// A read waiting without a deadline while a handler runs: woken when it ends, so that the
    /// deadline starts.
    waiting_read: Option<Waker>,
    /// A websocket took the connection over: its handler decides when it ends, not the
    /// header-read and idle timeouts.
    upgraded: bool,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            handling: 0,
            head_started: None,
            last: Instant::now(),
            waiting_read: None,
            upgraded: false,
        }
    }

    fn received(&mut self, now: Instant) {
        if self.handling == 0 && self.head_started.is_none() {
            self.head_started = Some(now);
        }
        self.last = now;
    }

    /// When the connection is closed if the client sends nothing more; `None` while handling.
    fn deadline(&self, timeouts: &Timeouts) -> Option<Instant> {
        if self.handling > 0 || self.upgraded {
            return None;
        }
        Some(match self.head_started {
            Some(started) => started + timeouts.header_read,
            None => self.last + timeouts.idle,
        })
    }
}

fn lock(activity: &Mutex<Activity>) -> MutexGuard<'_, Activity> {
    // The state stays consistent even if a holder panicked: every update is a single store.
    activity.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A running handler: its head is complete; when it ends, the connection is active again.
struct Handling(Arc<Mutex<Activity>>);

impl Handling {
    fn start(activity: Arc<Mutex<Activity>>) -> Handling {
        {
            let mut state = lock(&activity);
            state.handling += 1;
            state.head_started = None;
        }
        Handling(activity)
    }
}

impl Drop for Handling {
    fn drop(&mut self) {
        let waiting_read = {
            let mut state = lock(&self.0);
            state.handling -= 1;
            state.last = Instant::now();
            state.waiting_read.take()
        };
        if let Some(read) = waiting_read {
            read.wake();
        }
    }
}

/// The connection's socket: records traffic and fails a read that waits past the deadline,
/// which makes hyper close the connection.
struct Watched {
    stream: TcpStream,
    activity: Arc<Mutex<Activity>>,
    timeouts: Timeouts,
    timer: Pin<Box<Sleep>>,
}

impl Watched {
    fn new(stream: TcpStream, activity: Arc<Mutex<Activity>>, timeouts: Timeouts) -> Watched {
        let timer = Box::pin(tokio::time::sleep(timeouts.idle));
        Watched {
            stream,
            activity,
            timeouts,
            timer,
        }
    }

    fn sent(&self, bytes: usize) {
        if bytes > 0 {
            lock(&self.activity).last = Instant::now();
        }
    }
}

impl AsyncRead for Watched {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let filled = buf.filled().len();
        let this = &mut *self;
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > filled {
                    lock(&this.activity).received(Instant::now());
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                let deadline = {
                    let mut state = lock(&this.activity);
                    let deadline = state.deadline(&this.timeouts);
                    if deadline.is_none() {
                        state.waiting_read = Some(cx.waker().clone());
                    }
                    deadline
                };
                let Some(deadline) = deadline else {
                    return Poll::Pending;
                };
                if this.timer.deadline() != deadline {
                    this.timer.as_mut().reset(deadline);
                }
                ready!(this.timer.as_mut().poll(cx));
                Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "the client sent nothing in time")))
            }
        }
    }
}

impl AsyncWrite for Watched {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let written = ready!(Pin::new(&mut self.stream).poll_write(cx, buf))?;
        self.sent(written);
        Poll::Ready(Ok(written))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let written = ready!(Pin::new(&mut self.stream).poll_write_vectored(cx, bufs))?;
        self.sent(written);
        Poll::Ready(Ok(written))
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use std::net::SocketAddr;

    #[tokio::test]
    async fn handlers_see_the_peer_address_and_shutdown_ends_serving() {
        let app = Router::new().route(
            "/peer",
            get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.ip().to_string() }),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, app, TIMEOUTS, async {
            stopped.await.ok();
        }));
        let peer = reqwest::get(format!("http://{address}/peer")).await.unwrap().text().await.unwrap();
        assert_eq!(peer, "127.0.0.1");
        stop.send(()).unwrap();
        server.await.unwrap();
    }

    const TIMEOUTS: Timeouts = Timeouts {
        header_read: Duration::from_secs(10),
        idle: Duration::from_secs(60),
    };

    #[test]
    fn a_connection_waits_idle_then_for_the_head_and_not_while_handling() {
        let start = Instant::now();
        let mut activity = Activity {
            last: start,
            ..Activity::new()
        };
        assert_eq!(activity.deadline(&TIMEOUTS), Some(start + TIMEOUTS.idle));
        let first_byte = start + Duration::from_secs(5);
        activity.received(first_byte);
        activity.received(first_byte + Duration::from_secs(1));
        assert_eq!(activity.deadline(&TIMEOUTS), Some(first_byte + TIMEOUTS.header_read));
        activity.handling = 1;
        activity.head_started = None;
        activity.received(first_byte + Duration::from_secs(2));
        assert_eq!(activity.deadline(&TIMEOUTS), None, "body bytes while handling start no head");
    }
}
