//! The local append-only spool: where acknowledged writes wait while PostgreSQL is unreachable.
//!
//! A record is `[len: u32 LE][crc32(payload): u32 LE][payload]`. A batch of records is written
//! with one write and made durable with one `fsync` before anyone is told it is kept. A crash in
//! the middle of a write leaves a torn record at the end; on open every record is checked and
//! the file is cut back to the last whole, checksummed one (that torn record was never
//! acknowledged, since its fsync never returned); the cut bytes are kept beside the spool as
//! `PATH.discarded-TIME` for inspection. Records are only ever removed all at once,
//! with [`Spool::clear`], after every one of them is committed elsewhere.
//!
//! The spool is a plain file opened by one process at a time: [`Spool::open`] takes an
//! exclusive lock on it and fails if another store holds it.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

const HEADER: u64 = 8;
/// A length above this is taken as corruption rather than trusted into a huge allocation; no
/// real record (one report or event as JSON) comes near it.
pub const MAX_RECORD: u32 = 64 << 20;

#[derive(Debug)]
pub struct Spool {
    path: PathBuf,
    file: File,
    /// Bytes of whole records; the next append goes here.
    len: u64,
    records: u64,
}

/// What [`Spool::open`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recovered {
    /// Whole, checksummed records in the file.
    pub records: u64,
    /// Bytes after the last whole record (a torn or corrupt tail), cut off.
    pub discarded_bytes: u64,
}

/// One record read back, with where the next one starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub payload: Vec<u8>,
    pub next: u64,
}

impl Spool {
    /// Opens or creates the spool at `path` (and its folder), locks it, checks every record and
    /// cuts off a torn or corrupt tail.
    pub fn open(path: &Path) -> io::Result<(Spool, Recovered)> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let existed = path.exists();
        let file =
            OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)?;
        file.try_lock().map_err(|e| {
            io::Error::new(
                io::ErrorKind::WouldBlock,
                format!("spool {} is in use by another store: {e}", path.display()),
            )
        })?;
        if !existed {
            // The new file's name must survive a crash too, or its records would vanish with it.
            sync_dir(path)?;
        }
        let mut spool = Spool { path: path.to_owned(), file, len: 0, records: 0 };
        let size = spool.file.metadata()?.len();
        let mut at = 0;
        while let Some(record) = spool.read_at(at, size)? {
            at = record.next;
            spool.records += 1;
        }
        spool.len = at;
        let discarded_bytes = size - at;
        if discarded_bytes > 0 {
            // Kept aside rather than destroyed: normally a torn, never-acknowledged write, but a
            // checksum failure in the middle would be disk damage worth looking at.
            let mut tail = vec![0u8; usize::try_from(discarded_bytes).unwrap_or(usize::MAX)];
            spool.file.read_exact_at(&mut tail, at)?;
            let mut aside = path.as_os_str().to_owned();
            aside.push(format!(".discarded-{}", chrono::Utc::now().format("%Y%m%dT%H%M%S%.6fZ")));
            std::fs::write(&aside, &tail)?;
            spool.file.set_len(at)?;
            spool.file.sync_all()?;
        }
        let records = spool.records;
        Ok((spool, Recovered { records, discarded_bytes }))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whole records kept.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Bytes of whole records kept; the end offset for [`read`](Self::read).
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends the payloads as one write and returns once they are on disk (fsync), with the
    /// offset of each payload's record (for [`read_one`](Self::read_one)). On error nothing is
    /// counted as appended: the end stays where it was, so a half-written batch is overwritten
    /// by the next append (and would be cut off on open anyway).
    pub fn append(&mut self, payloads: &[Vec<u8>]) -> io::Result<Vec<u64>> {
        let mut buf = Vec::with_capacity(payloads.iter().map(|p| p.len() + HEADER as usize).sum());
        let mut offsets = Vec::with_capacity(payloads.len());
        for p in payloads {
            offsets.push(self.len + buf.len() as u64);
            let len =
                u32::try_from(p.len()).ok().filter(|&l| l <= MAX_RECORD).ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("spool record of {} bytes is too large", p.len()),
                    )
                })?;
            buf.extend_from_slice(&len.to_le_bytes());
            buf.extend_from_slice(&crc32fast::hash(p).to_le_bytes());
            buf.extend_from_slice(p);
        }
        self.file.write_all_at(&buf, self.len)?;
        // fdatasync: the data and the file size, which is all a reader needs.
        self.file.sync_data()?;
        self.len += buf.len() as u64;
        self.records += payloads.len() as u64;
        Ok(offsets)
    }

    /// The whole record at byte `at` (an offset [`append`](Self::append) returned, or a
    /// previous record's `next`), or `None` if there is none there.
    pub fn read_one(&self, at: u64) -> io::Result<Option<Record>> {
        self.read_at(at, self.len)
    }

    /// Up to `max` whole records starting at byte `from` (0, or a previous record's `next`).
    pub fn read(&self, from: u64, max: usize) -> io::Result<Vec<Record>> {
        let mut out = Vec::new();
        let mut at = from;
        while out.len() < max {
            match self.read_at(at, self.len)? {
                Some(r) => {
                    at = r.next;
                    out.push(r);
                }
                None => break,
            }
        }
        Ok(out)
    }

    /// Forgets every record (truncate to zero, durably). Only for when all of them are
    /// committed elsewhere.
    pub fn clear(&mut self) -> io::Result<()> {
        self.file.set_len(0)?;
        self.file.sync_all()?;
        self.len = 0;
        self.records = 0;
        Ok(())
    }

    /// The whole record at `at`, or `None` at the end or at anything that is not a whole record
    /// with a matching checksum.
    fn read_at(&self, at: u64, end: u64) -> io::Result<Option<Record>> {
        if at + HEADER > end {
            return Ok(None);
        }
        let mut header = [0u8; HEADER as usize];
        self.file.read_exact_at(&mut header, at)?;
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        let next = at + HEADER + u64::from(len);
        if len > MAX_RECORD || next > end {
            return Ok(None);
        }
        let mut payload = vec![0u8; len as usize];
        self.file.read_exact_at(&mut payload, at + HEADER)?;
        if crc32fast::hash(&payload) != crc {
            return Ok(None);
        }
        Ok(Some(Record { payload, next }))
    }
}

fn sync_dir(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}
