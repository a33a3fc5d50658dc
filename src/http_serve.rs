//! The node's HTTP server: the axum router on hyper, with a deadline for reading each request and
//! every framework refusal (unknown route, wrong method, unreadable body) as JSON `{code, message}`.
//!
//! `axum::serve` gives hyper no timer, so slow headers were waited for forever, and nothing bounded
//! how long a body may take: a client dripping one byte every few seconds held its connection and
//! the handler's buffer open indefinitely.
//!
//! Memory is bounded by [`HttpLimits`], not by load: at most `max_connections` connections are
//! served (more wait in the kernel's accept backlog) and at most `max_bodies_in_flight` requests
//! with a body are read at once (the rest wait for a slot, their bytes in the kernel's socket
//! buffers, and are answered 503 `overloaded` with `Retry-After` once `body_wait` passes).

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use roadhex_ingest::api::ErrorBody;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt as _;

/// What one HTTP process may hold at once.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HttpLimits {
    /// Time a client has to send a whole request.
    pub(crate) read_timeout: Duration,
    pub(crate) max_connections: usize,
    pub(crate) max_bodies_in_flight: usize,
    /// How long a request with a body waits for a slot before it is refused.
    pub(crate) body_wait: Duration,
}

/// Serves `app` until `shutdown` resolves, then lets open requests finish.
pub(crate) async fn serve(
    listener: TcpListener,
    app: axum::Router,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let read_timeout = limits.read_timeout;
    let bodies = BodySlots {
        slots: Arc::new(Semaphore::new(limits.max_bodies_in_flight)),
        total: limits.max_bodies_in_flight,
        wait: limits.body_wait,
        reporting: Arc::default(),
    };
    bodies.report();
    // The slot is taken before the read deadline starts: waiting on the server is not the client's
    // slowness.
    let app = app
        .layer(axum::middleware::from_fn(json_refusals))
        .layer(axum::middleware::from_fn_with_state(read_timeout, read_deadline))
        .layer(axum::middleware::from_fn_with_state(bodies, body_slot));
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(());
    let mut conns = tokio::task::JoinSet::new();
    let mut shutdown = pin!(shutdown);
    loop {
        // At the connection cap, stop accepting until one closes.
        let permit = tokio::select! {
            permit = Arc::clone(&connections).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
            () = &mut shutdown => break,
        };
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors and the like: pass, rather than spin on it.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                // Handlers that limit per client read the peer as axum's `ConnectInfo`.
                let service = TowerToHyperService::new(app.clone().map_request(move |mut req: Request<_>| {
                    req.extensions_mut().insert(axum::extract::ConnectInfo::<SocketAddr>(peer));
                    req
                }));
                let mut stop = stop_rx.clone();
                conns.spawn(async move {
                    let _permit = permit;
                    let mut builder = Builder::new(TokioExecutor::new());
                    builder.http1().timer(TokioTimer::new()).header_read_timeout(read_timeout);
                    let mut conn = pin!(builder.serve_connection_with_upgrades(TokioIo::new(stream), service));
                    let mut stopping = false;
                    loop {
                        tokio::select! {
                            _ = conn.as_mut() => break,
                            _ = stop.changed(), if !stopping => {
                                stopping = true;
                                conn.as_mut().graceful_shutdown();
                            }
                        }
                    }
                });
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    let _ = stop_tx.send(());
    while conns.join_next().await.is_some() {}
    Ok(())
}

#[derive(Debug, Clone)]
struct BodySlots {
    slots: Arc<Semaphore>,
    total: usize,
    wait: Duration,
    /// Reading the count and writing the gauge happen together, so the last report wins with the
    /// latest count.
    reporting: Arc<std::sync::Mutex<()>>,
}

impl BodySlots {
    /// Slots taken right now, for `/metrics`: near the total, uploads are queueing.
    fn report(&self) {
        let _one = self.reporting.lock().unwrap_or_else(|e| e.into_inner());
        let busy = self.total.saturating_sub(self.slots.available_permits());
        roadhex_lake::metrics::gauge(
            "roadhex_http_bodies_in_flight",
            "Requests whose body is being read (of --max-bodies-in-flight).",
            &[],
            busy as f64,
        );
    }
}

/// Holds a slot for every request that carries a body, from before its first byte is read until
/// its answer is ready.
async fn body_slot(State(bodies): State<BodySlots>, req: Request, next: Next) -> Response {
    // No body: Content-Length 0 or none (HTTP/1), or END_STREAM on the headers (HTTP/2).
    if http_body::Body::is_end_stream(req.body()) {
        return next.run(req).await;
    }
    match tokio::time::timeout(bodies.wait, bodies.slots.acquire()).await {
        Ok(Ok(slot)) => {
            bodies.report();
            let resp = next.run(req).await;
            drop(slot);
            bodies.report();
            resp
        }
        _ => {
            let message = format!(
                "the server is reading as many uploads as it is configured to; retry in a moment \
                 (waited {} s for a slot)",
                bodies.wait.as_secs_f64()
            );
            let mut resp = refusal(StatusCode::SERVICE_UNAVAILABLE, "overloaded", message);
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            // The unread body is still on the wire; the connection cannot carry another request.
            resp.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            resp
        }
    }
}

/// Gives the request `limit` from now to arrive whole; past it the body read fails and the answer
/// is 408 `request_timeout`, whatever the handler made of the failed read.
async fn read_deadline(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    let expired = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&expired);
    let req = req.map(|inner| {
        Body::new(DeadlineBody { inner, sleep: Box::pin(tokio::time::sleep(limit)), expired: flag })
    });
    let resp = next.run(req).await;
    if expired.load(Ordering::Acquire) {
        let message = format!("the request was not received within {} s", limit.as_secs_f64());
        let mut resp = refusal(StatusCode::REQUEST_TIMEOUT, "request_timeout", message);
        resp.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        return resp;
    }
    resp
}

