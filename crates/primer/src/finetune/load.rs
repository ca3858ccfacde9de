//! Loading a starting model (a primer or Hugging Face BERT / GPT-2 directory, or a fresh model of its shape)
//! and saving / loading fine-tuned model directories.

use super::data::TaskInfo;
use super::features::TextEncoder;
use super::model::{bert_heads, Backbone, HeadSizes, Task, TaskModel};
use super::train::FinetuneConfig;
use crate::error::{Error, Result};
use crate::hf::{self, TensorFile};
use crate::models::bert::{Bert, BertConfig};
use crate::models::gpt::{Gpt, GptConfig};
use crate::tokenize::TextTokenizer;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Deserialize)]
struct ModelType {
    #[serde(default)]
    model_type: String,
}

/// The backbone in `dir` for `task` (its pretrained weights, or with `from_scratch` fresh ones of the same
/// shape, seeded by `seed`) and the encoder of its tokenizer.
pub fn load_backbone(
    dir: &Path,
    task: Task,
    from_scratch: bool,
    seed: u64,
) -> Result<(Backbone, TextEncoder)> {
    hf::check_model_dir(dir)?;
    let cfg_path = dir.join("config.json");
    let kind: ModelType = hf::read_config(&cfg_path)?;
    let tok = TextTokenizer::from_dir(dir)?;
    match kind.model_type.as_str() {
        "bert" => {
            let bert = if from_scratch {
                let config: BertConfig = hf::read_config(&cfg_path)?;
                Bert::new(config, bert_heads(task), seed)?
            } else {
                let (bert, fresh) = Bert::load_with(dir, bert_heads(task), seed)?;
                if !fresh.is_empty() {
                    crate::say!("{}: newly initialised: {}", dir.display(), fresh.join(", "));
                }
                bert
            };
            Ok((Backbone::Bert(bert), TextEncoder::bert(&tok)?))
        }
        "gpt2" => {
            let mut gpt = if from_scratch {
                let config: GptConfig = hf::read_config(&cfg_path)?;
                Gpt::new(config, seed)?
            } else {
                Gpt::load(dir)?
            };
            // a classifier pads with the end-of-text token, saved as transformers' pad_token_id so that it
            // classifies a batch there
            gpt.config.pad_token_id = gpt.config.pad_token_id.or(tok.eos_id());
            let pad = gpt.config.pad_token_id;
            Ok((Backbone::Gpt(gpt), TextEncoder::gpt(tok, pad)))
        }
        other => Err(Error::format(
            &cfg_path,
            format!("model_type \"{other}\": fine-tuning reads \"bert\" or \"gpt2\""),
        )),
    }
}

/// Writes a fine-tuned model into `dir`: config.json with the label names, model.safetensors (`metadata` in
/// its header), tokenizer.json and task.json.
pub fn save_finetuned(
    model: &TaskModel,
    info: &TaskInfo,
    enc: &TextEncoder,
    dir: &Path,
    metadata: &[(&str, String)],
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(Error::io(dir))?;
    let mut backbone = model.backbone.clone();
    let arch = architecture(model);
    match &mut backbone {
        Backbone::Bert(b) => {
            b.config.architectures = vec![arch.into()];
            if model.task != Task::Qa {
                (b.config.id2label, b.config.label2id) = hf::label_maps(&info.labels);
            }
        }
        Backbone::Gpt(g) => {
            g.config.architectures = vec![arch.into()];
            (g.config.id2label, g.config.label2id) = hf::label_maps(&info.labels);
        }
    }
    let pad = match &backbone {
        Backbone::Gpt(g) => g.config.pad_token_id,
        Backbone::Bert(_) => None,
    };
    enc.tokenizer()
        .save_in_padded(dir, pad, backbone.max_positions())?;
    hf::write_json(&dir.join("task.json"), info)?;
    backbone.save(dir, metadata)
}

/// Hugging Face's class for each task head (the joint task has none: its tensors follow JointBERT's idea).
fn architecture(model: &TaskModel) -> &'static str {
    match (&model.backbone, model.task) {
        (Backbone::Gpt(_), _) => "GPT2ForSequenceClassification",
        (_, Task::Classify) => "BertForSequenceClassification",
        (_, Task::Ner) => "BertForTokenClassification",
        (_, Task::Qa) => "BertForQuestionAnswering",
        (_, Task::IntentSlot) => "PrimerBertForIntentAndSlots",
    }
}

/// Loads a directory written by [`save_finetuned`], or a Hugging Face model with one of the task heads primer
/// runs ([`hf_task_info`]).
pub fn load_finetuned(dir: &Path) -> Result<(TaskModel, TaskInfo, TextEncoder)> {
    hf::check_model_dir(dir)?;
    let task_path = dir.join("task.json");
    let info: TaskInfo = if !task_path.exists() && dir.join("config.json").exists() {
        hf_task_info(dir)?
    } else {
        hf::read_config(&task_path)?
    };
    let tok = TextTokenizer::from_dir(dir)?;
    let (backbone, enc) = match info.backbone.as_str() {
        "bert" => {
            let (bert, fresh) = Bert::load_with(dir, bert_heads(info.task), 0)?;
            if let Some(name) = fresh.first() {
                return Err(Error::format(
                    &dir.join("model.safetensors"),
                    format!("checkpoint is missing tensor `{name}` of the encoder"),
                ));
            }
            (Backbone::Bert(bert), TextEncoder::bert(&tok)?)
        }
        "gpt" => {
            let gpt = Gpt::load(dir)?;
            let pad = gpt.config.pad_token_id;
            (Backbone::Gpt(gpt), TextEncoder::gpt(tok, pad))
        }
        other => {
            return Err(Error::format(
                &dir.join("task.json"),
                format!("backbone \"{other}\" is neither bert nor gpt"),
            ))
        }
    };
    let sizes = HeadSizes::for_task(info.task, info.labels.len(), info.slot_labels.len());
    let mut model = TaskModel::with_heads(backbone, info.task, sizes)?;
    model.alpha = info.alpha;
    model.load_head(&TensorFile::open(&dir.join("model.safetensors"))?)?;
    Ok((model, info, enc))
}

