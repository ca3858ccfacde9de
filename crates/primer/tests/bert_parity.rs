//! primer's BERT against PyTorch + transformers (fixture from scripts/make_fixtures.py): a padded batch through
//! `BertForPreTraining` — hidden states, pooler, MLM and NSP logits, the losses, every gradient and the parameters
//! after 10 AdamW steps; then a checkpoint primer writes must read back identically.

mod common;

use common::{fixture as fixture_named, max_abs_diff};
use primer::engine::adamw::{AdamW, AdamWConfig};
use primer::hf::TensorFile;
use primer::models::bert::{Bert, BertActs, BertInput};
use std::path::{Path, PathBuf};

fn fixture() -> PathBuf {
    fixture_named("bert_tiny")
}

struct Reference {
    file: TensorFile,
    batch: usize,
    seq: usize,
    ids: Vec<u32>,
    types: Vec<u32>,
    lens: Vec<usize>,
    mlm: Vec<i32>,
    nsp: Vec<i32>,
}

impl Reference {
    fn load() -> Reference {
        Reference::load_from(&fixture())
    }

    /// The inputs of `dir/reference.safetensors`; labels are empty where the fixture has none (forward only).
    fn load_from(dir: &Path) -> Reference {
        let file = TensorFile::open(&dir.join("reference.safetensors")).unwrap();
        let ints = |n: &str| file.get_i64(n).unwrap_or_default();
        let (ids, shape) = ints("input_ids");
        let (mask, _) = ints("attention_mask");
        let (seq, batch) = (shape[1], shape[0]);
        let lens = mask
            .chunks(seq)
            .map(|m| m.iter().filter(|&&x| x == 1).count())
            .collect();
        // the padding is at the end of each row, as BertInput expects
        for (row, &len) in mask.chunks(seq).zip(&lens) {
            assert!(row[..len].iter().all(|&x| x == 1));
        }
        Reference {
            batch,
            seq,
            ids: ids.iter().map(|&i| i as u32).collect(),
            types: ints("token_type_ids").0.iter().map(|&i| i as u32).collect(),
            lens,
            mlm: ints("mlm_labels").0.iter().map(|&i| i as i32).collect(),
            nsp: ints("nsp_labels").0.iter().map(|&i| i as i32).collect(),
            file,
        }
    }

    fn input(&self) -> BertInput<'_> {
        BertInput {
            batch: self.batch,
            seq: self.seq,
            ids: &self.ids,
            type_ids: &self.types,
            lens: &self.lens,
        }
    }

    fn f32(&self, name: &str) -> Vec<f32> {
        self.file.get_f32(name).unwrap().0
    }
}

/// Rows of `[batch, seq, width]` that are real tokens, and those that are padding.
fn split_rows(x: &[f32], r: &Reference, width: usize) -> (Vec<f32>, Vec<f32>) {
    let (mut real, mut pad) = (Vec::new(), Vec::new());
    for (b, &len) in r.lens.iter().enumerate() {
        real.extend_from_slice(&x[b * r.seq * width..(b * r.seq + len) * width]);
        pad.extend_from_slice(&x[(b * r.seq + len) * width..(b + 1) * r.seq * width]);
    }
    (real, pad)
}

