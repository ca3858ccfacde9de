//! Beam search against transformers' own (`generate(num_beams=…)`): the cases in `<fixture>/beam_search.json`,
//! made by `scripts/make_fixtures.py --only beams`, cover one and two end tokens, the three `early_stopping`
//! values, length penalties above, at and below 0, a repetition penalty, no repeated n-grams, a minimum length
//! and banned token sequences (`bad_words_ids`); the one-beam cases are transformers' greedy decoding, checked
//! against primer's.

mod common;

use common::{fixture, ids};
use primer::infer::beam::{BeamSearch, EarlyStopping};
use primer::infer::generate::{beam_search, generate, Sampling};
use primer::models::gpt::Gpt;
use serde_json::Value;

fn beam_sampling(max_new_tokens: usize, stop_tokens: Vec<u32>, beam: BeamSearch) -> Sampling {
    Sampling {
        max_new_tokens,
        temperature: 0.0,
        stop_tokens,
        beam: Some(beam),
        ..Default::default()
    }
}

#[test]
fn beam_search_matches_transformers() {
    let scratch = common::tmp("beam-search");
    let tok = common::bpe_tokenizer(&scratch);
    for name in ["gpt2_tiny_untied", "gpt2_stray_head"] {
        let model = Gpt::load(&fixture(name)).unwrap();
        let text = std::fs::read_to_string(fixture(name).join("beam_search.json")).unwrap();
        let doc: Value = serde_json::from_str(&text).unwrap();
        let cases = doc["cases"].as_array().unwrap();
        assert!(cases.len() >= 48, "{name}: {} cases", cases.len());
        let banned = cases
            .iter()
            .filter(|c| c["bad_words_ids"].is_array())
            .count();
        assert_eq!(banned, 12, "{name}: cases with bad_words_ids");
        for (i, case) in cases.iter().enumerate() {
            let beam = BeamSearch {
                num_beams: case["num_beams"].as_u64().unwrap() as usize,
                length_penalty: case["length_penalty"].as_f64().unwrap(),
                early_stopping: serde_json::from_value::<EarlyStopping>(
                    case["early_stopping"].clone(),
                )
                .unwrap(),
                do_sample: false,
            };
            let max_new = case["max_new_tokens"].as_u64().unwrap() as usize;
            let ends = ids(&case["eos_token_id"]);
            let count = |key: &str| case[key].as_u64().unwrap() as usize;
            let s = Sampling {
                repetition_penalty: case["repetition_penalty"].as_f64().unwrap() as f32,
                no_repeat_ngram_size: count("no_repeat_ngram_size"),
                min_new_tokens: count("min_new_tokens"),
                bad_words: serde_json::from_value(case["bad_words_ids"].clone())
                    .unwrap_or_default(),
                ..beam_sampling(max_new, ends.clone(), beam)
            };
            let prompt = ids(&case["prompt"]);
            let want = ids(&case["tokens"]);
            let end = want.iter().position(|t| ends.contains(t));
            let without_end = &want[..end.unwrap_or(want.len())];
            if beam.num_beams == 1 {
                // transformers' greedy decoding
                let greedy = Sampling { beam: None, ..s };
                let text = generate(&model, &tok, &prompt, &greedy, |_| Ok(())).unwrap();
                assert_eq!(text, without_end, "{name} case {i}: {case}");
                continue;
            }
            let found = beam_search(&model, &tok, &prompt, &s).unwrap();
            assert_eq!(found[0].tokens, want, "{name} case {i}: {case}");
            let score = case["score"].as_f64().unwrap() as f32;
            assert!(
                (found[0].score - score).abs() <= 1e-4 * (1.0 + score.abs()),
                "{name} case {i}: score {} against transformers' {score}",
                found[0].score
            );
            assert!(
                found.windows(2).all(|w| w[0].score >= w[1].score),
                "{name} case {i}: texts not best first"
            );
            // the runners-up too, as far as the fixture holds them (up to the first a near tie could reorder)
            let ranked = case["texts"].as_array().unwrap();
            assert!(
                !ranked.is_empty() && ranked.len() <= found.len(),
                "{name} case {i}"
            );
            for (k, (text, got)) in ranked.iter().zip(&found).enumerate() {
                let score = text["score"].as_f64().unwrap() as f32;
                assert_eq!(got.tokens, ids(&text["tokens"]), "{name} case {i} text {k}");
                assert!(
                    (got.score - score).abs() <= 1e-4 * (1.0 + score.abs()),
                    "{name} case {i} text {k}: score {} against transformers' {score}",
                    got.score
                );
            }
            // generate gives the best text without its end token
            let text = generate(&model, &tok, &prompt, &s, |_| Ok(())).unwrap();
            assert_eq!(text, without_end, "{name} case {i}");
            // beam sampling this cold draws the candidates beam search takes; its scores are sums of
            // log-probabilities divided by the temperature, as transformers' are
            let t = 1e-4;
            let cold = Sampling {
                temperature: t,
                seed: i as u64,
                beam: Some(BeamSearch {
                    do_sample: true,
                    ..beam
                }),
                ..s
            };
            let drawn = beam_search(&model, &tok, &prompt, &cold).unwrap();
            assert_eq!(drawn[0].tokens, want, "{name} case {i}: beam sampling");
            assert!(
                (drawn[0].score * t - score).abs() <= 1e-4 * (1.0 + score.abs()),
                "{name} case {i}: beam sampling's score {} at temperature {t}, transformers' {score}",
                drawn[0].score
            );
        }
    }
}

