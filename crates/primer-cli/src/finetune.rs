//! `primer finetune`, `primer eval` and `primer predict`: train a task head on labelled data, score a fine-tuned
//! model on another split, and use it on raw text.

use crate::texts::{InputFile, Texts};
use anyhow::{bail, Context, Result};
use primer::finetune::data::{prepare, Split};
use primer::finetune::evaluate::{run, score};
use primer::finetune::load::load_finetuned;
use primer::finetune::model::Task;
use primer::finetune::predict::{predict, Prediction};
use primer::finetune::train::{describe, finetune, saved_run, FinetuneConfig, Splits};
use primer::train::{same_input, Start};
use std::ops::Range;
use std::path::{Path, PathBuf};

#[derive(clap::ValueEnum, Clone, Copy)]
pub enum TaskArg {
    Classify,
    Ner,
    Qa,
    IntentSlot,
}

impl From<TaskArg> for Task {
    fn from(t: TaskArg) -> Task {
        match t {
            TaskArg::Classify => Task::Classify,
            TaskArg::Ner => Task::Ner,
            TaskArg::Qa => Task::Qa,
            TaskArg::IntentSlot => Task::IntentSlot,
        }
    }
}

/// Flags left out take their defaults, or with `--resume` the run's saved settings and data.
#[derive(clap::Args)]
pub struct FinetuneArgs {
    /// classify (TSV/CSV/JSONL), ner (CoNLL), qa (SQuAD v1.1 JSON) or intent-slot (JointBERT directory).
    #[arg(value_enum, required_unless_present = "resume")]
    task: Option<TaskArg>,
    /// Starting model: a primer or Hugging Face BERT / GPT-2 directory.
    #[arg(long, required_unless_present = "resume")]
    model: Option<PathBuf>,
    /// Output directory (best model, metrics.jsonl, curves.png, eval.json).
    #[arg(long)]
    out: PathBuf,
    /// Training data: a file, or for intent-slot a split directory (…/train with seq.in, seq.out, label).
    #[arg(long, required_unless_present = "resume")]
    train: Option<PathBuf>,
    /// Dev data, evaluated after each epoch (picks the best epoch).
    #[arg(long, required_unless_present = "resume")]
    dev: Option<PathBuf>,
    /// Test data, evaluated once with the best model at the end.
    #[arg(long)]
    test: Option<PathBuf>,
    /// With --resume: forget the test split the run recorded (a file that is gone, say) and score none.
    #[arg(long, requires = "resume", conflicts_with_all = ["test", "test_articles"])]
    no_test: bool,
    /// qa: articles of the training file to use, `FIRST:END` (end exclusive, file order).
    #[arg(long)]
    train_articles: Option<String>,
    /// qa: articles of the dev file to use.
    #[arg(long)]
    dev_articles: Option<String>,
    /// qa: articles of the test file to use.
    #[arg(long)]
    test_articles: Option<String>,
    /// Fresh weights of the starting model's shape (same config and tokenizer), for pretrained-vs-scratch.
    #[arg(long)]
    from_scratch: bool,
    #[arg(long, default_value_t = 3)]
    epochs: usize,
    #[arg(long, default_value_t = 5e-5)]
    lr: f32,
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Longest input in tokens (default 128; 384 for qa). Batches are padded to their longest sequence only.
    #[arg(long)]
    max_len: Option<usize>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Use only the first N training examples (data-efficiency runs).
    #[arg(long)]
    train_limit: Option<usize>,
    #[arg(long, default_value_t = 0.1)]
    warmup_ratio: f32,
    #[arg(long, default_value_t = 0.01)]
    weight_decay: f32,
    #[arg(long, default_value_t = 1.0)]
    grad_clip: f32,
    /// Stop after this many epochs without a better dev metric (0: never stop early).
    #[arg(long, default_value_t = 2)]
    patience: usize,
    /// intent-slot: weight of the intent loss; the slot loss gets 1 − α.
    #[arg(long, default_value_t = 0.5)]
    alpha: f32,
    /// qa: tokens shared by consecutive windows of a long context.
    #[arg(long, default_value_t = 128)]
    doc_stride: usize,
    /// qa: longest answer considered, in tokens.
    #[arg(long, default_value_t = 30)]
    max_answer_len: usize,
    /// qa: questions are cut to this many tokens.
    #[arg(long, default_value_t = 64)]
    max_query_len: usize,
    /// classify: column with the text.
    #[arg(long, default_value = "sentence")]
    text_column: String,
    /// classify: column with the second text of a pair.
    #[arg(long)]
    text_pair_column: Option<String>,
    /// classify: column with the label.
    #[arg(long, default_value = "label")]
    label_column: String,
    /// Batches in random order of examples instead of grouped by length.
    #[arg(long)]
    no_group_by_length: bool,
    /// Continue the run in --out after its last finished epoch, with its saved settings, model and data
    /// (--train, --dev, --test): only --out is needed. A flag given must keep the run's value; one that
    /// changes it is refused, by name.
    #[arg(long, conflicts_with = "overwrite")]
    resume: bool,
    /// Start afresh in an --out that already holds a run or a model, replacing its files once every input has
    /// been read and checked (without it, primer refuses; the model being fine-tuned is never replaced).
    #[arg(long)]
    overwrite: bool,
    /// End this invocation after this many epochs in all (the schedule still follows --epochs); continue later
    /// with --resume.
    #[arg(long)]
    stop_after_epochs: Option<usize>,
    /// The ids of the arguments given on the command line (set by `main` from clap's matches): the others keep
    /// the saved values on resume.
    #[arg(skip)]
    pub given: Vec<String>,
}

