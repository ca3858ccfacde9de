use super::*;

const VOCAB: usize = 1000;
const MASK: u32 = 4;
const PAD: u32 = 0;
/// Ids at or above this are "##" continuation pieces.
const FIRST_CONTINUATION: u32 = 600;
const SEQ: usize = 128;

fn masker(cfg: MaskConfig) -> Masker {
    let special = (0..VOCAB).map(|id| id < 5).collect();
    let continuation = (0..VOCAB as u32)
        .map(|id| id >= FIRST_CONTINUATION)
        .collect();
    Masker::new(cfg, MASK, special, continuation).unwrap()
}

fn cfg(probability: f32, mask_replace: f32, random_replace: f32, whole_word: bool) -> MaskConfig {
    MaskConfig {
        probability,
        mask_replace,
        random_replace,
        whole_word,
    }
}

/// `rows` rows of `[CLS] words [SEP] [PAD]…`; each word is a start piece and 0–3 continuations.
/// Returns the ids and, per row, the word spans `(start, end)`.
fn rows(rows: usize, seed: u64) -> (Vec<u32>, Vec<(usize, usize)>) {
    let mut rng = Rng::new(seed);
    let mut ids = vec![PAD; rows * SEQ];
    let mut words = Vec::new();
    for (r, row) in ids.chunks_exact_mut(SEQ).enumerate() {
        let len = SEQ / 2 + rng.below(SEQ as u64 / 2) as usize;
        row[0] = 2;
        let mut i = 1;
        while i < len - 1 {
            let pieces = (1 + rng.below(4) as usize).min(len - 1 - i);
            row[i] = 5 + rng.below(u64::from(FIRST_CONTINUATION) - 5) as u32;
            for p in 1..pieces {
                row[i + p] = FIRST_CONTINUATION + rng.below(400) as u32;
            }
            words.push((r * SEQ + i, r * SEQ + i + pieces));
            i += pieces;
        }
        row[len - 1] = 3;
    }
    (ids, words)
}

/// Masks all rows with `masker` and a fixed seed; returns (masked ids, labels).
fn apply(masker: &Masker, ids: &[u32], seed: u64) -> (Vec<u32>, Vec<i32>) {
    let mut out = ids.to_vec();
    let mut labels = vec![0; ids.len()];
    let mut rng = Rng::new(seed);
    for (row, lab) in out.chunks_exact_mut(SEQ).zip(labels.chunks_exact_mut(SEQ)) {
        masker.mask(row, lab, &mut rng);
    }
    (out, labels)
}

/// Fractions of chosen positions that became [MASK], a different id, or stayed, after checking
/// the invariants every split must keep.
fn outcome_fractions(original: &[u32], masked: &[u32], labels: &[i32]) -> [f64; 3] {
    let mut counts = [0usize; 3];
    for ((&o, &m), &l) in original.iter().zip(masked).zip(labels) {
        if o < 5 {
            assert_eq!((m, l), (o, IGNORE_LABEL), "special token {o} was chosen");
            continue;
        }
        if l == IGNORE_LABEL {
            assert_eq!(m, o, "a position not chosen changed");
            continue;
        }
        assert_eq!(l, o as i32, "label is not the original id");
        let kind = if m == MASK {
            0
        } else if m != o {
            assert!(m >= 5, "special id {m} inserted as a random replacement");
            1
        } else {
            2
        };
        counts[kind] += 1;
    }
    let n: usize = counts.iter().sum();
    counts.map(|c| c as f64 / n as f64)
}

#[test]
fn tokens_are_chosen_at_the_rate_and_split_80_10_10() {
    let (ids, _) = rows(2000, 1);
    let (masked, labels) = apply(&masker(MaskConfig::default()), &ids, 7);
    let candidates = ids.iter().filter(|&&id| id >= 5).count();
    assert!(candidates > 150_000, "{candidates}");
    let chosen = labels.iter().filter(|&&l| l != IGNORE_LABEL).count();
    let rate = chosen as f64 / candidates as f64;
    assert!((rate - 0.15).abs() < 0.005, "chosen fraction {rate}");
    let [mask, random, kept] = outcome_fractions(&ids, &masked, &labels);
    assert!((mask - 0.8).abs() < 0.01, "[MASK] {mask}");
    assert!((random - 0.1).abs() < 0.01, "random {random}");
    assert!((kept - 0.1).abs() < 0.01, "kept {kept}");
}

