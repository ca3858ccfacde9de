use super::*;
use crate::engine::rng::Rng;
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
        assert_eq!(s.shards.len(), k);
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
    assert_eq!(GptShards::new(&m, 4, SEQ, 3).shards.len(), 1);
    assert_eq!(GptShards::new(&m, 1, SEQ, 2).shards.len(), 1);
    assert_eq!(GptShards::new(&m, 6, SEQ, 3).shards.len(), 3);
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
