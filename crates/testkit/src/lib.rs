//! Test support, for dev-dependencies only: a fresh PostgreSQL database per test
//! ([`TestDb`]) and a TCP proxy that can cut a client off from it ([`Proxy`]), as the storage
//! tests of `store`, `api` and `triagent` need them. Never a dependency of the service.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_postgres::NoTls;
use uuid::Uuid;

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

pub fn admin_config() -> tokio_postgres::Config {
    let url = std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned());
    url.parse().unwrap_or_else(|e| panic!("TEST_DATABASE_URL is not a PostgreSQL URL: {e}"))
}

pub async fn connect(config: &tokio_postgres::Config) -> tokio_postgres::Client {
    let (client, connection) = config.connect(NoTls).await.unwrap_or_else(|e| {
        panic!(
            "PostgreSQL is not reachable ({e}). These tests need one at 127.0.0.1:5432 with trust auth for \
             user postgres, or TEST_DATABASE_URL pointing at one. Start one with \
             `sudo apt-get install postgresql && sudo pg_ctlcluster 15 main start` or \
             `docker run -d --name triagent-pg -p 5432:5432 -e POSTGRES_HOST_AUTH_METHOD=trust postgres:16`."
        )
    });
    tokio::spawn(connection);
    client
}

/// A fresh database for one test, dropped (with any connections still open to it) when the
/// guard goes out of scope, also when the test panics.
pub struct TestDb {
    pub name: String,
    pub admin: tokio_postgres::Config,
}

impl TestDb {
    pub async fn create() -> TestDb {
        let admin = admin_config();
        let name = format!("triagent_test_{}", Uuid::new_v4().simple());
        connect(&admin)
            .await
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await
            .expect("create test database");
        TestDb { name, admin }
    }

    pub fn config(&self) -> tokio_postgres::Config {
        let mut c = self.admin.clone();
        c.dbname(&self.name);
        c
    }

    /// A key-value connection string for this database, optionally through a proxy port.
    pub fn url(&self, via_port: Option<u16>) -> String {
        let c = &self.admin;
        let (host, port) = self.host_port(via_port);
        let mut url = format!("host={host} port={port} dbname={}", self.name);
        if let Some(user) = c.get_user() {
            url.push_str(&format!(" user={user}"));
        }
        if let Some(pw) = c.get_password() {
            url.push_str(&format!(
                " password='{}'",
                String::from_utf8_lossy(pw).replace('\'', "\\'")
            ));
        }
        url
    }

    pub fn upstream(&self) -> String {
        let url = self.url(None);
        let field = |k: &str| {
            url.split(' ').find_map(|kv| kv.strip_prefix(&format!("{k}="))).unwrap().to_owned()
        };
        format!("{}:{}", field("host"), field("port"))
    }

    pub async fn client(&self) -> tokio_postgres::Client {
        connect(&self.config()).await
    }

    pub async fn count(&self, sql: &str) -> i64 {
        self.client().await.query_one(sql, &[]).await.unwrap().get(0)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        // Its own thread and runtime: Drop cannot await, and the test's runtime may be gone.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                let (client, connection) = admin.connect(NoTls).await?;
                tokio::spawn(connection);
                client
                    .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop test database {}: {dropped:?}", self.name);
        }
    }
}

impl TestDb {
    /// The server's host and port, or the port of a proxy in front of it.
    fn host_port(&self, via_port: Option<u16>) -> (String, u16) {
        let c = &self.admin;
        let host = match c.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
            _ => "127.0.0.1".to_owned(),
        };
        (host, via_port.unwrap_or_else(|| c.get_ports().first().copied().unwrap_or(5432)))
    }

    /// A `postgres://` URL of this database (for settings and the command line), optionally
    /// through a proxy port.
    pub fn postgres_url(&self, via_port: Option<u16>) -> String {
        let c = &self.admin;
        let (host, port) = self.host_port(via_port);
        let user = c.get_user().unwrap_or("postgres");
        match c.get_password() {
            Some(pw) => format!(
                "postgres://{user}:{}@{host}:{port}/{}",
                String::from_utf8_lossy(pw),
                self.name
            ),
            None => format!("postgres://{user}@{host}:{port}/{}", self.name),
        }
    }
}

/// A TCP proxy between the store and PostgreSQL that the test can cut (closing every
/// connection and refusing new ones) and restore.
pub struct Proxy {
    pub port: u16,
    up: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl Proxy {
    pub async fn start(upstream: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let conns: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let (u, c) = (up.clone(), conns.clone());
        let accept = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else { continue };
                if !u.load(Ordering::SeqCst) {
                    continue; // dropped: the client sees the connection close at once
                }
                let upstream = upstream.clone();
                let conn = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                c.lock().unwrap().push(conn);
            }
        });
        Proxy { port, up, conns, accept }
    }

    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for conn in self.conns.lock().unwrap().drain(..) {
            conn.abort();
        }
    }

    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

/// `host:port` of the NATS server the tests use: TEST_NATS_URL (without its `nats://`), or the
/// machine's 127.0.0.1:4222.
pub fn nats_host_port() -> String {
    std::env::var("TEST_NATS_URL")
        .unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
        .trim_start_matches("nats://")
        .to_owned()
}

/// The NATS server's `host:port`; fails at once, saying how to get one, when none answers
/// (the tests need a real one, and would otherwise only time out waiting for events).
pub fn require_nats() -> String {
    let host_port = nats_host_port();
    if std::net::TcpStream::connect(&host_port).is_err() {
        panic!(
            "NATS is not reachable at {host_port}: start it with `nats-server -js` (README \"Services\") or set TEST_NATS_URL"
        );
    }
    host_port
}

/// Deletes the JetStream stream `name` on the tests' NATS server, if it is there: a test's
/// stream is its own, so tests that share the server never see each other's events.
pub async fn delete_nats_stream(name: &str) {
    if let Ok(client) = async_nats::connect(format!("nats://{}", nats_host_port())).await {
        let _ = async_nats::jetstream::new(client).delete_stream(name).await;
    }
}