#[test]
fn bert_for_pretraining_matches_pytorch() {
    let model = Bert::load(&fixture()).unwrap();
    let r = Reference::load();
    let v = model.config.vocab_size;
    let c = model.config.hidden_size;

    // eval-mode outputs at the real tokens (primer runs only those: padding rows are zero, PyTorch's are
    // computed but meaningless)
    let hidden = model.hidden_states(&r.input()).unwrap();
    let (real, pad) = split_rows(&hidden, &r, c);
    assert!(!pad.is_empty() && pad.iter().all(|&x| x == 0.0));
    let d = max_abs_diff(&real, &split_rows(&r.f32("hidden"), &r, c).0);
    assert!(d <= 1e-4, "hidden states differ by {d}");
    let pooled = model.pooled(&hidden, r.batch, r.seq).unwrap();
    assert!(max_abs_diff(&pooled, &r.f32("pooled")) <= 1e-4);
    let nsp = model.nsp_logits(&hidden, r.batch, r.seq).unwrap();
    assert!(max_abs_diff(&nsp, &r.f32("seq_relationship_logits")) <= 1e-4);
    let all_rows: Vec<usize> = (0..r.batch * r.seq).collect();
    let logits = model.mlm_logits(&hidden, &all_rows).unwrap();
    let d = max_abs_diff(
        &split_rows(&logits, &r, v).0,
        &split_rows(&r.f32("prediction_logits"), &r, v).0,
    );
    assert!(d <= 1e-4, "MLM logits differ by {d}");

    let mut acts = BertActs::new(&model.config, r.batch, r.seq, true);
    let st = model
        .pretrain_loss(&mut acts, &r.input(), &r.mlm, &r.nsp)
        .unwrap();
    for (what, got, want) in [
        ("mlm", st.mlm_loss(), r.f32("mlm_loss")[0]),
        ("nsp", st.nsp_loss(), r.f32("nsp_loss")[0]),
        ("total", st.total_loss(), r.f32("loss")[0]),
    ] {
        assert!(
            (got as f32 - want).abs() <= 1e-4,
            "{what} loss {got} vs {want}"
        );
    }

    // gradients of HF's loss (mean MLM + mean NSP), tensor by tensor relative to the largest entry
    let scales = (1.0 / st.mlm_count as f32, 1.0 / st.nsp_count as f32);
    let grads_of = |model: &Bert, acts: &mut BertActs, g: &mut [f32]| {
        model
            .pretrain_forward_backward(acts, &r.input(), (&r.mlm, &r.nsp), g, scales, 0)
            .unwrap()
            .total_loss()
    };
    let mut grads = vec![0.0; model.num_params()];
    grads_of(&model, &mut acts, &mut grads);
    for spec in model.layout.specs() {
        let want = r.f32(&format!("grad.{}", spec.name));
        let got = &grads[spec.range()];
        let d = max_abs_diff(got, &want);
        if spec.name.ends_with("key.bias") {
            // zero in exact arithmetic (softmax ignores a per-row constant): round-off only
            assert!(d <= 1e-6, "gradient of {} is {d}, should be ~0", spec.name);
            continue;
        }
        let scale = want.iter().fold(0.0f32, |a, b| a.max(b.abs())).max(1e-6);
        assert!(
            d / scale <= 1e-3,
            "gradient of {} differs by {} (relative)",
            spec.name,
            d / scale
        );
    }

    // ten AdamW steps on the same batch (the fixture's settings: lr 1e-3, betas 0.9/0.95, decay 0.1 on 2-D)
    let mut model = model;
    let cfg = AdamWConfig {
        beta1: 0.9,
        beta2: 0.95,
        eps: 1e-8,
        weight_decay: 0.1,
    };
    let mut opt = AdamW::new(cfg, model.num_params());
    for (step, want) in r.f32("losses").iter().enumerate() {
        grads.fill(0.0);
        let l = grads_of(&model, &mut acts, &mut grads);
        assert!(
            (l as f32 - want).abs() <= 1e-4,
            "loss at step {step}: {l} vs {want}"
        );
        let layout = model.layout.clone();
        opt.step(&mut model.params, &grads, &layout, 1e-3);
    }
    for spec in model.layout.specs() {
        if spec.name.ends_with("key.bias") {
            continue; // moved by round-off alone, in torch and here alike (see the fixtures README)
        }
        let d = max_abs_diff(
            &model.params[spec.range()],
            &r.f32(&format!("step10.{}", spec.name)),
        );
        assert!(d <= 1e-4, "{} after 10 steps differs by {d}", spec.name);
    }
}

