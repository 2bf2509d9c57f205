//! A small, deterministic training loop shared by the agents.

use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::Tensor;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    pub seed: u64,
}

/// Receives training progress; the CLI shows it as a progress bar.
pub trait Progress {
    fn start(&mut self, _phase: &str, _total_steps: u64) {}
    fn step(&mut self, _loss: f32) {}
    fn epoch(&mut self, _epoch: usize, _mean_loss: f32) {}
    fn finish(&mut self, _summary: &str) {}
}

/// Progress that goes nowhere (tests).
#[derive(Debug, Default)]
pub struct Quiet;
impl Progress for Quiet {}

/// Trains `model` for `cfg.epochs` over `n` examples in shuffled mini-batches. `loss` builds the
/// loss of one batch of example indices. The learning rate decays linearly to a tenth.
/// The model must live on an autodiff device.
pub fn fit<M: Module>(
    mut model: M,
    n: usize,
    cfg: &TrainConfig,
    progress: &mut dyn Progress,
    phase: &str,
    loss: impl Fn(&M, &[usize]) -> Tensor<1>,
) -> (M, Vec<f32>) {
    let mut optim = AdamConfig::new().init();
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let mut order: Vec<usize> = (0..n).collect();
    let steps_per_epoch = n.div_ceil(cfg.batch_size);
    let total = (steps_per_epoch * cfg.epochs) as u64;
    progress.start(phase, total);
    let mut step = 0u64;
    let mut epoch_losses = Vec::with_capacity(cfg.epochs);
    for _epoch in 0..cfg.epochs {
        order.shuffle(&mut rng);
        let mut sum = 0f64;
        let mut count = 0usize;
        for chunk in order.chunks(cfg.batch_size) {
            let l = loss(&model, chunk);
            let value = l.clone().into_scalar::<f32>();
            let grads = GradientsParams::from_grads(l.backward(), &model);
            let frac = step as f64 / total.max(1) as f64;
            let lr = cfg.learning_rate * (1.0 - 0.9 * frac);
            model = optim.step(lr, model, grads);
            sum += f64::from(value);
            count += 1;
            step += 1;
            progress.step(value);
        }
        epoch_losses.push((sum / count.max(1) as f64) as f32);
        progress.epoch(epoch_losses.len(), *epoch_losses.last().expect("just pushed"));
    }
    progress.finish(&format!(
        "final epoch loss {:.4}",
        epoch_losses.last().copied().unwrap_or(f32::NAN)
    ));
    (model, epoch_losses)
}
