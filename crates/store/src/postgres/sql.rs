//! Every SQL statement the report store sends, and how a [`JsonBody`](crate::JsonBody) travels
//! to and from `jsonb`.
//!
//! Kept apart from the code that runs them, so what the store asks of PostgreSQL reads in one
//! place and can be checked against the migrations at a glance. The statements of API keys and
//! the audit log stay with them, in `keys`.

/// The report with id `$1`, its columns in the order `PgStore::get` reads them.
pub(super) const REPORT_BY_ID: &str = "SELECT id, created_at, level, top_condition, degraded, api_key_id, body, free_text \
    FROM reports WHERE id = $1";

/// Inserts a group of reports from one array per column; returns the ids that were new.
pub(super) const INSERT_REPORTS: &str = "INSERT INTO reports (id, created_at, level, top_condition, degraded, api_key_id, body, free_text) \
    SELECT * FROM UNNEST($1::uuid[], $2::timestamptz[], $3::text[], $4::text[], $5::bool[], $6::uuid[], $7::jsonb[], $8::text[]) \
    ON CONFLICT (id) DO NOTHING RETURNING id";

/// A row when the stored report `$1` has the same content as the one given.
pub(super) const SAME_REPORT: &str = "SELECT 1 FROM reports WHERE id = $1 AND level = $2 AND top_condition IS NOT DISTINCT FROM $3 \
    AND degraded = $4 AND api_key_id IS NOT DISTINCT FROM $5 AND body = $6::jsonb";

/// Inserts a group of events from one array per column, in the order of the arrays.
pub(super) const INSERT_EVENTS: &str = "INSERT INTO events (event_id, report_id, bus_seq, kind, level, payload, at, replica) \
    SELECT e.id, e.report_id, e.bus_seq, e.kind, e.level, e.payload, e.at, e.replica \
    FROM UNNEST($1::uuid[], $2::uuid[], $3::int8[], $4::text[], $5::text[], $6::jsonb[], $7::timestamptz[], $8::text[]) \
    WITH ORDINALITY AS e(id, report_id, bus_seq, kind, level, payload, at, replica, ord) \
    ORDER BY e.ord \
    ON CONFLICT (event_id) DO NOTHING";

/// Events of the replica `$1` with a bus number above `$2` and below `$3`, in bus order, at
/// most `$4`: bus numbers are the replica's own, so another replica's are never mixed in.
pub(super) const EVENTS_BY_BUS_SEQ: &str = "SELECT payload FROM events \
    WHERE replica = $1 AND bus_seq > $2 AND bus_seq < $3 ORDER BY bus_seq LIMIT $4";

/// The highest bus number the replica `$1` has kept, or that the single writer before
/// replicas had names kept (`''`, migrations/V5), 0 when there is none. Each is one step down
/// the `(replica, bus_seq)` index.
pub(super) const MAX_BUS_SEQ: &str = "SELECT greatest(\
    (SELECT coalesce(max(bus_seq), 0) FROM events WHERE replica = $1), \
    (SELECT coalesce(max(bus_seq), 0) FROM events WHERE replica = ''))";

/// Events with a store number above `$1`, oldest first, at most `$2`.
pub(super) const EVENTS_AFTER: &str =
    "SELECT seq, payload FROM events WHERE seq > $1 ORDER BY seq LIMIT $2";

/// The cheapest round trip, to learn whether the database answers.
pub(super) const PING: &str = "SELECT 1";

/// Takes the session advisory lock `$1`, waiting for it, around the migrations.
pub(super) const ADVISORY_LOCK: &str = "SELECT pg_advisory_lock($1)";

/// Releases the session advisory lock `$1`.
pub(super) const ADVISORY_UNLOCK: &str = "SELECT pg_advisory_unlock($1)";

/// `jsonb` (and `json`) straight from and to the answer's text: the binary `jsonb` format is a
/// version byte (1) and the text, so nothing is parsed or re-encoded on our side.
impl tokio_postgres::types::ToSql for crate::JsonBody {
    fn to_sql(
        &self,
        ty: &tokio_postgres::types::Type,
        out: &mut bytes::BytesMut,
    ) -> Result<tokio_postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        if *ty == tokio_postgres::types::Type::JSONB {
            out.extend_from_slice(&[1]);
        }
        out.extend_from_slice(self.as_bytes());
        Ok(tokio_postgres::types::IsNull::No)
    }

    tokio_postgres::types::accepts!(JSON, JSONB);
    tokio_postgres::types::to_sql_checked!();
}

impl<'a> tokio_postgres::types::FromSql<'a> for crate::JsonBody {
    fn from_sql(
        ty: &tokio_postgres::types::Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        let text = if *ty == tokio_postgres::types::Type::JSONB {
            match raw.split_first() {
                Some((1, rest)) => rest,
                _ => return Err("unsupported jsonb version".into()),
            }
        } else {
            raw
        };
        Ok(crate::JsonBody::from_trusted(text.to_vec()))
    }

    tokio_postgres::types::accepts!(JSON, JSONB);
}
