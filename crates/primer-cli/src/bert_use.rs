//! `primer fill-mask` and `primer embed`: use a BERT directory (primer's or Hugging Face's).

use anyhow::Result;
use primer::infer::embed::{embed, Pooling};
use primer::infer::fill_mask::fill_mask;
use primer::models::bert::Bert;
use primer::tokenize::TextTokenizer;
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct FillMaskArgs {
    /// Directory with config.json, model.safetensors and tokenizer.json (or vocab.txt).
    #[arg(long)]
    model: PathBuf,
    /// Candidates shown per [MASK].
    #[arg(long, default_value_t = 5)]
    top_k: usize,
    /// One JSON object per text on stdout instead of a table.
    #[arg(long)]
    json: bool,
    /// Texts with one or more [MASK] tokens.
    #[arg(required = true)]
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
    anyhow::ensure!(a.top_k > 0, "--top-k must be at least 1");
    let (model, tok) = load(&a.model)?;
    anyhow::ensure!(
        model.heads.mlm,
        "{}: this checkpoint has no masked-LM head (cls.predictions.*), which fill-mask needs: a BertModel (a \
         sentence encoder, say) only embeds; use `primer embed`",
        a.model.display()
    );
    // every text is filled before anything is printed, so that a bad one leaves no partial output
    let all = a
        .texts
        .iter()
        .map(|text| fill_mask(&model, &tok, text, a.top_k))
        .collect::<primer::Result<Vec<_>>>()?;
    for (text, fills) in a.texts.iter().zip(all) {
        if a.json {
            println!("{}", serde_json::json!({ "text": text, "masks": fills }));
            continue;
        }
        println!("{text}");
        for (i, f) in fills.iter().enumerate() {
            let cands: Vec<String> = f
                .candidates
                .iter()
                .map(|c| format!("{} {:.3}", c.token, c.prob))
                .collect();
            println!(
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
    #[arg(long)]
    json: bool,
    #[arg(required = true)]
    texts: Vec<String>,
}

pub fn embed_texts(a: EmbedArgs) -> Result<()> {
    let (model, tok) = load(&a.model)?;
    let max_len = a.max_length.unwrap_or(model.config.max_position_embeddings);
    let vecs = embed(&model, &tok, &a.texts, a.pooling, a.normalize, max_len)?;
    for (text, v) in a.texts.iter().zip(&vecs) {
        if a.json {
            println!("{}", serde_json::json!({ "text": text, "embedding": v }));
        } else {
            let nums: Vec<String> = v.iter().map(|x| format!("{x:.6}")).collect();
            println!("{}", nums.join(" "));
        }
    }
    Ok(())
}
