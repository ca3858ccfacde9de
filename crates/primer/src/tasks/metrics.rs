//! Task metrics as the reference scripts compute them: accuracy and macro-F1 for
//! classification, conlleval's entity-level F1 for tagging, and the SQuAD v1.1 script's exact
//! match and token F1.

use std::collections::HashMap;

/// Classification scores, fractions in [0, 1].
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct ClassScores {
    pub accuracy: f64,
    pub macro_f1: f64,
}

/// Accuracy and macro-F1 (mean over the `num_labels` classes of per-class F1; a class with no
/// gold and no predicted items is left out of the mean, as sklearn's behaviour with labels
/// present; a class with gold but no predictions has F1 0). Empty input scores 0.
pub fn classification(pred: &[usize], gold: &[usize], num_labels: usize) -> ClassScores {
    assert_eq!(pred.len(), gold.len(), "as many predictions as gold labels");
    // Per class: true positives, predicted, gold.
    let mut counts = vec![(0usize, 0usize, 0usize); num_labels];
    for (&p, &g) in pred.iter().zip(gold) {
        counts[p].1 += 1;
        counts[g].2 += 1;
        if p == g {
            counts[p].0 += 1;
        }
    }
    let correct: usize = counts.iter().map(|c| c.0).sum();
    let f1s: Vec<f64> = counts
        .iter()
        .filter(|&&(_, predicted, gold)| predicted + gold > 0)
        .map(|&(tp, predicted, gold)| 2.0 * tp as f64 / (predicted + gold) as f64)
        .collect();
    ClassScores {
        accuracy: ratio(correct, pred.len()),
        macro_f1: if f1s.is_empty() {
            0.0
        } else {
            f1s.iter().sum::<f64>() / f1s.len() as f64
        },
    }
}

