//! Submitted forms (`application/x-www-form-urlencoded`) as ordered name/value pairs, so
//! that repeated and indexed fields (`rules[0].clauses[1].op`) keep their order; and the
//! small text helpers the pages share.

use std::collections::BTreeMap;

/// A submitted form, read once by the gate (which checks its `csrf` field).
#[derive(Debug, Clone, Default)]
pub(crate) struct FormData(pub(crate) Vec<(String, String)>);

impl FormData {
    pub(crate) fn parse(body: &[u8]) -> FormData {
        FormData(serde_urlencoded::from_bytes(body).unwrap_or_default())
    }

    /// The first value of `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value of `name`, trimmed; empty when absent.
    pub(crate) fn text(&self, name: &str) -> String {
        self.get(name).unwrap_or_default().trim().to_owned()
    }

    /// `Some(trimmed)` when present and not blank.
    pub(crate) fn optional(&self, name: &str) -> Option<String> {
        Some(self.text(name)).filter(|s| !s.is_empty())
    }

    /// Every value of `name`, in order.
    pub(crate) fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// A checkbox: present means checked.
    pub(crate) fn checked(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// The fields under `prefix[i].`, grouped by index in ascending order: for
    /// `rules[0].serve=…` and `rules[2].x=…`, `[(0, {"serve": …}), (2, {"x": …})]`, where
    /// the inner names keep their own indexes (`clauses[1].op`).
    pub(crate) fn indexed(&self, prefix: &str) -> Vec<(usize, FormData)> {
        let mut groups: BTreeMap<usize, FormData> = BTreeMap::new();
        let start = format!("{prefix}[");
        for (name, value) in &self.0 {
            let Some(rest) = name.strip_prefix(&start) else {
                continue;
            };
            let Some((index, rest)) = rest.split_once(']') else {
                continue;
            };
            let (Ok(index), Some(field)) = (index.parse::<usize>(), rest.strip_prefix('.')) else {
                continue;
            };
            // Bounded: a form cannot make us allocate for absurd indexes.
            if index > 10_000 {
                continue;
            }
            groups
                .entry(index)
                .or_default()
                .0
                .push((field.to_owned(), value.clone()));
        }
        groups.into_iter().collect()
    }
}

/// The lines of a textarea, exactly as typed (a targeting key may hold commas or spaces),
/// without blank ones.
pub(crate) fn lines(text: &str) -> Vec<String> {
    text.split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

/// Comma-separated text (tags, variation lists) as trimmed, non-empty items.
pub(crate) fn items(text: &str) -> Vec<String> {
    text.split(['\n', ','])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The non-empty fields of a query as a query string (`a=1&b=x%20y`), for links that keep
/// a page's filters.
pub(crate) fn query_string(fields: &[(&str, &String)]) -> String {
    fields
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", url_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Percent-encodes a query value.
pub(crate) fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(char::from(b));
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A path of ours to come back to after signing in: only a local `/ui/` path, never
/// another site (`//evil.example` or `/\evil.example` would leave).
pub(crate) fn local_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with("/ui/")
                && !n.starts_with("//")
                && !n.contains('\\')
                && !n.chars().any(char::is_control) =>
        {
            n.to_owned()
        }
        _ => "/ui/".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexed_fields_group_by_index_in_order() {
        let form = FormData::parse(
            b"rules%5B1%5D.serve=on&rules%5B0%5D.clauses%5B0%5D.op=in&rules%5B0%5D.serve=off&x=1",
        );
        let groups = form.indexed("rules");
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].0, 0);
        assert_eq!(groups[0].1.get("serve"), Some("off"));
        assert_eq!(groups[0].1.indexed("clauses")[0].1.get("op"), Some("in"));
        assert_eq!(groups[1].1.get("serve"), Some("on"));
    }

    #[test]
    fn only_local_console_paths_are_followed_after_sign_in() {
        assert_eq!(local_next(Some("/ui/a/b/flags?q=x")), "/ui/a/b/flags?q=x");
        for bad in [
            "//evil.example/ui/",
            "https://evil.example",
            "/ui/\\evil",
            "/api/v1/x",
        ] {
            assert_eq!(local_next(Some(bad)), "/ui/", "{bad}");
        }
    }
}
