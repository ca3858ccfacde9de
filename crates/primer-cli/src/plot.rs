//! `primer plot`: one chart over several fine-tuning runs — the dev metric against the number of training
//! examples, one line per starting point (pretrained, from scratch) — and the same numbers as a table.

use anyhow::{Context, Result};
use primer::finetune::evaluate::main_metric;
use primer::finetune::model::Task;
use primer::viz::plot::{line_chart, Chart, Series};
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct PlotArgs {
    /// Chart file (.png or .svg).
    #[arg(long)]
    out: PathBuf,
    /// Dev metric to plot (default: the task's own: accuracy; f1 for ner and qa; sentence_accuracy for
    /// intent-slot).
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
    // every run is read and checked before the table is printed
    let mut rows = Vec::new();
    let mut task: Option<(Task, &PathBuf)> = None;
    for dir in &a.runs {
        let eval = read_json(&dir.join("eval.json"))
            .with_context(|| format!("{} is not a finished fine-tuning run", dir.display()))?;
        let cfg = read_json(&dir.join("train_config.json"))?;
        let this: Task = serde_json::from_value(eval["task"].clone())
            .with_context(|| format!("{}: eval.json names no task primer knows", dir.display()))?;
        match task {
            Some((first, at)) if first != this => anyhow::bail!(
                "{} is a {} run but {} a {} one: plot compares runs of one task",
                dir.display(),
                this.name(),
                at.display(),
                first.name()
            ),
            Some(_) => {}
            None => task = Some((this, dir)),
        }
        let x = eval["train_examples"]
            .as_f64()
            .with_context(|| format!("{}: eval.json has no train_examples", dir.display()))?;
        let start = if cfg["from_scratch"].as_bool() == Some(true) {
            "from scratch"
        } else {
            "pretrained"
        };
        rows.push((dir, start, x, eval));
    }
    // the metric that picked each run's best epoch, unless --metric names another
    let metric = a
        .metric
        .clone()
        .unwrap_or_else(|| main_metric(task.map_or(Task::Classify, |(task, _)| task)).to_string());
    let mut series: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    let mut table =
        vec!["| run | start | training examples | dev metric |\n|---|---|---|---|".to_string()];
    for (dir, start, x, eval) in rows {
        let Some(y) = eval["dev"][metric.as_str()].as_f64() else {
            let names: Vec<&str> = eval["dev"]
                .as_object()
                .map(|m| m.keys().map(String::as_str).collect())
                .unwrap_or_default();
            anyhow::bail!(
                "{}: eval.json has no dev {metric} (it has {}): pass --metric",
                dir.display(),
                names.join(", ")
            );
        };
        table.push(format!("| {} | {start} | {x} | {y:.4} |", dir.display()));
        series.entry(start.to_string()).or_default().push((x, y));
    }
    emit!("{}", table.join("\n"));
    let series: Vec<Series> = series
        .into_iter()
        .map(|(name, mut points)| {
            points.sort_by(|p, q| p.0.total_cmp(&q.0));
            Series { name, points }
        })
        .collect();
    let y_label = format!("dev {metric}");
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
    emit!("wrote {}", a.out.display());
    Ok(())
}
