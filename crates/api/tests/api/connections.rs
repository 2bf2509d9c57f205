//! Hostile traffic at the connection level: stalled uploads, too many connections from one
//! address or in all, and event subscribers that never read.

use crate::helpers::*;
use serde_json::json;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";

fn addr(app: &TestApp) -> String {
    app.base.trim_start_matches("http://").to_string()
}

/// What the server answers to raw bytes on a new connection, read until it closes.
async fn answer_to(addr: &str, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(15), s.read_to_end(&mut buf))
        .await
        .expect("answered and closed");
    String::from_utf8_lossy(&buf).into_owned()
}

/// A connection that has been answered once, so the server has certainly counted it.
async fn answered_connection(addr: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(HEALTHZ).await.unwrap();
    let mut buf = [0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
        .await
        .expect("answered")
        .unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&buf[..n]));
    s
}

fn assert_refusal(text: &str) {
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    assert!(text.to_ascii_lowercase().contains("\r\nretry-after: 1\r\n"), "{text}");
    assert!(text.contains("\"code\":\"too_many_connections\""), "{text}");
}

/// Past `server.max_connections_per_client` from one address, a request is a 503 with
/// `Retry-After` and the JSON body, and its connection is closed; once one closes, a new
/// connection is served again.
#[actix_rt::test]
async fn connections_past_the_per_address_limit_are_refused_and_closed() {
    let mut settings = test_settings();
    settings.server.max_connections_per_client = 4;
    let app = spawn_with(settings, triage::ModelAgent::all(models())).await;
    let addr = addr(&app);
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(answered_connection(&addr).await);
    }
    assert_refusal(&answer_to(&addr, HEALTHZ).await);
    drop(held.pop());
    // The server notices the close on its next read of that connection.
    let mut served = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let mut s = TcpStream::connect(&addr).await.unwrap();
        s.write_all(HEALTHZ).await.unwrap();
        let mut buf = [0u8; 12];
        if s.read_exact(&mut buf).await.is_ok() && &buf == b"HTTP/1.1 200" {
            served = true;
            break;
        }
    }
    assert!(served, "a connection is served again once one closed");
    // The refusals are counted. (Every connection let go first: the server may not yet have
    // seen the last probe close, and this client opens one more.)
    drop(held);
    let mut metrics = String::new();
    for _ in 0..50 {
        let r = app.get("/metrics").await;
        if r.status() == 200 {
            metrics = r.text().await.unwrap();
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        metrics.lines().any(
            |l| l.starts_with("triagent_http_connections_refused_total ") && !l.ends_with(" 0")
        ),
        "{metrics}"
    );
}

/// Past `server.max_connections` in all, the same.
#[actix_rt::test]
async fn connections_past_the_global_limit_are_refused_and_closed() {
    let mut settings = test_settings();
    settings.server.max_connections = 3;
    let app = spawn_with(settings, triage::ModelAgent::all(models())).await;
    let addr = addr(&app);
    let _held: Vec<TcpStream> =
        futures_util::future::join_all((0..3).map(|_| answered_connection(&addr))).await;
    assert_refusal(&answer_to(&addr, HEALTHZ).await);
}

