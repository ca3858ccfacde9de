//! primer's GPT-2 against PyTorch + transformers on the same weights (fixtures from scripts/make_fixtures.py):
//! logits, loss, every gradient, and the parameters after 10 AdamW steps.

mod common;

use common::{fixture, max_abs_diff};
use primer::engine::adamw::{AdamW, AdamWConfig};
use primer::hf::TensorFile;
use primer::models::gpt::{Gpt, GptActs};
use std::path::Path;

struct Reference {
    file: TensorFile,
    ids: Vec<u32>,
    targets: Vec<i32>,
    batch: usize,
    seq: usize,
}

fn reference(dir: &Path) -> Reference {
    let file = TensorFile::open(&dir.join("reference.safetensors")).unwrap();
    let (ids, shape) = file.get_i64("input_ids").unwrap();
    let (targets, _) = file.get_i64("targets").unwrap();
    Reference {
        ids: ids.iter().map(|&i| i as u32).collect(),
        targets: targets.iter().map(|&t| t as i32).collect(),
        batch: shape[0],
        seq: shape[1],
        file,
    }
}

fn check_model(name: &str) {
    let dir = fixture(name);
    let model = Gpt::load(&dir).unwrap();
    let r = reference(&dir);
    let n_targets = r.targets.iter().filter(|&&t| t != -100).count();

    // logits and loss
    let logits = model.logits(&r.ids, r.batch).unwrap();
    let (want, _) = r.file.get_f32("logits").unwrap();
    let d = max_abs_diff(&logits, &want);
    assert!(d <= 1e-4, "{name}: logits differ by {d}");
    let mut acts = GptActs::new(&model.config, r.batch, r.seq);
    let loss = model.loss(&mut acts, &r.ids, &r.targets).unwrap();
    let (want_loss, _) = r.file.get_f32("loss").unwrap();
    assert!(
        (loss as f32 - want_loss[0]).abs() <= 1e-4,
        "{name}: loss {loss} vs {}",
        want_loss[0]
    );

    // gradients, tensor by tensor, relative to the tensor's largest entry
    let mut grads = vec![0.0; model.num_params()];
    // forward + backward of the mean loss over the batch
    let grads_of = |model: &Gpt, acts: &mut GptActs, grads: &mut [f32]| {
        model
            .forward_backward(acts, &r.ids, &r.targets, grads, 1.0 / n_targets as f32, 0)
            .unwrap()
    };
    let l2 = grads_of(&model, &mut acts, &mut grads);
    assert!(
        (l2 - loss).abs() < 1e-6,
        "training-mode loss {l2} differs from eval loss {loss}"
    );
    for spec in model.layout.specs() {
        let (want, _) = r.file.get_f32(&format!("grad.{}", spec.name)).unwrap();
        let got = &grads[spec.range()];
        let scale = want.iter().fold(0.0f32, |a, b| a.max(b.abs())).max(1e-6);
        let d = max_abs_diff(got, &want) / scale;
        assert!(
            d <= 1e-3,
            "{name}: gradient of {} differs by {d} (relative)",
            spec.name
        );
    }

    // ten AdamW steps on the same batch (lr 1e-3, betas 0.9/0.95, decay 0.1 on 2-D tensors)
    let mut model = model;
    let mut opt = AdamW::new(
        AdamWConfig {
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-8,
            weight_decay: 0.1,
        },
        model.num_params(),
    );
    let (want_losses, _) = r.file.get_f32("losses").unwrap();
    for (step, want_l) in want_losses.iter().enumerate() {
        grads.fill(0.0);
        let l = grads_of(&model, &mut acts, &mut grads);
        assert!(
            (l as f32 - want_l).abs() <= 1e-4,
            "{name}: loss at step {step}: {l} vs {want_l}"
        );
        let layout = model.layout.clone();
        opt.step(&mut model.params, &grads, &layout, 1e-3);
    }
    for spec in model.layout.specs() {
        let (want, _) = r.file.get_f32(&format!("step10.{}", spec.name)).unwrap();
        let d = max_abs_diff(&model.params[spec.range()], &want);
        assert!(
            d <= 1e-4,
            "{name}: {} after 10 steps differs by {d}",
            spec.name
        );
    }
}

