//! The `primer` binary as a user runs it: pretrain from flags and a TOML config, generate, and clear errors.

#[path = "../../primer/tests/common/scratch.rs"]
mod scratch;

use primer::models::gpt::{Gpt, GptConfig};
use primer::tokenize::TextTokenizer;
use scratch::Scratch;
use std::process::Command;

fn primer() -> Command {
    Command::new(env!("CARGO_BIN_EXE_primer"))
}

/// Runs `cmd`: whether it succeeded, and its stderr.
fn outcome(cmd: &mut Command) -> (bool, String) {
    let o = cmd.output().unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// A fresh, empty scratch directory of this test's own.
fn tmp(name: &str) -> Scratch {
    Scratch::fresh("cli", name)
}

/// `dir/corpus.txt`: 400 lines of one sentence with ten numbers.
fn cat_corpus(dir: &std::path::Path) -> std::path::PathBuf {
    let corpus = dir.join("corpus.txt");
    let text: String = (0..400)
        .map(|i| format!("the cat sat on mat number {}.\n", i % 10))
        .collect();
    std::fs::write(&corpus, text).unwrap();
    corpus
}

#[test]
fn pretrain_with_config_then_generate() {
    let d = tmp("run");
    let corpus = cat_corpus(&d);
    let config = d.join("tiny.toml");
    std::fs::write(
        &config,
        "n_layer = 1\nn_head = 2\nn_embd = 16\nblock_size = 16\nbatch_size = 4\nmax_iters = 60\neval_interval = 100\n\
         eval_iters = 2\nlr = 1e-2\nwarmup_iters = 5\n",
    )
    .unwrap();
    let out = d.join("model");
    let run = primer()
        .args(["pretrain", "gpt", "--corpus"])
        .arg(&corpus)
        .arg("--out")
        .arg(&out)
        .arg("--config")
        .arg(&config)
        .args(["--max-iters", "300", "--threads", "1"])
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        stdout.contains("done: 300 steps"),
        "the flag overrides the file: {stdout}"
    );
    let saved = std::fs::read_to_string(out.join("train_config.json")).unwrap();
    assert!(
        saved.contains("\"n_embd\": 16") && saved.contains("\"max_iters\": 300"),
        "{saved}"
    );
    let metrics = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    assert_eq!(
        metrics.lines().count(),
        4,
        "evaluations at 0, 100, 200, 300: {metrics}"
    );

    let gen = primer()
        .args(["generate", "--model"])
        .arg(&out)
        .args([
            "--prompt",
            "the cat",
            "--temperature",
            "0",
            "--max-new-tokens",
            "12",
        ])
        .output()
        .unwrap();
    assert!(
        gen.status.success(),
        "{}",
        String::from_utf8_lossy(&gen.stderr)
    );
    let text = String::from_utf8_lossy(&gen.stdout);
    assert!(
        text.starts_with("the cat sat on"),
        "a model trained on this corpus continues it: {text:?}"
    );

    let bad = primer()
        .args(["generate", "--model"])
        .arg(&out)
        .args(["--prompt", "the dog"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("'d'") && err.contains(out.to_str().unwrap()) && !err.contains("panicked"),
        "names the character and the model: {err}"
    );
    assert!(
        bad.stdout.is_empty(),
        "the prompt is checked before it is echoed"
    );

    // "the cat" continued with these flags
    let continue_with = |flags: &[&str]| {
        primer()
            .args(["generate", "--model"])
            .arg(&out)
            .args(["--prompt", "the cat"])
            .args(flags)
            .output()
            .unwrap()
    };
    // a bad sampling setting (negative numbers included), or flags that contradict each other, are named before
    // anything is printed
    for (flags, says) in [
        (&["--top-p", "1.5"][..], "--top-p must be in (0, 1]"),
        (&["--min-p", "2"][..], "--min-p must be in [0, 1]"),
        (&["--temperature", "-1"][..], "--temperature must be"),
        (
            &["--temperature", "inf"][..],
            "--temperature must be finite",
        ),
        (
            &["--repetition-penalty", "-0.5"][..],
            "--repetition-penalty must be positive",
        ),
        (&["--early-stopping", "true"][..], "are for beam search"),
        (&["--num-beams", "100000000"][..], "lower --num-beams"),
        (
            &["--num-beams", "2", "--num-return-sequences", "3"][..],
            "3 texts (--num-return-sequences, or num_return_sequences in the model's file) from 2 beams",
        ),
        (
            &["--temperature", "0", "--num-return-sequences", "2"][..],
            "from greedy decoding",
        ),
        (
            &["--num-beams", "2", "--early-stopping", "soon"][..],
            "never",
        ),
        (
            &["--stop", "on", "--stop", ""][..],
            "--stop: a stop string must not be empty",
        ),
        (
            &["--bad-words", "on", "--bad-words", ""][..],
            "--bad-words \"\" encodes to no tokens",
        ),
    ] {
        let bad = continue_with(flags);
        let err = String::from_utf8_lossy(&bad.stderr);
        assert!(
            !bad.status.success() && err.contains(says),
            "{flags:?}: {err}"
        );
        assert!(bad.stdout.is_empty(), "{flags:?}: {:?}", bad.stdout);
    }

    // generation_config.json sets what no flag sets, says so on stderr, and names what primer does not do
    let settings = out.join("generation_config.json");
    let generate = |extra: &[&str]| {
        let run = continue_with(extra);
        let err = String::from_utf8_lossy(&run.stderr).into_owned();
        assert!(run.status.success(), "{extra:?}: {err}");
        (String::from_utf8_lossy(&run.stdout).into_owned(), err)
    };
    std::fs::write(
        &settings,
        r#"{"do_sample": false, "max_new_tokens": 12, "num_beam_groups": 2}"#,
    )
    .unwrap();
    let (stdout, err) = generate(&[]);
    assert_eq!(stdout, text, "greedy, 12 tokens");
    assert!(
        err.contains("generation_config.json: do_sample false, max_new_tokens 12")
            && err.contains("also sets num_beam_groups 2, which primer's generate does not do"),
        "{err}"
    );
    std::fs::remove_file(&settings).unwrap();
    // a stop string ends the text with itself, where it first comes after the prompt (whose "cat" holds "at"),
    // greedy or searched
    let greedy = ["--temperature", "0", "--max-new-tokens", "12"];
    let (stopped, _) = generate(&[&greedy[..], &["--stop", "at", "--stop", "zz"]].concat());
    assert_eq!(stopped, "the cat sat\n");
    // a banned word never comes, greedy or searched (it does without the ban)
    let beams = ["--num-beams", "3", "--max-new-tokens", "12"];
    for search in [&greedy[..], &beams[..]] {
        let (free, _) = generate(search);
        assert!(free["the cat".len()..].contains("sat"), "{free:?}");
        let (banned, _) = generate(&[search, &["--bad-words", "sat"]].concat());
        assert!(!banned["the cat".len()..].contains("sat"), "{banned:?}");
    }
    let (searched, _) = generate(&[
        "--num-beams",
        "3",
        "--max-new-tokens",
        "12",
        "--stop",
        " on",
    ]);
    assert!(
        searched.ends_with(" on\n") && !searched[..searched.len() - 4].contains(" on"),
        "{searched:?}"
    );

    // beam search, from the flags or from the file; negative length penalties are numbers, not flags
    let (beams, _) = generate(&["--num-beams", "3", "--max-new-tokens", "12"]);
    // several texts: the best beams, scored, the first of them the one above; samples with seeds S, S+1
    let (best, _) = generate(&[
        "--num-beams",
        "3",
        "--max-new-tokens",
        "12",
        "--num-return-sequences",
        "2",
    ]);
    let lines: Vec<&str> = best.lines().collect();
    assert!(lines[0].starts_with("--- 1/2 score -"), "{best}");
    assert!(best.contains("\n--- 2/2 score -"), "{best}");
    assert!(best[lines[0].len() + 1..].starts_with(&beams), "{best}");
    let sample = |seed: &str| generate(&["--max-new-tokens", "8", "--seed", seed]).0;
    let (two, _) = generate(&[
        "--max-new-tokens",
        "8",
        "--seed",
        "5",
        "--num-return-sequences",
        "2",
    ]);
    assert_eq!(
        two,
        format!("--- 1/2 ---\n{}--- 2/2 ---\n{}", sample("5"), sample("6"))
    );
    assert!(
        beams.starts_with("the cat") && beams.len() > "the cat".len(),
        "{beams}"
    );
    // beam sampling: --num-beams with a temperature; the same text for the same seed
    let drawn = |seed: &str| {
        generate(&[
            "--num-beams",
            "3",
            "--temperature",
            "1",
            "--max-new-tokens",
            "12",
            "--seed",
            seed,
        ])
        .0
    };
    assert_eq!(drawn("4"), drawn("4"));
    assert!(drawn("4").starts_with("the cat"), "{}", drawn("4"));
    std::fs::write(&settings, r#"{"num_beams": 3, "max_new_tokens": 12}"#).unwrap();
    let (stdout, err) = generate(&[]);
    assert_eq!(stdout, beams);
    assert!(
        err.contains("generation_config.json: num_beams 3, max_new_tokens 12"),
        "{err}"
    );
    std::fs::remove_file(&settings).unwrap();
    generate(&[
        "--num-beams",
        "2",
        "--length-penalty",
        "-0.5",
        "--early-stopping",
        "never",
    ]);
    // the finished run is not replaced by a fresh one, unless asked; a resumed run keeps its corpus
    let again = |extra: &[&str]| {
        outcome(
            primer()
                .args(["pretrain", "gpt", "--out"])
                .arg(&out)
                .args(extra),
        )
    };
    let corpus_s = corpus.to_str().unwrap();
    let tiny = ["--config", config.to_str().unwrap(), "--max-iters", "2"];
    let (ok, err) = again(&[&["--corpus", corpus_s][..], &tiny].concat());
    assert!(
        !ok && err.contains("already holds a run") && err.contains("--overwrite"),
        "{err}"
    );
    assert!(metrics == std::fs::read_to_string(out.join("metrics.jsonl")).unwrap());
    let other = d.join("other.txt");
    std::fs::copy(&corpus, &other).unwrap();
    let (ok, err) = again(&[
        "--resume",
        "--max-iters",
        "310",
        "--corpus",
        other.to_str().unwrap(),
    ]);
    assert!(!ok && err.contains("keeps its corpus"), "{err}");
    // a character run has no vocabulary size to set, on resume or not
    let (ok, err) = again(&["--resume", "--max-iters", "310", "--vocab-size", "500"]);
    assert!(!ok && err.contains("--tokenizer bpe"), "{err}");
    // nor in a config file, where it was once ignored without a word
    let chars_config = d.join("chars.toml");
    std::fs::write(&chars_config, "vocab_size = 500\nmax_iters = 2\n").unwrap();
    let (ok, err) = outcome(
        primer()
            .args(["pretrain", "gpt", "--corpus", corpus_s, "--out"])
            .arg(d.join("chars"))
            .arg("--config")
            .arg(&chars_config),
    );
    assert!(
        !ok && err.contains("vocab_size in") && err.contains("chars.toml"),
        "{err}"
    );
    assert!(!d.join("chars").join("tokens.bin").exists());
    let (ok, err) = again(&["--resume", "--max-iters", "310", "--corpus", corpus_s]);
    assert!(ok, "naming its own corpus again is fine: {err}");
    // moved away: found where it is now, but another file there (by its size, or its bytes) is refused, not
    // recorded
    let moved = d.join("moved.txt");
    std::fs::rename(&corpus, &moved).unwrap();
    let resume_on = |file: &std::path::Path| {
        again(&[
            "--resume",
            "--max-iters",
            "320",
            "--corpus",
            file.to_str().unwrap(),
        ])
    };
    let longer = d.join("longer.txt");
    std::fs::write(&longer, std::fs::read_to_string(&moved).unwrap() + "more\n").unwrap();
    let (ok, err) = resume_on(&longer);
    assert!(
        !ok && err.contains("longer.txt: is 11605 bytes, but the run's corpus")
            && err.contains("corpus.txt, was 11600: not the same file"),
        "{err}"
    );
    let same_size = d.join("same-size.txt");
    std::fs::write(
        &same_size,
        std::fs::read_to_string(&moved)
            .unwrap()
            .replace("cat", "dog"),
    )
    .unwrap();
    let (ok, err) = resume_on(&same_size);
    assert!(
        !ok && err.contains("same-size.txt: has the size of the run's corpus")
            && err.contains("but other bytes: not the same file"),
        "{err}"
    );
    let (ok, err) = resume_on(&moved);
    assert!(ok, "{err}");
    // changed in place (it is recorded as moved.txt now): the run goes on with the tokens it made then, and
    // says so
    let text = std::fs::read_to_string(&moved).unwrap();
    std::fs::write(&moved, text.clone() + "more\n").unwrap();
    let (ok, err) = again(&["--resume", "--max-iters", "330"]);
    assert!(
        ok && err
            .contains("moved.txt has changed since the run started (11605 bytes now, 11600 then)")
            && err.contains("tokens.bin"),
        "{err}"
    );
    std::fs::write(&moved, text).unwrap();
    std::fs::rename(&moved, &corpus).unwrap();
    // --overwrite deletes the old run only once the new one has passed its checks: a bad flag or a corpus too
    // short for a block leaves it whole
    let model_bytes = std::fs::read(out.join("model.safetensors")).unwrap();
    let metrics = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    let short = d.join("short.txt");
    std::fs::write(&short, "too short\n").unwrap();
    for bad in [
        &["--corpus", corpus_s, "--lr", "-1"][..],
        &["--corpus", short.to_str().unwrap()][..],
    ] {
        let (ok, err) = again(&[bad, &["--overwrite"][..], &tiny].concat());
        assert!(!ok, "{bad:?}");
        assert!(
            std::fs::read(out.join("model.safetensors")).unwrap() == model_bytes
                && std::fs::read_to_string(out.join("metrics.jsonl")).unwrap() == metrics
                && out.join("tokens.bin").exists()
                && out.join("trainer_state.json").exists(),
            "{bad:?} replaced the old run: {err}"
        );
    }
    // a corpus named relative to the working directory is saved as an absolute path, so that the run resumes
    // from anywhere
    let (ok, err) = outcome(
        primer()
            .current_dir(&d)
            .args([
                "pretrain",
                "gpt",
                "--corpus",
                "corpus.txt",
                "--overwrite",
                "--out",
            ])
            .arg(&out)
            .args(tiny),
    );
    assert!(ok, "{err}");
    let state = std::fs::read_to_string(out.join("trainer_state.json")).unwrap();
    assert!(
        state.contains(&format!("{:?}", corpus.to_str().unwrap())),
        "{state}"
    );
    let metrics = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    assert_eq!(
        metrics.lines().count(),
        2,
        "a new run of 2 steps: {metrics}"
    );
    let (ok, err) = outcome(
        primer()
            .args([
                "pretrain",
                "bert",
                "--resume",
                "--max-iters",
                "999",
                "--out",
            ])
            .arg(&out),
    );
    assert!(!ok && err.contains("`pretrain gpt` run"), "{err}");
    // a run stopped before its first checkpoint is neither resumable nor silently replaced; the errors say
    // what to do
    let early = d.join("early");
    std::fs::create_dir_all(&early).unwrap();
    for name in ["metrics.jsonl", "train_config.json", "tokenizer.json"] {
        std::fs::copy(out.join(name), early.join(name)).unwrap();
    }
    let in_early = |extra: &[&str]| {
        outcome(
            primer()
                .args(["pretrain", "gpt", "--out"])
                .arg(&early)
                .args(extra),
        )
    };
    let (ok, err) = in_early(&[&["--corpus", corpus_s][..], &tiny].concat());
    assert!(
        !ok && err.contains("before its first checkpoint") && !err.contains("--resume"),
        "{err}"
    );
    let (ok, err) = in_early(&["--resume", "--max-iters", "4"]);
    assert!(
        !ok && err.contains("nothing to resume") && err.contains("--overwrite"),
        "{err}"
    );
    let (ok, err) = in_early(&[&["--corpus", corpus_s, "--overwrite"][..], &tiny].concat());
    assert!(ok, "{err}");
    // a model directory that is not a pretraining run (here: weights and config alone) is not offered to
    // --overwrite, which would delete them
    let other = d.join("other-model");
    std::fs::create_dir_all(&other).unwrap();
    for name in ["model.safetensors", "config.json"] {
        std::fs::copy(out.join(name), other.join(name)).unwrap();
    }
    let fresh_in_other = || {
        outcome(
            primer()
                .args(["pretrain", "gpt", "--corpus", corpus_s, "--out"])
                .arg(&other)
                .args(tiny),
        )
    };
    let (ok, err) = fresh_in_other();
    assert!(
        !ok && err.contains("not a pretraining run") && !err.contains("pass --overwrite"),
        "{err}"
    );
    // other files there (a Hugging Face directory's vocab.txt, say) would be kept by --overwrite: named
    std::fs::write(other.join("vocab.txt"), "[PAD]\n").unwrap();
    let (ok, err) = fresh_in_other();
    assert!(
        !ok && err.contains("keep the others beside the new run's: vocab.txt"),
        "{err}"
    );
    let (ok, err) = outcome(
        primer()
            .args(["pretrain", "gpt", "--resume", "--out"])
            .arg(&other),
    );
    assert!(
        !ok && err.contains("no pretraining run to resume") && !err.contains("--overwrite"),
        "{err}"
    );
    // resuming where there is no run creates nothing; a refused fresh run leaves no directory behind
    let (ok, err) = outcome(
        primer()
            .args(["pretrain", "gpt", "--resume", "--out"])
            .arg(d.join("none")),
    );
    assert!(!ok && err.contains("no run to resume"), "{err}");
    let (ok, _) = outcome(
        primer()
            .args(["pretrain", "gpt", "--corpus"])
            .arg(&short)
            .arg("--out")
            .arg(d.join("refused").join("deeper"))
            .args(tiny),
    );
    assert!(!ok && !d.join("none").exists() && !d.join("refused").exists());
    let file = d.join("a-file");
    std::fs::write(&file, "").unwrap();
    let (ok, err) = outcome(
        primer()
            .args(["pretrain", "gpt", "--corpus", corpus_s, "--out"])
            .arg(&file)
            .args(tiny),
    );
    assert!(!ok && err.contains("is a file, not a directory"), "{err}");
}

#[test]
fn a_training_run_outlives_the_reader_of_its_log() {
    // `primer pretrain … 2>&1 | head -2`: the reader goes away at once, and the run still trains to its end and
    // writes its checkpoint, instead of dying of SIGPIPE (or of a panic at its next log line) before the first one
    let d = tmp("closed-log");
    let corpus = cat_corpus(&d);
    let out = d.join("model");
    let mut child = primer()
        .args(["pretrain", "gpt", "--corpus"])
        .arg(&corpus)
        .arg("--out")
        .arg(&out)
        .args([
            "--n-layer",
            "1",
            "--n-head",
            "1",
            "--n-embd",
            "8",
            "--block-size",
            "8",
        ])
        .args([
            "--batch-size",
            "2",
            "--max-iters",
            "40",
            "--eval-interval",
            "10",
        ])
        .args(["--eval-iters", "1", "--warmup-iters", "2", "--threads", "1"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    drop(child.stderr.take());
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let state = std::fs::read_to_string(out.join("trainer_state.json")).unwrap();
    assert!(state.contains("\"step\": 40"), "{state}");
    let metrics = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().count(), 5, "{metrics}");
}

#[test]
fn a_tiny_quickstart_names_primer_as_it_was_started_and_saves_the_positions() {
    let d = tmp("quickstart");
    let qs = d.join("qs");
    let run = |cmd: &mut Command| {
        let o = cmd
            .args([
                "--threads",
                "1",
                "quickstart",
                "--max-iters",
                "2",
                "--bert-iters",
                "2",
            ])
            .args(["--corpus-bytes", "50000", "--overwrite", "--out"])
            .arg(&qs)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    };
    // the binary itself: its hint names it; through cargo (which sets CARGO): cargo run
    let alone = run(primer().env_remove("CARGO"));
    let hint = format!("try: {} generate --model", env!("CARGO_BIN_EXE_primer"));
    assert!(alone.contains(&hint), "{alone}");
    let via_cargo = run(primer().env("CARGO", "cargo"));
    assert!(via_cargo.contains("try: cargo run"), "{via_cargo}");
    // transformers' tokenizer truncates where the model's positions end
    for (model, positions) in [("gpt", "n_positions"), ("bert", "max_position_embeddings")] {
        let read = |file: &str| -> serde_json::Value {
            serde_json::from_str(&std::fs::read_to_string(qs.join(model).join(file)).unwrap())
                .unwrap()
        };
        let limit = read("tokenizer_config.json")["model_max_length"].clone();
        assert!(limit.as_u64().is_some_and(|n| n > 0), "{model}: {limit}");
        assert_eq!(limit, read("config.json")[positions], "{model}");
    }
}

#[test]
fn missing_files_are_errors_not_panics() {
    let d = tmp("missing");
    // an error is one line, without a backtrace even where RUST_BACKTRACE asks for them
    let run = primer()
        .env("RUST_BACKTRACE", "1")
        .args(["pretrain", "gpt", "--corpus"])
        .arg(d.join("nope.txt"))
        .arg("--out")
        .arg(d.join("out"))
        .output()
        .unwrap();
    assert!(!run.status.success());
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(
        err.contains("nope.txt") && !err.contains("panicked") && err.trim().lines().count() == 1,
        "{err}"
    );

    // more threads than the machine has cores are warned of, set either way
    for (flag, env, source) in [
        (&["--threads", "512"][..], "", "--threads"),
        (&[], "512", "RAYON_NUM_THREADS"),
    ] {
        let mut cmd = primer();
        if !env.is_empty() {
            cmd.env("RAYON_NUM_THREADS", env);
        }
        let (_, err) = outcome(
            cmd.args(flag)
                .args(["generate", "--model"])
                .arg(d.join("none")),
        );
        let says = format!("512 threads ({source}) are more than the");
        assert!(err.contains(&says), "{err}");
    }

    let gen = primer()
        .args(["generate", "--model"])
        .arg(d.join("none"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&gen.stderr);
    assert!(
        !gen.status.success()
            && err.contains("none: no such model directory")
            && !err.contains("panicked"),
        "{err}"
    );
    // a file given as a model directory, and a directory where a model file should be, are named as such; so is
    // a fine-tuned model's (predict)
    let notes = d.join("notes.txt");
    std::fs::write(&notes, "not a model\n").unwrap();
    for command in [
        &["generate"][..],
        &["embed", "x"],
        &["fill-mask", "a [MASK]"],
        &["predict", "x"],
    ] {
        let (ok, err) = outcome(
            primer()
                .args(["--threads", "1"])
                .args(command)
                .arg("--model")
                .arg(&notes),
        );
        assert!(
            !ok && err.contains("notes.txt: is a file, not a model directory"),
            "{command:?}: {err}"
        );
    }
    let dirs = d.join("dirs");
    std::fs::create_dir_all(dirs.join("model.safetensors")).unwrap();
    let e = primer::hf::TensorFile::open(&dirs.join("model.safetensors"))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("model.safetensors: is a directory"), "{e}");
    std::fs::create_dir_all(dirs.join("tokenizer.json")).unwrap();
    let e = TextTokenizer::from_dir(&dirs).err().unwrap().to_string();
    assert!(e.contains("tokenizer.json: is a directory"), "{e}");

    let bench = primer()
        .args(["bench", "train", "--preset", "huge"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&bench.stderr);
    assert!(!bench.status.success() && err.contains("huge"), "{err}");
    // a median of no steps, and step counts that would overflow the timings, are refused; so is 0 for a flag
    // whose default is derived (0 used to mean that default without a word)
    let corpus = d.join("c.txt");
    std::fs::write(&corpus, "some text\n").unwrap();
    let corpus = corpus.to_str().unwrap();
    let bert = format!("pretrain bert --corpus {corpus} --out x");
    // config files, by path
    let toml = |name: &str, text: &str| {
        let path = d.join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_string()
    };
    let bad_config = toml("bad.toml", "dropout = 1.0\n");
    let zero_decay = toml("zero-decay.toml", "lr_decay_iters = 0\n");
    let zero_ffn = toml("zero-ffn.toml", "intermediate_size = 0\n");
    let odd_width = toml("odd-width.toml", "n_layer = 1\nn_embd = 30\n");
    let no_layers = toml("no-layers.toml", "n_layer = 0\n");
    let no_batch = toml("no-batch.toml", "batch_size = 0\nmax_iters = 5\n");
    let far_val = toml("far-val.toml", "val_corpus = \"nope/val.txt\"\n");
    for (args, says) in [
        (
            format!("{bert} --config {far_val}"),
            "nope/val.txt: no such file or directory (set as val_corpus in",
        ),
        // the key at fault is named, not every key of the file that the message's flags set
        (
            format!("{bert} --config {no_batch}"),
            "--batch-size must be positive (set as batch_size in",
        ),
        ("bench train --steps 0".to_string(), "from 1 to"),
        (
            "bench train --steps 18446744073709551615".into(),
            "from 1 to",
        ),
        (
            "bench train --warmup 18446744073709551615".into(),
            "from 0 to",
        ),
        (
            format!("{bert} --intermediate-size 0"),
            "--intermediate-size must be positive",
        ),
        (
            format!("pretrain gpt --corpus {corpus} --out x --lr-decay-iters 0"),
            "--lr-decay-iters must be positive",
        ),
        // nor from the config file, where 0 was read as the default
        (
            format!("pretrain gpt --corpus {corpus} --out x --config {zero_decay}"),
            "lr_decay_iters in",
        ),
        (
            format!("{bert} --config {zero_decay}"),
            "zero-decay.toml must be positive",
        ),
        (
            format!("{bert} --config {zero_ffn}"),
            "intermediate_size in",
        ),
        // a GPT's shape from the file is named by flag and key
        (
            format!("pretrain gpt --corpus {corpus} --out x --config {odd_width}"),
            "--n-embd 30 is not divisible by --n-head 4: each head gets an equal share of the width (set as \
             n_embd in",
        ),
        (
            format!("pretrain gpt --corpus {corpus} --out x --config {no_layers}"),
            "--n-layer must be positive (set as n_layer in",
        ),
        (
            format!("pretrain gpt --corpus {corpus} --out x --tokenizer bpe --vocab-size 10"),
            "--vocab-size 10 is too small for a byte-level BPE",
        ),
        (
            format!("{bert} --val-corpus {corpus} --val-fraction 0.2"),
            "give one",
        ),
        (
            format!("{bert} --n-layer 0"),
            "--n-layer sets num_hidden_layers",
        ),
        // a bad value from the config file is named as the file's key, not only as the flag
        (
            format!("{bert} --config {bad_config}"),
            "--dropout must be in [0, 1) (set as dropout in",
        ),
    ] {
        let (ok, err) = outcome(primer().current_dir(&d).args(args.split_whitespace()));
        assert!(!ok && err.contains(says), "{args}: {err}");
    }
    assert!(!d.join("x").exists());
    // a trained vocabulary smaller than asked for is pointed out (this corpus is then too short anyway)
    let (_, err) = outcome(
        primer().current_dir(&d).args(
            format!("pretrain gpt --corpus {corpus} --out x --tokenizer bpe --vocab-size 5000")
                .split_whitespace(),
        ),
    );
    assert!(err.contains("fewer than the 5000 asked for"), "{err}");
    // and one larger, where the alphabet alone needs more
    let (_, err) = outcome(primer().current_dir(&d).args(
        format!("pretrain bert --corpus {corpus} --out x --vocab-size 6").split_whitespace(),
    ));
    assert!(err.contains("more than the 6 asked for"), "{err}");
    // quickstart checks its flags before it writes its corpus, and names an --out it cannot use
    let (ok, err) = outcome(
        primer()
            .current_dir(&d)
            .args(["quickstart", "--bert-iters", "0"]),
    );
    assert!(!ok && err.contains("--bert-iters"), "{err}");
    assert!(!d.join("runs").exists());
    let (ok, err) = outcome(primer().args(["quickstart", "--out"]).arg(d.join("c.txt")));
    assert!(
        !ok && err.contains("--out") && err.contains("c.txt"),
        "{err}"
    );
    // nor does it write over an earlier quickstart's files without --overwrite
    let earlier = d.join("earlier");
    std::fs::create_dir_all(earlier.join("gpt")).unwrap();
    std::fs::write(earlier.join("corpus.txt"), "mine").unwrap();
    let (ok, err) = outcome(primer().args(["quickstart", "--out"]).arg(&earlier));
    assert!(
        !ok && err.contains("corpus.txt, gpt") && err.contains("--overwrite"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(earlier.join("corpus.txt")).unwrap(),
        "mine"
    );
}

#[test]
fn pretrain_bert_then_fill_mask_and_embed() {
    let d = tmp("bert");
    let corpus = d.join("corpus.txt");
    let mut text = String::new();
    for doc in 0..40 {
        for i in 0..4 {
            text += &format!("the cat sat on mat number {}.\n", (doc + i) % 10);
        }
        text.push('\n');
    }
    std::fs::write(&corpus, text).unwrap();
    let out = d.join("model");
    let run = primer()
        .args(["pretrain", "bert", "--corpus"])
        .arg(&corpus)
        .arg("--out")
        .arg(&out)
        .args([
            "--vocab-size",
            "80",
            "--n-layer",
            "1",
            "--n-head",
            "2",
            "--n-embd",
            "16",
        ])
        .args([
            "--block-size",
            "24",
            "--batch-size",
            "4",
            "--max-iters",
            "20",
            "--eval-interval",
            "10",
        ])
        .args([
            "--eval-iters",
            "1",
            "--val-fraction",
            "0.1",
            "--whole-word-mask",
        ])
        .args([
            "--mlm-probability",
            "0.2",
            "--mask-replace",
            "1.0",
            "--random-replace",
            "0.0",
        ])
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let done = String::from_utf8_lossy(&run.stdout);
    assert!(
        done.contains("done: 20 steps")
            && done.contains("nsp loss")
            && done.contains("nsp accuracy"),
        "{done}"
    );
    let saved = std::fs::read_to_string(out.join("train_config.json")).unwrap();
    assert!(
        saved.contains("\"whole_word_mask\": true") && saved.contains("\"mlm_probability\": 0.2"),
        "{saved}"
    );

    let fill = primer()
        .args(["fill-mask", "--model"])
        .arg(&out)
        .args(["--top-k", "2", "--json", "the cat [MASK] on mat [MASK] 3."])
        .output()
        .unwrap();
    assert!(
        fill.status.success(),
        "{}",
        String::from_utf8_lossy(&fill.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&fill.stdout).unwrap();
    let masks = v["masks"].as_array().unwrap();
    assert_eq!(masks.len(), 2);
    assert_eq!(masks[0]["candidates"].as_array().unwrap().len(), 2);

    // a BERT run resumed as a GPT one is named as such, not a type error in train_config.json
    let (ok, err) = outcome(
        primer()
            .args(["pretrain", "gpt", "--resume", "--max-iters", "999", "--out"])
            .arg(&out),
    );
    assert!(!ok && err.contains("`pretrain bert` run"), "{err}");
    // a bad text among good ones is reported before any output, not after the good ones were printed
    let no_mask = primer()
        .args(["fill-mask", "--model"])
        .arg(&out)
        .args(["the [MASK] sat", "no blank here"])
        .output()
        .unwrap();
    assert!(!no_mask.status.success() && no_mask.stdout.is_empty());
    assert!(String::from_utf8_lossy(&no_mask.stderr).contains("no [MASK]"));
    let no_k = primer()
        .args(["fill-mask", "--top-k", "0", "--model"])
        .arg(&out)
        .arg("the [MASK] sat")
        .output()
        .unwrap();
    assert!(!no_k.status.success() && no_k.stdout.is_empty());
    assert!(String::from_utf8_lossy(&no_k.stderr).contains("--top-k must be at least 1"));

    let emb = primer()
        .args(["embed", "--model"])
        .arg(&out)
        .args(["--normalize", "--pooling", "cls", "the cat", ""])
        .output()
        .unwrap();
    assert!(
        emb.status.success(),
        "{}",
        String::from_utf8_lossy(&emb.stderr)
    );
    let lines: Vec<Vec<f64>> = String::from_utf8_lossy(&emb.stdout)
        .lines()
        .map(|l| l.split(' ').map(|x| x.parse().unwrap()).collect())
        .collect();
    assert_eq!(lines.len(), 2);
    for v in &lines {
        assert_eq!(v.len(), 16);
        let norm: f64 = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "normalized: {norm}");
    }
    // the same texts from a file (CRLF, an empty line) and from standard input give the same output
    let texts = d.join("texts.txt");
    std::fs::write(&texts, "the cat\r\n\n").unwrap();
    let from_file = primer()
        .args(["embed", "--normalize", "--pooling", "cls", "--model"])
        .arg(&out)
        .arg("--input")
        .arg(&texts)
        .output()
        .unwrap();
    assert_eq!(from_file.stdout, emb.stdout);
    // or into a safetensors file: one row per text, the settings in its metadata
    let file = d.join("embeddings.safetensors");
    let (ok, err) = outcome(
        primer()
            .args(["embed", "--normalize", "--pooling", "cls", "--model"])
            .arg(&out)
            .arg("--input")
            .arg(&texts)
            .arg("--out")
            .arg(&file),
    );
    assert!(
        ok && err.contains("wrote 2 embeddings of 16 numbers"),
        "{err}"
    );
    let bytes = std::fs::read(&file).unwrap();
    let saved = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let t = saved.tensor("embeddings").unwrap();
    assert_eq!(t.shape(), [2, 16]);
    let rows: Vec<f32> = t
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    for (got, printed) in rows.iter().zip(lines.iter().flatten()) {
        assert!((*got as f64 - printed).abs() < 1e-6, "{got} vs {printed}");
    }
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let meta = meta.metadata().clone().unwrap();
    assert_eq!(meta["pooling"], "cls");
    assert_eq!(meta["normalize"], "true");
    // an existing file (here the model's own weights) is refused and left as it was, and the model's weights even
    // with --overwrite; --overwrite replaces another file
    let weights = out.join("model.safetensors");
    let before = std::fs::read(&weights).unwrap();
    let embed_into = |target: &std::path::Path, overwrite: bool| {
        let mut cmd = primer();
        cmd.arg("embed");
        if overwrite {
            cmd.arg("--overwrite");
        }
        outcome(
            cmd.arg("--model")
                .arg(&out)
                .arg("--out")
                .arg(target)
                .arg("x"),
        )
    };
    let (ok, err) = embed_into(&weights, false);
    assert!(!ok && err.contains("exists; pass --overwrite"), "{err}");
    let (ok, err) = embed_into(&weights, true);
    assert!(
        !ok && err.contains("is a file of the model directory"),
        "{err}"
    );
    assert_eq!(std::fs::read(&weights).unwrap(), before);
    let (ok, err) = embed_into(&file, true);
    assert!(ok && err.contains("wrote 1 embeddings"), "{err}");
    let npy = d.join("embeddings.npy");
    let (ok, err) = outcome(
        primer()
            .args(["embed", "--model"])
            .arg(&out)
            .arg("--out")
            .arg(&npy)
            .arg("x"),
    );
    assert!(
        !ok && err.contains("must end in .safetensors") && !npy.exists(),
        "{err}"
    );
    let mut child = primer()
        .args([
            "embed",
            "--normalize",
            "--pooling",
            "cls",
            "--input",
            "-",
            "--model",
        ])
        .arg(&out)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), b"the cat\n\n").unwrap();
    assert_eq!(child.wait_with_output().unwrap().stdout, emb.stdout);
    let (ok, err) = outcome(
        primer()
            .args(["embed", "--model"])
            .arg(&out)
            .arg("--input")
            .arg(&texts)
            .arg("a text too"),
    );
    assert!(!ok && err.contains("cannot be used with"), "{err}");
    // a bad line of an input file is named by its line number, before anything is printed
    std::fs::write(&texts, "the [MASK] sat\nno blank here\n").unwrap();
    let bad_line = primer()
        .args(["fill-mask", "--model"])
        .arg(&out)
        .arg("--input")
        .arg(&texts)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&bad_line.stderr);
    assert!(!bad_line.status.success() && bad_line.stdout.is_empty());
    assert!(
        err.contains("texts.txt line 2: ") && err.contains("no [MASK]"),
        "{err}"
    );
    // targets: every one shown (the default top-k is their number), and only they
    let targeted = primer()
        .args(["fill-mask", "--json", "--targets", "the,cat", "--model"])
        .arg(&out)
        .arg("the [MASK] sat")
        .output()
        .unwrap();
    assert!(
        targeted.status.success(),
        "{}",
        String::from_utf8_lossy(&targeted.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&targeted.stdout).unwrap();
    let mut shown: Vec<&str> = v["masks"][0]["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["token"].as_str().unwrap())
        .collect();
    shown.sort();
    assert_eq!(shown, ["cat", "the"]);
    // a reader that stops early (`| head`) ends primer quietly, without a panic about a broken pipe
    let mut child = primer()
        .args(["embed", "--model"])
        .arg(&out)
        .args(vec!["the cat"; 5000])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let done = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&done.stderr);
    assert!(err.is_empty(), "{err}");
    let bad = primer()
        .args(["embed", "--model"])
        .arg(&out)
        .args(["--pooling", "max", "x"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&bad.stderr).contains("cls or mean"));
    // output that cannot be written (a full disk) is an error that says so, not a panic
    if let Ok(full) = std::fs::File::create("/dev/full") {
        let o = primer()
            .args(["embed", "--model"])
            .arg(&out)
            .arg("x")
            .stdout(full)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            o.status.code() == Some(1) && err.contains("writing to standard output"),
            "{:?} {err}",
            o.status
        );
    }
    // more tokens than the model has positions
    let (ok, err) = outcome(
        primer()
            .args(["embed", "--max-length", "100000", "--model"])
            .arg(&out)
            .arg("x"),
    );
    assert!(
        !ok && err.contains("100000") && err.contains("max_position_embeddings"),
        "{err}"
    );
    // the benchmark's shape flags are checked against the model, by name
    for (flag, value, says) in [
        ("--batch", "0", "--batch"),
        ("--batch", "1,0", "--batch"),
        ("--seq", "1000", "--seq 1000 must be from 1"),
        ("--seq", "0", "--seq 0 must be from 1"),
    ] {
        let run = primer()
            .args(["bench", "bert-infer", "--runs", "1", flag, value, "--model"])
            .arg(&out)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&run.stderr);
        assert!(
            !run.status.success() && err.contains(says) && run.stdout.is_empty(),
            "{flag} {value}: {err}"
        );
    }
    // a reused tokenizer file is taken as it is: a vocabulary size for it is refused, not ignored
    let (ok, err) = outcome(
        primer()
            .args(["pretrain", "bert", "--vocab-size", "50", "--corpus"])
            .arg(&corpus)
            .arg("--out")
            .arg(d.join("reuse"))
            .arg("--tokenizer")
            .arg(out.join("tokenizer.json")),
    );
    assert!(
        !ok && err.contains("--vocab-size") && err.contains("used as it is"),
        "{err}"
    );
    // the same from a config file that names the tokenizer to reuse
    let reuse_config = d.join("reuse.toml");
    std::fs::write(
        &reuse_config,
        format!(
            "tokenizer = {:?}\nlowercase = false\n",
            out.join("tokenizer.json").to_str().unwrap()
        ),
    )
    .unwrap();
    let (ok, err) = outcome(
        primer()
            .args(["pretrain", "bert", "--corpus"])
            .arg(&corpus)
            .arg("--out")
            .arg(d.join("reuse"))
            .arg("--config")
            .arg(&reuse_config),
    );
    assert!(
        !ok && err.contains("lowercase in") && err.contains("used as it is"),
        "{err}"
    );
    // the run's own tokenizer may be reused by --overwrite: it is read before the old run's files go
    let vocab = primer::tokenize::TextTokenizer::from_dir(&out)
        .unwrap()
        .vocab_size();
    let (ok, err) = outcome(
        primer()
            .args(["pretrain", "bert", "--overwrite", "--corpus"])
            .arg(&corpus)
            .arg("--out")
            .arg(&out)
            .arg("--tokenizer")
            .arg(out.join("tokenizer.json"))
            .args(
                "--n-layer 1 --n-head 2 --n-embd 16 --block-size 24 --batch-size 4 --max-iters 2"
                    .split(' '),
            )
            .args("--eval-iters 1 --warmup-iters 1".split(' ')),
    );
    assert!(ok, "{err}");
    let tok = primer::tokenize::TextTokenizer::from_dir(&out).unwrap();
    assert_eq!(tok.vocab_size(), vocab, "the same tokenizer, saved again");
    // validation on one-line documents can only give NotNext pairs, and the log says what that does to NSP
    let one_line = d.join("one-line.txt");
    std::fs::write(&one_line, "the cat sat.\n\nthe mat sat.\n\nthe cat ran.\n").unwrap();
    let (ok, err) = outcome(
        primer()
            .args(["pretrain", "bert", "--corpus"])
            .arg(&corpus)
            .arg("--val-corpus")
            .arg(&one_line)
            .arg("--out")
            .arg(d.join("one-line"))
            .args(
                "--n-layer 1 --n-head 2 --n-embd 16 --block-size 24 --batch-size 4 --max-iters 1"
                    .split(' '),
            )
            .args("--eval-iters 1 --warmup-iters 1 --vocab-size 80".split(' ')),
    );
    assert!(
        ok && err.contains("every validation pair is NotNext"),
        "{err}"
    );
}

/// The flags of a BERT run small enough to take a second.
const TINY_BERT: &str =
    "--vocab-size 80 --n-layer 1 --n-head 2 --n-embd 16 --block-size 24 --batch-size 4 \
                         --eval-iters 1 --warmup-iters 1 --threads 1";

/// Documents of four lines: a corpus `pretrain bert` can split.
fn bert_corpus(path: &std::path::Path, docs: usize) {
    let text: String = (0..docs)
        .map(|doc| {
            (0..4)
                .map(|i| format!("the cat sat on mat number {}.\n", (doc + i) % 10))
                .collect::<String>()
                + "\n"
        })
        .collect();
    std::fs::write(path, text).unwrap();
}

#[test]
fn resumed_bert_run_finds_its_files_and_names_its_flags() {
    let d = tmp("bert-resume");
    let elsewhere = d.join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    bert_corpus(&d.join("corpus.txt"), 30);
    bert_corpus(&d.join("val.txt"), 5);
    let bert = |dir: &std::path::Path, args: &str| {
        outcome(
            primer()
                .current_dir(dir)
                .args(["pretrain", "bert"])
                .args(args.split_whitespace()),
        )
    };
    let (ok, err) = bert(
        &d,
        &format!("--corpus corpus.txt --val-corpus val.txt --out run --max-iters 1 {TINY_BERT}"),
    );
    assert!(ok && !err.contains("--no-nsp"), "{err}");
    // documents of one line each leave next-sentence prediction nothing but NotNext: said, with the way out
    let one_line: String = (0..40)
        .map(|i| format!("the cat sat on mat {i}.\n\n"))
        .collect();
    std::fs::write(d.join("lines.txt"), one_line).unwrap();
    let (ok, err) = bert(
        &d,
        &format!("--corpus lines.txt --out lines --max-iters 1 {TINY_BERT}"),
    );
    assert!(
        ok && err.contains("is one line") && err.contains("pass --no-nsp"),
        "{err}"
    );
    let run = d.join("run");
    let run = run.to_str().unwrap();
    // the validation file, named relative to the working directory, is found from anywhere, and it may be
    // named again by any path to it
    let (ok, err) = bert(&elsewhere, &format!("--resume --out {run} --max-iters 2"));
    assert!(ok, "resumed from another directory: {err}");
    // its schedule ended at its first --max-iters, which the resumed run is told
    assert!(
        err.contains("ends at step 1")
            && err.contains("the last 1 of the 2 steps train at --min-lr"),
        "{err}"
    );
    let (ok, err) = bert(
        &d,
        "--resume --out run --max-iters 3 --val-corpus ./val.txt",
    );
    assert!(ok, "./val.txt is the same file: {err}");
    let val = d.join("val.txt");
    let (ok, err) = bert(
        &elsewhere,
        &format!(
            "--resume --out {run} --max-iters 4 --val-corpus {}",
            val.display()
        ),
    );
    assert!(ok, "so is its absolute path: {err}");
    let (ok, err) = bert(
        &d,
        "--resume --out run --max-iters 5 --val-corpus corpus.txt",
    );
    assert!(
        !ok && err.contains("--val-corpus"),
        "another file is not: {err}"
    );
    // a changed setting is refused by its flag; the batch size and accumulation may change, as for GPT
    let (ok, err) = bert(
        &d,
        "--resume --out run --max-iters 5 --no-nsp --mlm-probability 0.3 --whole-word-mask",
    );
    assert!(
        !ok && err.contains("--no-nsp, --mlm-probability, --whole-word-mask;"),
        "{err}"
    );
    let (ok, err) = bert(
        &d,
        "--resume --out run --max-iters 5 --batch-size 2 --grad-accum 2",
    );
    assert!(ok, "{err}");
    // nor on a validation file that changed since the run started, in place or as a moved file's stand-in
    let val_text = std::fs::read_to_string(&val).unwrap();
    std::fs::write(&val, format!("{val_text}\nan added line.\n")).unwrap();
    let (ok, err) = bert(&d, "--resume --out run --max-iters 6");
    assert!(
        !ok && err.contains("val.txt") && err.contains("keeps its validation corpus"),
        "{err}"
    );
    // told by its CRC-32 when its size is the same: here one letter changed
    let swapped = val_text.replacen('a', "b", 1);
    assert_ne!(swapped, val_text);
    std::fs::write(&val, &swapped).unwrap();
    let (ok, err) = bert(&d, "--resume --out run --max-iters 6");
    assert!(
        !ok && err.contains("val.txt: has other bytes than when the run in")
            && err.contains("at the same size"),
        "{err}"
    );
    std::fs::write(&val, &val_text).unwrap();
    // a corpus and a validation file that have moved are named, with the flag that gives where they are now
    std::fs::rename(&val, elsewhere.join("val.txt")).unwrap();
    let (ok, err) = bert(&d, "--resume --out run --max-iters 6");
    assert!(
        !ok && err.contains("val.txt") && err.contains("pass --val-corpus"),
        "{err}"
    );
    std::fs::rename(d.join("corpus.txt"), elsewhere.join("corpus.txt")).unwrap();
    let (ok, err) = bert(
        &d,
        "--resume --out run --max-iters 6 --val-corpus elsewhere/val.txt",
    );
    assert!(
        !ok && err.contains("corpus.txt") && err.contains("pass --corpus"),
        "{err}"
    );
    bert_corpus(&d.join("other-val.txt"), 7);
    let (ok, err) = bert(
        &d,
        "--resume --out run --max-iters 6 --val-corpus other-val.txt --corpus elsewhere/corpus.txt",
    );
    assert!(
        !ok && err.contains("other-val.txt") && err.contains("bytes"),
        "{err}"
    );
    let (ok, err) = bert(
        &d,
        "--resume --out run --max-iters 6 --val-corpus elsewhere/val.txt --corpus elsewhere/corpus.txt",
    );
    assert!(ok, "{err}");
    // a reused tokenizer named again by another path to it is the same tokenizer
    std::fs::copy(d.join("run").join("tokenizer.json"), d.join("tok.json")).unwrap();
    let (ok, err) = bert(
        &elsewhere,
        &format!(
            "--corpus corpus.txt --tokenizer ../tok.json --out reuse --max-iters 1 {}",
            TINY_BERT.replace("--vocab-size 80 ", "")
        ),
    );
    assert!(ok, "{err}");
    let (ok, err) = bert(
        &d,
        "--resume --out elsewhere/reuse --max-iters 2 --tokenizer ./tok.json",
    );
    assert!(ok, "{err}");
}

/// Runs `cmd` to its end, or kills it after a minute: whether it succeeded, and its stderr.
fn outcome_within_a_minute(cmd: &mut Command) -> (bool, String) {
    let mut child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed().as_secs() > 60 {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("still running after a minute: {cmd:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn inputs_read_twice_or_not_recordable_are_refused_before_anything_is_written() {
    use std::os::unix::ffi::OsStrExt;
    let d = tmp("inputs");
    let corpus = d.join("corpus.txt");
    bert_corpus(&corpus, 30);
    // a FIFO (here with no writer: opening it would block) is refused without being opened, as corpus and as
    // validation file
    let fifo = d.join("ff");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let fifo = fifo.to_str().unwrap();
    let corpus = corpus.to_str().unwrap();
    for (model, args) in [
        ("gpt", format!("--corpus {fifo}")),
        ("bert", format!("--corpus {fifo} {TINY_BERT}")),
        (
            "bert",
            format!("--corpus {corpus} --val-corpus {fifo} {TINY_BERT}"),
        ),
    ] {
        let (ok, err) = outcome_within_a_minute(
            primer()
                .current_dir(&d)
                .args(["pretrain", model, "--out", "x", "--max-iters", "1"])
                .args(args.split_whitespace()),
        );
        assert!(
            !ok && err.contains("ff: is not a regular file")
                && err.contains("save it to a file first"),
            "{model} {args}: {err}"
        );
    }
    // so is a FIFO as --config, which is read more than once too
    let (ok, err) = outcome_within_a_minute(
        primer()
            .current_dir(&d)
            .args(["pretrain", "gpt", "--out", "x", "--corpus", corpus])
            .args(["--config", fifo]),
    );
    assert!(
        !ok && err.contains("--config is not a regular file")
            && err.contains("save it to a file first"),
        "{err}"
    );
    // and a directory is named as one, with no advice to save it to a file
    let (ok, err) = outcome(
        primer()
            .current_dir(&d)
            .args(["pretrain", "gpt", "--out", "x", "--corpus", corpus])
            .args(["--config", "."]),
    );
    assert!(
        !ok && err.contains("is a directory: --config names a TOML file"),
        "{err}"
    );
    // /dev/stdin on a pipe (which gives its text once) is refused as not a regular file
    let mut child = primer()
        .current_dir(&d)
        .args(["pretrain", "gpt", "--corpus", "/dev/stdin", "--out", "x"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let text = std::fs::read(corpus).unwrap();
    // the run may refuse before it reads: a closed pipe is no failure here
    let _ = std::io::Write::write_all(&mut child.stdin.take().unwrap(), &text);
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("/dev/stdin: is not a regular file"),
        "{err}"
    );
    // a corpus whose name is not UTF-8 is refused up front, not at the first checkpoint
    let odd = d.join(std::ffi::OsStr::from_bytes(b"bad\xffname.txt"));
    std::fs::copy(corpus, &odd).unwrap();
    for model in ["gpt", "bert"] {
        let (ok, err) = outcome(
            primer()
                .current_dir(&d)
                .args(["pretrain", model, "--out", "x", "--max-iters", "1"])
                .arg("--corpus")
                .arg(&odd)
                .args(TINY_BERT.replace("--vocab-size 80 ", "").split_whitespace()),
        );
        assert!(!ok && err.contains("not valid UTF-8"), "{model}: {err}");
    }
    assert!(!d.join("x").exists());
}

/// A labelled sentiment TSV: the label is which of "good" / "bad" the sentence holds.
fn sentiment_tsv(path: &std::path::Path, n: usize, offset: usize) {
    let words = ["the", "film", "was", "a", "movie", "very", "plot", "acting"];
    let mut s = String::from("sentence\tlabel\n");
    for i in offset..offset + n {
        let pos = (i * 7 + i / 3) % 2 == 0;
        let w: Vec<&str> = (0..5)
            .map(|k| words[(i * 3 + k * 5) % words.len()])
            .collect();
        let (a, b) = w.split_at(1 + i % 4);
        let mark = if pos { "good" } else { "bad" };
        s += &format!(
            "{} {mark} {}\t{}\n",
            a.join(" "),
            b.join(" "),
            u8::from(pos)
        );
    }
    std::fs::write(path, s).unwrap();
}

#[test]
fn finetune_then_eval_predict_and_plot() {
    let d = tmp("finetune");
    let corpus = d.join("corpus.txt");
    let text: String = (0..200)
        .map(|i| {
            format!(
                "the film was good number {}.\nthe movie was bad plot {}.\n\n",
                i % 7,
                i % 5
            )
        })
        .collect();
    std::fs::write(&corpus, text).unwrap();
    let bert = d.join("bert");
    let ok = |cmd: &mut Command| {
        let o = cmd.output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    ok(primer()
        .args(["pretrain", "bert", "--corpus"])
        .arg(&corpus)
        .arg("--out")
        .arg(&bert)
        .args([
            "--vocab-size",
            "120",
            "--n-layer",
            "1",
            "--n-head",
            "2",
            "--n-embd",
            "32",
        ])
        .args([
            "--block-size",
            "32",
            "--max-iters",
            "20",
            "--eval-interval",
            "20",
            "--threads",
            "1",
        ]));
    let (train, dev) = (d.join("train.tsv"), d.join("dev.tsv"));
    sentiment_tsv(&train, 160, 0);
    sentiment_tsv(&dev, 40, 1000);
    let mut outs = Vec::new();
    for scratch in [false, true] {
        let out = d.join(if scratch { "scratch" } else { "pretrained" });
        let mut cmd = primer();
        cmd.args(["finetune", "classify", "--model"])
            .arg(&bert)
            .arg("--out")
            .arg(&out)
            .arg("--train")
            .arg(&train)
            .arg("--dev")
            .arg(&dev)
            .args([
                "--epochs",
                "15",
                "--lr",
                "3e-3",
                "--batch-size",
                "16",
                "--patience",
                "0",
            ])
            .args(["--train-limit", "120", "--threads", "1"]);
        if scratch {
            cmd.arg("--from-scratch");
        }
        let stdout = ok(&mut cmd);
        assert!(stdout.contains("best epoch"), "{stdout}");
        outs.push(out);
    }
    let out = &outs[0];
    let eval: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("eval.json")).unwrap()).unwrap();
    assert_eq!(eval["train_examples"], 120);
    assert!(eval["dev"]["accuracy"].as_f64().unwrap() >= 0.9, "{eval}");
    // `eval` on the dev file gives eval.json's numbers
    let again: serde_json::Value = serde_json::from_str(&ok(primer()
        .arg("eval")
        .arg("--model")
        .arg(out)
        .arg("--data")
        .arg(&dev)))
    .unwrap();
    assert_eq!(again, eval["dev"]);
    // the same file with other column names, named to eval
    let renamed = d.join("renamed.tsv");
    let text = std::fs::read_to_string(&dev).unwrap();
    std::fs::write(
        &renamed,
        text.replacen("sentence\tlabel", "review\tstars", 1),
    )
    .unwrap();
    let columns: serde_json::Value = serde_json::from_str(&ok(primer()
        .arg("eval")
        .arg("--model")
        .arg(out)
        .arg("--data")
        .arg(&renamed)
        .args(["--text-column", "review", "--label-column", "stars"])))
    .unwrap();
    assert_eq!(columns, eval["dev"]);
    let line = ok(primer().arg("predict").arg("--model").arg(out).args([
        "--json",
        "the plot was good",
        "very bad acting",
    ]));
    let preds: Vec<serde_json::Value> = line
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(preds[0]["label"], "1");
    assert_eq!(preds[1]["label"], "0");
    // the same texts as lines of a file
    let texts = d.join("texts.txt");
    std::fs::write(&texts, "the plot was good\nvery bad acting\n").unwrap();
    let from_file = ok(primer()
        .arg("predict")
        .arg("--model")
        .arg(out)
        .arg("--json")
        .arg("--input")
        .arg(&texts));
    assert_eq!(from_file, line);
    // qa's flags on a classifier are refused rather than ignored
    for args in [
        vec!["predict", "--context", "a passage", "good"],
        vec!["eval", "--articles", "0:3", "--data"],
    ] {
        let mut cmd = primer();
        cmd.args(&args[..1])
            .arg("--model")
            .arg(out)
            .args(&args[1..]);
        if args[0] == "eval" {
            cmd.arg(&dev);
        }
        let o = cmd.output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        let flag = args[1];
        assert!(
            !o.status.success() && err.contains(flag) && err.contains("qa"),
            "{args:?}: {err}"
        );
    }
    // a setting of another task is refused rather than ignored
    let (refused, err) = outcome(
        primer()
            .args(["finetune", "classify", "--doc-stride", "64", "--model"])
            .arg(&bert)
            .arg("--out")
            .arg(d.join("never"))
            .arg("--train")
            .arg(&train)
            .arg("--dev")
            .arg(&dev),
    );
    assert!(
        !refused && err.contains("--doc-stride applies to qa, not classify"),
        "{err}"
    );
    assert!(!d.join("never").exists());
    // a second run into the same --out is refused, and leaves the first as it was
    let weights = std::fs::read(out.join("model.safetensors")).unwrap();
    let again = primer()
        .args(["finetune", "classify", "--model"])
        .arg(&bert)
        .arg("--out")
        .arg(out)
        .arg("--train")
        .arg(&train)
        .arg("--dev")
        .arg(&dev)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(
        !again.status.success() && err.contains("pass --resume"),
        "{err}"
    );
    assert!(std::fs::read(out.join("model.safetensors")).unwrap() == weights);
    // the same run stopped after 4 epochs (with a test split) continues from --out alone, to the same model
    let short = d.join("short");
    let test = d.join("test.tsv");
    std::fs::copy(&dev, &test).unwrap();
    let with_test = |out: &std::path::Path, args: &[&str]| {
        ok(primer()
            .args(["finetune", "classify", "--model"])
            .arg(&bert)
            .arg("--out")
            .arg(out)
            .arg("--train")
            .arg(&train)
            .arg("--dev")
            .arg(&dev)
            .arg("--test")
            .arg(&test)
            .args(["--threads", "1"])
            .args(args))
    };
    with_test(
        &short,
        &[
            "--epochs",
            "15",
            "--lr",
            "3e-3",
            "--batch-size",
            "16",
            "--patience",
            "0",
            "--train-limit",
            "120",
            "--stop-after-epochs",
            "4",
        ],
    );
    let resume = |args: &[&str]| {
        outcome(
            primer()
                .args(["finetune", "--resume", "--threads", "1", "--out"])
                .arg(&short)
                .args(args),
        )
    };
    // a flag given must keep the run's value, even when it is the default's
    for (args, named) in [
        (&["--lr", "1e-3"][..], "--lr 0.001 (saved: 0.003)"),
        (&["--patience", "2"][..], "--patience 2 (saved: 0)"),
        (&["ner"][..], "the task ner (saved: classify)"),
    ] {
        let (ok, err) = resume(args);
        assert!(!ok && err.contains(named), "{args:?}: {err}");
    }
    // another task is named as such before the run's data is looked for
    let moved = d.join("train.moved");
    std::fs::rename(&train, &moved).unwrap();
    let (accepted, err) = resume(&["ner"]);
    assert!(
        !accepted && err.contains("the task ner (saved: classify)"),
        "{err}"
    );
    std::fs::rename(&moved, &train).unwrap();
    // the model it started from may be named again, another one is refused
    let (other, err) = resume(&["--model", out.to_str().unwrap()]);
    assert!(!other && err.contains("was started from"), "{err}");
    let (resumed, err) = resume(&["--lr", "3e-3", "--model", bert.to_str().unwrap()]);
    assert!(resumed, "{err}");
    assert!(std::fs::read(short.join("model.safetensors")).unwrap() == weights);
    let eval: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(short.join("eval.json")).unwrap()).unwrap();
    assert!(eval["test"]["accuracy"].as_f64().is_some(), "{eval}");
    // a recorded test split that is gone is named, and --no-test forgets it
    let gone = d.join("gone");
    with_test(
        &gone,
        &[
            "--epochs",
            "2",
            "--train-limit",
            "40",
            "--stop-after-epochs",
            "1",
        ],
    );
    std::fs::remove_file(&test).unwrap();
    let resume_gone = |args: &[&str]| {
        outcome(
            primer()
                .args(["finetune", "--resume", "--threads", "1", "--out"])
                .arg(&gone)
                .args(args),
        )
    };
    let (resumed, err) = resume_gone(&[]);
    assert!(
        !resumed && err.contains("is gone: pass --test with where it is now, or --no-test"),
        "{err}"
    );
    let (resumed, err) = resume_gone(&["--no-test"]);
    assert!(resumed, "{err}");
    let eval: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(gone.join("eval.json")).unwrap()).unwrap();
    assert!(eval["test"].is_null(), "{eval}");
    let png = d.join("efficiency.png");
    let table = ok(primer().arg("plot").arg("--out").arg(&png).args(&outs));
    assert!(
        table.contains("| pretrained | 120 |") && table.contains("| from scratch | 120 |"),
        "{table}"
    );
    assert!(std::fs::metadata(&png).unwrap().len() > 1000);
    // a metric the runs lack is refused with the ones they have, before the table is printed
    let o = primer()
        .args(["plot", "--metric", "f1", "--out"])
        .arg(d.join("f1.png"))
        .args(&outs)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("has no dev f1 (it has accuracy, macro_f1)"),
        "{err}"
    );
    assert!(o.stdout.is_empty());
}

