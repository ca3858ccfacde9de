//! Loading a starting model (a primer or Hugging Face BERT / GPT-2 directory, or a fresh model of its shape)
//! and saving / loading fine-tuned model directories.

use super::data::TaskInfo;
use super::features::TextEncoder;
use super::model::{bert_heads, Backbone, HeadSizes, Task, TaskModel};
use crate::error::{Error, Result};
use crate::hf::{self, TensorFile};
use crate::models::bert::{Bert, BertConfig};
use crate::models::gpt::{Gpt, GptConfig};
use crate::tokenize::TextTokenizer;
use serde::Deserialize;
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
                    eprintln!("{}: newly initialised: {}", dir.display(), fresh.join(", "));
                }
                bert
            };
            Ok((Backbone::Bert(bert), TextEncoder::bert(&tok)?))
        }
        "gpt2" => {
            let gpt = if from_scratch {
                let config: GptConfig = hf::read_config(&cfg_path)?;
                Gpt::new(config, seed)?
            } else {
                Gpt::load(dir)?
            };
            Ok((Backbone::Gpt(gpt), TextEncoder::gpt(tok)))
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
    enc.tokenizer().save_in(dir)?;
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

/// Loads a directory written by [`save_finetuned`].
pub fn load_finetuned(dir: &Path) -> Result<(TaskModel, TaskInfo, TextEncoder)> {
    let task_path = dir.join("task.json");
    if !task_path.exists() && dir.join("config.json").exists() {
        return Err(Error::format(
            &task_path,
            "not found: this is a model directory, but not one made by `primer finetune` (which writes its task and labels there)",
        ));
    }
    let info: TaskInfo = hf::read_config(&task_path)?;
    let tok = TextTokenizer::from_dir(dir)?;
    let (backbone, enc) = match info.backbone.as_str() {
        "bert" => {
            let (bert, _) = Bert::load_with(dir, bert_heads(info.task), 0)?;
            (Backbone::Bert(bert), TextEncoder::bert(&tok)?)
        }
        "gpt" => (Backbone::Gpt(Gpt::load(dir)?), TextEncoder::gpt(tok)),
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
