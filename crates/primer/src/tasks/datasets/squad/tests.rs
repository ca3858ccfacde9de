use super::*;
use crate::testutil::Scratch;
use serde_json::json;

/// Two articles; the first has non-ASCII text before its answers.
fn squad() -> Value {
    json!({"version": "1.1", "data": [
        {"title": "A", "paragraphs": [{
            "context": "Café in Zürich. Opened 1999.",
            "qas": [
                {"id": "q1", "question": "Where?", "answers": [
                    {"text": "Zürich", "answer_start": 8},
                    {"text": "in Zürich", "answer_start": 5}]},
                {"id": "q2", "question": "When?", "answers": [{"text": "1999", "answer_start": 23}]}
            ]}]},
        {"title": "B", "paragraphs": [
            {"context": "no questions here", "qas": []},
            {"context": "Second.", "qas": [
                {"id": "q3", "question": "Which?",
                 "answers": [{"text": "Second", "answer_start": 0}]}]}
        ]}
    ]})
}

/// Writes `value` to a fresh file for test `test`: its directory and its path.
fn write(test: &str, value: &Value) -> (Scratch, std::path::PathBuf) {
    let dir = crate::testutil::scratch_dir("squad", test);
    let path = dir.join("dev.json");
    std::fs::write(&path, value.to_string()).unwrap();
    (dir, path)
}

#[test]
fn answer_starts_become_byte_offsets() {
    let (_dir, path) = write("read", &squad());
    let got = read_squad(&path, None).unwrap();
    let ids: Vec<(&str, usize)> = got.iter().map(|e| (e.id.as_str(), e.article)).collect();
    assert_eq!(ids, [("q1", 0), ("q2", 0), ("q3", 1)]);
    assert_eq!(
        (got[0].question.as_str(), got[0].context.as_str()),
        ("Where?", "Café in Zürich. Opened 1999.")
    );
    // "Café in " is 8 characters but 9 bytes; "Café in Zürich. Opened " 23 and 25.
    let starts: Vec<(&str, usize)> = got
        .iter()
        .flat_map(|e| e.answers.iter().map(|a| (a.text.as_str(), a.start)))
        .collect();
    assert_eq!(
        starts,
        [("Zürich", 9), ("in Zürich", 6), ("1999", 25), ("Second", 0)]
    );

    let second = read_squad(&path, Some(1..2)).unwrap();
    assert_eq!(
        (second.len(), second[0].id.as_str(), second[0].article),
        (1, "q3", 1)
    );
    // a range reaching past the file's articles would score fewer than asked: refused, with the count
    for range in [1..5, 2..4] {
        let err = read_squad(&path, Some(range)).unwrap_err().to_string();
        assert!(
            err.contains("dev.json: articles ")
                && err.ends_with("reach past the file's 2 articles (0:2 is all of them)"),
            "{err}"
        );
    }
    let err = read_squad(&path, Some(2..2)).unwrap_err().to_string();
    assert!(
        err.ends_with("dev.json: no questions in articles 2..2 (the file has 2)"),
        "{err}"
    );
}

#[test]
fn answers_not_in_their_context_are_errors_naming_the_question() {
    let mut value = squad();
    // The character offset 8 read as a byte offset would be this (wrong) answer start.
    value["data"][0]["paragraphs"][0]["qas"][1]["answers"][0]["answer_start"] = json!(22);
    let (_dir, path) = write("misplaced", &value);
    let err = read_squad(&path, None).unwrap_err().to_string();
    assert!(
        err.ends_with(
            "dev.json: question q2: answer \"1999\" is not at its answer_start 22 in the context \
             (found \" 199\" there)"
        ),
        "{err}"
    );
    value["data"][0]["paragraphs"][0]["qas"][1]["answers"][0]["answer_start"] = json!(99);
    std::fs::write(&path, value.to_string()).unwrap();
    let err = read_squad(&path, None).unwrap_err().to_string();
    assert!(
        err.contains("question q2: answer \"1999\" is not at its answer_start 99"),
        "{err}"
    );
    // Articles not selected are not checked.
    assert_eq!(read_squad(&path, Some(1..2)).unwrap().len(), 1);
}

#[test]
fn json_of_another_shape_is_an_error_saying_where() {
    let (_dir, path) = write("shape", &json!([]));
    let mut cases: Vec<(Value, &str)> = vec![(
        json!([]),
        "not SQuAD v1.1 JSON: the top level is not an object",
    )];
    let mut v = squad();
    v["data"][1]["paragraphs"][1]
        .as_object_mut()
        .unwrap()
        .remove("context");
    cases.push((
        v,
        "not SQuAD v1.1 JSON: data[1].paragraphs[1] has no \"context\"",
    ));
    let mut v = squad();
    v["data"][0]["paragraphs"][0]["qas"][1]["answers"] = json!([]);
    cases.push((v, "question q2 has no answers"));
    let mut v = squad();
    v["data"][0]["paragraphs"][0]["qas"][0]["answers"][1]["answer_start"] = json!("5");
    cases.push((
        v,
        "not SQuAD v1.1 JSON: \"answer_start\" of an answer of question q1 is not a whole number",
    ));
    let mut v = squad();
    v["data"][0]["paragraphs"][0]["qas"][0]["id"] = json!(7);
    cases.push((
        v,
        "not SQuAD v1.1 JSON: \"id\" of data[0].paragraphs[0].qas[0] is not a string",
    ));
    let mut v = squad();
    v["data"][1]["paragraphs"] = json!({});
    cases.push((
        v,
        "not SQuAD v1.1 JSON: \"paragraphs\" of data[1] is not an array",
    ));
    cases.push((json!({"data": []}), "the file has no questions"));
    for (value, want) in cases {
        std::fs::write(&path, value.to_string()).unwrap();
        let err = read_squad(&path, None).unwrap_err().to_string();
        assert!(err.contains(&format!("dev.json: {want}")), "{err}");
    }
    std::fs::write(&path, "{\"data\": [").unwrap();
    let err = read_squad(&path, None).unwrap_err().to_string();
    assert!(err.contains("dev.json: invalid JSON"), "{err}");
}
