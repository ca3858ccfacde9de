use super::*;
use crate::engine::rng::Rng;
use crate::models::bert::{BertConfig, Heads};
use crate::models::gpt::GptConfig;

const SEQ: usize = 8;

fn model(dropout: f32) -> Gpt {
    let mut cfg = GptConfig::new(29, SEQ, 2, 2, 16);
    (cfg.resid_pdrop, cfg.embd_pdrop, cfg.attn_pdrop) = (dropout, dropout, dropout);
    Gpt::new(cfg, 7).unwrap()
}

/// `n` random sequences whose first `ignored` targets are ignored.
fn batch(n: usize, seed: u64, ignored: usize) -> (Vec<u32>, Vec<i32>) {
    let mut r = Rng::new(seed);
    let ids: Vec<u32> = (0..n * SEQ).map(|_| (r.next_u64() % 29) as u32).collect();
    let mut targets: Vec<i32> = (0..n * SEQ).map(|_| (r.next_u64() % 29) as i32).collect();
    targets[..ignored].fill(xent::IGNORE);
    (ids, targets)
}

/// Loss and gradients of the whole batch through one [`GptActs`], no sharding.
fn whole(m: &Gpt, ids: &[u32], targets: &[i32], seed: u64) -> (f64, Vec<f32>) {
    let mut acts = GptActs::new(&m.config, ids.len() / SEQ, SEQ);
    let mut g = vec![0.5f32; m.num_params()];
    let count = targets.iter().filter(|&&t| t != xent::IGNORE).count();
    let loss = m
        .forward_backward(&mut acts, ids, targets, &mut g, 1.0 / count as f32, seed)
        .unwrap();
    (loss, g)
}

#[test]
fn shards_give_the_whole_batch_loss_and_gradients() {
    let m = model(0.0);
    // uneven ignored targets, so that the shards' means carry different weights
    let (ids, targets) = batch(4, 1, SEQ + 3);
    let (loss, g) = whole(&m, &ids, &targets, 3);
    let count = targets.iter().filter(|&&t| t != xent::IGNORE).count();
    for k in [2, 4] {
        let mut s = GptShards::new(&m, 4, SEQ, k);
        assert_eq!(s.inner.shards.len(), k);
        // the caller's buffer already holds gradients (accumulation): shards must add to them
        let mut gs = vec![0.5f32; m.num_params()];
        let l = s
            .forward_backward(&m, &ids, &targets, &mut gs, 1.0 / count as f32, 3)
            .unwrap();
        assert!((l - loss).abs() < 1e-6, "{k} shards: loss {l} vs {loss}");
        let scale = g.iter().fold(0.0f32, |a, x| a.max(x.abs()));
        for (i, (a, b)) in gs.iter().zip(&g).enumerate() {
            assert!(
                (a - b).abs() <= 1e-5 * scale,
                "{k} shards, grad {i}: {a} vs {b}"
            );
        }
        let l = s.loss(&m, &ids, &targets).unwrap();
        let mut acts = GptActs::new(&m.config, 4, SEQ);
        let want = m.loss(&mut acts, &ids, &targets).unwrap();
        assert!(
            (l - want).abs() < 1e-6,
            "{k} shards: eval loss {l} vs {want}"
        );
        // a second step reuses the shards' own buffers: they must start from zero again
        let mut again = vec![0.5f32; m.num_params()];
        s.forward_backward(&m, &ids, &targets, &mut again, 1.0 / count as f32, 3)
            .unwrap();
        assert_eq!(again, gs, "{k} shards: a second identical step differs");
    }
}

#[test]
fn shards_that_do_not_divide_the_batch_fall_back_to_one() {
    let m = model(0.0);
    assert_eq!(GptShards::new(&m, 4, SEQ, 3).inner.shards.len(), 1);
    assert_eq!(GptShards::new(&m, 1, SEQ, 2).inner.shards.len(), 1);
    assert_eq!(GptShards::new(&m, 6, SEQ, 3).inner.shards.len(), 3);
}

#[test]
fn shards_draw_their_own_dropout_masks() {
    // two copies of one sequence: with shared masks both halves would give the same loss, and the batch mean
    // would equal that of the single sequence under the step's seed
    let m = model(0.3);
    let (one, one_t) = batch(1, 2, 0);
    let (ids, targets) = (
        [one.clone(), one.clone()].concat(),
        [one_t.clone(), one_t.clone()].concat(),
    );
    let (single, _) = whole(&m, &one, &one_t, 5);
    let mut s = GptShards::new(&m, 2, SEQ, 2);
    let mut g = vec![0.0f32; m.num_params()];
    let two = s
        .forward_backward(&m, &ids, &targets, &mut g, 1.0, 5)
        .unwrap();
    assert!((two - single).abs() > 1e-4, "{two} vs {single}");
    // the first shard keeps the step's seed: one shard over the pair equals the unsharded pass
    let (pair, _) = whole(&m, &ids, &targets, 5);
    let mut s1 = GptShards::new(&m, 2, SEQ, 1);
    let l1 = s1
        .forward_backward(&m, &ids, &targets, &mut g, 1.0, 5)
        .unwrap();
    assert!((l1 - pair).abs() < 1e-9, "{l1} vs {pair}");
}