/// MLM logits over the real tokens of `r`'s batch, primer's and the fixture's.
fn mlm_logits(model: &Bert, r: &Reference) -> (Vec<f32>, Vec<f32>) {
    let v = model.config.vocab_size;
    let hidden = model.hidden_states(&r.input()).unwrap();
    let all_rows: Vec<usize> = (0..r.batch * r.seq).collect();
    let logits = model.mlm_logits(&hidden, &all_rows).unwrap();
    (
        split_rows(&logits, r, v).0,
        split_rows(&r.f32("prediction_logits"), r, v).0,
    )
}

/// Decoders stored apart from the word embeddings are read as transformers reads them: an untied one computes its
/// logits with `decoder.bias` (the file's `cls.predictions.bias` is zero and unused), and one stored beside a tied
/// config, differing from the embeddings, is used as it is. Saved again by primer, each gives the same logits.
#[test]
fn decoders_stored_apart_match_pytorch_and_save_back() {
    for name in ["bert_untied_head", "bert_stray_head"] {
        let dir = fixture_named(name);
        let model = Bert::load(&dir).unwrap();
        assert!(!model.config.tie_word_embeddings, "{name}");
        let r = Reference::load_from(&dir);
        let (got, want) = mlm_logits(&model, &r);
        let d = max_abs_diff(&got, &want);
        assert!(d <= 1e-4, "{name}: MLM logits differ by {d}");

        let out = common::tmp(name);
        model.save(&out, &[]).unwrap();
        let names = TensorFile::open(&out.join("model.safetensors"))
            .unwrap()
            .names()
            .unwrap();
        // transformers reads an untied head's bias by this name
        assert!(names.iter().any(|n| n == "cls.predictions.decoder.bias"));
        let again = Bert::load(&out).unwrap();
        assert_eq!(mlm_logits(&again, &r).0, got, "{name} saved by primer");
    }
}

#[test]
fn saved_checkpoint_reloads_identically() {
    let model = Bert::load(&fixture()).unwrap();
    let dir = common::tmp("bert-save");
    model.save(&dir, &[]).unwrap();
    let again = Bert::load(&dir).unwrap();
    assert_eq!(again.heads, model.heads);
    assert_eq!(again.params, model.params);
    let names = TensorFile::open(&dir.join("model.safetensors"))
        .unwrap()
        .names()
        .unwrap();
    assert!(
        !names.iter().any(|n| n == "cls.predictions.decoder.weight"),
        "tied decoder saved twice"
    );
}

#[test]
fn missing_tensor_is_named() {
    let model = Bert::load(&fixture()).unwrap();
    let dir = common::tmp("bert-missing");
    std::fs::copy(fixture().join("config.json"), dir.join("config.json")).unwrap();
    // an encoder tensor, and a head that is only partly there (its first tensor is what marks it present)
    for missing in [
        "bert.encoder.layer.1.output.dense.weight",
        "cls.predictions.transform.dense.weight",
        "cls.seq_relationship.weight",
    ] {
        let mut layout = primer::engine::params::ParamLayout::default();
        let mut params = Vec::new();
        for s in model.layout.specs().iter().filter(|s| s.name != missing) {
            layout.push(s.name.clone(), &s.shape);
            params.extend_from_slice(&model.params[s.range()]);
        }
        primer::hf::save_safetensors(&dir.join("model.safetensors"), &layout, &params, &[])
            .unwrap();
        let err = Bert::load(&dir).unwrap_err().to_string();
        assert!(err.contains(missing), "{err}");
        assert!(err.contains("model.safetensors"), "{err}");
    }
    // a config.json with fewer layers than the weights: refused rather than losing the last layer
    model.save(&dir, &[]).unwrap();
    let text = std::fs::read_to_string(dir.join("config.json")).unwrap();
    let mut cfg: serde_json::Value = serde_json::from_str(&text).unwrap();
    let layers = cfg["num_hidden_layers"].as_u64().unwrap();
    cfg["num_hidden_layers"] = (layers - 1).into();
    std::fs::write(dir.join("config.json"), cfg.to_string()).unwrap();
    let err = Bert::load(&dir).unwrap_err().to_string();
    assert!(
        err.contains(&format!(
            "holds {layers} layers, but config.json's num_hidden_layers is {}",
            layers - 1
        )),
        "{err}"
    );
}
