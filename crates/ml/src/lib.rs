//! Shared machine-learning building blocks for the four agents, on Burn.
//!
//! This is the only crate besides the agents that knows Burn tensors. It gives the device
//! choice (CPU `flex` by default, CUDA behind the `cuda` feature, always picked explicitly),
//! the hashed embedding-bag text encoder every agent uses, batching of hashed features,
//! structured inputs (findings, age, sex, vitals) as dense features, a small training loop,
//! and saving and loading weights (burnpack, read fully into memory, never memory-mapped).

pub mod batch;
pub mod device;
pub mod encoder;
pub mod inputs;
pub mod io;
pub mod rank;
pub mod softmax;
pub mod sparse;
pub mod train;

pub use burn;
pub use device::{DeviceChoice, DeviceError, select_device, serial_matrix_products};