/// `A:B` → `A..B`.
fn parse_range(s: &str) -> Result<Range<usize>> {
    let (a, b) = s
        .split_once(':')
        .with_context(|| format!("article range {s:?} is not FIRST:END"))?;
    let (a, b): (usize, usize) = (a.trim().parse()?, b.trim().parse()?);
    if a >= b {
        bail!("article range {s:?} is empty");
    }
    Ok(a..b)
}

/// A split: for intent-slot a JointBERT split directory is turned into (data directory, split name); `articles`
/// is the value of the flag named `flag`.
fn split(task: Task, path: &Path, (flag, articles): (&str, Option<&String>)) -> Result<Split> {
    let mut s = Split::file(path);
    if task == Task::IntentSlot {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .with_context(|| format!("{}: not a JointBERT split directory", path.display()))?;
        s.joint_split = Some(name.to_string());
        s.path = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
    }
    if articles.is_some() && task != Task::Qa {
        bail!(
            "{flag} picks SQuAD articles: it applies to qa, not {}",
            task.name()
        );
    }
    s.articles = articles.map(|a| parse_range(a)).transpose()?;
    Ok(s)
}

/// The split a flag names: `path` (with the articles of `articles`) when given, else on resume the one the
/// run recorded. Articles left out keep the recorded ones when `path` is the recorded file or the recorded
/// file is gone (it has moved).
fn split_of(
    task: Task,
    (flag, path): (&str, Option<&PathBuf>),
    articles: (&str, Option<&String>),
    recorded: Option<Split>,
) -> Result<Option<Split>> {
    let Some(path) = path else {
        let Some(mut s) = recorded else {
            if let (articles_flag, Some(_)) = articles {
                bail!("{articles_flag} picks articles of {flag}, which is not given");
            }
            return Ok(None);
        };
        if !s.path.exists() {
            let or_drop = if flag == "--test" {
                ", or --no-test to score none"
            } else {
                ""
            };
            bail!(
                "{flag}: the run's {} is gone: pass {flag} with where it is now{or_drop}",
                s.path.display()
            );
        }
        if articles.1.is_some() {
            s.articles = split(task, &s.path, articles)?.articles;
        }
        return Ok(Some(s));
    };
    let mut s = split(task, path, articles)?;
    if let Some(r) = recorded.filter(|r| !r.path.exists() || same_input(&r.path, path)) {
        if articles.1.is_none() {
            s.articles = r.articles;
        }
    }
    Ok(Some(s))
}

