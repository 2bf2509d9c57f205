//! Static word vectors distilled from a pretrained sentence encoder (all-MiniLM-L6-v2; see
//! `model/MODEL_CARD.md` and `scripts/distil-word-vectors`), read from the `TRWV` file:
//!
//! ```text
//! b"TRWV", u32 version (1), u32 dim, u32 count          little-endian
//! count x (u8 byte length, word bytes)                   sorted by bytes
//! count x dim i8                                         row-major
//! count x f32 scale                                      row = i8 * scale
//! ```

use crate::phrases::WordMap;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum VectorsError {
    #[error("cannot read word vectors {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("word vectors {path} are malformed: {what}")]
    Format { path: PathBuf, what: String },
}

/// The committed table, beside this crate.
pub fn default_vectors_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("model").join("word_vectors.bin")
}

/// Word -> vector, every vector unit length.
#[derive(Debug, Clone)]
pub struct WordVectors {
    dim: usize,
    index: WordMap<u32>,
    data: Vec<f32>,
}

impl WordVectors {
    pub fn load(path: &Path) -> Result<WordVectors, VectorsError> {
        let bytes = std::fs::read(path)
            .map_err(|source| VectorsError::Io { path: path.to_path_buf(), source })?;
        Self::from_bytes(&bytes)
            .map_err(|what| VectorsError::Format { path: path.to_path_buf(), what })
    }

    pub(crate) fn from_bytes(b: &[u8]) -> Result<WordVectors, String> {
        let u32_at = |at: usize| -> Result<u32, String> {
            b.get(at..at + 4)
                .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
                .ok_or_else(|| "truncated header".to_string())
        };
        if b.get(..4) != Some(b"TRWV".as_slice()) {
            return Err("no TRWV magic".into());
        }
        if u32_at(4)? != 1 {
            return Err(format!("version {} (expected 1)", u32_at(4)?));
        }
        let dim = u32_at(8)? as usize;
        let count = u32_at(12)? as usize;
        if dim == 0 || dim > 4096 {
            return Err(format!("dimension {dim}"));
        }
        let mut at = 16;
        let mut words = Vec::with_capacity(count);
        for _ in 0..count {
            let len = *b.get(at).ok_or("truncated word list")? as usize;
            let w = b.get(at + 1..at + 1 + len).ok_or("truncated word")?;
            words.push(std::str::from_utf8(w).map_err(|e| e.to_string())?.to_string());
            at += 1 + len;
        }
        let q = b.get(at..at + count * dim).ok_or("truncated vectors")?;
        at += count * dim;
        let s = b.get(at..at + count * 4).ok_or("truncated scales")?;
        if at + count * 4 != b.len() {
            return Err("trailing bytes".into());
        }
        let mut data = vec![0f32; count * dim];
        for r in 0..count {
            let scale = f32::from_le_bytes([s[4 * r], s[4 * r + 1], s[4 * r + 2], s[4 * r + 3]]);
            let row = &mut data[r * dim..(r + 1) * dim];
            for (x, &v) in row.iter_mut().zip(&q[r * dim..(r + 1) * dim]) {
                *x = f32::from(v as i8) * scale;
            }
            let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt();
            if norm > 0.0 {
                row.iter_mut().for_each(|x| *x /= norm);
            }
        }
        let index = words.into_iter().enumerate().map(|(i, w)| (w, i as u32)).collect();
        Ok(WordVectors { dim, index, data })
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The unit vector of a word, if the table has it.
    pub fn get(&self, word: &str) -> Option<&[f32]> {
        Some(self.vector(self.row(word)?))
    }

    /// How many rows the table has (as many as words, unless the file repeats a word).
    pub(crate) fn rows(&self) -> usize {
        self.data.len() / self.dim
    }

    /// The row of a word in the table, if it has it (`0..len()`).
    pub(crate) fn row(&self, word: &str) -> Option<usize> {
        self.index.get(word).map(|&i| i as usize)
    }

    /// Every word with its row, in no order.
    pub(crate) fn words(&self) -> impl Iterator<Item = (&str, usize)> {
        self.index.iter().map(|(w, &i)| (w.as_str(), i as usize))
    }

    /// The unit vector at `row`.
    pub(crate) fn vector(&self, row: usize) -> &[f32] {
        &self.data[row * self.dim..(row + 1) * self.dim]
    }
}

/// The dot product of two equal-length slices, in eight lanes so that it vectorises.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ac, ar) = a.split_at(a.len() / 8 * 8);
    let (bc, br) = b.split_at(ac.len());
    for (x, y) in ac.chunks_exact(8).zip(bc.chunks_exact(8)) {
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    let mut s: f32 = acc.iter().sum();
    for (x, y) in ar.iter().zip(br) {
        s += x * y;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(words: &[(&str, [i8; 3])]) -> Vec<u8> {
        let mut b = b"TRWV".to_vec();
        for v in [1u32, 3, words.len() as u32] {
            b.extend(v.to_le_bytes());
        }
        for (w, _) in words {
            b.push(w.len() as u8);
            b.extend(w.as_bytes());
        }
        for (_, v) in words {
            b.extend(v.iter().map(|x| *x as u8));
        }
        for _ in words {
            b.extend(0.5f32.to_le_bytes());
        }
        b
    }

    #[test]
    fn reads_and_normalises() {
        let v =
            WordVectors::from_bytes(&file(&[("ache", [3, 4, 0]), ("pain", [0, 0, 7])])).unwrap();
        assert_eq!(v.dim(), 3);
        let a = v.get("ache").unwrap();
        assert!((a[0] - 0.6).abs() < 1e-6 && (a[1] - 0.8).abs() < 1e-6);
        assert!(v.get("nope").is_none());
    }

    #[test]
    fn rejects_damage() {
        let good = file(&[("ache", [3, 4, 0])]);
        assert!(WordVectors::from_bytes(&good[..good.len() - 1]).is_err());
        let mut extra = good.clone();
        extra.push(0);
        assert!(WordVectors::from_bytes(&extra).is_err());
        assert!(WordVectors::from_bytes(b"TRWX").is_err());
    }

    #[test]
    fn dot_matches_the_plain_sum() {
        let a: Vec<f32> = (0..67).map(|i| i as f32 * 0.1).collect();
        let b: Vec<f32> = (0..67).map(|i| 1.0 - i as f32 * 0.01).collect();
        let plain: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot(&a, &b) - plain).abs() < 1e-3);
    }
}