#[test]
fn every_split_is_honoured_in_kind() {
    let (ids, _) = rows(300, 2);
    // A random replacement equals the original with chance 1/995.
    let few = 0.01;
    let (m, l) = apply(&masker(cfg(0.3, 1.0, 0.0, false)), &ids, 3);
    assert_eq!(outcome_fractions(&ids, &m, &l), [1.0, 0.0, 0.0]);
    let (m, l) = apply(&masker(cfg(0.3, 0.0, 1.0, false)), &ids, 3);
    let [mask, random, kept] = outcome_fractions(&ids, &m, &l);
    assert_eq!(mask, 0.0);
    assert!(random > 1.0 - few && kept < few, "{random} {kept}");
    let (m, l) = apply(&masker(cfg(0.3, 0.5, 0.5, false)), &ids, 3);
    let [mask, random, kept] = outcome_fractions(&ids, &m, &l);
    assert!(
        (mask - 0.5).abs() < 0.03 && kept < few,
        "{mask} {random} {kept}"
    );
    let (m, l) = apply(&masker(cfg(0.3, 0.0, 0.0, false)), &ids, 3);
    assert_eq!(outcome_fractions(&ids, &m, &l), [0.0, 0.0, 1.0]);
}

#[test]
fn whole_words_are_chosen_together_at_the_rate() {
    let (ids, words) = rows(2000, 4);
    let (masked, labels) = apply(&masker(cfg(0.15, 0.8, 0.1, true)), &ids, 5);
    let mut chosen_words = 0;
    for &(start, end) in &words {
        let chosen = labels[start] != IGNORE_LABEL;
        let pieces = &labels[start..end];
        assert!(
            pieces.iter().all(|&l| (l != IGNORE_LABEL) == chosen),
            "word {start}..{end} split: {pieces:?}"
        );
        chosen_words += usize::from(chosen);
    }
    let rate = chosen_words as f64 / words.len() as f64;
    assert!(
        (rate - 0.15).abs() < 0.008,
        "{rate} of {} words",
        words.len()
    );
    let [mask, random, kept] = outcome_fractions(&ids, &masked, &labels);
    assert!((mask - 0.8).abs() < 0.015 && (random - kept).abs() < 0.015);
    // Per token, multi-piece words are split apart, so some word is only partly chosen.
    let (_, labels) = apply(&masker(cfg(0.15, 0.8, 0.1, false)), &ids, 5);
    assert!(words.iter().any(|&(s, e)| {
        let n = (s..e).filter(|&i| labels[i] != IGNORE_LABEL).count();
        n > 0 && n < e - s
    }));
}

#[test]
fn masks_are_determined_by_the_seed() {
    let (ids, _) = rows(50, 6);
    let m = masker(MaskConfig::default());
    assert_eq!(apply(&m, &ids, 9), apply(&m, &ids, 9));
    assert_ne!(apply(&m, &ids, 9), apply(&m, &ids, 10));
}

#[test]
fn invalid_settings_name_the_option() {
    for (bad, option) in [
        (cfg(0.0, 0.8, 0.1, false), "--mlm-probability"),
        (
            cfg(1.5, 0.8, 0.1, false),
            "--mlm-probability 1.5 must be in (0, 1]",
        ),
        (cfg(0.15, -0.1, 0.1, false), "--mask-replace"),
        (cfg(0.15, 0.8, f32::NAN, false), "--random-replace"),
        (cfg(0.15, 0.8, 0.3, false), "exceeds 1"),
    ] {
        let err = bad.validate().unwrap_err().to_string();
        assert!(err.contains(option), "{err}");
    }
    for split in [
        (0.8, 0.1),
        (1.0, 0.0),
        (0.0, 1.0),
        (0.5, 0.5),
        (0.7, 0.3),
        (0.0, 0.0),
    ] {
        cfg(1.0, split.0, split.1, true).validate().unwrap();
    }
    let only_special = Masker::new(MaskConfig::default(), MASK, vec![true; 5], vec![false; 5]);
    assert!(only_special.is_err());
}