/// 200 clients send the headers and part of a body, then go quiet. Another client is answered
/// throughout, and every stalled upload is answered 408 and closed once
/// `server.body_timeout_ms` has passed. Prints the other client's latencies (not asserted:
/// timings belong to benchmarks; only far-off bounds are checked).
#[actix_rt::test]
async fn stalled_uploads_are_closed_and_others_keep_being_answered() {
    let mut settings = test_settings();
    settings.server.body_timeout_ms = 1000;
    let app = spawn_with(settings, triage::ModelAgent::all(models())).await;
    let addr = addr(&app);
    let mut stalled = Vec::new();
    for _ in 0..200 {
        let mut s = TcpStream::connect(&addr).await.unwrap();
        s.write_all(b"POST /v1/triage HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"te").await.unwrap();
        stalled.push(s);
    }
    let started = Instant::now();
    let mut latencies = Vec::new();
    while started.elapsed() < Duration::from_millis(800) {
        let t = Instant::now();
        assert_eq!(
            app.post_json(&json!({"text": "sore throat and a runny nose"})).await.status(),
            200
        );
        latencies.push(t.elapsed());
    }
    let mut closed = 0;
    for mut s in stalled {
        let mut buf = Vec::new();
        tokio::time::timeout(Duration::from_secs(15), s.read_to_end(&mut buf))
            .await
            .expect("closed in time")
            .unwrap();
        let text = String::from_utf8_lossy(&buf);
        assert!(
            text.starts_with("HTTP/1.1 408") && text.contains("\"code\":\"body_timeout\""),
            "{text}"
        );
        closed += 1;
    }
    let all_closed = started.elapsed();
    latencies.sort();
    let p = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
    eprintln!(
        "stalled uploads: 200 held, {closed} answered 408 and closed within {:.2} s; meanwhile another client got {} answers, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        all_closed.as_secs_f64(),
        latencies.len(),
        p(0.5).as_secs_f64() * 1e3,
        p(0.99).as_secs_f64() * 1e3,
        latencies.last().unwrap().as_secs_f64() * 1e3
    );
    assert!(
        latencies.len() >= 5,
        "only {} answers in 0.8 s beside the stalled uploads",
        latencies.len()
    );
}

/// Subscribers that never read stop being fed once their small send buffer is full, and the
/// kernel drops them after `server.write_stall_timeout_ms`; triage goes on meanwhile.
#[actix_rt::test]
async fn event_subscribers_that_never_read_are_dropped() {
    let mut settings = test_settings();
    settings.server.write_stall_timeout_ms = 1000;
    settings.server.send_buffer_bytes = 4096;
    let app = spawn_with(settings, triage::ModelAgent::all(models())).await;
    let addr = addr(&app);
    let subscribers = async || {
        let m = app.get("/metrics").await.text().await.unwrap();
        m.lines()
            .find_map(|l| l.strip_prefix("triagent_bus_subscribers "))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap()
    };
    // The store's own follower of the bus.
    let before = subscribers().await;
    let mut stalled = Vec::new();
    for _ in 0..20 {
        let mut s = TcpStream::connect(&addr).await.unwrap();
        // A tiny receive window, so the stall shows after a few events.
        socket2::SockRef::from(&s).set_recv_buffer_size(4096).unwrap();
        s.write_all(b"GET /v1/events HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        stalled.push(s);
    }
    let started = Instant::now();
    while subscribers().await < before + 20 {
        assert!(started.elapsed() < Duration::from_secs(10), "subscribed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Triage fills their buffers, then keeps going while they are dropped.
    let started = Instant::now();
    loop {
        let body = json!({"text": "crushing chest pain spreading to my left arm, sweating, and I feel sick"});
        assert_eq!(app.post_json(&body).await.status(), 200);
        if subscribers().await == before {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "stalled subscribers still held after 60 s: {}",
            subscribers().await
        );
    }
    eprintln!(
        "20 stalled subscribers dropped {:.1} s after triage began",
        started.elapsed().as_secs_f64()
    );
}

/// Errors answered below the application (by the HTTP/1 parser: vendor/README.md) carry the
/// JSON error body too: a malformed request, a smuggling attempt, a request line or headers
/// too large, a request head that does not arrive in time.
#[actix_rt::test]
async fn errors_from_the_http_layer_have_the_json_body() {
    let app = spawn_app().await;
    let addr = addr(&app);
    let long_url =
        format!("GET /v1/symptoms?q={} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(70 * 1024));
    let big_header = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\n{}\r\n",
        (0..200).map(|i| format!("X-Big-{i}: {}\r\n", "b".repeat(1024))).collect::<String>()
    );
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("malformed", b"NOT HTTP AT ALL\r\n\r\n".to_vec(), "HTTP/1.1 400"),
        ("smuggling", b"POST /v1/triage HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_vec(), "HTTP/1.1 400"),
        ("long url", long_url.into_bytes(), "HTTP/1.1 4"),
        ("big header", big_header.into_bytes(), "HTTP/1.1 4"),
        // Never finished: actix's own head timeout (5 s) answers it.
        ("slow head", b"GET /healthz HTTP/1.1\r\nHost: x\r\n".to_vec(), "HTTP/1.1 408"),
    ];
    for (what, bytes, status) in cases {
        let text = answer_to(&addr, &bytes).await;
        assert!(text.starts_with(status), "{what}: {text}");
        let lower = text.to_ascii_lowercase();
        assert!(lower.contains("\r\ncontent-type: application/json\r\n"), "{what}: {text}");
        let body = text.split_once("\r\n\r\n").map(|x| x.1).unwrap_or_default();
        let json: serde_json::Value =
            serde_json::from_str(body).unwrap_or_else(|e| panic!("{what}: {e}: {text}"));
        assert!(json["error"]["message"].is_string(), "{what}: {json}");
        // Every code is one the service declares (and the OpenAPI document lists).
        let code = json["error"]["code"].as_str().unwrap_or_default();
        assert!(api::ErrorCode::ALL.iter().any(|c| c.as_str() == code), "{what}: {json}");
    }
}