/// A search longer than the model's 32 positions goes on from the last half of each beam's text (as sampling
/// does) instead of failing, a single beam is greedy decoding, and absurd beam counts are errors.
#[test]
fn beam_search_outlives_the_context_and_one_beam_is_greedy() {
    let scratch = common::tmp("beam-search-long");
    let tok = common::bpe_tokenizer(&scratch);
    let model = Gpt::load(&fixture("gpt2_tiny_untied")).unwrap();
    let prompt = [5, 17, 33];
    let beam = |num_beams| BeamSearch {
        num_beams,
        length_penalty: 1.0,
        early_stopping: EarlyStopping::Heuristic,
        do_sample: false,
    };
    let found = beam_search(&model, &tok, &prompt, &beam_sampling(45, vec![], beam(3))).unwrap();
    assert_eq!(found.len(), 3);
    assert!(found.iter().all(|h| h.tokens.len() == 45));
    let one = beam_search(&model, &tok, &prompt, &beam_sampling(20, vec![], beam(1))).unwrap();
    let greedy = Sampling {
        beam: None,
        ..beam_sampling(20, vec![], beam(1))
    };
    let text = generate(&model, &tok, &prompt, &greedy, |_| Ok(())).unwrap();
    assert_eq!(one[0].tokens, text);
    // beams whose caches could not fit in memory are refused before anything is allocated
    let err = beam_search(
        &model,
        &tok,
        &prompt,
        &beam_sampling(20, vec![], beam(1 << 40)),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("--num-beams"), "{err}");
}

/// Beam sampling draws other texts with other seeds, and the same with the same seed.
#[test]
fn beam_sampling_depends_on_the_seed_alone() {
    let scratch = common::tmp("beam-sampling");
    let tok = common::bpe_tokenizer(&scratch);
    let model = Gpt::load(&fixture("gpt2_tiny_untied")).unwrap();
    let prompt = [5, 17, 33];
    let beam = BeamSearch {
        num_beams: 3,
        length_penalty: 1.0,
        early_stopping: EarlyStopping::Heuristic,
        do_sample: true,
    };
    let sampled = |seed| Sampling {
        temperature: 1.0,
        seed,
        ..beam_sampling(8, vec![96], beam)
    };
    let best = |s: &Sampling| {
        beam_search(&model, &tok, &prompt, s).unwrap()[0]
            .tokens
            .clone()
    };
    let texts: Vec<Vec<u32>> = (0..8).map(|seed| best(&sampled(seed))).collect();
    assert_eq!(best(&sampled(3)), texts[3]);
    let mut distinct = texts.clone();
    distinct.sort();
    distinct.dedup();
    assert!(distinct.len() >= 4, "{texts:?}");
    // top-k 1 still keeps two tokens per beam (transformers' minimum with beams), so that every beam lives
    let narrow = Sampling {
        top_k: 1,
        stop_tokens: vec![],
        ..sampled(0)
    };
    let found = beam_search(&model, &tok, &prompt, &narrow).unwrap();
    assert_eq!(found.len(), 3);
    assert!(found.iter().all(|h| h.score > -1e6), "{found:?}");
}

/// A checkpoint with NaN in its weights is an error, not an empty or garbled text, in greedy and beam search.
#[test]
fn weights_that_are_not_numbers_are_an_error() {
    let scratch = common::tmp("beam-nan");
    let tok = common::bpe_tokenizer(&scratch);
    let mut model = Gpt::load(&fixture("gpt2_tiny_untied")).unwrap();
    let ln_f = model
        .layout
        .specs()
        .iter()
        .find(|s| s.name == "transformer.ln_f.weight")
        .unwrap()
        .range();
    model.params[ln_f].fill(f32::NAN);
    let greedy = Sampling {
        max_new_tokens: 4,
        temperature: 0.0,
        ..Default::default()
    };
    let beams = beam_sampling(
        4,
        Vec::new(),
        BeamSearch {
            num_beams: 2,
            length_penalty: 1.0,
            early_stopping: EarlyStopping::Heuristic,
            do_sample: false,
        },
    );
    for s in [greedy, beams] {
        let err = generate(&model, &tok, &[5, 6], &s, |_| Ok(()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a finite number"), "{err}");
    }
}
