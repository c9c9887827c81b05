//! Output of the client commands: aligned tables and `label  value` details for people,
//! pretty JSON for `--json`, and field helpers that keep control characters coming from
//! the server off the terminal.

use std::io::Write as _;

use serde_json::Value;

use super::client::Failure;

/// Columns of text, left-aligned, separated by two spaces, under an upper-case header.
#[derive(Debug)]
pub(crate) struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
    min_widths: Vec<usize>,
    header: bool,
}

impl Table {
    pub(crate) fn new<S: AsRef<str>>(headers: &[S]) -> Table {
        Table {
            headers: headers
                .iter()
                .map(|h| clean(h.as_ref()).to_uppercase())
                .collect(),
            rows: Vec::new(),
            min_widths: Vec::new(),
            header: true,
        }
    }

    /// Columns at least this wide (so that later batches line up with earlier ones).
    pub(crate) fn min_widths(mut self, widths: &[usize]) -> Table {
        self.min_widths = widths.to_vec();
        self
    }

    /// Leave the header line out.
    pub(crate) fn without_header(mut self) -> Table {
        self.header = false;
        self
    }

    /// Adds a row; cells are cleaned of control characters.
    pub(crate) fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells.iter().map(|c| clean(c)).collect());
    }

    pub(crate) fn render(&self) -> String {
        let columns = self
            .rows
            .iter()
            .map(Vec::len)
            .chain([self.headers.len()])
            .max()
            .unwrap_or(0);
        let mut widths = vec![0; columns];
        let header = self.header.then_some(&self.headers);
        for row in header.into_iter().chain(&self.rows) {
            for (i, cell) in row.iter().enumerate() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        for (w, min) in widths.iter_mut().zip(&self.min_widths) {
            *w = (*w).max(*min);
        }
        let mut out = String::new();
        for row in header.into_iter().chain(&self.rows) {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                line.push_str(cell);
                let pad = widths[i].saturating_sub(cell.chars().count());
                line.extend(std::iter::repeat_n(' ', pad));
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// `label  value` lines with the values aligned.
pub(crate) fn details(pairs: &[(&str, String)]) -> String {
    let width = pairs
        .iter()
        .map(|(l, _)| l.chars().count())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for (label, value) in pairs {
        let value = clean(value);
        out.push_str(format!("{label:<width$}  {value}").trim_end());
        out.push('\n');
    }
    out
}

/// The text with control characters (escape sequences, newlines, tabs) made harmless.
pub(crate) fn clean(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\t' | '\n' | '\r' => ' ',
            c if c.is_control() => '\u{fffd}',
            c => c,
        })
        .collect()
}

/// A field as text: strings as they are, null or missing as "", anything else as JSON.
pub(crate) fn text(v: &Value, key: &str) -> String {
    display(v.get(key).unwrap_or(&Value::Null))
}

/// A value as text: strings as they are, null as "", anything else as JSON.
pub(crate) fn display(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => clean(s),
        other => clean(&other.to_string()),
    }
}

/// A boolean field as yes/no.
pub(crate) fn yes_no(v: &Value, key: &str) -> String {
    if v.get(key).and_then(Value::as_bool).unwrap_or(false) {
        "yes".to_owned()
    } else {
        "no".to_owned()
    }
}

/// A time field (RFC 3339) shortened to the second, `2026-12-04 18:06:57Z`; `none` when null.
pub(crate) fn time(v: &Value, key: &str, none: &str) -> String {
    match v.get(key).and_then(Value::as_str) {
        Some(t) => short_time(t),
        None => none.to_owned(),
    }
}

fn short_time(t: &str) -> String {
    let t = clean(t);
    match (t.get(..19), t.ends_with('Z')) {
        (Some(second), true) => format!("{}Z", second.replacen('T', " ", 1)),
        _ => t,
    }
}

/// A string array field joined with ", ".
pub(crate) fn list(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_array)
        .map(|items| items.iter().map(display).collect::<Vec<_>>().join(", "))
        .unwrap_or_default()
}

/// The length of an array field.
pub(crate) fn count(v: &Value, key: &str) -> usize {
    v.get(key).and_then(Value::as_array).map_or(0, Vec::len)
}

/// Writes `text` to standard output.
pub(crate) fn emit(text: &str) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(Failure::Output)
}

/// Writes `value` as pretty JSON (one document) to standard output.
pub(crate) fn emit_json(value: &Value) -> Result<(), Failure> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| Failure::Refused(format!("cannot print the answer: {e}")))?;
    emit(&format!("{text}\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up_and_trailing_space_is_trimmed() {
        let mut t = Table::new(&["key", "on"]);
        t.row(vec!["new-checkout".into(), "yes".into()]);
        t.row(vec!["a".into(), String::new()]);
        assert_eq!(t.render(), "KEY           ON\nnew-checkout  yes\na\n");
    }

    #[test]
    fn control_characters_never_reach_the_terminal() {
        assert_eq!(clean("a\u{1b}[31mb\nc"), "a\u{fffd}[31mb c");
        let mut t = Table::new(&["x"]).without_header().min_widths(&[3]);
        t.row(vec!["\u{7}".into(), "z".into()]);
        assert_eq!(t.render(), "\u{fffd}    z\n");
    }

    #[test]
    fn times_are_shortened_to_the_second() {
        let v = serde_json::json!({"at": "2026-12-04T18:06:57.817Z", "n": null});
        assert_eq!(time(&v, "at", "-"), "2026-12-04 18:06:57Z");
        assert_eq!(time(&v, "n", "never"), "never");
    }
}
