//! `primer bench finetune`: sequence-classification fine-tuning throughput of a BERT checkpoint on the first
//! `(warmup + steps) × batch` rows of a classification file, as `scripts/torch_finetune_bench.py` measures it:
//! consecutive rows form a batch, padded to its longest sequence (at most `max_len`), dropout as the model's
//! config says, AdamW; one step = forward, loss, backward, optimizer step. Tokens are the real (unpadded) ones.
//! With `full`, only rows of at least `max_len` tokens are used, cut to `max_len`: batches with no padding, which
//! time the kernels alone (primer skips padding, PyTorch computes it).

use super::{median, peak_rss_mib, BenchResult};
use crate::engine::adamw::AdamW;
use crate::error::{Error, Result};
use crate::finetune::data::{labels_from_train, prepare, Split, TaskInfo};
use crate::finetune::features::Feature;
use crate::finetune::load::load_backbone;
use crate::finetune::model::{HeadSizes, Task, TaskModel, Workspace};
use crate::tasks::datasets::Columns;
use crate::train::checkpoint::adamw_config;
use std::path::Path;
use std::time::Instant;

/// Which rows make the batches.
#[derive(Clone, Copy, Debug)]
pub struct Rows {
    pub batch: usize,
    pub max_len: usize,
    /// Only rows of at least `max_len` tokens (cut to `max_len`).
    pub full: bool,
}

/// Times `warmup + steps` fine-tuning steps of the model in `model_dir` on `data` (columns `sentence`, `label`).
pub fn train(
    model_dir: &Path,
    data: &Path,
    rows: Rows,
    steps: usize,
    warmup: usize,
) -> Result<BenchResult> {
    let Rows {
        batch,
        max_len,
        full,
    } = rows;
    let split = Split::file(data);
    let cols = Columns {
        text: "sentence".into(),
        pair: None,
        label: "label".into(),
    };
    let (backbone, enc) = load_backbone(model_dir, Task::Classify, false, 0)?;
    let (labels, _) = labels_from_train(Task::Classify, &split, &cols)?;
    let info = TaskInfo {
        task: Task::Classify,
        backbone: backbone.kind().into(),
        labels: labels.names,
        slot_labels: Vec::new(),
        max_len,
        text_column: cols.text,
        pair_column: None,
        label_column: cols.label,
        alpha: 0.5,
        doc_stride: 0,
        max_query_len: 0,
        max_answer_len: 0,
    };
    let wanted = (warmup + steps) * batch;
    let mut prep = prepare(&enc, &info, &split, (!full).then_some(wanted), true)?;
    if full {
        prep.features.retain(|f| f.ids.len() == max_len);
        if prep.features.len() < wanted {
            return Err(Error::Config(format!(
                "{} has {} rows of at least {max_len} tokens; {wanted} are needed",
                data.display(),
                prep.features.len()
            )));
        }
        prep.features.truncate(wanted);
    }
    let sizes = HeadSizes::for_task(Task::Classify, info.labels.len(), 0);
    let mut model = TaskModel::new(backbone, Task::Classify, sizes, 0)?;
    let adam = adamw_config((5e-5, 0.0), (0.9, 0.999), 0.01, 0.0)?;
    let mut opt = AdamW::new(adam, model.num_params());
    let mut grads = vec![0.0f32; model.num_params()];
    let mut ws = Workspace::default();
    let layout = model.backbone.layout().clone();
    let (mut times, mut tokens) = (Vec::new(), 0usize);
    let (mut first, mut last) = (0.0, 0.0);
    for (i, chunk) in prep.features.chunks(batch).enumerate() {
        let items: Vec<&Feature> = chunk.iter().collect();
        let x = enc.batch(&items);
        let t0 = Instant::now();
        grads.fill(0.0);
        let o = model.forward_backward(&mut ws, &x, Some(&mut grads), i as u64)?;
        opt.step(model.backbone.params_mut(), &grads, &layout, 5e-5);
        let dt = t0.elapsed().as_secs_f64();
        if i == 0 {
            first = o.loss;
        }
        last = o.loss;
        if i >= warmup {
            times.push(dt * 1e3);
            tokens += x.lens.iter().sum::<usize>();
        }
    }
    let total_s: f64 = times.iter().sum::<f64>() / 1e3;
    Ok(BenchResult {
        params: model.num_params(),
        median_step_ms: median(&mut times),
        tokens_per_s: tokens as f64 / total_s.max(1e-9),
        loss_first: first,
        loss_last: last,
        peak_rss_mib: peak_rss_mib(),
    })
}