/// A tied config whose file also holds an `lm_head.weight` differing from `wte`: transformers uses that head, and
/// so does primer.
#[test]
fn gpt2_head_stored_apart_from_a_tied_wte_matches_pytorch() {
    let dir = fixture("gpt2_stray_head");
    let model = Gpt::load(&dir).unwrap();
    assert!(!model.config.tie_word_embeddings);
    let file = TensorFile::open(&dir.join("reference.safetensors")).unwrap();
    let (ids, shape) = file.get_i64("input_ids").unwrap();
    let ids: Vec<u32> = ids.iter().map(|&i| i as u32).collect();
    let logits = model.logits(&ids, shape[0]).unwrap();
    let d = max_abs_diff(&logits, &file.get_f32("logits").unwrap().0);
    assert!(d <= 1e-4, "logits differ by {d}");
}

#[test]
fn gpt2_tied_matches_pytorch() {
    check_model("gpt2_tiny");
}

#[test]
fn gpt2_untied_tanh_gelu_matches_pytorch() {
    check_model("gpt2_tiny_untied");
}

#[test]
fn gpt2_unscaled_attention_matches_pytorch() {
    // scale_attn_weights: false, as some GPT-2 variants set it
    check_model("gpt2_tiny_unscaled");
}

/// Beams in one cache, as beam search uses them: repeated from a prompt, stepped together (one token each, then
/// two), reordered between steps; each beam's logits are those of the full forward over its own text.
#[test]
fn beam_caches_step_and_reorder_like_separate_texts() {
    let model = Gpt::load(&fixture("gpt2_tiny")).unwrap();
    let v = model.config.vocab_size;
    let prompt = [3u32, 50, 8];
    let mut cache = model.new_cache(8);
    model.step(&mut cache, &prompt).unwrap();
    cache.repeat(3);
    let mut texts = vec![prompt.to_vec(); 3];
    let steps: [&[u32]; 4] = [
        &[11, 12, 13],
        &[21, 22, 23],
        &[31, 32, 33, 34, 35, 36],
        &[41, 42, 43],
    ];
    for (ids, parents) in steps
        .iter()
        .zip([[0, 1, 2], [2, 2, 0], [1, 0, 0], [2, 1, 2]])
    {
        cache.reorder(&parents);
        texts = parents.iter().map(|&p| texts[p].clone()).collect();
        let logits = model.step(&mut cache, ids).unwrap();
        let per_beam = ids.len() / 3;
        for (b, text) in texts.iter_mut().enumerate() {
            text.extend_from_slice(&ids[b * per_beam..(b + 1) * per_beam]);
            let full = model.logits(text, 1).unwrap();
            let d = max_abs_diff(&logits[b * v..(b + 1) * v], &full[(text.len() - 1) * v..]);
            assert!(d < 1e-4, "beam {b} after {text:?}: logits differ by {d}");
        }
    }
    // a step that would pass the capacity is an error, not a write past the cache
    assert!(model.step(&mut cache, &[1, 2, 3]).is_err());
}

#[test]
fn kv_cache_generation_matches_full_forward() {
    for name in ["gpt2_tiny", "gpt2_tiny_unscaled"] {
        let model = Gpt::load(&fixture(name)).unwrap();
        let ids: Vec<u32> = (0..12).map(|i| (i * 7 + 3) % 97).collect();
        let full = model.logits(&ids, 1).unwrap();
        let v = model.config.vocab_size;
        let mut cache = model.new_cache(ids.len());
        // a prompt of 5, then one token at a time
        let mut last = model.step(&mut cache, &ids[..5]).unwrap();
        assert!(max_abs_diff(&last, &full[4 * v..5 * v]) < 1e-4, "{name}");
        for t in 5..12 {
            last = model.step(&mut cache, &ids[t..t + 1]).unwrap();
            let d = max_abs_diff(&last, &full[t * v..(t + 1) * v]);
            assert!(d < 1e-4, "{name} position {t}: cached logits differ by {d}");
        }
    }
}
