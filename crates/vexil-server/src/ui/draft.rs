//! The configuration editor's model: a flag configuration (or a segment's rules) as the
//! form shows it — text fields, one row per rule, clause and prerequisite — read from a
//! stored configuration, read back from a submitted form (also to re-show it with its
//! problems, or with a row added), and turned into the configuration the domain layer
//! validates. Field names follow the configuration's own paths (`rules[0].clauses[1].op`),
//! so the domain layer's field errors land beside the field they name.

use std::collections::HashMap;

use serde_json::{Map, Value, json};
use vexil_core::{Clause, Op, Prerequisite, Rule, Serve, TOTAL_WEIGHT, Target, Variation};

use super::form::{FormData, items, lines};
use crate::store::flags::Config;

/// Every operator, with the label the editor shows.
pub(crate) const OPERATORS: [(&str, &str); 19] = [
    ("in", "is one of"),
    ("starts_with", "starts with"),
    ("ends_with", "ends with"),
    ("contains", "contains"),
    ("matches", "matches regex"),
    ("lt", "<"),
    ("lte", "≤"),
    ("gt", ">"),
    ("gte", "≥"),
    ("before", "is before (date)"),
    ("after", "is after (date)"),
    ("semver_eq", "semver ="),
    ("semver_lt", "semver <"),
    ("semver_lte", "semver ≤"),
    ("semver_gt", "semver >"),
    ("semver_gte", "semver ≥"),
    ("in_cidr", "in CIDR"),
    ("exists", "exists"),
    ("in_segment", "is in segment"),
];

/// At most this many rows of each kind in one form (a bound on work per request).
const MAX_ROWS: usize = 500;

