//! `primer fill-mask` and `primer embed`: use a BERT directory (primer's or Hugging Face's).

use anyhow::Result;
use primer::infer::embed::{embed, Pooling};
use primer::infer::fill_mask::fill_mask;
use primer::models::bert::Bert;
use primer::tokenize::TextTokenizer;
use std::path::PathBuf;

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

pub fn fill(a: FillMaskArgs) -> Result<()> {
    anyhow::ensure!(a.top_k > 0, "--top-k must be at least 1");
    let model = Bert::load(&a.model)?.into_inference();
    let tok = TextTokenizer::from_dir(&a.model)?;
    for text in &a.texts {
        let fills = fill_mask(&model, &tok, text, a.top_k)?;
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
    let model = Bert::load(&a.model)?.into_inference();
    let tok = TextTokenizer::from_dir(&a.model)?;
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