/// The task of a Hugging Face model that `primer finetune` did not write (it has no task.json): the class its
/// config.json names in `architectures` gives the task and `id2label` the labels (transformers' `LABEL_0`, … for
/// as many as the head has when it names none); the other settings are `primer finetune`'s defaults, the longest
/// input cut to the model's positions (and a qa question to half the input when that is less than 64 tokens).
fn hf_task_info(dir: &Path) -> Result<TaskInfo> {
    #[derive(Deserialize)]
    struct HfHeadConfig {
        #[serde(default, deserialize_with = "hf::null_as_default")]
        architectures: Vec<String>,
        #[serde(default, deserialize_with = "hf::null_as_default")]
        id2label: BTreeMap<String, String>,
        problem_type: Option<String>,
        max_position_embeddings: Option<usize>,
        n_positions: Option<usize>,
    }
    let path = dir.join("config.json");
    let c: HfHeadConfig = hf::read_config(&path)?;
    let known = |arch: &str| match arch {
        "BertForSequenceClassification" => Some((Task::Classify, "bert", "classifier")),
        "BertForTokenClassification" => Some((Task::Ner, "bert", "classifier")),
        "BertForQuestionAnswering" => Some((Task::Qa, "bert", "qa_outputs")),
        "GPT2ForSequenceClassification" => Some((Task::Classify, "gpt", "score")),
        _ => None,
    };
    let Some((task, backbone, head)) = c.architectures.iter().find_map(|a| known(a)) else {
        return Err(Error::format(
            &dir.join("task.json"),
            format!(
                "not found, and config.json's architectures ({}) names no task head primer runs: a directory \
                 made by `primer finetune`, or a Hugging Face BertForSequenceClassification, \
                 BertForTokenClassification, BertForQuestionAnswering or GPT2ForSequenceClassification",
                if c.architectures.is_empty() {
                    "none".to_string()
                } else {
                    c.architectures.join(", ")
                }
            ),
        ));
    };
    if let Some(kind @ ("regression" | "multi_label_classification")) = c.problem_type.as_deref() {
        return Err(Error::format(
            &path,
            format!("problem_type \"{kind}\": primer's classifiers pick one label of several"),
        ));
    }
    let labels = if task == Task::Qa {
        Vec::new()
    } else {
        head_labels(dir, &path, c.id2label, &format!("{head}.weight"))?
    };
    let d = FinetuneConfig::new(task);
    let positions = c
        .max_position_embeddings
        .or(c.n_positions)
        .unwrap_or(d.max_len);
    let max_len = d.max_len.min(positions);
    Ok(TaskInfo {
        task,
        backbone: backbone.into(),
        labels,
        slot_labels: Vec::new(),
        max_len,
        text_column: d.text_column,
        pair_column: d.pair_column,
        label_column: d.label_column,
        alpha: d.alpha,
        doc_stride: d.doc_stride,
        max_query_len: d.max_query_len.min(max_len / 2),
        max_answer_len: d.max_answer_len,
    })
}

/// The label names of a Hugging Face head whose weight is `weight`: `id2label`'s, which must name 0, 1, … once
/// each, or without it `LABEL_0`, `LABEL_1`, … for the head's rows, as transformers names them.
fn head_labels(
    dir: &Path,
    config: &Path,
    id2label: BTreeMap<String, String>,
    weight: &str,
) -> Result<Vec<String>> {
    let labels: Vec<String> = if id2label.is_empty() {
        let file = TensorFile::open(&dir.join("model.safetensors"))?;
        let (_, shape) = file.get_f32(weight)?;
        (0..shape.first().copied().unwrap_or(0))
            .map(|i| format!("LABEL_{i}"))
            .collect()
    } else {
        let mut ids: Vec<(usize, String)> = Vec::with_capacity(id2label.len());
        for (id, label) in id2label {
            let id = id.parse().map_err(|_| {
                Error::format(config, format!("id2label: key \"{id}\" is not a label id"))
            })?;
            ids.push((id, label));
        }
        ids.sort();
        if ids.iter().enumerate().any(|(i, (id, _))| i != *id) {
            return Err(Error::format(
                config,
                "id2label must name the labels 0, 1, … of the head, each once",
            ));
        }
        ids.into_iter().map(|(_, label)| label).collect()
    };
    if let Some(twice) = labels
        .iter()
        .enumerate()
        .find_map(|(i, l)| labels[..i].contains(l).then_some(l))
    {
        return Err(Error::format(
            config,
            format!("id2label names \"{twice}\" twice: each label needs a name of its own"),
        ));
    }
    if labels.len() < 2 {
        return Err(Error::format(
            config,
            format!(
                "the head has {} output(s): a regression head or a one-class one is not a classifier primer runs",
                labels.len()
            ),
        ));
    }
    Ok(labels)
}
