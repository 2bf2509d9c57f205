//! Graceful shutdown, in order: stop accepting, let the requests in flight finish (their triage
//! events are published as they go), close the bus so every event stream ends, then wait for
//! the HTTP workers to let go of their connections.
//!
//! actix-web's own signal handling is switched off: it stops forcefully on SIGINT, and it does
//! not know that an event stream would hold a worker for the whole shutdown timeout. Requests
//! other than `GET /v1/events` are counted by a middleware, so we know when they are done.

use actix_web::dev::{Server, ServiceRequest};
use futures_util::future::{Either, select};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::Notify;

/// Runs `server` until `signal`, then shuts down in the order above.
pub(crate) async fn serve(
    server: Server,
    buses: Vec<bus::Bus>,
    bridge: Option<Arc<bridge::Bridge>>,
    in_flight: InFlight,
    signal: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let handle = server.handle();
    let mut running = actix_web::rt::spawn(server);
    if let Either::Left((ended, _)) = select(&mut running, std::pin::pin!(signal)).await {
        return ended.map_err(std::io::Error::other)?;
    }
    // Stops accepting now (the returned future only reports completion); the workers go on
    // with the connections they have, and the coordinator and agents keep running for them.
    let stopped = handle.stop(true);
    in_flight.idle().await;
    // Whatever is still queued for NATS goes there or to the outbox; then its feed closes.
    if let Some(bridge) = bridge {
        bridge.shutdown().await;
    }
    // Event streams would otherwise hold the workers until the shutdown timeout.
    for bus in buses {
        bus.close();
    }
    stopped.await;
    running.await.map_err(std::io::Error::other)?
}

/// How many ordinary (non-streaming) requests are being handled.
#[derive(Clone, Default)]
pub(crate) struct InFlight(Arc<Counter>);

#[derive(Default)]
struct Counter {
    n: AtomicUsize,
    idle: Notify,
}

/// Held while one request is handled; dropping it (the response is ready, or the request was
/// dropped on a forced stop) counts it out.
pub(crate) struct Guard(InFlight);

impl InFlight {
    /// Counts `req` in unless it is an event stream, which lives until the bus closes.
    pub(crate) fn track(&self, req: &ServiceRequest) -> Option<Guard> {
        (req.path() != "/v1/events").then(|| {
            self.0.n.fetch_add(1, Ordering::SeqCst);
            Guard(self.clone())
        })
    }

    /// Resolves once no ordinary request is being handled.
    pub(crate) async fn idle(&self) {
        loop {
            let mut notified = std::pin::pin!(self.0.idle.notified());
            // Registered before the check, so a guard dropped in between still wakes us.
            notified.as_mut().enable();
            if self.0.n.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if self.0.0.n.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.0.idle.notify_waiters();
        }
    }
}

/// SIGTERM or SIGINT (Ctrl-C). If the handlers cannot be installed the service runs on and
/// says why, rather than refusing to start.
pub(crate) async fn os_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
            (Ok(mut term), Ok(mut int)) => {
                let term = std::pin::pin!(term.recv());
                let int = std::pin::pin!(int.recv());
                futures_util::future::select(term, int).await;
            }
            (Err(e), _) | (_, Err(e)) => {
                eprintln!(
                    "triagent: cannot listen for SIGTERM/SIGINT ({e}); stop the process with SIGKILL"
                );
                std::future::pending::<()>().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;
    use std::time::Duration;

    #[tokio::test]
    async fn idle_waits_for_ordinary_requests_only() {
        let f = InFlight::default();
        assert!(
            f.track(&TestRequest::get().uri("/v1/events?type=triage_completed").to_srv_request())
                .is_none()
        );
        let a = f.track(&TestRequest::post().uri("/v1/triage").to_srv_request());
        let b = f.track(&TestRequest::get().uri("/healthz").to_srv_request());
        let waiting = tokio::spawn({
            let f = f.clone();
            async move { f.idle().await }
        });
        drop(a);
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "one request is still in flight");
        drop(b);
        tokio::time::timeout(Duration::from_secs(10), waiting)
            .await
            .expect("idle once both are done")
            .unwrap();
        tokio::time::timeout(Duration::from_secs(10), f.idle())
            .await
            .expect("idle when nothing was ever in flight");
    }
}