/// Refuses `flag`, a setting of the task `owner`, for a model or run of another task.
fn refuse_other_task(flag: &str, owner: Task, task: Task) -> Result<()> {
    if owner != task {
        bail!("{flag} applies to {}, not {}", owner.name(), task.name());
    }
    Ok(())
}

pub fn run_finetune(a: FinetuneArgs) -> Result<()> {
    let saved = if a.resume {
        Some(saved_run(&a.out)?)
    } else {
        None
    };
    // a fresh run takes every flag (left out: its default); a resumed one the flags given
    if let (Some(given), Some(Some(started))) = (&a.model, saved.as_ref().map(|s| &s.model)) {
        if !same_input(started, given) {
            bail!(
                "--model {}: the run in {} was started from {}, and a resumed run continues from its own \
                 checkpoint (leave --model out)",
                given.display(),
                a.out.display(),
                started.display()
            );
        }
    }
    if let (Some(s), Some(t)) = (&saved, a.task) {
        let t: Task = t.into();
        if s.config.task != t {
            bail!(
                "{}: a resumed run keeps its settings, and the task {} (saved: {}) differs: leave the task out, \
                 or choose another --out for a new run",
                a.out.display(),
                t.name(),
                s.config.task.name()
            );
        }
    }
    let fresh = saved.is_none();
    let was_given = |id: &str| a.given.iter().any(|g| g == id);
    let given = |id: &str| fresh || was_given(id);
    let (mut cfg, recorded, recorded_test) = match saved {
        Some(s) => {
            let recorded = s.data.map_or([None, None], |[t, d]| [Some(t), Some(d)]);
            (s.config, recorded, s.test)
        }
        None => {
            let task = a.task.context("the task is required")?;
            (FinetuneConfig::new(task.into()), [None, None], None)
        }
    };
    let task = cfg.task;
    // a setting of another task is refused rather than ignored
    for (id, owner) in [
        ("alpha", Task::IntentSlot),
        ("doc_stride", Task::Qa),
        ("max_answer_len", Task::Qa),
        ("max_query_len", Task::Qa),
        ("text_column", Task::Classify),
        ("text_pair_column", Task::Classify),
        ("label_column", Task::Classify),
    ] {
        if was_given(id) {
            refuse_other_task(&format!("--{}", id.replace('_', "-")), owner, task)?;
        }
    }
    // each setting named as its flag's id, which is also the setting's name
    macro_rules! take {
        ($($field:ident),*) => {
            $(if given(stringify!($field)) {
                cfg.$field = a.$field;
            })*
        };
    }
    take!(
        epochs,
        lr,
        batch_size,
        seed,
        train_limit,
        warmup_ratio,
        weight_decay,
        grad_clip,
        patience,
        from_scratch,
        alpha,
        doc_stride,
        max_answer_len,
        max_query_len,
        text_column,
        label_column
    );
    cfg.max_len = a.max_len.unwrap_or(cfg.max_len);
    cfg.max_len_given = a.max_len.is_some();
    if given("text_pair_column") {
        cfg.pair_column = a.text_pair_column;
    }
    if given("no_group_by_length") {
        cfg.group_by_length = !a.no_group_by_length;
    }
    cfg.stop_after_epochs = a.stop_after_epochs;
    let [recorded_train, recorded_dev] = recorded;
    let missing = || {
        anyhow::anyhow!(
            "{}: the run does not record its data (an earlier version wrote it): pass --train and --dev again",
            a.out.display()
        )
    };
    let needed = |flag, path, articles, recorded| {
        split_of(task, (flag, path), articles, recorded)?.ok_or_else(missing)
    };
    let train = needed(
        "--train",
        a.train.as_ref(),
        ("--train-articles", a.train_articles.as_ref()),
        recorded_train,
    )?;
    let dev = needed(
        "--dev",
        a.dev.as_ref(),
        ("--dev-articles", a.dev_articles.as_ref()),
        recorded_dev,
    )?;
    let recorded_test = recorded_test.filter(|_| !a.no_test);
    let test = split_of(
        task,
        ("--test", a.test.as_ref()),
        ("--test-articles", a.test_articles.as_ref()),
        recorded_test,
    )?;
    let splits = Splits {
        train: &train,
        dev: &dev,
        test: test.as_ref(),
    };
    // a resumed run continues from its own checkpoint
    let model = match &a.model {
        Some(m) => m.clone(),
        None => a.out.join("checkpoint"),
    };
    let start = match (a.resume, a.overwrite) {
        (true, _) => Start::Resume,
        (false, true) => Start::Overwrite,
        (false, false) => Start::Fresh,
    };
    let s = finetune(&model, &a.out, &splits, &cfg, start)?;
    primer::tell!(
        "best epoch {} of {}: dev {}",
        s.best_epoch,
        s.epochs_run,
        describe(&s.dev)
    );
    if let Some(t) = &s.test {
        primer::tell!("test {}", describe(t));
    }
    primer::tell!(
        "{:.0} tokens/s, {:.0} s; model, metrics.jsonl, curves.png and eval.json in {}",
        s.tokens_per_sec,
        s.elapsed_s,
        a.out.display()
    );
    Ok(())
}