/// Entity-level scores, fractions in [0, 1].
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct SpanScores {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

/// Entity chunks of a tag sequence exactly as conlleval does (IOB1 and IOB2/BIO both
/// accepted: an I- tag that does not continue a chunk of the same type starts a new one; "O"
/// ends chunks; conlleval's IOE rules for E- tags too): (type, start word, end word exclusive).
/// A tag is split at its first '-' into prefix and type. Beyond conlleval, which has no chunks for
/// them, two schemes other taggers use: BIOES (S- is a chunk of one word, and B- after E- starts
/// one), and IO (a tag without '-' other than "O", "PER", is read as I- of that type).
pub fn chunks(tags: &[String]) -> Vec<(String, usize, usize)> {
    let mut found = Vec::new();
    let mut open: Option<(&str, usize)> = None;
    let mut prev = ("O", "");
    for (i, tag) in tags.iter().enumerate() {
        let cur = split_tag(tag);
        let start = chunk_starts(prev, cur);
        if let Some((kind, from)) = open {
            if start || chunk_ends(prev, cur) {
                found.push((kind.to_string(), from, i));
                open = None;
            }
        }
        if start {
            open = Some((cur.1, i));
        }
        prev = cur;
    }
    if let Some((kind, from)) = open {
        found.push((kind.to_string(), from, tags.len()));
    }
    found
}

/// (prefix, type) of a tag: "B-PER" → ("B", "PER"), "O" → ("O", "").
fn split_tag(tag: &str) -> (&str, &str) {
    match tag.split_once('-') {
        Some(parts) => parts,
        None if tag == "O" => ("O", ""),
        None => ("I", tag),
    }
}

/// conlleval's `endOfChunk`: whether a chunk ends between tags `prev` and `cur`.
fn chunk_ends((prev, prev_type): (&str, &str), (cur, cur_type): (&str, &str)) -> bool {
    matches!((prev, cur), ("B" | "I", "B" | "O" | "S") | ("E" | "S", _))
        || (prev != "O" && prev_type != cur_type)
}

/// conlleval's `startOfChunk`: whether a chunk starts at tag `cur`, after `prev`.
fn chunk_starts((prev, prev_type): (&str, &str), (cur, cur_type): (&str, &str)) -> bool {
    matches!(
        (prev, cur),
        (_, "B" | "S") | ("O", "I" | "E") | ("E" | "S", "E" | "I")
    ) || (cur != "O" && prev_type != cur_type)
}

/// conlleval's entity-level micro precision/recall/F1 over sentences: a predicted chunk
/// counts when its span and type equal a gold chunk. Empty denominators give 0.
pub fn entity_scores(pred: &[Vec<String>], gold: &[Vec<String>]) -> SpanScores {
    assert_eq!(
        pred.len(),
        gold.len(),
        "as many predicted sentences as gold ones"
    );
    let (mut correct, mut predicted, mut actual) = (0, 0, 0);
    for (p, g) in pred.iter().zip(gold) {
        assert_eq!(p.len(), g.len(), "a predicted tag for every gold tag");
        let (p, g) = (chunks(p), chunks(g));
        correct += p.iter().filter(|c| g.contains(c)).count();
        predicted += p.len();
        actual += g.len();
    }
    let (precision, recall) = (ratio(correct, predicted), ratio(correct, actual));
    SpanScores {
        precision,
        recall,
        f1: harmonic_mean(precision, recall),
    }
}

/// SQuAD v1.1 official normalisation: lower case, remove punctuation (ASCII punctuation as
/// Python's string.punctuation), remove articles a/an/the as whole words (runs of Unicode
/// alphanumerics and '_', as Python's `\b`), collapse whitespace.
pub fn squad_normalize(s: &str) -> String {
    let lower: String = s
        .to_lowercase()
        .chars()
        .filter(|c| !c.is_ascii_punctuation())
        .collect();
    let mut no_articles = String::with_capacity(lower.len());
    let mut rest = lower.as_str();
    while let Some(c) = rest.chars().next() {
        let word_char = |c: char| c.is_alphanumeric() || c == '_';
        let is_word = word_char(c);
        let end = rest.find(|c| word_char(c) != is_word).unwrap_or(rest.len());
        let run = &rest[..end];
        no_articles.push_str(if is_word && matches!(run, "a" | "an" | "the") {
            " "
        } else {
            run
        });
        rest = &rest[end..];
    }
    squad_tokens(&no_articles).collect::<Vec<_>>().join(" ")
}

/// Python's `str.split()`: whitespace-separated words (Python also counts U+001C..U+001F).
fn squad_tokens(s: &str) -> impl Iterator<Item = &str> {
    s.split(|c: char| c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c))
        .filter(|w| !w.is_empty())
}

/// (exact match 0/1, token F1) of `pred` against the best of `golds` (max over golds, as the
/// official script); no golds give (0, 0).
pub fn squad_scores(pred: &str, golds: &[String]) -> (f64, f64) {
    let pred = squad_normalize(pred);
    let pred_tokens: Vec<&str> = squad_tokens(&pred).collect();
    let (mut exact, mut f1) = (0.0f64, 0.0f64);
    for gold in golds {
        let gold = squad_normalize(gold);
        if gold == pred {
            exact = 1.0;
        }
        let mut left: HashMap<&str, usize> = HashMap::new();
        for t in squad_tokens(&gold) {
            *left.entry(t).or_default() += 1;
        }
        let gold_len: usize = left.values().sum();
        let mut same = 0;
        for t in &pred_tokens {
            if let Some(n) = left.get_mut(t).filter(|n| **n > 0) {
                *n -= 1;
                same += 1;
            }
        }
        if same > 0 {
            let (p, r) = (ratio(same, pred_tokens.len()), ratio(same, gold_len));
            f1 = f1.max(harmonic_mean(p, r));
        }
    }
    (exact, f1)
}

/// `num / den`, or 0 when `den` is 0.
fn ratio(num: usize, den: usize) -> f64 {
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}

/// 2pr / (p + r), or 0 when both are 0.
fn harmonic_mean(p: f64, r: f64) -> f64 {
    if p + r == 0.0 {
        0.0
    } else {
        2.0 * p * r / (p + r)
    }
}

#[cfg(test)]
mod tests;
