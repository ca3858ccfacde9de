//! Stop strings against transformers' own (`generate(stop_strings=…, tokenizer=…)`): the cases in
//! `<fixture>/stop_strings.json`, made by `scripts/make_fixtures.py --only stops` with the tokenizer
//! `fixtures/stop_tokenizer.json` (token texts of one to four characters), stop greedy decoding and beam search
//! with strings that begin inside one token and end inside another, whole tokens, two strings at once, a string
//! the prompt already holds and one that never comes.

mod common;

use common::{fixture, ids};
use primer::infer::beam::{BeamSearch, EarlyStopping};
use primer::infer::generate::{beam_search, generate, Sampling};
use primer::models::gpt::Gpt;
use primer::tokenize::TextTokenizer;
use serde_json::Value;

#[test]
fn stop_strings_end_texts_as_in_transformers() {
    let tok = TextTokenizer::from_file(&fixture("stop_tokenizer.json")).unwrap();
    let end = 96;
    for name in ["gpt2_tiny_untied", "gpt2_stray_head"] {
        let model = Gpt::load(&fixture(name)).unwrap();
        let text = std::fs::read_to_string(fixture(name).join("stop_strings.json")).unwrap();
        let doc: Value = serde_json::from_str(&text).unwrap();
        let cases = doc["cases"].as_array().unwrap();
        let mut stopped = 0;
        for (i, case) in cases.iter().enumerate() {
            let num_beams = case["num_beams"].as_u64().unwrap() as usize;
            let s = Sampling {
                max_new_tokens: case["max_new_tokens"].as_u64().unwrap() as usize,
                temperature: 0.0,
                stop_tokens: vec![end],
                stop_strings: serde_json::from_value(case["stop_strings"].clone()).unwrap(),
                beam: (num_beams > 1).then_some(BeamSearch {
                    num_beams,
                    length_penalty: 1.0,
                    early_stopping: EarlyStopping::Heuristic,
                    do_sample: false,
                }),
                ..Default::default()
            };
            let prompt = ids(&case["prompt"]);
            let want = ids(&case["tokens"]);
            if want.len() < s.max_new_tokens && want.last() != Some(&end) {
                stopped += 1;
            }
            if num_beams == 1 {
                let got = generate(&model, &tok, &prompt, &s, |_| Ok(())).unwrap();
                let without_end = &want[..want.len() - usize::from(want.last() == Some(&end))];
                assert_eq!(got, without_end, "{name} case {i}: {case}");
                continue;
            }
            let found = beam_search(&model, &tok, &prompt, &s).unwrap();
            let score = case["score"].as_f64().unwrap() as f32;
            assert_eq!(found[0].tokens, want, "{name} case {i}: {case}");
            assert!(
                (found[0].score - score).abs() <= 1e-4 * (1.0 + score.abs()),
                "{name} case {i}: score {} against transformers' {score}",
                found[0].score
            );
            for (k, t) in case["texts"].as_array().unwrap().iter().enumerate() {
                assert_eq!(
                    found[k].tokens,
                    ids(&t["tokens"]),
                    "{name} case {i} text {k}"
                );
            }
        }
        // the strings did stop texts, greedy and searched, before their length limit
        assert!(
            stopped >= 10,
            "{name}: {stopped} of {} cases stopped",
            cases.len()
        );
    }
}
