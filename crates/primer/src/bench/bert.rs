//! `primer bench bert-train` and `primer bench bert-infer`: the workloads of `scripts/torch_bert_train.py`
//! (BertForPreTraining, 4 layers, 256 wide, batch 16 × 128, MLM + NSP, AdamW) and
//! `scripts/torch_bert_infer.py` (a checkpoint's encoder forward at a given batch and length).

use super::{median, peak_rss_mib, BenchResult};
use crate::engine::adamw::{AdamW, AdamWConfig};
use crate::engine::rng::Rng;
use crate::engine::xent::IGNORE;
use crate::error::{Error, Result};
use crate::models::bert::{Bert, BertConfig, BertInput, Heads};
use crate::train::data_parallel::BertShards;
use crate::train::memory::{check_fits, lower_bound, product};
use std::path::Path;
use std::time::Instant;

const VOCAB: usize = 8192;
const SEQ: usize = 128;
const BATCH: usize = 16;
const FIRST_WORD: u32 = 5;
const CLS: u32 = 2;
const SEP: u32 = 3;
const MASK: u32 = 4;

/// One synthetic batch as the reference draws it: `[CLS] A [SEP] B [SEP]` of random words split at a random
/// place, no padding, 15 % of the words turned into [MASK] targets, random NSP labels.
fn batch(rng: &mut Rng) -> (Vec<u32>, Vec<u32>, Vec<i32>, Vec<i32>) {
    let mut ids = vec![0u32; BATCH * SEQ];
    let mut types = vec![0u32; BATCH * SEQ];
    let mut mlm = vec![IGNORE; BATCH * SEQ];
    for b in 0..BATCH {
        let row = &mut ids[b * SEQ..(b + 1) * SEQ];
        let split = 2 + rng.below(SEQ as u64 - 4) as usize;
        for (t, id) in row.iter_mut().enumerate() {
            *id = match t {
                0 => CLS,
                t if t == split || t == SEQ - 1 => SEP,
                _ => FIRST_WORD + rng.below(VOCAB as u64 - FIRST_WORD as u64) as u32,
            };
            if t > split {
                types[b * SEQ + t] = 1;
            }
            if *id >= FIRST_WORD && rng.uniform() < 0.15 {
                mlm[b * SEQ + t] = *id as i32;
                *id = MASK;
            }
        }
    }
    let nsp = (0..BATCH).map(|_| rng.below(2) as i32).collect();
    (ids, types, mlm, nsp)
}

/// Runs `warmup + steps` pretraining steps and reports the median step time.
pub fn train(steps: usize, warmup: usize) -> Result<BenchResult> {
    let mut cfg = BertConfig::new(VOCAB, 512, 4, 4, 256);
    cfg.hidden_dropout_prob = 0.0;
    cfg.attention_probs_dropout_prob = 0.0;
    let mut model = Bert::new(cfg, Heads::PRETRAINING, 0)?;
    // the reference decays every parameter
    let mut layout = model.layout.clone();
    layout.specs_mut().iter_mut().for_each(|s| s.decay = true);
    let adam = AdamWConfig {
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.01,
    };
    let mut opt = AdamW::new(adam, model.num_params());
    let mut shards = BertShards::for_pool(&model, BATCH, SEQ);
    let mut grads = vec![0.0f32; model.num_params()];
    let mut rng = Rng::new(1);
    let lens = vec![SEQ; BATCH];
    let mut times = Vec::with_capacity(steps);
    let (mut first, mut last) = (0.0, 0.0);
    for i in 0..warmup + steps {
        let (ids, types, mlm, nsp) = batch(&mut rng);
        let t0 = Instant::now();
        let inp = BertInput {
            batch: BATCH,
            seq: SEQ,
            ids: &ids,
            type_ids: &types,
            lens: &lens,
        };
        let n_mlm = mlm.iter().filter(|&&l| l != IGNORE).count().max(1);
        grads.fill(0.0);
        let scales = (1.0 / n_mlm as f32, 1.0 / BATCH as f32);
        let st = shards.pretrain_forward_backward(
            &model,
            &inp,
            (&mlm, &nsp),
            &mut grads,
            scales,
            i as u64,
        )?;
        opt.step(&mut model.params, &grads, &layout, 1e-4);
        let dt = t0.elapsed().as_secs_f64();
        if i == 0 {
            first = st.total_loss();
        }
        last = st.total_loss();
        if i >= warmup {
            times.push(dt);
        }
    }
    let med = median(&mut times);
    Ok(BenchResult {
        params: model.num_params(),
        median_step_ms: med * 1e3,
        tokens_per_s: (BATCH * SEQ) as f64 / med,
        loss_first: first,
        loss_last: last,
        peak_rss_mib: peak_rss_mib(),
    })
}

/// Median time in ms of the encoder forward (eval mode, no padding) of the checkpoint in `dir` over `runs` runs
/// after `warmup`, on random word ids of shape `[batch, seq]`.
pub fn infer(dir: &Path, batch: usize, seq: usize, runs: usize, warmup: usize) -> Result<f64> {
    let model = Bert::load(dir)?.into_inference();
    check_shape(&model.config, dir, batch, seq)?;
    let mut rng = Rng::new(7);
    // ordinary word ids: above the special tokens at the start of every BERT vocabulary
    let v = model.config.vocab_size as u64;
    let lo = (v / 30).max(1);
    let ids: Vec<u32> = (0..batch * seq)
        .map(|_| (lo + rng.below(v - lo)) as u32)
        .collect();
    let types = vec![0u32; batch * seq];
    let lens = vec![seq; batch];
    let inp = BertInput {
        batch,
        seq,
        ids: &ids,
        type_ids: &types,
        lens: &lens,
    };
    let mut times = Vec::with_capacity(runs);
    for i in 0..warmup + runs {
        let t0 = Instant::now();
        std::hint::black_box(model.hidden_states(&inp)?);
        if i >= warmup {
            times.push(t0.elapsed().as_secs_f64() * 1e3);
        }
    }
    Ok(median(&mut times))
}

/// Refuses an input shape the model in `dir` cannot run, naming the flag (`--batch`, `--seq`): no sequence, no
/// token, more tokens than the model has positions, or activations that could not fit in memory.
fn check_shape(c: &BertConfig, dir: &Path, batch: usize, seq: usize) -> Result<()> {
    if batch == 0 {
        return Err(Error::Config("--batch must be at least 1".into()));
    }
    let max = c.max_position_embeddings;
    if !(1..=max).contains(&seq) {
        return Err(Error::Config(format!(
            "--seq {seq} must be from 1 to the model's max_position_embeddings, {max} (in {})",
            dir.join("config.json").display()
        )));
    }
    // per token a forward holds at least the hidden states, one layer's queries, keys, values, attention output,
    // feed-forward activations and each head's attention probabilities
    let per_token = c
        .hidden_size
        .saturating_mul(8)
        .saturating_add(c.intermediate_size)
        .saturating_add(c.num_attention_heads.saturating_mul(seq));
    check_fits(
        lower_bound(0, product(&[batch, seq, per_token])),
        "--batch or --seq",
    )
}