#[derive(clap::Args)]
pub struct EvalArgs {
    /// A directory written by `primer finetune`, or a Hugging Face BertForSequenceClassification,
    /// GPT2ForSequenceClassification, BertForTokenClassification or BertForQuestionAnswering.
    #[arg(long)]
    model: PathBuf,
    /// Data in the task's format (intent-slot: a split directory).
    #[arg(long)]
    data: PathBuf,
    /// qa: articles to use, `FIRST:END`.
    #[arg(long)]
    articles: Option<String>,
    /// classify: column with the text (default: the one the model was fine-tuned with, else `sentence`).
    #[arg(long)]
    text_column: Option<String>,
    /// classify: column with the second text of a pair.
    #[arg(long)]
    text_pair_column: Option<String>,
    /// classify: column with the label (default: the model's, else `label`).
    #[arg(long)]
    label_column: Option<String>,
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
}

pub fn run_eval(a: EvalArgs) -> Result<()> {
    anyhow::ensure!(a.batch_size > 0, "--batch-size must be positive");
    let (model, mut info, enc) = load_finetuned(&a.model)?;
    let columns = [
        ("--text-column", a.text_column.is_some()),
        ("--text-pair-column", a.text_pair_column.is_some()),
        ("--label-column", a.label_column.is_some()),
    ];
    if let Some((flag, _)) = columns.iter().find(|(_, given)| *given) {
        refuse_other_task(flag, Task::Classify, info.task)?;
    }
    info.text_column = a.text_column.unwrap_or(info.text_column);
    info.pair_column = a.text_pair_column.or(info.pair_column);
    info.label_column = a.label_column.unwrap_or(info.label_column);
    let s = split(info.task, &a.data, ("--articles", a.articles.as_ref()))?;
    let prep = prepare(&enc, &info, &s, None, false)?;
    let outs = run(&model, &enc, &prep.features, a.batch_size)?;
    emit!("{}", serde_json::to_string(&score(&info, &prep, &outs))?);
    Ok(())
}

