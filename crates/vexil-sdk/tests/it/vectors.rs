//! Conformance: every case of the shared test vectors (`spec/vectors/`), run through the SDK's
//! public API — an offline client bootstrapped from each file's ruleset, a clock set to the
//! case's `now`, and both the JSON getter and the typed getter of the expected value's type.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use serde::Deserialize;
use serde_json::{Value, json};
use vexil_sdk::{Client, Context, EvaluationDetail};

const DEFAULT_NOW: &str = "2026-01-01T00:00:00Z";

#[derive(Deserialize)]
struct VectorFile {
    name: String,
    ruleset: Value,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    flag: String,
    context: Context,
    #[serde(default)]
    now: Option<String>,
    expected: Value,
}

fn vector_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../spec/vectors");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("the repository's spec/vectors")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .filter(|p| p.file_name().is_some_and(|n| n != "hash.json"))
        .collect();
    files.sort();
    files
}

fn as_json<T: serde::Serialize>(d: &EvaluationDetail<T>) -> Value {
    json!({"value": d.value, "variation": d.variation, "reason": d.reason})
}

/// The typed getter for the expected value's type, with a default that differs from it.
fn typed(client: &Client, case: &Case) -> Option<Value> {
    let (flag, ctx) = (case.flag.as_str(), &case.context);
    let expected = &case.expected["value"];
    let got = match expected {
        Value::Bool(b) => as_json(&client.bool_detail(flag, ctx, !b)),
        Value::String(_) => as_json(&client.string_detail(flag, ctx, "\u{0}default")),
        Value::Number(n) if n.is_i64() => as_json(&client.int_detail(flag, ctx, i64::MIN)),
        Value::Number(_) => as_json(&client.float_detail(flag, ctx, f64::MIN)),
        _ => return None,
    };
    Some(got)
}

#[test]
fn every_vector_passes_through_the_public_api() {
    let now = Arc::new(AtomicI64::new(0));
    let mut total = 0;
    let mut failures = Vec::new();
    for path in vector_files() {
        let text = std::fs::read_to_string(&path).expect("readable vector file");
        let file: VectorFile = serde_json::from_str(&text).expect("vector file");
        let clock = now.clone();
        // Offline, as an application would bootstrap from a ruleset file; no runtime needed.
        let client = Client::offline_builder()
            .bootstrap_json(file.ruleset.to_string())
            .clock(move || clock.load(Ordering::Relaxed))
            .build()
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        for case in &file.cases {
            total += 1;
            let at = case.now.as_deref().unwrap_or(DEFAULT_NOW);
            now.store(
                vexil_core::time::parse_rfc3339(at).expect("valid now"),
                Ordering::Relaxed,
            );
            let got = as_json(&client.json_detail(&case.flag, &case.context, Value::Null));
            if got != case.expected {
                failures.push(format!(
                    "{} / {} (json): expected {}\n    got {got}",
                    file.name, case.name, case.expected
                ));
            }
            if let Some(got) = typed(&client, case)
                && got != case.expected
            {
                failures.push(format!(
                    "{} / {} (typed): expected {}\n    got {got}",
                    file.name, case.name, case.expected
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {total} vectors failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(total >= 250, "expected at least 250 cases, found {total}");
}
