use super::*;
use crate::data::masking::MaskConfig;

const SPECIALS: BertSpecials = BertSpecials {
    pad: 0,
    unk: 1,
    cls: 2,
    sep: 3,
    mask: 4,
};
/// Token ids say where they come from: 5 + (doc · 128 + segment) · 64 + position.
const VOCAB: usize = 5 + 8 * 128 * 64;

fn token(doc: usize, seg: usize, pos: usize) -> u32 {
    (5 + (doc * 128 + seg) * 64 + pos) as u32
}

/// (document, segment, position) of a corpus token.
fn place(id: u32) -> (usize, usize, usize) {
    let i = id as usize - 5;
    (i / 64 / 128, i / 64 % 128, i % 64)
}

/// A corpus of documents with `sizes[d]` segments of 1–12 tokens (1 in 20 of `long` tokens),
/// and the segment lengths.
fn corpus(sizes: &[usize], long: usize, seed: u64) -> (SegmentCorpus, Vec<Vec<usize>>) {
    let mut rng = Rng::new(seed);
    let lens: Vec<Vec<usize>> = sizes
        .iter()
        .map(|&n| {
            (0..n)
                .map(|_| match rng.below(20) {
                    0 => long,
                    _ => 1 + rng.below(12) as usize,
                })
                .collect()
        })
        .collect();
    let docs: Vec<Vec<Vec<u32>>> = lens
        .iter()
        .enumerate()
        .map(|(d, segs)| {
            let seg = |(s, &n): (usize, &usize)| (0..n).map(|p| token(d, s, p)).collect();
            segs.iter().enumerate().map(seg).collect()
        })
        .collect();
    (SegmentCorpus::from_documents(&docs).unwrap(), lens)
}

fn batcher(seq: usize, nsp: bool) -> BertBatcher {
    let special = (0..VOCAB).map(|id| id < 5).collect();
    let masker = Masker::new(MaskConfig::default(), 4, special, vec![false; VOCAB]).unwrap();
    BertBatcher::new(SPECIALS, masker, seq, nsp).unwrap()
}

/// Rows of many batches, as (unmasked ids, type ids, NSP label), after checking padding and
/// labels.
fn rows(b: &BertBatcher, corpus: &SegmentCorpus, batches: u64) -> Vec<(Vec<u32>, Vec<u32>, i32)> {
    let mut out = Vec::new();
    for step in 0..batches {
        let batch = b.draw(corpus, 32, &mut Rng::new(derive_seed(11, &[step])));
        assert_eq!(
            (batch.batch, batch.lens.len(), batch.ids.len()),
            (32, 32, 32 * b.seq)
        );
        for r in 0..32 {
            let (len, row) = (batch.lens[r], r * b.seq..(r + 1) * b.seq);
            assert!(len <= b.seq);
            let ids = &batch.ids[row.clone()];
            let labels = &batch.mlm_labels[row.clone()];
            assert!(ids[len..].iter().all(|&id| id == SPECIALS.pad));
            assert!(batch.type_ids[row.start + len..row.end]
                .iter()
                .all(|&t| t == 0));
            let unmasked: Vec<u32> = (0..len)
                .map(|i| {
                    if labels[i] == IGNORE_LABEL {
                        ids[i]
                    } else {
                        labels[i] as u32
                    }
                })
                .collect();
            for (i, &id) in unmasked.iter().enumerate() {
                assert!(
                    id >= 5 || labels[i] == IGNORE_LABEL,
                    "special {id} was chosen"
                );
            }
            let types = batch.type_ids[row.start..row.start + len].to_vec();
            out.push((unmasked, types, batch.nsp_labels[r]));
        }
    }
    out
}

/// The position after `(d, s, p)` in its document, if any.
fn successor(
    lens: &[Vec<usize>],
    (d, s, p): (usize, usize, usize),
) -> Option<(usize, usize, usize)> {
    if p + 1 < lens[d][s] {
        Some((d, s, p + 1))
    } else if s + 1 < lens[d].len() {
        Some((d, s + 1, 0))
    } else {
        None
    }
}

/// Checks that `part` is a run of consecutive corpus tokens; returns its first and last place.
fn run(lens: &[Vec<usize>], part: &[u32]) -> ((usize, usize, usize), (usize, usize, usize)) {
    assert!(
        !part.is_empty() && part.iter().all(|&id| id >= 5),
        "{part:?}"
    );
    for w in part.windows(2) {
        assert_eq!(successor(lens, place(w[0])), Some(place(w[1])), "{part:?}");
    }
    (place(part[0]), place(part[part.len() - 1]))
}

/// A row's A and B after checking `[CLS] A [SEP] B [SEP]` and the type ids.
fn pair<'a>(ids: &'a [u32], types: &[u32]) -> (&'a [u32], &'a [u32]) {
    assert_eq!((ids[0], ids[ids.len() - 1]), (SPECIALS.cls, SPECIALS.sep));
    let seps: Vec<usize> = (0..ids.len()).filter(|&i| ids[i] == SPECIALS.sep).collect();
    assert_eq!(seps.len(), 2, "{ids:?}");
    let expected: Vec<u32> = (0..ids.len()).map(|i| u32::from(i > seps[0])).collect();
    assert_eq!(types, expected);
    (&ids[1..seps[0]], &ids[seps[0] + 1..ids.len() - 1])
}

