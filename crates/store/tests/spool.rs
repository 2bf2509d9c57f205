//! The spool file on its own: records come back as written, a torn or corrupt tail is cut off
//! (and kept aside), and one spool has one owner.

use std::fs::OpenOptions;
use std::io::Write;

use store::spool::{Recovered, Spool};

fn payloads(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| format!("{{\"record\":{i},\"pad\":\"{}\"}}", "x".repeat(i * 7)).into_bytes())
        .collect()
}

fn read_all(spool: &Spool) -> Vec<Vec<u8>> {
    spool.read(0, usize::MAX).unwrap().into_iter().map(|r| r.payload).collect()
}

fn aside_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains(".discarded-"))
        .collect()
}

#[test]
fn records_come_back_in_order_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/spool");
    let (mut spool, recovered) = Spool::open(&path).unwrap();
    assert_eq!(recovered, Recovered { records: 0, discarded_bytes: 0 });
    let all = payloads(10);
    let mut offsets = spool.append(&all[..3]).unwrap();
    offsets.extend(spool.append(&all[3..]).unwrap());
    assert_eq!(spool.records(), 10);
    // Each record can be read back alone at the offset its append gave.
    for (at, payload) in offsets.iter().zip(&all) {
        assert_eq!(&spool.read_one(*at).unwrap().unwrap().payload, payload);
    }
    assert_eq!(spool.read_one(spool.len()).unwrap(), None);
    assert_eq!(read_all(&spool), all);
    // Reading in chunks follows `next`.
    let first = spool.read(0, 4).unwrap();
    assert_eq!(first.len(), 4);
    let rest = spool.read(first[3].next, 100).unwrap();
    assert_eq!(rest.len(), 6);
    assert_eq!(rest[5].next, spool.len());
    drop(spool);

    let (spool, recovered) = Spool::open(&path).unwrap();
    assert_eq!(recovered, Recovered { records: 10, discarded_bytes: 0 });
    assert_eq!(read_all(&spool), all);
    assert!(aside_files(path.parent().unwrap()).is_empty());
}

#[test]
fn a_torn_tail_is_cut_off_and_appends_continue_after_the_last_whole_record() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spool");
    let all = payloads(5);
    let (mut spool, _) = Spool::open(&path).unwrap();
    spool.append(&all).unwrap();
    let whole = spool.len();
    drop(spool);
    // A crash in the middle of the next write: a header promising 100 bytes, and 10 of them.
    let mut f = OpenOptions::new().append(true).open(&path).unwrap();
    f.write_all(&100u32.to_le_bytes()).unwrap();
    f.write_all(&0xdead_beefu32.to_le_bytes()).unwrap();
    f.write_all(&[b'y'; 10]).unwrap();
    drop(f);

    let (mut spool, recovered) = Spool::open(&path).unwrap();
    assert_eq!(recovered, Recovered { records: 5, discarded_bytes: 18 });
    assert_eq!(spool.len(), whole);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), whole);
    let aside = aside_files(dir.path());
    assert_eq!(aside.len(), 1);
    assert_eq!(std::fs::read(&aside[0]).unwrap().len(), 18);

    spool.append(&[b"after".to_vec()]).unwrap();
    drop(spool);
    let (spool, recovered) = Spool::open(&path).unwrap();
    assert_eq!(recovered.records, 6);
    assert_eq!(read_all(&spool).last().unwrap(), b"after");
}

#[test]
fn a_record_whose_checksum_fails_ends_the_spool() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spool");
    let all = payloads(4);
    let (mut spool, _) = Spool::open(&path).unwrap();
    spool.append(&all).unwrap();
    let last_start = spool.read(0, 3).unwrap()[2].next;
    drop(spool);
    // Flip one byte inside the last record's payload: its length still fits, its CRC does not.
    let mut bytes = std::fs::read(&path).unwrap();
    let i = usize::try_from(last_start).unwrap() + 8 + 3;
    bytes[i] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();

    let (spool, recovered) = Spool::open(&path).unwrap();
    assert_eq!(recovered.records, 3);
    assert_eq!(recovered.discarded_bytes, bytes.len() as u64 - last_start);
    assert_eq!(read_all(&spool), all[..3].to_vec());
}

#[test]
fn a_length_beyond_the_limit_is_corruption_not_an_allocation() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spool");
    std::fs::write(&path, [0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 1, 2, 3]).unwrap();
    let (spool, recovered) = Spool::open(&path).unwrap();
    assert_eq!(recovered, Recovered { records: 0, discarded_bytes: 11 });
    assert!(spool.is_empty());
}

#[test]
fn clear_empties_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spool");
    let (mut spool, _) = Spool::open(&path).unwrap();
    spool.append(&payloads(3)).unwrap();
    spool.clear().unwrap();
    assert_eq!(spool.records(), 0);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
    spool.append(&payloads(1)).unwrap();
    assert_eq!(read_all(&spool), payloads(1));
}

#[test]
fn one_spool_has_one_owner() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spool");
    let (spool, _) = Spool::open(&path).unwrap();
    let err = Spool::open(&path).unwrap_err();
    assert!(err.to_string().contains("in use"), "{err}");
    drop(spool);
    Spool::open(&path).unwrap();
}
