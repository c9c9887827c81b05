//! `vexil eval`: evaluates one flag (or every flag) of a ruleset file for a JSON context and
//! prints the result as `POST /api/v1/evaluate` (or `/evaluate/bulk`) would.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::Args;
use serde_json::Value;
use vexil_core::{Context, Evaluation, Ruleset, Snapshot, ValidationErrors};

#[derive(Debug, Args)]
pub(crate) struct EvalArgs {
    /// Ruleset JSON file (the document `GET /api/v1/sdk/config` returns); `-` reads stdin.
    #[arg(long)]
    ruleset: PathBuf,
    /// Flag to evaluate; without it every flag is evaluated.
    #[arg(long)]
    flag: Option<String>,
    /// Evaluation context as a JSON object, e.g. '{"targetingKey":"user-1","plan":"pro"}'.
    #[arg(long, default_value = "{}")]
    context: String,
    /// Evaluation time (RFC 3339); defaults to the current time.
    #[arg(long)]
    now: Option<String>,
}

/// Exit status for unusable input (unreadable or invalid ruleset, context or time).
const EXIT_INVALID: u8 = 1;

pub(crate) fn run(args: &EvalArgs) -> ExitCode {
    match evaluate(args) {
        Ok(output) => {
            let mut out = std::io::stdout().lock();
            // A closed stdout (e.g. piping into `head`) is not worth a panic.
            let _ = writeln!(out, "{output}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            let _ = writeln!(std::io::stderr().lock(), "error: {message}");
            ExitCode::from(EXIT_INVALID)
        }
    }
}

fn evaluate(args: &EvalArgs) -> Result<String, String> {
    let text = if args.ruleset.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).map_err(|e| format!("cannot read stdin: {e}"))?
    } else {
        std::fs::read_to_string(&args.ruleset)
            .map_err(|e| format!("cannot read {}: {e}", args.ruleset.display()))?
    };
    let invalid = |what: &str, errors: ValidationErrors| {
        let lines: Vec<String> = errors.iter().map(|e| format!("  {e}")).collect();
        format!("invalid {what}:\n{}", lines.join("\n"))
    };
    let ruleset = Ruleset::from_json(&text).map_err(|e| invalid("ruleset", e))?;
    let snapshot = Snapshot::compile(&ruleset).map_err(|e| invalid("ruleset", e))?;
    let context = parse_context(&args.context)?;
    let now = match &args.now {
        Some(s) => vexil_core::time::parse_rfc3339(s).ok_or_else(|| {
            format!("invalid --now '{s}': expected RFC 3339, e.g. 2026-01-01T00:00:00Z")
        })?,
        None => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0),
    };

    let json = match &args.flag {
        Some(key) => {
            serde_json::to_string_pretty(&snapshot.evaluate(key, &context, now).record(key))
        }
        None => {
            // Sorted by key so that the output is stable from run to run.
            let flags: BTreeMap<&str, Evaluation<'_, '_>> = snapshot
                .evaluate_all(&context, now)
                .map(|(info, detail)| (info.key, detail.record(info.key)))
                .collect();
            serde_json::to_string_pretty(&Bulk { flags })
        }
    };
    json.map_err(|e| e.to_string())
}

/// The shape of `POST /api/v1/evaluate/bulk`: `{"flags": {"<key>": evaluation}}`.
#[derive(serde::Serialize)]
struct Bulk<'k, 's> {
    flags: BTreeMap<&'k str, Evaluation<'k, 's>>,
}

fn parse_context(text: &str) -> Result<Context, String> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map.into()),
        Ok(other) => Err(format!(
            "invalid --context: expected a JSON object, got {}",
            match other {
                Value::Null => "null",
                Value::Bool(_) => "a boolean",
                Value::Number(_) => "a number",
                Value::String(_) => "a string",
                Value::Array(_) => "an array",
                Value::Object(_) => "an object",
            }
        )),
        Err(e) => Err(format!("invalid --context: {e}")),
    }
}