/// Checks the pairs drawn from documents of `sizes` segments in rows of `seq`: an IsNext B goes on
/// where A stops, a NotNext B comes from another document. Returns the fractions of IsNext pairs
/// and of rows shorter than half of `seq`.
fn pair_fractions(sizes: &[usize], seed: u64, seq: usize) -> (f64, f64) {
    let (corpus, lens) = corpus(sizes, 40, seed);
    let rows = rows(&batcher(seq, true), &corpus, 60);
    let (mut is_next, mut short) = (0, 0);
    for (ids, types, label) in &rows {
        let (a, bb) = pair(ids, types);
        let (_, a_last) = run(&lens, a);
        let (b_first, _) = run(&lens, bb);
        // B loses tokens at its end only, so it starts at a segment's start.
        assert_eq!(b_first.2, 0);
        if *label == IS_NEXT {
            assert_eq!(successor(&lens, a_last), Some(b_first));
            is_next += 1;
        } else {
            assert_eq!(*label, NOT_NEXT);
            assert_ne!(a_last.0, b_first.0, "NotNext B from A's document");
        }
        short += usize::from(ids.len() < seq / 2);
    }
    let n = rows.len() as f64;
    (is_next as f64 / n, short as f64 / n)
}

#[test]
fn nsp_pairs_continue_the_document_half_the_time() {
    let (is_next, short) = pair_fractions(&[100, 90, 110, 100, 95, 105], 1, 64);
    assert!((is_next - 0.5).abs() < 0.04, "IsNext fraction {is_next}");
    assert!(short > 0.02 && short < 0.15, "short rows {short}");
    // documents of 1-4 segments, one in twenty 40 tokens long, in rows of 32: many runs from a
    // random segment hold one segment, which used to force NotNext (three quarters of the labels)
    let sizes: Vec<usize> = (0..60).map(|d| 1 + d % 4).collect();
    let (is_next, _) = pair_fractions(&sizes, 3, 32);
    assert!((is_next - 0.5).abs() < 0.04, "IsNext fraction {is_next}");
    // no document goes on after its first segment: NotNext only
    assert_eq!(pair_fractions(&[1; 30], 4, 32).0, 0.0);
}

#[test]
fn with_one_document_a_random_b_is_not_the_true_continuation() {
    let (corpus, lens) = corpus(&[120], 40, 2);
    let rows = rows(&batcher(48, true), &corpus, 20);
    let mut not_next = 0;
    for (ids, types, label) in &rows {
        let (a, bb) = pair(ids, types);
        let (_, a_last) = run(&lens, a);
        let (b_first, _) = run(&lens, bb);
        if *label == NOT_NEXT {
            not_next += 1;
            // A keeps its end, so its real continuation starts the next segment.
            assert_eq!(a_last.2, lens[0][a_last.1] - 1);
            assert_ne!(Some(b_first), successor(&lens, a_last));
        }
    }
    assert!(not_next > rows.len() / 3);
}

#[test]
fn without_nsp_rows_pack_whole_segments_across_documents() {
    let sizes = [30, 25, 40, 20, 35];
    let (corpus, lens) = corpus(&sizes, 40, 3);
    let b = batcher(32, false);
    let (mut crossings, mut cut) = (0, 0);
    for (ids, types, label) in rows(&b, &corpus, 20) {
        assert_eq!(label, IGNORE_LABEL);
        assert!(types.iter().all(|&t| t == 0));
        assert_eq!((ids[0], ids[ids.len() - 1]), (SPECIALS.cls, SPECIALS.sep));
        let content = &ids[1..ids.len() - 1];
        let parts: Vec<&[u32]> = content.split(|&id| id == SPECIALS.sep).collect();
        let mut last = None;
        for part in &parts {
            let (first, end) = run(&lens, part);
            if let Some((d, _, _)) = last {
                // A [SEP] only where one document ends and the next (wrapping) begins.
                assert_eq!(first, ((d + 1) % sizes.len(), 0, 0));
            }
            last = Some(end);
        }
        crossings += parts.len() - 1;
        let (first, (d, s, p)) = (place(content[0]), last.unwrap());
        if p + 1 < lens[d][s] {
            // Only a single segment longer than the row is cut.
            assert_eq!((first.0, first.1, content.len()), (d, s, b.seq - 2));
            cut += 1;
            continue;
        }
        assert_eq!(first.2, 0, "a row starts inside a segment");
        let (next_doc, next_seg) = match s + 1 < lens[d].len() {
            true => (d, s + 1),
            false => ((d + 1) % sizes.len(), 0),
        };
        let cost = lens[next_doc][next_seg] + usize::from(next_seg == 0);
        assert!(
            content.len() + cost > b.seq - 2,
            "the next segment would fit"
        );
    }
    assert!(
        crossings > 10 && cut > 5,
        "{crossings} crossings, {cut} cut"
    );
}

#[test]
fn batches_are_determined_by_the_rng() {
    let (corpus, _) = corpus(&[10, 12, 8], 20, 4);
    for nsp in [true, false] {
        let b = batcher(24, nsp);
        let draw = |seed| b.draw(&corpus, 4, &mut Rng::new(seed));
        assert_eq!(draw(5), draw(5));
        assert_ne!(draw(5), draw(6));
        let fixed = b.fixed_batches(&corpus, 3, 4, 9);
        assert_eq!(fixed, b.fixed_batches(&corpus, 3, 4, 9));
        assert_ne!(fixed[0], fixed[1]);
    }
}

#[test]
fn rows_too_short_for_the_layout_are_rejected() {
    let masker = batcher(8, true).masker;
    let err = BertBatcher::new(SPECIALS, masker.clone(), 4, true).unwrap_err();
    assert!(err.to_string().contains("sequence length 4"), "{err}");
    assert!(BertBatcher::new(SPECIALS, masker, 3, false).is_ok());
}
