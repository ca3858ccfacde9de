use super::*;
use crate::testutil::Scratch;
use std::path::PathBuf;

fn cols(text: &str, pair: Option<&str>, label: &str) -> Columns {
    Columns {
        text: text.into(),
        pair: pair.map(Into::into),
        label: label.into(),
    }
}

/// Writes `content` to `name` in a fresh directory for test `test`: the directory and the file's path.
fn write(test: &str, name: &str, content: &str) -> (Scratch, PathBuf) {
    let dir = crate::testutil::scratch_dir("text-examples", test);
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    (dir, path)
}

/// (text, pair, label, line) of each example.
fn rows(examples: &[TextExample]) -> Vec<(&str, Option<&str>, &str, usize)> {
    examples
        .iter()
        .map(|e| (e.text.as_str(), e.pair.as_deref(), e.label.as_str(), e.line))
        .collect()
}

fn error(path: &Path, cols: &Columns) -> String {
    read_text_examples(path, cols).unwrap_err().to_string()
}

#[test]
fn tsv_rows_keep_quotes_as_text() {
    let (_dir, path) = write(
        "tsv",
        "train.tsv",
        "sentence\tlabel\r\nit 's a \"charming\" film \t1\r\n\r\n\"quoted\tstart\t0 \n",
    );
    let c = cols("sentence", None, "label");
    let err = error(&path, &c);
    assert!(
        err.ends_with("train.tsv: line 4: 3 fields, but the header has 2"),
        "{err}"
    );

    std::fs::write(
        &path,
        "sentence\tlabel\r\nit 's a \"charming\" film \t1\r\n\r\n\"quoted\t0 \n",
    )
    .unwrap();
    let got = read_text_examples(&path, &c).unwrap();
    assert_eq!(
        rows(&got),
        [
            ("it 's a \"charming\" film ", None, "1", 2),
            ("\"quoted", None, "0", 4)
        ]
    );

    std::fs::write(&path, "id\tq1\tq2\tlabel\n7\tWho?\tWhom?\tyes\n").unwrap();
    let got = read_text_examples(&path, &cols("q1", Some("q2"), "label")).unwrap();
    assert_eq!(rows(&got), [("Who?", Some("Whom?"), "yes", 2)]);
}

#[test]
fn csv_fields_may_quote_commas_quotes_and_line_breaks() {
    let (_dir, path) = write(
        "csv",
        "data.csv",
        "text,label\n\"hello, world\",pos\n\"she said \"\"hi\"\"\",neg\n\
         \"two\nlines\",pos\nlast, neg\n",
    );
    let got = read_text_examples(&path, &cols("text", None, "label")).unwrap();
    assert_eq!(
        rows(&got),
        [
            ("hello, world", None, "pos", 2),
            ("she said \"hi\"", None, "neg", 3),
            ("two\nlines", None, "pos", 4),
            ("last", None, "neg", 6),
        ]
    );

    std::fs::write(&path, "text,label\na,b\nc,d,e\n").unwrap();
    let err = error(&path, &cols("text", None, "label"));
    assert!(
        err.ends_with("data.csv: line 3: 3 fields, but the header has 2"),
        "{err}"
    );
}

#[test]
fn json_lines_take_strings_and_numbers() {
    let (_dir, path) = write(
        "jsonl",
        "dev.jsonl",
        "{\"premise\": \"A\", \"hypothesis\": \"B\", \"label\": 1}\n\n\
         {\"label\": \"neutral\", \"premise\": \"C\", \"hypothesis\": \"D\", \"idx\": 4}\n",
    );
    let c = cols("premise", Some("hypothesis"), "label");
    let got = read_text_examples(&path, &c).unwrap();
    assert_eq!(
        rows(&got),
        [("A", Some("B"), "1", 1), ("C", Some("D"), "neutral", 3)]
    );

    let cases = [
        (
            "{\"premise\": \"A\", \"label\": 0}",
            "line 2: no field \"hypothesis\" (the fields are \"label\", \"premise\")",
        ),
        (
            "{\"premise\": \"A\", \"hypothesis\": null, \"label\": 0}",
            "line 2: field \"hypothesis\" is null",
        ),
        (
            "{\"premise\": \"A\", \"hypothesis\": \"B\", \"label\": 0",
            "line 2: invalid JSON at column",
        ),
        (
            "[\"A\", \"B\", 0]",
            "line 2: expected a JSON object, found an array",
        ),
        (
            "{\"premise\": \"A\", \"hypothesis\": \"B\", \"label\": \" \"}",
            "line 2: empty label",
        ),
    ];
    for (bad, want) in cases {
        std::fs::write(
            &path,
            format!("{{\"premise\": \"A\", \"hypothesis\": \"B\", \"label\": 0}}\n{bad}\n"),
        )
        .unwrap();
        let err = error(&path, &c);
        assert!(err.contains(&format!("dev.jsonl: {want}")), "{err}");
    }
}

#[test]
fn bad_tables_are_errors_naming_the_file_and_line() {
    let (_dir, path) = write("tables", "t.tsv", "sentence\tlabel\nfine\t1\nempty\t \n");
    let c = cols("sentence", None, "label");
    assert!(error(&path, &c).ends_with("t.tsv: line 3: empty label"));

    std::fs::write(&path, "text\tlabel\nfine\t1\n").unwrap();
    let err = error(&path, &c);
    assert!(
        err.ends_with(
            "t.tsv: line 1: no column \"sentence\" (the columns are \"text\", \"label\")"
        ),
        "{err}"
    );

    std::fs::write(&path, "sentence\tlabel\n\n").unwrap();
    assert!(error(&path, &c).ends_with("t.tsv: the file has no examples, only a header row"));
    std::fs::write(&path, "").unwrap();
    assert!(error(&path, &c).contains("t.tsv: the file is empty"));

    let csv = path.with_extension("csv");
    std::fs::write(&csv, "").unwrap();
    assert!(error(&csv, &c).contains("t.csv: the file is empty"));
    std::fs::write(&csv, "sentence,label\n").unwrap();
    assert!(error(&csv, &c).contains("t.csv: the file has no examples"));

    let other = path.with_extension("xml");
    std::fs::write(&other, "<a/>").unwrap();
    assert!(error(&other, &c).contains("t.xml: unknown kind of file"));
    assert!(error(&path.with_extension("jsonl"), &c).contains("t.jsonl"));
}