#[derive(clap::Args)]
pub struct PredictArgs {
    /// A directory written by `primer finetune`, or a Hugging Face BertForSequenceClassification,
    /// GPT2ForSequenceClassification, BertForTokenClassification or BertForQuestionAnswering.
    #[arg(long)]
    model: PathBuf,
    /// qa: the passage the questions are about.
    #[arg(long)]
    context: Option<String>,
    /// One JSON object per text instead of a readable line.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    input: InputFile,
    /// Texts (classify pairs as `A ||| B`; qa: questions).
    #[arg(required_unless_present = "input")]
    texts: Vec<String>,
}

pub fn run_predict(a: PredictArgs) -> Result<()> {
    let texts = Texts::read(&a.input, a.texts)?;
    let (model, info, enc) = load_finetuned(&a.model)?;
    if a.context.is_some() && info.task != Task::Qa {
        bail!(
            "{}: --context is the passage of a qa model's questions; this model is for {}",
            a.model.display(),
            info.task.name()
        );
    }
    for p in predict(
        &model,
        &info,
        &enc,
        &texts.texts,
        a.context.as_deref(),
        &|i| texts.whence(i),
    )? {
        if a.json {
            emit!("{}", serde_json::to_string(&p)?);
            continue;
        }
        let spans = |v: &[primer::finetune::predict::Span]| {
            v.iter()
                .map(|s| format!("{} \"{}\" [{}, {})", s.label, s.text, s.start, s.end))
                .collect::<Vec<_>>()
                .join("; ")
        };
        match p {
            Prediction::Class {
                text,
                label,
                probabilities,
            } => {
                let probs: Vec<String> = probabilities
                    .iter()
                    .map(|(l, p)| format!("{l} {p:.3}"))
                    .collect();
                emit!("{label}\t{}\t{text}", probs.join(" | "));
            }
            Prediction::Entities { text, entities } if entities.is_empty() => {
                emit!("{text}\n  (no entities)");
            }
            Prediction::Entities { text, entities } => {
                emit!("{text}\n  {}", spans(&entities));
            }
            Prediction::Answer {
                question,
                answer,
                probability,
            } => {
                emit!(
                    "{question}\n  \"{}\" [{}, {}) p={probability:.3}",
                    answer.text,
                    answer.start,
                    answer.end
                );
            }
            Prediction::Intent {
                text,
                intent,
                probability,
                slots,
            } => {
                let slots = if slots.is_empty() {
                    String::new()
                } else {
                    format!("; {}", spans(&slots))
                };
                emit!("{text}\n  intent {intent} p={probability:.3}{slots}");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resumed_split_keeps_its_articles_for_its_own_file_or_where_it_moved() {
        let dir = std::env::temp_dir().join(format!("primer-split-of-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (own, other, moved) = (
            dir.join("own.json"),
            dir.join("other.json"),
            dir.join("moved.json"),
        );
        for f in [&own, &other] {
            std::fs::write(f, "{}").unwrap();
        }
        let recorded = Split {
            path: own.clone(),
            joint_split: None,
            articles: Some(0..2),
        };
        let of = |path: Option<&PathBuf>, articles: Option<&String>| {
            split_of(
                Task::Qa,
                ("--train", path),
                ("--train-articles", articles),
                Some(recorded.clone()),
            )
        };
        let articles = |s: Result<Option<Split>>| s.unwrap().unwrap().articles;
        // left out: the recorded split; its own file: its articles; another file: the whole file
        assert_eq!(articles(of(None, None)), Some(0..2));
        assert_eq!(articles(of(Some(&own), None)), Some(0..2));
        assert_eq!(articles(of(Some(&other), None)), None);
        assert_eq!(articles(of(Some(&own), Some(&"1:3".into()))), Some(1..3));
        // moved: found where it is now, with its articles; not named, an error saying so
        std::fs::rename(&own, &moved).unwrap();
        assert_eq!(articles(of(Some(&moved), None)), Some(0..2));
        let err = of(None, None).unwrap_err().to_string();
        assert!(err.contains("is gone") && err.contains("--train"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