#[test]
fn finetune_bad_input_is_a_clear_error_and_writes_no_model() {
    let d = tmp("finetune-bad");
    let corpus = d.join("corpus.txt");
    std::fs::write(
        &corpus,
        "the film was good.\nthe movie was bad.\n\n".repeat(50),
    )
    .unwrap();
    let bert = d.join("bert");
    let o = primer()
        .args(["pretrain", "bert", "--corpus"])
        .arg(&corpus)
        .arg("--out")
        .arg(&bert)
        .args([
            "--vocab-size",
            "60",
            "--n-layer",
            "1",
            "--n-head",
            "2",
            "--n-embd",
            "16",
        ])
        .args([
            "--block-size",
            "16",
            "--max-iters",
            "2",
            "--eval-interval",
            "2",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let conll = d.join("ragged.txt");
    std::fs::write(&conll, "EU NNP B-NP B-ORG\nrejects VBZ O\n\n").unwrap();
    let out = d.join("out");
    let o = primer()
        .args(["finetune", "ner", "--model"])
        .arg(&bert)
        .arg("--out")
        .arg(&out)
        .arg("--train")
        .arg(&conll)
        .arg("--dev")
        .arg(&conll)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("ragged.txt") && err.contains("line 2"),
        "{err}"
    );
    assert!(!out.join("model.safetensors").exists());
}

/// Saves into `dir` a GPT of `vocab` ids whose next-token logits always favour `favourite`, with tokenizer `tok`.
fn save_favouring(dir: &std::path::Path, tok: &TextTokenizer, vocab: usize, favourite: u32) {
    let mut model = Gpt::new(GptConfig::new(vocab, 16, 1, 1, 4), 0).unwrap();
    // the final LayerNorm then outputs its bias e_0 whatever the input, and the tied head reads wte[.., 0]
    for spec in model.layout.specs() {
        let p = &mut model.params[spec.range()];
        match spec.name.as_str() {
            "transformer.ln_f.weight" => p.fill(0.0),
            "transformer.ln_f.bias" => p[0] = 1.0,
            "transformer.wte.weight" => p[favourite as usize * 4] = 5.0,
            _ => {}
        }
    }
    model.save(dir, &[]).unwrap();
    tok.save_in(dir, 64).unwrap();
}

#[test]
fn generate_with_padded_or_mismatched_vocabularies_and_split_characters() {
    let d = tmp("vocab");
    let corpus = d.join("chars.txt");
    std::fs::write(&corpus, "abc \n").unwrap();
    let chars = TextTokenizer::train_char(std::slice::from_ref(&corpus)).unwrap();
    assert_eq!(chars.vocab_size(), 5);
    let run = |dir: &std::path::Path, prompt: &str, temperature: &str| {
        primer()
            .args(["generate", "--model"])
            .arg(dir)
            .args(["--prompt", prompt, "--temperature", temperature])
            .args(["--max-new-tokens", "6"])
            .output()
            .unwrap()
    };

    // a vocabulary padded past the tokenizer's: the padding's ids are never picked, though favoured
    let padded = d.join("padded");
    save_favouring(&padded, &chars, 9, 7);
    for temperature in ["0", "1"] {
        let out = run(&padded, "a", temperature);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "temperature {temperature}: {err}");
        let text = String::from_utf8(out.stdout).unwrap();
        assert_eq!(text.chars().count(), 1 + 6 + 1, "{text:?}");
        assert!(text.chars().all(|c| "abc \n".contains(c)), "{text:?}");
    }

    // a tokenizer larger than the model: the prompt is refused before it is echoed
    let small = d.join("small");
    save_favouring(&small, &chars, 3, 0);
    let out = run(&small, "ac", "0");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("prompt") && err.contains("token id 4") && err.contains("small"),
        "{err}"
    );
    assert!(out.stdout.is_empty(), "{:?}", out.stdout);

    // an empty prompt starts from a line break; a vocabulary without one (nor an end-of-text token) asks for a
    // prompt
    let no_newline = d.join("abc.txt");
    std::fs::write(&no_newline, "abc ").unwrap();
    let abc = TextTokenizer::train_char(std::slice::from_ref(&no_newline)).unwrap();
    let flat = d.join("flat");
    save_favouring(&flat, &abc, 4, 0);
    let out = run(&flat, "", "0");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("give a --prompt"),
        "{err}"
    );
    assert!(run(&padded, "", "0").status.success());

    // byte-level tokens that never complete a character come out as U+FFFD, as transformers prints them
    let bpe = TextTokenizer::train_bpe(&[corpus], 257).unwrap();
    let lead_byte = bpe.token_to_id("Ã").unwrap(); // 0xC3, which starts "é"
    let split = d.join("split");
    save_favouring(&split, &bpe, bpe.vocab_size(), lead_byte);
    let out = run(&split, "a", "0");
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text, format!("a{}\n", "\u{fffd}".repeat(6)));
}
