//! `primer fill-mask` and `primer embed`: use a BERT directory (primer's or Hugging Face's).

use crate::texts::{InputFile, Texts};
use anyhow::{Context, Result};
use primer::hf::save_raw;
use primer::infer::embed::{embed, Pooling};
use primer::infer::fill_mask::FillMask;
use primer::models::bert::Bert;
use primer::tokenize::TextTokenizer;
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct FillMaskArgs {
    /// Directory with config.json, model.safetensors and tokenizer.json (or vocab.txt).
    #[arg(long)]
    model: PathBuf,
    /// Candidates shown per [MASK] [default: 5, or every target with --targets].
    #[arg(long)]
    top_k: Option<usize>,
    /// Score only these tokens at each [MASK] (comma-separated or repeated), e.g. `--targets good,bad`:
    /// probabilities are still over the whole vocabulary. Each must be one token of the vocabulary.
    #[arg(long, value_delimiter = ',')]
    targets: Option<Vec<String>>,
    /// One JSON object per text on stdout instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    input: InputFile,
    /// Texts with one or more [MASK] tokens.
    #[arg(required_unless_present = "input")]
    texts: Vec<String>,
}

/// A BERT directory's model, reordered for inference, and its tokenizer, refused when the tokenizer has ids the
/// model has no embedding for.
fn load(dir: &Path) -> Result<(Bert, TextTokenizer)> {
    let model = Bert::load(dir)?.into_inference();
    let tok = TextTokenizer::from_dir(dir)?;
    anyhow::ensure!(
        tok.vocab_size() <= model.config.vocab_size,
        "{}: the tokenizer has {} tokens, but config.json's vocab_size is {}: they belong to different models",
        dir.display(),
        tok.vocab_size(),
        model.config.vocab_size
    );
    Ok((model, tok))
}

pub fn fill(a: FillMaskArgs) -> Result<()> {
    let texts = Texts::read(&a.input, a.texts)?;
    let (model, tok) = load(&a.model)?;
    anyhow::ensure!(
        model.heads.mlm,
        "{}: this checkpoint has no masked-LM head (cls.predictions.*), which fill-mask needs: a BertModel (a \
         sentence encoder, say) only embeds; use `primer embed`",
        a.model.display()
    );
    let top_k = a.top_k.or(a.targets.as_ref().map(|t| t.len())).unwrap_or(5);
    let fm = FillMask::new(&model, &tok, top_k, a.targets.as_deref())?;
    // every text is checked and filled before anything is printed, so that a bad one leaves no partial output
    let masked = texts
        .texts
        .iter()
        .enumerate()
        .map(|(i, text)| fm.prepare(text).with_context(|| texts.whence(i)))
        .collect::<Result<Vec<_>>>()?;
    let all = fm.run(&masked)?;
    for (text, fills) in texts.texts.iter().zip(all) {
        if a.json {
            emit!("{}", serde_json::json!({ "text": text, "masks": fills }));
            continue;
        }
        emit!("{text}");
        for (i, f) in fills.iter().enumerate() {
            let cands: Vec<String> = f
                .candidates
                .iter()
                .map(|c| format!("{} {}", c.token, probability(c.prob)))
                .collect();
            emit!(
                "  [MASK] {} (token {}): {}",
                i + 1,
                f.position,
                cands.join(" | ")
            );
        }
    }
    Ok(())
}

#[derive(clap::Args)]
pub struct EmbedArgs {
    /// Directory with config.json, model.safetensors and tokenizer.json (or vocab.txt).
    #[arg(long)]
    model: PathBuf,
    /// mean (over real tokens, as sentence-transformers) or cls.
    #[arg(long, default_value = "mean")]
    pooling: Pooling,
    /// Scale each embedding to unit length.
    #[arg(long)]
    normalize: bool,
    /// Longest input in tokens ([CLS] and [SEP] included); longer texts are truncated. Default: the model's
    /// max_position_embeddings.
    #[arg(long)]
    max_length: Option<usize>,
    /// One JSON object per text on stdout ({"text", "embedding"}) instead of plain numbers.
    #[arg(long, conflicts_with = "out")]
    json: bool,
    /// Write the embeddings to FILE.safetensors instead of stdout: one f32 tensor `embeddings` of shape
    /// [texts, hidden size], row i for text i, with the model and settings in its metadata.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Replace the --out file when it exists (without this flag, an existing file is refused).
    #[arg(long, requires = "out")]
    overwrite: bool,
    #[command(flatten)]
    input: InputFile,
    /// Texts to embed.
    #[arg(required_unless_present = "input")]
    texts: Vec<String>,
}

pub fn embed_texts(a: EmbedArgs) -> Result<()> {
    if let Some(out) = &a.out {
        anyhow::ensure!(
            out.extension().is_some_and(|e| e == "safetensors"),
            "--out {}: the file name must end in .safetensors (the format written)",
            out.display()
        );
        anyhow::ensure!(
            !out.is_dir(),
            "--out {} is a directory; name a file in it",
            out.display()
        );
        // symlink_metadata: a dangling link is a file there too
        anyhow::ensure!(
            a.overwrite || std::fs::symlink_metadata(out).is_err(),
            "--out {} exists; pass --overwrite to replace it",
            out.display()
        );
        // a file of the model's directory (its weights, which are read while they would be replaced, or a run's
        // optimizer state or checkpoint) is not replaced, even with --overwrite; a new file there is fine
        let inside = matches!(
            (out.canonicalize(), a.model.canonicalize()),
            (Ok(x), Ok(model)) if x.starts_with(&model)
        );
        anyhow::ensure!(
            !inside,
            "--out {} is a file of the model directory {}; name another file",
            out.display(),
            a.model.display()
        );
    }
    let texts = Texts::read(&a.input, a.texts)?;
    let (model, tok) = load(&a.model)?;
    let max_len = a.max_length.unwrap_or(model.config.max_position_embeddings);
    let vecs = embed(&model, &tok, &texts.texts, a.pooling, a.normalize, max_len)?;
    if let Some(out) = &a.out {
        let width = model.config.hidden_size;
        let bytes = primer::hf::f32_bytes(&vecs.concat());
        let metadata = [
            ("model", a.model.display().to_string()),
            ("pooling", format!("{:?}", a.pooling).to_lowercase()),
            ("normalize", a.normalize.to_string()),
            ("max_length", max_len.to_string()),
        ];
        let tensor = ("embeddings".to_string(), bytes, vec![vecs.len(), width]);
        save_raw(out, &[tensor], &metadata).with_context(|| format!("--out {}", out.display()))?;
        eprintln!(
            "wrote {} embeddings of {width} numbers to {}",
            vecs.len(),
            out.display()
        );
        return Ok(());
    }
    for (text, v) in texts.texts.iter().zip(&vecs) {
        if a.json {
            emit!("{}", serde_json::json!({ "text": text, "embedding": v }));
        } else {
            let nums: Vec<String> = v.iter().map(|x| format!("{x:.6}")).collect();
            emit!("{}", nums.join(" "));
        }
    }
    Ok(())
}

/// A probability with three decimals, or two significant digits when that would show 0.000.
fn probability(p: f32) -> String {
    if p >= 0.0005 {
        format!("{p:.3}")
    } else {
        format!("{p:.1e}")
    }
}
