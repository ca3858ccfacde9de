//! `primer bench train`: exactly the workload of `scripts/torch_gpt_train.py` (same model, synthetic data,
//! batch sampling and optimizer), timed step by step, so the two can be compared on one machine.

use super::{median, peak_rss_mib, BenchResult};
use crate::engine::adamw::{AdamW, AdamWConfig};
use crate::error::{Error, Result};
use crate::models::gpt::{Gpt, GptConfig};
use crate::train::data_parallel::GptShards;
use std::time::Instant;

/// The reference's presets: (vocab, block, batch, n_layer, n_head, n_embd).
pub fn preset(name: &str) -> Result<(usize, usize, usize, usize, usize, usize)> {
    match name {
        "small" => Ok((65, 64, 12, 4, 4, 128)),
        "big" => Ok((8192, 128, 16, 6, 8, 256)),
        other => Err(Error::Config(format!(
            "unknown preset \"{other}\" (small, big)"
        ))),
    }
}

/// The reference's linear congruential generator (Knuth's MMIX constants, top 31 bits).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

/// The reference's synthetic corpus: a walk that advances by 1–3 tokens modulo the vocabulary.
fn corpus(vocab: usize, n: usize) -> Vec<u32> {
    let mut r = Lcg(42);
    let mut x = 0u64;
    (0..n)
        .map(|_| {
            let v = x as u32;
            x = (x + 1 + r.next() % 3) % vocab as u64;
            v
        })
        .collect()
}

/// Runs `warmup + steps` training steps of the preset and reports the median step time.
pub fn train(preset_name: &str, steps: usize, warmup: usize) -> Result<BenchResult> {
    let (vocab, block, batch, n_layer, n_head, n_embd) = preset(preset_name)?;
    let mut cfg = GptConfig::new(vocab, block, n_layer, n_head, n_embd);
    cfg.tie_word_embeddings = false;
    let mut model = Gpt::new(cfg, 0)?;
    // the reference decays every parameter
    let mut layout = model.layout.clone();
    layout.specs_mut().iter_mut().for_each(|s| s.decay = true);
    let mut opt = AdamW::new(
        AdamWConfig {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
        },
        model.num_params(),
    );
    let data = corpus(vocab, 200_000);
    let mut r = Lcg(1234);
    let mut shards = GptShards::for_pool(&model, batch, block);
    let mut grads = vec![0.0f32; model.num_params()];
    let (mut x, mut y) = (vec![0u32; batch * block], vec![0i32; batch * block]);
    let mut times = Vec::with_capacity(steps);
    let (mut first, mut last) = (0.0, 0.0);
    for i in 0..warmup + steps {
        let t0 = Instant::now();
        for b in 0..batch {
            let o = (r.next() % (data.len() - block - 1) as u64) as usize;
            x[b * block..(b + 1) * block].copy_from_slice(&data[o..o + block]);
            for t in 0..block {
                y[b * block + t] = data[o + 1 + t] as i32;
            }
        }
        grads.fill(0.0);
        let loss = shards.forward_backward(
            &model,
            &x,
            &y,
            &mut grads,
            1.0 / (batch * block) as f32,
            i as u64,
        )?;
        opt.step(&mut model.params, &grads, &layout, 1e-3);
        let dt = t0.elapsed().as_secs_f64();
        if i == 0 {
            first = loss;
        }
        last = loss;
        if i >= warmup {
            times.push(dt);
        }
    }
    let med = median(&mut times);
    Ok(BenchResult {
        params: model.num_params(),
        median_step_ms: med * 1e3,
        tokens_per_s: (batch * block) as f64 / med,
        loss_first: first,
        loss_last: last,
        peak_rss_mib: peak_rss_mib(),
    })
}
