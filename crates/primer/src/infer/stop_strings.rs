//! Stop strings (transformers' `stop_strings`): a generated text ends with the token that completes one of them,
//! and keeps it. As in transformers, a stop string counts only where it overlaps the text's last token, so one
//! that the prompt already holds stops nothing until it comes again; it may begin inside an earlier token and end
//! inside the last one. transformers matches each token's own text, primer the text that the tokens decode to
//! together (special tokens included, though the text printed leaves them out): the same, except that primer
//! also finds a stop string whose characters a byte-level tokenizer split between tokens.

use crate::error::Result;
use crate::tokenize::TextTokenizer;
use serde::Deserialize;

/// What a decoder writes for the bytes of a character cut short (at either end of a text's tokens).
const REPLACEMENT: char = '\u{fffd}';

/// Stop strings as `generation_config.json` writes them: one string or a list.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StopList(pub Vec<String>);

impl<'de> Deserialize<'de> for StopList {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged, expecting = "a string, a list of strings or null")]
        enum Form {
            One(String),
            Many(Vec<String>),
        }
        Ok(match Option::<Form>::deserialize(de)? {
            None => StopList::default(),
            Some(Form::One(s)) => StopList(vec![s]),
            Some(Form::Many(v)) => StopList(v),
        })
    }
}

/// Checks that no stop string is empty (one would stop every text at once); `name` says where they came from.
pub(crate) fn check(strings: &[String], name: &str) -> std::result::Result<(), String> {
    if strings.iter().any(String::is_empty) {
        return Err(format!("{name}: a stop string must not be empty"));
    }
    Ok(())
}

/// Stop strings matched against the text of a tokenizer's tokens.
pub(crate) struct StopStrings<'a> {
    tok: &'a TextTokenizer,
    strings: &'a [String],
    /// The longest string's length in bytes.
    longest: usize,
}

impl<'a> StopStrings<'a> {
    pub(crate) fn new(tok: &'a TextTokenizer, strings: &'a [String]) -> Self {
        let longest = strings.iter().map(String::len).max().unwrap_or(0);
        StopStrings {
            tok,
            strings,
            longest,
        }
    }

    /// Whether there are no stop strings (so that no text ends at one).
    pub(crate) fn is_empty(&self) -> bool {
        self.longest == 0
    }

    /// Whether the last token of `text` (the prompt and the tokens generated after it) completes a stop string.
    pub(crate) fn completes(&self, text: &[u32]) -> Result<bool> {
        let Some((_, before)) = text.split_last() else {
            return Ok(false);
        };
        if self.is_empty() {
            return Ok(false);
        }
        // the tokens before the last one that hold a stop string's length of text (after a character cut at
        // their start), or all of them: enough for any stop string that overlaps the last token
        let mut from = before.len().saturating_sub(self.longest);
        let head = loop {
            let head = self.tok.decode(&before[from..])?;
            if from == 0 || head.trim_start_matches(REPLACEMENT).len() >= self.longest {
                break head;
            }
            from = from.saturating_sub(self.longest);
        };
        let whole = self.tok.decode(&text[from..])?;
        // where the last token's text begins; a character it completes counts as its own
        let seen = head.trim_end_matches(REPLACEMENT).len();
        let bytes = whole.as_bytes();
        Ok(self.strings.iter().any(|s| {
            let first = (seen + 1).saturating_sub(s.len());
            (first..=bytes.len().saturating_sub(s.len()))
                .any(|i| bytes[i..].starts_with(s.as_bytes()))
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::scratch_dir;

    /// At which of `text`'s tokens (1 = the first) a text stops, given `strings`.
    fn stops_at(tok: &TextTokenizer, text: &[u32], strings: &[&str]) -> Vec<usize> {
        let strings: Vec<String> = strings.iter().map(|s| s.to_string()).collect();
        let stops = StopStrings::new(tok, &strings);
        (1..=text.len())
            .filter(|&n| stops.completes(&text[..n]).unwrap())
            .collect()
    }

    #[test]
    fn a_stop_string_counts_where_it_overlaps_the_last_token() {
        let dir = scratch_dir("stop-strings", "chars");
        let corpus = dir.join("corpus.txt");
        std::fs::write(&corpus, "abcdefgh xyz\n").unwrap();
        let tok = TextTokenizer::train_char(&[corpus]).unwrap();
        let text = tok.encode("ab xab xy").unwrap();
        // each time "ab" or "xy" is completed, and never again while it is only in the past
        assert_eq!(stops_at(&tok, &text, &["ab"]), [2, 6]);
        assert_eq!(stops_at(&tok, &text, &["xy", "ab"]), [2, 6, 9]);
        assert_eq!(stops_at(&tok, &text, &["b x"]), [4, 8]);
        assert_eq!(stops_at(&tok, &text, &["zz"]), Vec::<usize>::new());
        assert_eq!(stops_at(&tok, &text, &[]), Vec::<usize>::new());
        // a string longer than the text does not reach before its start
        assert_eq!(stops_at(&tok, &text, &["ab xab xy", "ab xab xyz"]), [9]);
    }

    #[test]
    fn a_character_split_between_byte_level_tokens_is_found_whole() {
        let dir = scratch_dir("stop-strings", "bytes");
        let corpus = dir.join("corpus.txt");
        std::fs::write(&corpus, "plain ascii words only\n".repeat(5)).unwrap();
        let tok = TextTokenizer::train_bpe(&[corpus], 300).unwrap();
        let text = tok.encode("a é! b").unwrap();
        // " é" is three bytes, each its own token: "é!" is completed by the "!" token, "é" by its second byte
        let bang = text.len() - 2;
        assert_eq!(stops_at(&tok, &text, &["é!"]), [bang]);
        assert_eq!(stops_at(&tok, &text, &["é"]), [bang - 1]);
        assert_eq!(stops_at(&tok, &text, &["! b"]), [text.len()]);
        // a special token's text is matched too, as transformers matches each token's own text
        let text = tok.encode("a b<|endoftext|> c").unwrap();
        let eos = text.iter().position(|&t| Some(t) == tok.eos_id()).unwrap();
        assert_eq!(stops_at(&tok, &text, &["<|endoftext|>"]), [eos + 1]);
        assert_eq!(stops_at(&tok, &text, &["b<|end"]), [eos + 1]);
    }

    #[test]
    fn lists_read_as_transformers_writes_them() {
        let read = |json: &str| serde_json::from_str::<StopList>(json).unwrap().0;
        assert_eq!(read(r#""\n\n""#), ["\n\n"]);
        assert_eq!(read(r#"["a", "b"]"#), ["a", "b"]);
        assert!(read("null").is_empty());
        assert!(serde_json::from_str::<StopList>("3").is_err());
        assert!(check(&["a".into(), String::new()], "--stop").is_err());
        assert!(check(&["a".into()], "--stop").is_ok());
    }
}
