//! Choosing the compute device from configuration.

use burn::tensor::Device;
use std::fmt;
use std::str::FromStr;

/// A device that cannot be chosen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceError {
    #[error("unknown device '{0}': use 'cpu' or 'cuda:N'")]
    Unknown(String),
    #[error("this build has no CUDA support: rebuild with `--features cuda`")]
    NoCuda,
}

/// Where the models run: `cpu` (burn-flex) or `cuda:N` (needs the `cuda` feature).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceChoice {
    #[default]
    Cpu,
    Cuda(usize),
}

impl FromStr for DeviceChoice {
    type Err = DeviceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "cpu" | "flex" => Ok(DeviceChoice::Cpu),
            "cuda" => Ok(DeviceChoice::Cuda(0)),
            other => other
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(DeviceChoice::Cuda)
                .ok_or_else(|| DeviceError::Unknown(other.to_owned())),
        }
    }
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceChoice::Cpu => f.write_str("cpu"),
            DeviceChoice::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

/// The device for a choice. Never `Device::default()`, which would try CUDA first.
pub fn select_device(choice: DeviceChoice) -> Result<Device, DeviceError> {
    match choice {
        DeviceChoice::Cpu => Ok(Device::flex()),
        #[cfg(feature = "cuda")]
        DeviceChoice::Cuda(n) => Ok(Device::cuda(n)),
        #[cfg(not(feature = "cuda"))]
        DeviceChoice::Cuda(_) => Err(DeviceError::NoCuda),
    }
}

/// Keeps every matrix product on the thread that asks for it, whatever its size.
///
/// Burn's CPU backend hands a product of more than 192³ multiply-adds (the symptom
/// classifier's output layer from a batch of 42 requests) to gemm with leave to split it over
/// rayon's pool, one thread per core. At inference that split only competes with the other
/// agents, which the service already runs in parallel on worker threads of their own, for the
/// same cores (the default micro-batches of at most 32 stay below the line; a larger
/// `max_batch` would not); it also made the one-thread benchmark figures at batches of 64 and
/// 128 quietly use two. So the service and the benchmarks call this once at start, before any
/// product. Training does not: its products are larger and run alone. Process-wide (gemm keeps
/// the threshold in a global); it does not change any result.
pub fn serial_matrix_products() {
    gemm::set_threading_threshold(usize::MAX);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_choices() {
        assert_eq!("cpu".parse::<DeviceChoice>(), Ok(DeviceChoice::Cpu));
        assert_eq!("cuda:1".parse::<DeviceChoice>(), Ok(DeviceChoice::Cuda(1)));
        assert!("gpu".parse::<DeviceChoice>().is_err());
        #[cfg(not(feature = "cuda"))]
        assert!(select_device(DeviceChoice::Cuda(0)).is_err());
    }

    #[test]
    fn serial_products_give_the_same_result() {
        use burn::tensor::{Tensor, TensorData};
        let device = select_device(DeviceChoice::Cpu).unwrap();
        // The symptom classifier's output layer at a batch of 64: above the splitting line.
        let (m, k, n) = (64, 128, 1314);
        let values = |len: usize, salt: usize| -> Vec<f32> {
            (0..len).map(|i| ((i * 7919 + salt) % 1009) as f32 / 1009.0 - 0.5).collect()
        };
        let a: Tensor<2> = Tensor::from_data(TensorData::new(values(m * k, 1), [m, k]), &device);
        let b: Tensor<2> = Tensor::from_data(TensorData::new(values(k * n, 2), [k, n]), &device);
        let before = gemm::get_threading_threshold();
        let split = a.clone().matmul(b.clone()).into_data();
        serial_matrix_products();
        let serial = a.matmul(b).into_data();
        gemm::set_threading_threshold(before);
        assert_eq!(split.as_slice::<f32>().unwrap(), serial.as_slice::<f32>().unwrap());
    }
}
