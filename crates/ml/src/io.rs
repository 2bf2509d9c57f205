//! Saving and loading a model: `config.json` beside `weights.bpk` (burnpack).
//!
//! Weights are read fully into memory and then applied: `load_file` would memory-map the file
//! and keep tensors borrowed from it, which made every operation copy the embedding table on
//! some backends (docs/burn.md).

use burn::module::Module;
use burn::store::ModuleRecord;
use burn::tensor::Bytes;
use serde::{Serialize, de::DeserializeOwned};
use std::path::{Path, PathBuf};

pub const CONFIG_FILE: &str = "config.json";
pub const WEIGHTS_FILE: &str = "weights.bpk";
pub const CARD_FILE: &str = "MODEL_CARD.md";

#[derive(Debug, thiserror::Error)]
pub enum ModelIoError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("{path} is not a valid model config: {source}")]
    Config { path: PathBuf, source: serde_json::Error },
    #[error("{path} does not hold this model's weights: {message}")]
    Weights { path: PathBuf, message: String },
    #[error(
        "model in {dir} was trained for a different knowledge base ({what}); retrain with `triagent-train`"
    )]
    Mismatch { dir: PathBuf, what: String },
}

pub fn save_config<C: Serialize>(dir: &Path, config: &C) -> Result<(), ModelIoError> {
    let path = dir.join(CONFIG_FILE);
    std::fs::create_dir_all(dir)
        .map_err(|e| ModelIoError::Write { path: dir.to_path_buf(), source: e })?;
    let text = serde_json::to_string_pretty(config).expect("configs serialise");
    std::fs::write(&path, text + "\n").map_err(|e| ModelIoError::Write { path, source: e })
}

pub fn load_config<C: DeserializeOwned>(dir: &Path) -> Result<C, ModelIoError> {
    let path = dir.join(CONFIG_FILE);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| ModelIoError::Read { path: path.clone(), source: e })?;
    serde_json::from_str(&text).map_err(|e| ModelIoError::Config { path, source: e })
}

pub fn save_weights<M: Module>(dir: &Path, model: M) -> Result<(), ModelIoError> {
    let path = dir.join(WEIGHTS_FILE);
    let bytes = model
        .into_record()
        .into_bytes()
        .map_err(|e| ModelIoError::Weights { path: path.clone(), message: e.to_string() })?;
    std::fs::write(&path, &bytes[..]).map_err(|e| ModelIoError::Write { path, source: e })
}

/// Applies the weights in `dir` to a freshly initialised model of the right shape.
pub fn load_weights<M: Module>(dir: &Path, model: M) -> Result<M, ModelIoError> {
    let path = dir.join(WEIGHTS_FILE);
    let bytes =
        std::fs::read(&path).map_err(|e| ModelIoError::Read { path: path.clone(), source: e })?;
    let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(bytes))
        .map_err(|e| ModelIoError::Weights { path: path.clone(), message: e.to_string() })?;
    model
        .try_load_record(record)
        .map_err(|e| ModelIoError::Weights { path, message: e.to_string() })
}

pub fn write_card(dir: &Path, text: &str) -> Result<(), ModelIoError> {
    let path = dir.join(CARD_FILE);
    std::fs::write(&path, text).map_err(|e| ModelIoError::Write { path, source: e })
}

/// Checks that the vocabulary a model was trained on is the one loaded now.
pub fn check_vocab(
    dir: &Path,
    what: &str,
    trained: &[String],
    now: &[String],
) -> Result<(), ModelIoError> {
    if trained == now {
        return Ok(());
    }
    let first =
        trained.iter().zip(now).position(|(a, b)| a != b).unwrap_or(trained.len().min(now.len()));
    Err(ModelIoError::Mismatch {
        dir: dir.to_path_buf(),
        what: format!(
            "{what}: {} trained vs {} now, first difference at #{first}",
            trained.len(),
            now.len()
        ),
    })
}
