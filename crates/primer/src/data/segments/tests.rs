use super::*;

fn scratch(name: &str) -> crate::testutil::Scratch {
    crate::testutil::scratch_dir("segments", name)
}

/// A WordPiece tokenizer from a tiny vocab.txt: a=5, b=6, c=7, ##b=8, ##c=9.
fn wordpiece(dir: &Path) -> TextTokenizer {
    let vocab = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\na\nb\nc\n##b\n##c\n";
    std::fs::write(dir.join("vocab.txt"), vocab).unwrap();
    TextTokenizer::from_dir(dir).unwrap()
}

fn segments(corpus: &SegmentCorpus, doc: usize) -> Vec<Vec<u32>> {
    corpus
        .document(doc)
        .map(|s| corpus.tokens(s..s + 1).to_vec())
        .collect()
}

#[test]
fn blank_lines_separate_documents_and_lines_are_segments() {
    let dir = scratch("read");
    let tok = wordpiece(&dir);
    let path = dir.join("corpus.txt");
    // The control character alone normalises to nothing: skipped, without ending the document.
    std::fs::write(&path, "\n\nab c\nC\n\n\n \t \nb\r\n\u{7}\nab x\n\n").unwrap();
    let corpus = SegmentCorpus::from_file(&path, &tok).unwrap();
    assert_eq!(corpus.n_documents(), 2);
    assert_eq!(corpus.n_segments(), 4);
    assert_eq!(corpus.n_tokens(), 8);
    assert_eq!(segments(&corpus, 0), [vec![5, 8, 7], vec![7]]);
    assert_eq!(segments(&corpus, 1), [vec![6], vec![5, 8, 1]]);
    assert!(corpus.starts_document(2) && !corpus.starts_document(3));
}

#[test]
fn documents_survive_the_boundaries_of_tokenizing_batches() {
    let dir = scratch("batches");
    let tok = wordpiece(&dir);
    let path = dir.join("big.txt");
    // Over 1 MiB: the lines are tokenized in two batches.
    let docs = 80_000;
    let text: String = (0..docs)
        .map(|d| format!("ab c\n{}\n\n", "ab ".repeat(d % 5 + 1)))
        .collect();
    assert!(text.len() > BATCH_BYTES);
    std::fs::write(&path, &text).unwrap();
    let corpus = SegmentCorpus::from_file(&path, &tok).unwrap();
    assert_eq!(corpus.n_documents(), docs);
    for d in [0, 1, 54_321, docs - 1] {
        assert_eq!(segments(&corpus, d)[0], [5, 8, 7]);
        assert_eq!(segments(&corpus, d)[1].len(), 2 * (d % 5 + 1));
    }
}

#[test]
fn unreadable_corpora_are_errors_naming_the_file_and_line() {
    let dir = scratch("errors");
    let tok = wordpiece(&dir);
    let blank = dir.join("blank.txt");
    std::fs::write(&blank, "\n  \n\t\n").unwrap();
    let err = SegmentCorpus::from_file(&blank, &tok)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("blank.txt") && err.contains("no text"),
        "{err}"
    );

    let bad = dir.join("bad.txt");
    std::fs::write(&bad, b"ab\n\nc \xff\n").unwrap();
    let err = SegmentCorpus::from_file(&bad, &tok)
        .unwrap_err()
        .to_string();
    assert!(err.contains("bad.txt") && err.contains("line 3"), "{err}");
    assert!(err.contains("byte offset 6"), "{err}");

    let sample = dir.join("sample.txt");
    std::fs::write(&sample, "abc \n").unwrap();
    let chars = TextTokenizer::train_char(&[sample]).unwrap();
    let unknown = dir.join("unknown.txt");
    std::fs::write(&unknown, "abc\ncab Z\n").unwrap();
    let err = SegmentCorpus::from_file(&unknown, &chars)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("unknown.txt") && err.contains("line 2"),
        "{err}"
    );
    assert!(err.contains("'Z'"), "{err}");
}

/// `sizes[d]` segments in document d; segment s of the corpus is `[s]`.
fn numbered(sizes: &[usize]) -> SegmentCorpus {
    let mut next = 0u32;
    let docs: Vec<Vec<Vec<u32>>> = sizes
        .iter()
        .map(|&n| {
            (0..n)
                .map(|_| {
                    next += 1;
                    vec![next - 1]
                })
                .collect()
        })
        .collect();
    SegmentCorpus::from_documents(&docs).unwrap()
}

fn doc_sizes(corpus: &SegmentCorpus) -> Vec<usize> {
    (0..corpus.n_documents())
        .map(|d| corpus.document(d).len())
        .collect()
}

#[test]
fn validation_holds_out_whole_documents_when_it_can() {
    let corpus = numbered(&[3, 1, 4, 1, 5, 9, 2, 6, 5, 3]);
    let (train, val) = corpus.clone().split_validation(0.2).unwrap();
    assert_eq!(doc_sizes(&train), [3, 1, 4, 1, 5, 9, 2, 6]);
    assert_eq!(doc_sizes(&val), [5, 3]);
    assert_eq!(
        train.tokens(0..train.n_segments()),
        (0..31).collect::<Vec<_>>()
    );
    assert_eq!(val.tokens(0..8), (31..39).collect::<Vec<_>>());
    assert!(val.starts_document(5) && !val.starts_document(4));
}

#[test]
fn validation_holds_out_trailing_segments_otherwise() {
    // One document (like a list of sentences): the last 10 % of its segments.
    let (train, val) = numbered(&[20]).split_validation(0.1).unwrap();
    assert_eq!((doc_sizes(&train), doc_sizes(&val)), (vec![18], vec![2]));
    assert_eq!(val.tokens(0..2), [18, 19]);
    // 10 % of three documents rounds to none: 2 of 15 segments, cutting the last document.
    let (train, val) = numbered(&[5, 5, 5]).split_validation(0.1).unwrap();
    assert_eq!(
        (doc_sizes(&train), doc_sizes(&val)),
        (vec![5, 5, 3], vec![2])
    );
    assert_eq!(train.n_tokens() + val.n_tokens(), 15);

    let err = numbered(&[1])
        .split_validation(0.1)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("too few") && err.contains("--val-corpus"),
        "says what to do: {err}"
    );
    for bad in [0.0, 1.0, f64::NAN] {
        let err = numbered(&[4])
            .split_validation(bad)
            .unwrap_err()
            .to_string();
        assert!(err.contains("--val-fraction"), "{err}");
    }
}

#[test]
fn in_memory_documents_skip_empty_parts() {
    let corpus =
        SegmentCorpus::from_documents(&[vec![], vec![vec![1, 2], vec![]], vec![vec![3]]]).unwrap();
    assert_eq!(doc_sizes(&corpus), [1, 1]);
    assert_eq!(corpus.run_end(0, 2, 3), 2);
    assert_eq!(corpus.run_end(0, 2, 2), 1);
    assert!(SegmentCorpus::from_documents(&[vec![vec![]]]).is_err());
}