struct DeadlineBody {
    inner: Body,
    sleep: Pin<Box<tokio::time::Sleep>>,
    expired: Arc<AtomicBool>,
}

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        if self.sleep.as_mut().poll(cx).is_ready() {
            self.expired.store(true, Ordering::Release);
            let e = std::io::Error::new(std::io::ErrorKind::TimedOut, "request read deadline passed");
            return Poll::Ready(Some(Err(axum::Error::new(e))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Axum's own refusals (no route, wrong method, a body or parameter its extractors cannot read)
/// are plain text or empty; the API promises JSON `{code, message}` for every refusal.
async fn json_refusals(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, 16 * 1024).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&text).trim().to_owned();
    let message =
        if text.is_empty() { status.canonical_reason().unwrap_or("refused").to_owned() } else { text };
    let mut out = refusal(status, code_of(status), message);
    // Keep what the client needs to act on (Allow on 405, Retry-After).
    for name in [header::ALLOW, header::RETRY_AFTER] {
        if let Some(v) = parts.headers.get(&name) {
            out.headers_mut().insert(name, v.clone());
        }
    }
    out
}

fn code_of(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::REQUEST_TIMEOUT => "request_timeout",
        StatusCode::LENGTH_REQUIRED => "length_required",
        StatusCode::PAYLOAD_TOO_LARGE => "body_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "unprocessable",
        s if s.is_server_error() => "internal",
        _ => "refused",
    }
}

/// A refusal made here at the edge, counted with the handlers' own in `roadhex_rejections_total`.
fn refusal(status: StatusCode, code: &'static str, message: String) -> Response {
    roadhex_lake::metrics::count(
        "roadhex_rejections_total",
        "Requests refused, by error code.",
        &[("code", code)],
        1.0,
    );
    (status, axum::Json(ErrorBody { code: code.to_owned(), message, details: None })).into_response()
}
