use super::*;

fn tags(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_string).collect()
}

fn chunk_list(s: &str) -> Vec<(String, usize, usize)> {
    chunks(&tags(s))
}

fn chunk(kind: &str, start: usize, end: usize) -> (String, usize, usize) {
    (kind.to_string(), start, end)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-12
}

#[test]
fn macro_f1_averages_the_classes_that_occur() {
    // Class 0: 2 hits, 2 predicted, 3 gold → F1 4/5. Class 1: 1 hit, 2 predicted, 2 gold → 1/2.
    // Class 2: 1 hit, 2 predicted, 1 gold → 2/3. Class 3 never occurs: left out.
    let s = classification(&[0, 0, 1, 1, 2, 2], &[0, 0, 0, 1, 1, 2], 4);
    assert!(close(s.accuracy, 4.0 / 6.0), "{s:?}");
    assert!(close(s.macro_f1, (0.8 + 0.5 + 2.0 / 3.0) / 3.0), "{s:?}");

    // Class 1 has gold but is never predicted: F1 0, still in the mean.
    let s = classification(&[0, 0], &[0, 1], 2);
    assert!(
        close(s.accuracy, 0.5) && close(s.macro_f1, 1.0 / 3.0),
        "{s:?}"
    );

    let s = classification(&[], &[], 3);
    assert_eq!((s.accuracy, s.macro_f1), (0.0, 0.0));
}

#[test]
fn chunks_follow_conlleval_for_iob1_and_iob2() {
    assert_eq!(
        chunk_list("B-PER I-PER O B-LOC"),
        [chunk("PER", 0, 2), chunk("LOC", 3, 4)]
    );
    // IOB1: I- opens a chunk, B- only separates two adjacent chunks of one type.
    assert_eq!(
        chunk_list("I-PER I-PER B-PER I-PER O I-LOC"),
        [chunk("PER", 0, 2), chunk("PER", 2, 4), chunk("LOC", 5, 6)]
    );
    // A type change mid-span ends the chunk and starts another.
    assert_eq!(
        chunk_list("B-PER I-LOC I-LOC"),
        [chunk("PER", 0, 1), chunk("LOC", 1, 3)]
    );
    // An I- after O starts a chunk; B- after B- starts another.
    assert_eq!(
        chunk_list("O I-MISC I-MISC B-ORG B-ORG"),
        [chunk("MISC", 1, 3), chunk("ORG", 3, 4), chunk("ORG", 4, 5)]
    );
    // IOE: E- closes a chunk.
    assert_eq!(
        chunk_list("I-X E-X I-X E-X O"),
        [chunk("X", 0, 2), chunk("X", 2, 4)]
    );
    assert!(chunk_list("O O").is_empty() && chunk_list("").is_empty());
}

#[test]
fn chunks_of_bioes_and_io_tags() {
    // BIOES: S- is a chunk of its own, E- ends one
    assert_eq!(
        chunk_list("I-PER S-PER S-PER B-PER E-PER B-PER E-PER O S-LOC"),
        [
            chunk("PER", 0, 1),
            chunk("PER", 1, 2),
            chunk("PER", 2, 3),
            chunk("PER", 3, 5),
            chunk("PER", 5, 7),
            chunk("LOC", 8, 9)
        ]
    );
    // IO: a tag without a prefix continues a run of its type
    assert_eq!(
        chunk_list("PER PER O LOC PER"),
        [chunk("PER", 0, 2), chunk("LOC", 3, 4), chunk("PER", 4, 5)]
    );
}

#[test]
fn entity_scores_count_exact_spans_of_the_right_type() {
    let gold = vec![tags("B-PER I-PER O B-LOC"), tags("B-ORG O"), tags("O O")];
    assert_eq!(
        entity_scores(&gold, &gold),
        SpanScores {
            precision: 1.0,
            recall: 1.0,
            f1: 1.0
        }
    );
    // A short PER (wrong boundary: a false positive and a false negative), a right LOC,
    // LOC for ORG (a type error), a spurious MISC: 1 of 4 predicted, 1 of 3 gold.
    let pred = vec![tags("B-PER O O B-LOC"), tags("B-LOC O"), tags("B-MISC O")];
    let s = entity_scores(&pred, &gold);
    assert!(
        close(s.precision, 0.25) && close(s.recall, 1.0 / 3.0),
        "{s:?}"
    );
    assert!(close(s.f1, 2.0 / 7.0), "{s:?}");

    let none = vec![tags("O O")];
    assert_eq!(
        entity_scores(&none, &none),
        SpanScores {
            precision: 0.0,
            recall: 0.0,
            f1: 0.0
        }
    );
}

#[test]
fn squad_normalization_drops_case_punctuation_articles_and_spaces() {
    assert_eq!(squad_normalize("The cat"), "cat");
    assert_eq!(squad_normalize("the theater, then"), "theater then");
    assert_eq!(squad_normalize("  A  man,\tan apple!\n"), "man apple");
    assert_eq!(squad_normalize("U.S.A. (1990s)"), "usa 1990s");
    // Punctuation goes first, so these are no longer separate articles; '_' is punctuation.
    assert_eq!(squad_normalize("the-end the_cat"), "theend thecat");
    // Word boundaries are Unicode's: "thé" is one word, "€" is not a word character.
    assert_eq!(squad_normalize("Thé the€ ÉCOLE"), "thé € école");
    assert_eq!(squad_normalize("a an the"), "");
}

#[test]
fn squad_scores_take_the_best_gold() {
    // "big red dog" against "red dog barks": 2 tokens shared, P = R = 2/3.
    let (em, f1) = squad_scores("the big red dog", &["red dog barks".to_string()]);
    assert!(em == 0.0 && close(f1, 2.0 / 3.0), "{em} {f1}");
    // Against "dog" alone: P = 1/3, R = 1, F1 = 1/2; the max over golds is 2/3.
    let golds = ["dog".to_string(), "red dog barks".to_string()];
    let (em, f1) = squad_scores("the big red dog", &golds);
    assert!(em == 0.0 && close(f1, 2.0 / 3.0), "{em} {f1}");
    let golds = ["red dog barks".to_string(), "Big red dog!".to_string()];
    assert_eq!(squad_scores("the big red dog", &golds), (1.0, 1.0));
    // Repeated tokens count as often as both sides have them: 1 shared, P = 1/3, R = 1/2.
    let (_, f1) = squad_scores("dog dog dog", &["dog cat".to_string()]);
    assert!(close(f1, 0.4), "{f1}");
    // Both normalise to nothing: an exact match with F1 0, as in the v1.1 script.
    assert_eq!(squad_scores("The", &["a".to_string()]), (1.0, 0.0));
    assert_eq!(squad_scores("dog", &[]), (0.0, 0.0));
}
