//! `primer plot`: one chart over several fine-tuning runs — the dev metric against the number of training
//! examples, one line per starting point (pretrained, from scratch) — and the same numbers as a table.

use anyhow::{Context, Result};
use primer::viz::plot::{line_chart, Chart, Series};
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct PlotArgs {
    /// Chart file (.png or .svg).
    #[arg(long)]
    out: PathBuf,
    /// Dev metric to plot (default: accuracy, or f1 when the runs have no accuracy).
    #[arg(long)]
    metric: Option<String>,
    /// Chart title.
    #[arg(long, default_value = "pretrained vs from scratch")]
    title: String,
    /// Output directories of `primer finetune` runs.
    #[arg(required = true)]
    runs: Vec<PathBuf>,
}

fn read_json(path: &std::path::Path) -> Result<serde_json::Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: not valid JSON", path.display()))
}

pub fn run(a: PlotArgs) -> Result<()> {
    let mut series: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    let mut metric = a.metric.clone();
    println!("| run | start | training examples | dev metric |\n|---|---|---|---|");
    for dir in &a.runs {
        let eval = read_json(&dir.join("eval.json"))
            .with_context(|| format!("{} is not a finished fine-tuning run", dir.display()))?;
        let cfg = read_json(&dir.join("train_config.json"))?;
        let key = metric.get_or_insert_with(|| {
            if eval["dev"].get("accuracy").is_some() {
                "accuracy"
            } else {
                "f1"
            }
            .to_string()
        });
        let y = eval["dev"][key.as_str()]
            .as_f64()
            .with_context(|| format!("{}: eval.json has no dev {key}", dir.display()))?;
        let x = eval["train_examples"]
            .as_f64()
            .context("eval.json has no train_examples")?;
        let start = if cfg["from_scratch"].as_bool() == Some(true) {
            "from scratch"
        } else {
            "pretrained"
        };
        println!("| {} | {start} | {x} | {y:.4} |", dir.display());
        series.entry(start.to_string()).or_default().push((x, y));
    }
    let series: Vec<Series> = series
        .into_iter()
        .map(|(name, mut points)| {
            points.sort_by(|p, q| p.0.total_cmp(&q.0));
            Series { name, points }
        })
        .collect();
    let y_label = format!("dev {}", metric.unwrap_or_default());
    line_chart(
        &a.out,
        &Chart {
            title: &a.title,
            x_label: "training examples",
            y_label: &y_label,
            log_x: true,
            series: &series,
        },
    )?;
    println!("wrote {}", a.out.display());
    Ok(())
}
