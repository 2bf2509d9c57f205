//! Limits on open connections: per client address and in all, so that no client, and no crowd
//! of them, can take every file descriptor (stalled uploads once exhausted them).
//!
//! Each accepted connection takes a [`Slot`] (in actix's per-connection data) that counts it
//! until the connection closes. A connection over a limit is still accepted, so that it can be
//! told why: its first request is answered 503 `too_many_connections` with `Retry-After` and
//! the connection is closed. Below these soft limits sits a hard one, actix's own
//! `max_connections` per worker, set from the descriptor limit ([`Limits::hard_per_worker`]):
//! past it the server stops accepting until connections close, so descriptors are never
//! exhausted even by clients that connect faster than they can be answered.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::error::{ApiError, ErrorCode};

/// Descriptors kept back from connections: the spool, the key file, database connections,
/// the models and the log.
const RESERVED_DESCRIPTORS: usize = 256;

/// Counts open connections, in all and per client address.
#[derive(Debug)]
pub(crate) struct Limits {
    per_client: usize,
    global: usize,
    hard_total: usize,
    open: AtomicUsize,
    by_client: Mutex<HashMap<IpAddr, usize>>,
    refused: AtomicU64,
}

/// Why a connection is over its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Over {
    Client,
    Global,
}

/// One open connection, counted until it is dropped with the connection.
#[derive(Debug)]
pub(crate) struct Slot {
    limits: Arc<Limits>,
    client: Option<IpAddr>,
    /// Set when the connection was over a limit on arrival: its requests are refused.
    pub(crate) over: Option<Over>,
}

impl Limits {
    /// `global` is lowered to fit the process's descriptor limit, less a reserve.
    pub(crate) fn new(per_client: usize, global: usize) -> Arc<Self> {
        let hard_total = descriptor_limit()
            .map_or(usize::MAX, |n| n.saturating_sub(RESERVED_DESCRIPTORS).max(64));
        // The soft limit sits a tenth below the hard one, so a connection past it can still be
        // accepted and answered.
        let global = global.min(hard_total - hard_total / 10).max(1);
        Arc::new(Self {
            per_client: per_client.max(1),
            global,
            hard_total,
            open: AtomicUsize::new(0),
            by_client: Mutex::new(HashMap::new()),
            refused: AtomicU64::new(0),
        })
    }

    /// The effective global limit (after the descriptor limit).
    pub(crate) fn global(&self) -> usize {
        self.global
    }

    /// actix's `max_connections`, which is per worker: the descriptor budget shared out.
    pub(crate) fn hard_per_worker(&self, workers: usize) -> usize {
        (self.hard_total / workers.max(1)).max(1)
    }

    /// Counts a new connection from `client` (unknown for a non-TCP socket: counted in all only).
    pub(crate) fn admit(self: &Arc<Self>, client: Option<IpAddr>) -> Slot {
        let open = self.open.fetch_add(1, Ordering::Relaxed) + 1;
        let mut over = (open > self.global).then_some(Over::Global);
        if let Some(ip) = client {
            let mut by_client = self.by_client.lock().unwrap_or_else(PoisonError::into_inner);
            let n = by_client.entry(ip).or_insert(0);
            *n += 1;
            if *n > self.per_client {
                over = Some(Over::Client);
            }
        }
        Slot { limits: self.clone(), client, over }
    }

    /// Connections open now.
    pub(crate) fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Requests refused because their connection was over a limit, since start.
    pub(crate) fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

impl Slot {
    /// The answer to a request on a connection over its limit: 503 with `Retry-After`, and the
    /// connection is closed.
    pub(crate) fn refusal(&self, retry_after: u64) -> Option<ApiError> {
        let over = self.over?;
        self.limits.refused.fetch_add(1, Ordering::Relaxed);
        let message = match over {
            Over::Client => format!(
                "too many connections from this address (at most {}); close some and retry",
                self.limits.per_client
            ),
            Over::Global => "the service has too many open connections; retry shortly".to_owned(),
        };
        // The connection is over its limit: closed after the answer.
        Some(ApiError::new(ErrorCode::TooManyConnections, message).retry_after(retry_after))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.limits.open.fetch_sub(1, Ordering::Relaxed);
        if let Some(ip) = self.client {
            let mut by_client =
                self.limits.by_client.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(n) = by_client.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    by_client.remove(&ip);
                }
            }
        }
    }
}

/// Socket options set on every accepted connection (`server.send_buffer_bytes`,
/// `server.write_stall_timeout_ms`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct SocketOptions {
    send_buffer: usize,
    stall_timeout: std::time::Duration,
}

impl SocketOptions {
    pub(crate) fn of(server: &settings::Server) -> Self {
        Self {
            send_buffer: server.send_buffer_bytes,
            stall_timeout: std::time::Duration::from_millis(server.write_stall_timeout_ms),
        }
    }
}

/// Bounds what a client that stops reading can cost: a small send buffer, so a stalled event
/// stream stops being fed after a few KiB, and a stall timeout, after which the kernel drops
/// the connection (and with it the subscription). A failure is logged, not fatal: the
/// connection is served with the kernel's defaults.
pub(crate) fn tune(tcp: &actix_web::rt::net::TcpStream, options: &SocketOptions) {
    let socket = socket2::SockRef::from(tcp);
    if options.send_buffer > 0
        && let Err(e) = socket.set_send_buffer_size(options.send_buffer)
    {
        tracing::debug!(error = %e, "cannot set the send buffer");
    }
    #[cfg(any(target_os = "android", target_os = "fuchsia", target_os = "linux"))]
    if !options.stall_timeout.is_zero()
        && let Err(e) = socket.set_tcp_user_timeout(Some(options.stall_timeout))
    {
        tracing::debug!(error = %e, "cannot set TCP_USER_TIMEOUT");
    }
}

/// The process's soft limit on open descriptors, from `/proc/self/limits` (Linux); `None`
/// elsewhere or when it is unlimited.
fn descriptor_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.trim_start_matches("Max open files").split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_count_per_address_and_in_all_and_free_on_drop() {
        let limits = Arc::new(Limits {
            per_client: 2,
            global: 3,
            hard_total: 100,
            open: AtomicUsize::new(0),
            by_client: Mutex::new(HashMap::new()),
            refused: AtomicU64::new(0),
        });
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let a1 = limits.admit(Some(a));
        let a2 = limits.admit(Some(a));
        let a3 = limits.admit(Some(a));
        assert_eq!((a1.over, a2.over, a3.over), (None, None, Some(Over::Client)));
        drop(a3);
        let b1 = limits.admit(Some(b));
        assert_eq!(b1.over, None);
        assert_eq!(limits.admit(Some(b)).over, Some(Over::Global), "four open, three allowed");
        assert_eq!(limits.open(), 3);
        let refusal = a1.refusal(1);
        assert!(refusal.is_none());
        drop((a1, a2, b1));
        assert_eq!(limits.open(), 0);
        assert!(
            limits.by_client.lock().unwrap().is_empty(),
            "no address is remembered once its connections close"
        );
    }
}