#[derive(Debug, Clone, Default)]
pub(crate) struct ClauseDraft {
    pub(crate) attribute: String,
    pub(crate) op: String,
    /// One value per line.
    pub(crate) values: String,
    pub(crate) negate: bool,
    pub(crate) case_insensitive: bool,
    /// The stored values as JSON, so that a value kept as it was keeps its JSON type.
    pub(crate) original: String,
    /// Ticked "remove": left out when saved, still shown while rows are added or moved.
    pub(crate) remove: bool,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct ServeDraft {
    /// `variation` or `rollout`.
    pub(crate) mode: String,
    pub(crate) variation: String,
    /// Per variation key: its share in percent, up to three decimals.
    pub(crate) weights: Vec<(String, String)>,
    pub(crate) bucket_by: String,
    pub(crate) seed: String,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct RuleDraft {
    pub(crate) id: String,
    pub(crate) description: String,
    pub(crate) clauses: Vec<ClauseDraft>,
    pub(crate) serve: ServeDraft,
    /// Ticked "remove this rule".
    pub(crate) remove: bool,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct PrereqDraft {
    pub(crate) flag: String,
    pub(crate) variations: String,
}

/// A flag configuration in the editor.
#[derive(Debug, Clone, Default)]
pub(crate) struct Draft {
    pub(crate) version: i64,
    pub(crate) enabled: bool,
    pub(crate) off_variation: String,
    /// Per variation key: the targeting keys that get it, one per line.
    pub(crate) targets: Vec<(String, String)>,
    pub(crate) rules: Vec<RuleDraft>,
    pub(crate) fallthrough: ServeDraft,
    pub(crate) prerequisites: Vec<PrereqDraft>,
    /// Tracked event keys attributed to this configuration's variations, comma-separated.
    pub(crate) watch_events: String,
    pub(crate) comment: String,
    /// Problems by field path, from the domain layer or from reading the form.
    pub(crate) errors: HashMap<String, String>,
}

impl Draft {
    pub(crate) fn of(config: &Config, version: i64, variations: &[Variation]) -> Draft {
        let targets = variations
            .iter()
            .map(|v| {
                let keys = config
                    .targets
                    .iter()
                    .filter(|t| t.variation == v.key)
                    .flat_map(|t| t.values.iter().cloned())
                    .collect::<Vec<_>>()
                    .join("\n");
                (v.key.clone(), keys)
            })
            .collect();
        Draft {
            version,
            enabled: config.enabled,
            off_variation: config.off_variation.clone(),
            targets,
            rules: config
                .rules
                .iter()
                .map(|r| RuleDraft {
                    id: r.id.clone().unwrap_or_default(),
                    description: r.description.clone().unwrap_or_default(),
                    clauses: r.clauses.iter().map(ClauseDraft::of).collect(),
                    serve: ServeDraft::of(&r.serve, variations),
                    remove: false,
                })
                .collect(),
            fallthrough: ServeDraft::of(&config.fallthrough, variations),
            prerequisites: config
                .prerequisites
                .iter()
                .map(|p| PrereqDraft {
                    flag: p.flag.clone(),
                    variations: p.variations.join(", "),
                })
                .collect(),
            watch_events: config.watch_events.join(", "),
            comment: String::new(),
            errors: HashMap::new(),
        }
    }

    /// The editor's state as submitted.
    pub(crate) fn read(form: &FormData, variations: &[Variation]) -> Draft {
        let rules = form
            .indexed("rules")
            .into_iter()
            .take(MAX_ROWS)
            .map(|(_, r)| RuleDraft {
                id: r.text("id"),
                description: r.text("description"),
                clauses: ClauseDraft::read_all(&r),
                serve: ServeDraft::read(&r, "serve", variations),
                remove: r.checked("remove"),
            })
            .collect();
        Draft {
            version: form.text("version").parse().unwrap_or(0),
            enabled: form.checked("enabled"),
            off_variation: form.text("off_variation"),
            targets: variations
                .iter()
                .map(|v| {
                    let keys = form.get(&format!("targets.{}", v.key)).unwrap_or_default();
                    (v.key.clone(), keys.to_owned())
                })
                .collect(),
            rules,
            fallthrough: ServeDraft::read(form, "fallthrough", variations),
            prerequisites: form
                .indexed("prerequisites")
                .into_iter()
                .take(MAX_ROWS)
                .map(|(_, p)| PrereqDraft {
                    flag: p.text("flag"),
                    variations: p.text("variations"),
                })
                .filter(|p| !p.flag.is_empty() || !p.variations.is_empty())
                .collect(),
            watch_events: form.text("watch_events"),
            comment: form.text("comment"),
            errors: HashMap::new(),
        }
    }

    /// The changes to store, as a merge patch of the whole configuration; problems found
    /// while reading the text (a weight that is not a number, rollout shares that do not
    /// add up) are collected by field.
    pub(crate) fn to_patch(&self) -> Result<Map<String, Value>, HashMap<String, String>> {
        let mut errors = HashMap::new();
        let targets: Vec<Target> = self
            .targets
            .iter()
            .map(|(variation, keys)| Target {
                variation: variation.clone(),
                values: lines(keys),
            })
            .filter(|t| !t.values.is_empty())
            .collect();
        let mut rules = Vec::new();
        // Rows ticked "remove" are left out; the paths of errors are those of the rules
        // stored, which are the rows kept, in order.
        for (i, r) in self.rules.iter().filter(|r| !r.remove).enumerate() {
            let clauses = clauses_of(&r.clauses, &format!("rules[{i}]"), &mut errors);
            if clauses.is_empty() && !errors.keys().any(|k| k.starts_with(&format!("rules[{i}]"))) {
                errors.insert(
                    format!("rules[{i}]"),
                    "give the rule at least one condition, or tick “remove this rule” (a rule without conditions would match everyone)".into(),
                );
            }
            let serve = r.serve.to_serve(&format!("rules[{i}].serve"), &mut errors);
            rules.push(Rule {
                id: Some(r.id.clone()).filter(|s| !s.is_empty()),
                description: Some(r.description.clone()).filter(|s| !s.is_empty()),
                clauses,
                serve,
            });
        }
        let fallthrough = self.fallthrough.to_serve("fallthrough", &mut errors);
        let prerequisites: Vec<Prerequisite> = self
            .prerequisites
            .iter()
            .map(|p| Prerequisite {
                flag: p.flag.clone(),
                variations: items(&p.variations),
            })
            .collect();
        if !errors.is_empty() {
            return Err(errors);
        }
        let mut patch = Map::new();
        patch.insert("enabled".into(), json!(self.enabled));
        patch.insert("off_variation".into(), json!(self.off_variation));
        patch.insert("targets".into(), json!(targets));
        patch.insert("rules".into(), json!(rules));
        patch.insert("fallthrough".into(), json!(fallthrough));
        patch.insert("prerequisites".into(), json!(prerequisites));
        patch.insert("watch_events".into(), json!(items(&self.watch_events)));
        Ok(patch)
    }

    /// The problems at `path` or below it, for the editor to show there.
    pub(crate) fn errors_at(&self, path: &str) -> Vec<String> {
        errors_at(&self.errors, path)
    }
}

/// The problems at `path` or below it (`rules[0]` matches `rules[0].clauses[1].values`,
/// never `rules[01]` or `rules[0]x`).
pub(crate) fn errors_at(errors: &HashMap<String, String>, path: &str) -> Vec<String> {
    let mut found: Vec<String> = errors
        .iter()
        .filter(|(field, _)| {
            field.as_str() == path
                || field
                    .strip_prefix(path)
                    .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
        })
        .map(|(field, problem)| match field.strip_prefix(path) {
            Some("") => problem.clone(),
            Some(rest) => format!("{}: {problem}", rest.trim_start_matches('.')),
            None => problem.clone(),
        })
        .collect();
    found.sort();
    found
}

/// The clauses of a rule row, skipping rows left blank.
pub(crate) fn clauses_of(
    drafts: &[ClauseDraft],
    rule_path: &str,
    errors: &mut HashMap<String, String>,
) -> Vec<Clause> {
    let mut out = Vec::new();
    for (j, c) in drafts.iter().filter(|c| !c.remove).enumerate() {
        if c.attribute.is_empty() && c.values.trim().is_empty() && c.op != "exists" {
            continue;
        }
        let path = format!("{rule_path}.clauses[{j}]");
        let Ok(op) = serde_json::from_value::<Op>(Value::String(c.op.clone())) else {
            errors.insert(format!("{path}.op"), "choose an operator".into());
            continue;
        };
        out.push(Clause {
            attribute: c.attribute.clone(),
            op,
            values: c.values_for(op),
            negate: c.negate,
            case_insensitive: c.case_insensitive,
        });
    }
    out
}

impl ClauseDraft {
    pub(crate) fn of(c: &Clause) -> ClauseDraft {
        ClauseDraft {
            attribute: c.attribute.clone(),
            op: serde_json::to_value(c.op)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            values: c.values.iter().map(display).collect::<Vec<_>>().join("\n"),
            negate: c.negate,
            case_insensitive: c.case_insensitive,
            original: serde_json::to_string(&c.values).unwrap_or_default(),
            remove: false,
        }
    }

    /// The clause rows under `clauses[j].` of a rule's fields.
    pub(crate) fn read_all(rule: &FormData) -> Vec<ClauseDraft> {
        rule.indexed("clauses")
            .into_iter()
            .take(MAX_ROWS)
            .map(|(_, c)| ClauseDraft {
                attribute: c.text("attribute"),
                op: c.text("op"),
                values: c.get("values").unwrap_or_default().to_owned(),
                negate: c.checked("negate"),
                case_insensitive: c.checked("case_insensitive"),
                original: c.get("original").unwrap_or_default().to_owned(),
                remove: c.checked("remove"),
            })
            .collect()
    }

    /// The values, one per line: a line equal to a stored value keeps that value (and its
    /// JSON type); numbers for the numeric operators; text otherwise.
    fn values_for(&self, op: Op) -> Vec<Value> {
        let original: Vec<Value> = serde_json::from_str(&self.original).unwrap_or_default();
        self.values
            .split('\n')
            .map(|l| l.strip_suffix('\r').unwrap_or(l))
            .filter(|l| !l.is_empty())
            .filter_map(|raw| {
                // A stored value, kept as it was (type, spaces, even an empty string).
                if let Some(v) = original.iter().find(|v| display(v) == raw) {
                    return Some(v.clone());
                }
                let line = raw.trim();
                if line.is_empty() {
                    return None;
                }
                Some(match op {
                    Op::Lt | Op::Lte | Op::Gt | Op::Gte => line
                        .parse::<serde_json::Number>()
                        .map_or_else(|_| Value::String(line.to_owned()), Value::Number),
                    _ => Value::String(line.to_owned()),
                })
            })
            .collect()
    }
}

/// A value as the editor shows it: text as itself, anything else as JSON.
fn display(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl ServeDraft {
    fn of(serve: &Serve, variations: &[Variation]) -> ServeDraft {
        let rollout = serve.rollout.as_ref();
        // The stored order first: bucketing walks the shares in order, so reordering them
        // would move units between variations.
        let mut weights: Vec<(String, String)> = rollout
            .map(|r| {
                r.variations
                    .iter()
                    .map(|w| (w.variation.clone(), percent(w.weight)))
                    .collect()
            })
            .unwrap_or_default();
        for v in variations {
            if !weights.iter().any(|(k, _)| *k == v.key) {
                weights.push((v.key.clone(), "0".into()));
            }
        }
        ServeDraft {
            mode: if rollout.is_some() {
                "rollout"
            } else {
                "variation"
            }
            .to_owned(),
            variation: serve.variation.clone().unwrap_or_default(),
            weights,
            bucket_by: rollout.map_or_else(String::new, |r| r.bucket_by.clone()),
            seed: rollout.and_then(|r| r.seed.clone()).unwrap_or_default(),
        }
    }

    fn read(form: &FormData, prefix: &str, variations: &[Variation]) -> ServeDraft {
        ServeDraft {
            mode: form.text(&format!("{prefix}.mode")),
            variation: form.text(&format!("{prefix}.variation")),
            // In the order the form sent them (the stored order), then any variation it
            // did not name.
            weights: {
                let field = format!("{prefix}.weight.");
                let mut w: Vec<(String, String)> = form
                    .0
                    .iter()
                    .filter_map(|(n, v)| {
                        Some((n.strip_prefix(&field)?.to_owned(), v.trim().to_owned()))
                    })
                    .filter(|(k, _)| variations.iter().any(|v| v.key == *k))
                    .collect();
                w.dedup_by(|a, b| a.0 == b.0);
                for v in variations {
                    if !w.iter().any(|(k, _)| *k == v.key) {
                        w.push((v.key.clone(), String::new()));
                    }
                }
                w
            },
            bucket_by: form.text(&format!("{prefix}.bucket_by")),
            seed: form.text(&format!("{prefix}.seed")),
        }
    }

    /// A default serve for a new rule: the first variation.
    pub(crate) fn first(variations: &[Variation]) -> ServeDraft {
        ServeDraft {
            mode: "variation".into(),
            variation: variations
                .first()
                .map(|v| v.key.clone())
                .unwrap_or_default(),
            weights: variations
                .iter()
                .map(|v| (v.key.clone(), "0".into()))
                .collect(),
            bucket_by: String::new(),
            seed: String::new(),
        }
    }

    fn to_serve(&self, path: &str, errors: &mut HashMap<String, String>) -> Serve {
        if self.mode != "rollout" {
            return Serve::variation(self.variation.clone());
        }
        let mut variations = Vec::new();
        let mut total: u64 = 0;
        for (key, text) in &self.weights {
            let text = if text.is_empty() { "0" } else { text.as_str() };
            match thousandths(text) {
                Some(w) => {
                    total += u64::from(w);
                    if w > 0 {
                        variations.push(json!({"variation": key, "weight": w}));
                    }
                }
                None => {
                    errors.insert(
                        format!("{path}.rollout.{key}"),
                        format!("'{text}' is not a percentage with at most three decimals"),
                    );
                }
            }
        }
        if errors.is_empty() && total != u64::from(TOTAL_WEIGHT) {
            errors.insert(
                format!("{path}.rollout"),
                format!(
                    "the shares add up to {} %; they must add up to 100 %",
                    percent(u32::try_from(total).unwrap_or(u32::MAX))
                ),
            );
        }
        let mut rollout = json!({"variations": variations});
        if !self.bucket_by.is_empty() {
            rollout["bucket_by"] = json!(self.bucket_by);
        }
        if !self.seed.is_empty() {
            rollout["seed"] = json!(self.seed);
        }
        Serve {
            variation: None,
            rollout: serde_json::from_value(rollout).ok(),
        }
    }
}

/// A weight in thousandths of a percent shown as a percentage (`33333` → `33.333`).
pub(crate) fn percent(w: u32) -> String {
    let (whole, frac) = (w / 1000, w % 1000);
    if frac == 0 {
        whole.to_string()
    } else {
        format!("{whole}.{frac:03}")
            .trim_end_matches('0')
            .to_owned()
    }
}

/// A percentage with at most three decimals in thousandths (`12.5` → `12500`).
pub(crate) fn thousandths(text: &str) -> Option<u32> {
    let text = text.trim().trim_end_matches('%').trim();
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty() && frac.is_empty()
        || frac.len() > 3
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || whole.len() > 3
    {
        return None;
    }
    let whole: u32 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let frac: u32 = format!("{frac:0<3}").parse().ok()?;
    let w = whole * 1000 + frac;
    (w <= TOTAL_WEIGHT).then_some(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_round_trip_in_thousandths() {
        assert_eq!(thousandths("25"), Some(25_000));
        assert_eq!(thousandths("33.333"), Some(33_333));
        assert_eq!(thousandths("0.5%"), Some(500));
        assert_eq!(thousandths("100"), Some(100_000));
        assert_eq!(thousandths("100.001"), None);
        assert_eq!(thousandths("1.2345"), None);
        assert_eq!(thousandths("-1"), None);
        assert_eq!(thousandths(""), None);
        assert_eq!(percent(33_333), "33.333");
        assert_eq!(percent(12_500), "12.5");
        assert_eq!(percent(25_000), "25");
    }

    #[test]
    fn rollout_shares_must_add_up() {
        let serve = ServeDraft {
            mode: "rollout".into(),
            weights: vec![("on".into(), "25".into()), ("off".into(), "70".into())],
            ..ServeDraft::default()
        };
        let mut errors = HashMap::new();
        serve.to_serve("fallthrough", &mut errors);
        assert!(errors["fallthrough.rollout"].contains("95 %"), "{errors:?}");
    }

    #[test]
    fn errors_are_shown_at_their_row() {
        let errors: HashMap<String, String> = [
            ("rules[0].clauses[1].values".to_owned(), "bad".to_owned()),
            ("rules[01]".to_owned(), "other".to_owned()),
        ]
        .into();
        assert_eq!(errors_at(&errors, "rules[0]"), ["clauses[1].values: bad"]);
        assert_eq!(errors_at(&errors, "rules[0].clauses[1]"), ["values: bad"]);
    }

    #[test]
    fn a_kept_value_keeps_its_type() {
        let c = ClauseDraft {
            attribute: "plan".into(),
            op: "in".into(),
            values: "42\nnew".into(),
            original: "[42]".into(),
            ..ClauseDraft::default()
        };
        assert_eq!(c.values_for(Op::In), vec![json!(42), json!("new")]);
    }
}
