//! The `primer` command-line tool: a thin layer that parses arguments and calls the library.

/// `println!` for a command's result: a line that cannot be written (a full disk, say) is an error
/// that says so, not a panic. (A closed pipe does not get here: those commands end quietly on SIGPIPE.)
macro_rules! emit {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout(), $($arg)*)
            .map_err(|e| anyhow::anyhow!("writing to standard output: {e}"))?
    }};
}

mod bert_use;
mod finetune;
mod generate;
mod plot;
mod pretrain;
mod quickstart;
mod texts;

use anyhow::{Context, Result};
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "primer",
    version,
    about = "Pre-train, then fine-tune transformer language models"
)]
struct Cli {
    /// Worker threads (default: all cores, or RAYON_NUM_THREADS).
    #[arg(long, global = true)]
    threads: Option<usize>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate a corpus, pretrain a small GPT and a small BERT on it, sample and fill blanks (a few minutes).
    Quickstart(quickstart::Args),
    /// Pretrain a model on a text corpus.
    #[command(subcommand)]
    Pretrain(Box<pretrain::Model>),
    /// Generate text from a GPT directory (primer's or Hugging Face's).
    Generate(generate::Args),
    /// Top-k predictions for every [MASK] of each text, from a BERT directory.
    FillMask(bert_use::FillMaskArgs),
    /// Sentence embeddings from a BERT directory (mean or [CLS] pooling).
    Embed(bert_use::EmbedArgs),
    /// Fine-tune a model on labelled data: classify, ner, qa or intent-slot.
    Finetune(Box<finetune::FinetuneArgs>),
    /// Score a fine-tuned model on another split (metrics as JSON).
    Eval(finetune::EvalArgs),
    /// Predictions of a fine-tuned model on texts.
    Predict(finetune::PredictArgs),
    /// Chart the dev metric of several fine-tuning runs against their training-set size.
    Plot(plot::PlotArgs),
    /// Benchmarks against the PyTorch references in scripts/.
    #[command(subcommand)]
    Bench(Bench),
}

#[derive(Subcommand)]
enum Bench {
    /// Training throughput on the workload of scripts/torch_gpt_train.py.
    Train {
        /// small or big
        #[arg(long, default_value = "small")]
        preset: String,
        #[arg(long, default_value_t = 50, value_parser = timed_steps)]
        steps: usize,
        #[arg(long, default_value_t = 5, value_parser = warmup_steps)]
        warmup: usize,
    },
    /// BERT pretraining throughput on the workload of scripts/torch_bert_train.py.
    BertTrain {
        #[arg(long, default_value_t = 20, value_parser = timed_steps)]
        steps: usize,
        #[arg(long, default_value_t = 3, value_parser = warmup_steps)]
        warmup: usize,
    },
    /// Classification fine-tuning throughput of a BERT checkpoint, as scripts/torch_finetune_bench.py measures it.
    Finetune {
        #[arg(long)]
        model: std::path::PathBuf,
        /// TSV with `sentence` and `label` columns (e.g. SST-2's train.tsv); its first rows are used.
        #[arg(long)]
        data: std::path::PathBuf,
        #[arg(long, default_value_t = 32)]
        batch: usize,
        #[arg(long, default_value_t = 128)]
        max_len: usize,
        #[arg(long, default_value_t = 30, value_parser = timed_steps)]
        steps: usize,
        #[arg(long, default_value_t = 3, value_parser = warmup_steps)]
        warmup: usize,
        /// Only rows of at least max-len tokens, cut to max-len: batches with no padding.
        #[arg(long)]
        full_rows: bool,
    },
    /// Encoder forward latency of a BERT checkpoint, as scripts/torch_bert_infer.py measures it.
    BertInfer {
        #[arg(long)]
        model: std::path::PathBuf,
        #[arg(long, default_value_t = 128)]
        seq: usize,
        /// Batch sizes to time.
        #[arg(long, value_delimiter = ',', default_value = "1,32", value_parser = batch_size)]
        batch: Vec<usize>,
        #[arg(long, default_value_t = 20, value_parser = timed_steps)]
        runs: usize,
    },
}

