//! Writes `REPORTS` triage reports of about 6 KB (the size of a real answer) and eight events
//! each, in groups of `GROUP` per durable commit, as the service's writer does; then reads
//! 10,240 reports back by id. Prints writes per second, reads per second, the file size and the
//! process's peak resident memory. Run with `cargo run --release -- sqlite|redb DIR`.

use std::time::Instant;

const REPORTS: u64 = 102_400;
const GROUP: u64 = 64;
const EVENTS_PER_REPORT: u64 = 8;

fn body(n: u64) -> String {
    let mut s = format!("{{\"id\":{n},\"conditions\":[");
    for k in 0..40 {
        s.push_str(&format!(
            "{{\"id\":\"condition_{k}\",\"icd10\":\"J06.{k}\",\"probability\":0.{k:03},\"supporting\":[\"fever\",\"cough\",\"sore_throat\"]}},"
        ));
    }
    s.push_str("{}]}");
    s
}

fn event(n: u64, k: u64) -> String {
    format!(
        "{{\"seq\":{},\"report_id\":\"{n:032x}\",\"at\":\"2026-12-06T23:00:00.123456789Z\",\"type\":\"triage_completed\",\"level\":\"consultation\",\"degraded\":false,\"total_ms\":1.25}}",
        n * EVENTS_PER_REPORT + k
    )
}

fn id(n: u64) -> [u8; 16] {
    (u128::from(n) * 0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835).to_be_bytes()
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn dir_size(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|d| d.flatten().filter_map(|e| e.metadata().ok()).map(|m| m.len()).sum())
        .unwrap_or(0)
}

fn sqlite(dir: &std::path::Path) -> (f64, f64) {
    let conn = rusqlite::Connection::open(dir.join("t.db")).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.pragma_update(None, "synchronous", "FULL").unwrap();
    conn.execute_batch(
        "CREATE TABLE reports (n INTEGER PRIMARY KEY, id BLOB NOT NULL UNIQUE, body TEXT NOT NULL);
         CREATE TABLE events (seq INTEGER PRIMARY KEY AUTOINCREMENT, bus_seq INTEGER NOT NULL, payload TEXT NOT NULL);
         CREATE INDEX events_bus_seq ON events (bus_seq);",
    )
    .unwrap();
    let mut conn = conn;
    let started = Instant::now();
    for g in 0..REPORTS / GROUP {
        let tx = conn.transaction().unwrap();
        {
            let mut r = tx
                .prepare_cached(
                    "INSERT INTO reports (id, body) VALUES (?1, ?2) ON CONFLICT (id) DO NOTHING",
                )
                .unwrap();
            let mut e =
                tx.prepare_cached("INSERT INTO events (bus_seq, payload) VALUES (?1, ?2)").unwrap();
            for n in g * GROUP..(g + 1) * GROUP {
                r.execute(rusqlite::params![id(n).as_slice(), body(n)]).unwrap();
                for k in 0..EVENTS_PER_REPORT {
                    e.execute(rusqlite::params![(n * EVENTS_PER_REPORT + k) as i64, event(n, k)])
                        .unwrap();
                }
            }
        }
        tx.commit().unwrap();
    }
    let writes = REPORTS as f64 / started.elapsed().as_secs_f64();
    let started = Instant::now();
    let mut q = conn.prepare_cached("SELECT body FROM reports WHERE id = ?1").unwrap();
    for n in (0..REPORTS).step_by(10) {
        let b: String = q.query_row([id(n).as_slice()], |row| row.get(0)).unwrap();
        assert!(b.len() > 100);
    }
    (writes, (REPORTS / 10) as f64 / started.elapsed().as_secs_f64())
}

fn redb(dir: &std::path::Path) -> (f64, f64) {
    use redb::{Database, Durability, ReadableTable, TableDefinition};
    const REPORTS_T: TableDefinition<&[u8], &str> = TableDefinition::new("reports");
    const EVENTS_T: TableDefinition<u64, &str> = TableDefinition::new("events");
    let db = Database::create(dir.join("t.redb")).unwrap();
    let started = Instant::now();
    for g in 0..REPORTS / GROUP {
        let mut tx = db.begin_write().unwrap();
        tx.set_durability(Durability::Immediate);
        {
            let mut r = tx.open_table(REPORTS_T).unwrap();
            let mut e = tx.open_table(EVENTS_T).unwrap();
            for n in g * GROUP..(g + 1) * GROUP {
                let key = id(n);
                if r.get(key.as_slice()).unwrap().is_none() {
                    r.insert(key.as_slice(), body(n).as_str()).unwrap();
                }
                for k in 0..EVENTS_PER_REPORT {
                    e.insert(n * EVENTS_PER_REPORT + k, event(n, k).as_str()).unwrap();
                }
            }
        }
        tx.commit().unwrap();
    }
    let writes = REPORTS as f64 / started.elapsed().as_secs_f64();
    let started = Instant::now();
    let tx = db.begin_read().unwrap();
    let r = tx.open_table(REPORTS_T).unwrap();
    for n in (0..REPORTS).step_by(10) {
        let b = r.get(id(n).as_slice()).unwrap().unwrap();
        assert!(b.value().len() > 100);
    }
    (writes, (REPORTS / 10) as f64 / started.elapsed().as_secs_f64())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let engine = args.get(1).map(String::as_str).unwrap_or("sqlite");
    let dir = std::path::PathBuf::from(args.get(2).map(String::as_str).unwrap_or("target/run"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (writes, reads) = match engine {
        "sqlite" => sqlite(&dir),
        "redb" => redb(&dir),
        other => panic!("unknown engine {other}: sqlite or redb"),
    };
    println!(
        "{engine}: {REPORTS} reports ({} events) in groups of {GROUP}: {writes:.0} reports/s written, {reads:.0} reads/s by id, {:.0} MiB on disk, peak RSS {:.1} MiB",
        REPORTS * EVENTS_PER_REPORT,
        dir_size(&dir) as f64 / (1 << 20) as f64,
        peak_rss_mib()
    );
}