#[test]
fn a_batch_of_the_wrong_size_is_an_error() {
    let m = model(0.0);
    let (ids, targets) = batch(3, 1, 0);
    let mut s = GptShards::new(&m, 4, SEQ, 2);
    let mut g = vec![0.0f32; m.num_params()];
    let e = s.forward_backward(&m, &ids, &targets, &mut g, 1.0, 0);
    assert!(e.unwrap_err().to_string().contains("does not fit"));
    assert!(s.loss(&m, &ids, &targets[..5]).is_err());
}

/// A tiny BERT and a padded batch of four sequences with MLM and NSP labels.
struct BertCase {
    model: Bert,
    ids: Vec<u32>,
    types: Vec<u32>,
    lens: Vec<usize>,
    mlm: Vec<i32>,
    nsp: Vec<i32>,
}

impl BertCase {
    fn new(dropout: f32) -> BertCase {
        let mut cfg = BertConfig::new(31, 16, 2, 2, 8);
        cfg.intermediate_size = 12;
        (cfg.hidden_dropout_prob, cfg.attention_probs_dropout_prob) = (dropout, dropout);
        let model = Bert::new(cfg, Heads::PRETRAINING, 3).unwrap();
        let lens = vec![8, 3, 6, 5];
        let mut r = Rng::new(4);
        let (mut ids, mut types, mut mlm) =
            (vec![0u32; 32], vec![0u32; 32], vec![xent::IGNORE; 32]);
        for (b, &n) in lens.iter().enumerate() {
            for t in 0..n {
                ids[b * SEQ + t] = 5 + (r.next_u64() % 26) as u32;
                types[b * SEQ + t] = (2 * t >= n) as u32;
                if r.next_u64().is_multiple_of(3) {
                    mlm[b * SEQ + t] = (r.next_u64() % 31) as i32;
                }
            }
        }
        let nsp = vec![1, 0, xent::IGNORE, 1];
        BertCase {
            model,
            ids,
            types,
            lens,
            mlm,
            nsp,
        }
    }

    fn input(&self) -> BertInput<'_> {
        BertInput {
            batch: 4,
            seq: SEQ,
            ids: &self.ids,
            type_ids: &self.types,
            lens: &self.lens,
        }
    }

    fn labels(&self) -> (&[i32], &[i32]) {
        (&self.mlm, &self.nsp)
    }
}

#[test]
fn bert_shards_give_the_whole_batch_stats_and_gradients() {
    let c = BertCase::new(0.0);
    let m = &c.model;
    let scales = (0.1, 0.3);
    let mut acts = BertActs::new(&m.config, 4, SEQ, true);
    let mut g = vec![0.0f32; m.num_params()];
    let want = m
        .pretrain_forward_backward(&mut acts, &c.input(), c.labels(), &mut g, scales, 1)
        .unwrap();
    let want_eval = m
        .pretrain_loss(&mut acts, &c.input(), &c.mlm, &c.nsp)
        .unwrap();
    let scale = g.iter().fold(0.0f32, |a, x| a.max(x.abs()));
    for k in [2, 4] {
        let mut s = BertShards::new(m, 4, SEQ, k);
        assert_eq!(s.inner.shards.len(), k);
        let mut gs = vec![0.0f32; m.num_params()];
        let st = s
            .pretrain_forward_backward(m, &c.input(), c.labels(), &mut gs, scales, 1)
            .unwrap();
        assert_eq!(
            (st.mlm_count, st.nsp_count),
            (want.mlm_count, want.nsp_count)
        );
        assert!(
            (st.total_loss() - want.total_loss()).abs() < 1e-6,
            "{k} shards"
        );
        for (i, (a, b)) in gs.iter().zip(&g).enumerate() {
            assert!(
                (a - b).abs() <= 1e-5 * scale,
                "{k} shards, grad {i}: {a} vs {b}"
            );
        }
        let ev = s.pretrain_loss(m, &c.input(), c.labels()).unwrap();
        assert_eq!(ev.mlm_correct, want_eval.mlm_correct);
        assert!(
            (ev.total_loss() - want_eval.total_loss()).abs() < 1e-6,
            "{k} shards"
        );
    }
}

#[test]
fn bert_shards_reject_a_batch_of_another_shape() {
    let c = BertCase::new(0.1);
    let m = &c.model;
    let mut s = BertShards::new(m, 2, SEQ, 2);
    let mut g = vec![0.0f32; m.num_params()];
    let e = s.pretrain_forward_backward(m, &c.input(), c.labels(), &mut g, (1.0, 1.0), 0);
    assert!(e
        .unwrap_err()
        .to_string()
        .contains("activations for [2, 8]"));
    let short = (&c.mlm[..5], &c.nsp[..]);
    assert!(s.pretrain_loss(m, &c.input(), short).is_err());
    // with dropout, a sharded step still runs and counts every label
    let mut s = BertShards::new(m, 4, SEQ, 2);
    let st = s
        .pretrain_forward_backward(m, &c.input(), c.labels(), &mut g, (1.0, 1.0), 0)
        .unwrap();
    assert_eq!(st.nsp_count, 3);
    assert!(st.total_loss().is_finite());
}