/// Runs the command; an error is printed as its chain of causes on one line, without the backtrace that
/// `RUST_BACKTRACE=1` would add to a bad flag or a missing file.
fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            primer::say!("Error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Rust ignores SIGPIPE, so printing into a closed pipe (`primer embed … | head`) panics. For the commands whose
/// output is their result, the default action ends the process quietly instead, as it does `cat`'s. Training
/// commands keep ignoring it and write their logs with `primer::say!`, which drops a line it cannot write: a run
/// whose log reader has gone away goes on, and writes its checkpoints.
fn stop_quietly_on_closed_pipe(command: &Command) {
    let trains = matches!(
        command,
        Command::Quickstart(_) | Command::Pretrain(_) | Command::Finetune(_)
    );
    // SAFETY: restores the default action of one signal before any other thread exists.
    #[cfg(unix)]
    if !trains {
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    #[cfg(not(unix))]
    let _ = trains;
}

fn run() -> Result<()> {
    let matches = with_negative_numbers(Cli::command()).get_matches();
    let mut cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    // which flags a resumed fine-tuning run was given, so that the others keep the run's values
    if let (Command::Finetune(a), Some(m)) =
        (&mut cli.command, matches.subcommand_matches("finetune"))
    {
        a.given = m
            .ids()
            .filter(|id| {
                m.value_source(id.as_str()) == Some(clap::parser::ValueSource::CommandLine)
            })
            .map(|id| id.to_string())
            .collect();
    }
    stop_quietly_on_closed_pipe(&cli.command);
    let mut pool = rayon::ThreadPoolBuilder::new();
    if let Some(n) = cli.threads {
        anyhow::ensure!(n > 0, "--threads must be at least 1");
        pool = pool.num_threads(n);
    }
    let pool = pool.build().context("setting up the thread pool")?;
    // more threads than cores take turns on them, and the kernels' threads wait on each other's turns
    let (n, cores) = (
        pool.current_num_threads(),
        std::thread::available_parallelism(),
    );
    if let Some(cores) = cores.ok().filter(|c| n > c.get()) {
        let source = match cli.threads {
            Some(_) => "--threads",
            None => "RAYON_NUM_THREADS",
        };
        let cores = match cores.get() {
            1 => "1 core".to_string(),
            c => format!("{c} cores"),
        };
        primer::say!(
            "warning: {n} threads ({source}) are more than the {cores} this process may use: threads beyond \
             them only take turns, and make every step slower"
        );
    }
    pool.install(|| dispatch(cli.command))
}

/// Lets every command take a negative number as a flag's value (`--temperature -1`), so that the range checks
/// name the flag, instead of clap reading `-1` as an unknown option.
fn with_negative_numbers(cmd: clap::Command) -> clap::Command {
    cmd.allow_negative_numbers(true)
        .mut_subcommands(with_negative_numbers)
}

fn dispatch(command: Command) -> Result<()> {
    match command {
        Command::Quickstart(a) => quickstart::run(a),
        Command::Pretrain(m) => pretrain::run(*m),
        Command::Generate(a) => generate::run(a),
        Command::FillMask(a) => bert_use::fill(a),
        Command::Embed(a) => bert_use::embed_texts(a),
        Command::Finetune(a) => finetune::run_finetune(*a),
        Command::Eval(a) => finetune::run_eval(a),
        Command::Predict(a) => finetune::run_predict(a),
        Command::Plot(a) => plot::run(a),
        Command::Bench(Bench::Train {
            preset,
            steps,
            warmup,
        }) => print_bench(&primer::bench::gpt::train(&preset, steps, warmup)?),
        Command::Bench(Bench::BertTrain { steps, warmup }) => {
            print_bench(&primer::bench::bert::train(steps, warmup)?)
        }
        Command::Bench(Bench::Finetune {
            model,
            data,
            batch,
            max_len,
            steps,
            warmup,
            full_rows,
        }) => {
            let rows = primer::bench::finetune::Rows {
                batch,
                max_len,
                full: full_rows,
            };
            let r = primer::bench::finetune::train(&model, &data, rows, steps, warmup)?;
            print_bench(&r)?;
            emit!(
                "{}",
                serde_json::json!({"tokens_per_s": r.tokens_per_s, "median_step_ms": r.median_step_ms,
                                   "peak_rss_mib": r.peak_rss_mib})
            );
            Ok(())
        }
        Command::Bench(Bench::BertInfer {
            model,
            seq,
            batch,
            runs,
        }) => {
            for b in batch {
                let ms = primer::bench::bert::infer(&model, b, seq, runs, 3)?;
                emit!("{}", serde_json::json!({"batch": b, "seq": seq, "ms": ms}));
            }
            Ok(())
        }
    }
}

fn print_bench(r: &primer::bench::BenchResult) -> Result<()> {
    emit!(
        "params={} threads={} loss_first={:.4} loss_last={:.4}",
        r.params,
        rayon::current_num_threads(),
        r.loss_first,
        r.loss_last
    );
    emit!(
        "median_step_ms={:.2} tokens_per_s={:.0} peak_rss_mib={:.1}",
        r.median_step_ms,
        r.tokens_per_s,
        r.peak_rss_mib
    );
    Ok(())
}

/// A count of timed steps or runs: at least one (a median of none would be NaN), at most a million.
fn timed_steps(s: &str) -> Result<usize, String> {
    bench_count(s, 1)
}

/// A count of untimed warm-up steps: at most a million.
fn warmup_steps(s: &str) -> Result<usize, String> {
    bench_count(s, 0)
}

/// A batch size to time: at least one sequence (the cap of [`bench_count`] is far above what fits in memory).
fn batch_size(s: &str) -> Result<usize, String> {
    bench_count(s, 1)
}

/// A whole number from `min` to [`MAX_BENCH_STEPS`].
fn bench_count(s: &str, min: usize) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if (min..=MAX_BENCH_STEPS).contains(&n) => Ok(n),
        _ => Err(format!(
            "{s:?} is not a whole number from {min} to {MAX_BENCH_STEPS}"
        )),
    }
}

/// The most steps (or runs) a benchmark takes: more would be days of work, or overflow the timing buffers.
const MAX_BENCH_STEPS: usize = 1_000_000;
