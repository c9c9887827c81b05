//! Promotion in the console: "Copy from another environment" on a flag's tab (this flag's
//! configuration from another environment into the tab's), and the settings page's
//! **Promote** form (every flag that is not archived, from one environment into another).
//! Both call `manage::promotion::copy`; what it refuses is shown on the page, with the
//! input kept.

use axum::Extension;

use super::flag::{DiffLine, line_diff};
use super::form::url_encode;
use super::{Ctx, Page, PageResult, Place};
use crate::access::to_change_environment;
use crate::manage::promotion::{Copied, CopyInput};
use crate::manage::{self, Error};
use crate::store::environments::Environment;
use crate::store::flags::{Config, Flag};

/// Flag keys the notice after a promotion names (the rest are counted).
const MAX_NAMED: usize = 20;

/// Another environment of a flag's tab, as the copy control offers it.
pub(crate) struct Source {
    pub(crate) key: String,
    pub(crate) name: String,
    /// What it serves, in a few words.
    pub(crate) summary: String,
    /// Its configuration equals the tab's: copying changes nothing.
    pub(crate) same: bool,
    /// The tab's configuration → this one's.
    pub(crate) diff: Vec<DiffLine>,
}

/// The copy control of a flag's tab.
#[derive(Default)]
pub(crate) struct CopyPanel {
    pub(crate) sources: Vec<Source>,
    /// The chosen source (kept after a refusal).
    pub(crate) from: String,
    pub(crate) comment: String,
    /// Opened: the refused copy is shown again.
    pub(crate) open: bool,
}

/// The copy control of a flag's tab: the project's other environments with what each
/// serves (empty when the caller may not change the tab's environment, or it requires
/// approval — the page then says why instead).
pub(crate) async fn panel(
    cx: &Ctx,
    place: &Place,
    environments: &[Environment],
    may_copy: bool,
) -> Result<CopyPanel, Page> {
    let (flag, env) = (place.flag()?, place.env()?);
    if !may_copy || env.requires_approval {
        return Ok(CopyPanel::default());
    }
    let here = manage::flag_configs::get(&cx.store, &flag.id, &env.id).await?;
    let here_text = serde_json::to_string_pretty(&here.config).unwrap_or_default();
    let mut sources = Vec::new();
    for other in environments.iter().filter(|e| e.id != env.id) {
        let there = manage::flag_configs::get(&cx.store, &flag.id, &other.id).await?;
        let same = there.config == here.config;
        let there_text = serde_json::to_string_pretty(&there.config).unwrap_or_default();
        sources.push(Source {
            key: other.key.clone(),
            name: other.name.clone(),
            summary: summary(&there.config, flag),
            same,
            diff: if same {
                Vec::new()
            } else {
                line_diff(&here_text, &there_text)
            },
        });
    }
    // Preselect the first environment that differs.
    let from = sources
        .iter()
        .find(|s| !s.same)
        .or(sources.first())
        .map(|s| s.key.clone())
        .unwrap_or_default();
    Ok(CopyPanel {
        sources,
        from,
        comment: String::new(),
        open: false,
    })
}

/// What a configuration serves, in a few words: "on, 2 rules, default: on 25 %, off 75 %".
pub(crate) fn summary(config: &Config, flag: &Flag) -> String {
    if !config.enabled {
        return format!("off (serves {})", config.off_variation);
    }
    let mut parts = vec!["on".to_owned()];
    let targeted: usize = config.targets.iter().map(|t| t.values.len()).sum();
    if targeted > 0 {
        parts.push(plural(targeted, "individual target", "individual targets"));
    }
    if !config.rules.is_empty() {
        parts.push(plural(config.rules.len(), "rule", "rules"));
    }
    if !config.prerequisites.is_empty() {
        parts.push(plural(
            config.prerequisites.len(),
            "prerequisite",
            "prerequisites",
        ));
    }
    let default = match (&config.fallthrough.variation, &config.fallthrough.rollout) {
        (Some(v), _) => v.clone(),
        (None, Some(r)) => {
            let shares: Vec<String> = r
                .variations
                .iter()
                .map(|w| format!("{} {}", w.variation, percent(w.weight)))
                .collect();
            format!("{} rollout", shares.join(", "))
        }
        (None, None) => flag
            .variations
            .first()
            .map_or_else(String::new, |v| v.key.clone()),
    };
    parts.push(format!("default: {default}"));
    parts.join(", ")
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// A rollout weight (thousandths of a percent) as "25 %" or "12.5 %".
fn percent(weight: u32) -> String {
    let whole = weight / 1000;
    let frac = weight % 1000;
    if frac == 0 {
        format!("{whole} %")
    } else {
        let frac = format!("{frac:03}");
        format!("{whole}.{} %", frac.trim_end_matches('0'))
    }
}

/// `POST …/flags/{flag}/in/{env}/copy`: `from` (an environment key) and `comment`.
pub(crate) async fn copy_flag(cx: Ctx, Extension(place): Extension<Place>) -> PageResult {
    let (flag, env) = (place.flag()?, place.env()?);
    let from = cx.form.text("from");
    let comment = cx.form.text("comment");
    let (envs, _) = manage::environments::list(&cx.store, &place.project.id, 100, 0).await?;
    let result = match envs.iter().find(|e| e.key == from) {
        None => Err(Error::invalid_field(
            "from_environment_id",
            "choose the environment to copy from",
        )),
        Some(source) => {
            let input = CopyInput {
                from_environment_id: source.id.clone(),
                flag_ids: Some(vec![flag.id.clone()]),
                comment: Some(comment.clone()).filter(|c| !c.is_empty()),
            };
            manage::promotion::copy(&cx.store, &cx.by, (&place.project.id, &env.id), input).await
        }
    };
    let tab = format!(
        "{}/flags/{}/in/{}",
        place.base(),
        url_encode(&flag.key),
        url_encode(&env.key)
    );
    match result {
        Ok(copied) if copied.changed.is_empty() => {
            Ok(Page::redirect(format!("{tab}?done=copied_same")))
        }
        Ok(_) => Ok(Page::redirect(format!("{tab}?done=copied"))),
        Err(e) => {
            let message = refusal(e)?;
            let config = manage::flag_configs::get(&cx.store, &flag.id, &env.id).await?;
            let draft = super::draft::Draft::of(&config.config, config.version, &flag.variations);
            let kept = CopyPanel {
                from,
                comment,
                open: true,
                ..CopyPanel::default()
            };
            super::flag::render_copy(&cx, &place, draft, message, kept).await
        }
    }
}

/// What the domain refused, as the page says it; anything else is an error page.
fn refusal(e: Error) -> Result<String, Page> {
    match e {
        Error::Invalid { message, .. } => Ok(format!(
            "Not copied: {}",
            message.replace("from_environment_id", "from")
        )),
        e @ (Error::Refused { .. }
        | Error::Conflict { .. }
        | Error::Forbidden(_)
        | Error::NotFound(_)) => Ok(format!("Not copied: {e}")),
        e => Err(e.into()),
    }
}

/// The settings page's promotion form, as typed (kept after a refusal).
#[derive(Default)]
pub(crate) struct PromoteForm {
    pub(crate) from: String,
    pub(crate) into: String,
    pub(crate) comment: String,
    pub(crate) error: Option<String>,
}

/// `POST /ui/{org}/{project}/promote`: `from` and `into` (environment keys) and `comment`;
/// every flag that is not archived. The route needs an editor of the project; the target's
/// own rule (admin when it is protected) is checked here, as the policy table checks an
/// environment named in a URL.
pub(crate) async fn promote_project(cx: Ctx, Extension(place): Extension<Place>) -> PageResult {
    let mut form = PromoteForm {
        from: cx.form.text("from"),
        into: cx.form.text("into"),
        comment: cx.form.text("comment"),
        error: None,
    };
    let (envs, _) = manage::environments::list(&cx.store, &place.project.id, 100, 0).await?;
    let by_key = |key: &str| envs.iter().find(|e| e.key == key);
    let result = match (by_key(&form.from), by_key(&form.into)) {
        (None, _) => Err(Error::invalid_field(
            "from",
            "choose the environment to copy from",
        )),
        (_, None) => Err(Error::invalid_field(
            "into",
            "choose the environment to copy into",
        )),
        (Some(from), Some(into)) => match may_change(&cx, &place, into).await {
            Err(e) => Err(e),
            Ok(()) => {
                let input = CopyInput {
                    from_environment_id: from.id.clone(),
                    flag_ids: None,
                    comment: Some(form.comment.clone()).filter(|c| !c.is_empty()),
                };
                manage::promotion::copy(&cx.store, &cx.by, (&place.project.id, &into.id), input)
                    .await
            }
        },
    };
    match result {
        Ok(copied) => Ok(Page::redirect(promoted_url(&place, &form, &copied))),
        Err(e) => {
            form.error = Some(refusal(e)?);
            super::settings::render_promote(&cx, &place, form).await
        }
    }
}

/// Editor in the organization, admin when `env` is protected: what the policy table's
/// `ChangeEnvironment` asks of an environment in a URL.
async fn may_change(cx: &Ctx, place: &Place, env: &Environment) -> Result<(), Error> {
    let mut conn = cx.store.read().await?;
    let need = to_change_environment(env.protected);
    match cx
        .principal
        .require(&mut conn, &place.org.id, need, || {
            Error::not_found("environment", &env.key)
        })
        .await
    {
        Ok(_) => Ok(()),
        Err(Error::Forbidden(_)) => Err(Error::Forbidden(format!(
            "{} is protected: copying into it needs the admin role",
            env.name
        ))),
        Err(e) => Err(e),
    }
}

/// The settings page after a promotion: what it did, in the query the notice is made from
/// (checked against the project when shown).
fn promoted_url(place: &Place, form: &PromoteForm, copied: &Copied) -> String {
    let equal: Vec<&str> = copied
        .unchanged
        .iter()
        .take(MAX_NAMED)
        .map(String::as_str)
        .collect();
    format!(
        "{}/settings?done=promoted&from={}&into={}&changed={}&unchanged={}&equal={}#promote",
        place.base(),
        url_encode(&form.from),
        url_encode(&form.into),
        copied.changed.len(),
        copied.unchanged.len(),
        url_encode(&equal.join(","))
    )
}

/// What the settings page's query says a promotion did.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct PromotedQuery {
    pub(crate) from: Option<String>,
    pub(crate) into: Option<String>,
    pub(crate) changed: Option<String>,
    pub(crate) unchanged: Option<String>,
    pub(crate) equal: Option<String>,
}

/// The result of a promotion, from the page's query: shown only with environments of this
/// project and flag keys that have a configuration in the target, so that a link can say
/// nothing else.
pub(crate) struct Promoted {
    pub(crate) text: String,
    /// Flags that were already equal, named (at most [`MAX_NAMED`]).
    pub(crate) equal: Vec<String>,
    /// Flags that were already equal beyond those named.
    pub(crate) more: u32,
}

pub(crate) async fn promoted(
    cx: &Ctx,
    environments: &[Environment],
    q: &PromotedQuery,
) -> Result<Option<Promoted>, Page> {
    let env = |key: &Option<String>| {
        key.as_deref()
            .and_then(|k| environments.iter().find(|e| e.key == k))
    };
    let count = |n: &Option<String>| n.as_deref().and_then(|n| n.parse::<u32>().ok());
    let (Some(from), Some(into), Some(changed), Some(unchanged)) = (
        env(&q.from),
        env(&q.into),
        count(&q.changed),
        count(&q.unchanged),
    ) else {
        return Ok(None);
    };
    let (configs, _) = manage::flag_configs::list(&cx.store, &into.id, 100_000, 0).await?;
    let equal: Vec<String> = q
        .equal
        .as_deref()
        .unwrap_or_default()
        .split(',')
        .filter(|k| configs.iter().any(|c| c.flag_key == *k))
        .take(MAX_NAMED)
        .map(str::to_owned)
        .collect();
    let more = unchanged.saturating_sub(u32::try_from(equal.len()).unwrap_or(u32::MAX));
    let text = if changed == 0 {
        format!(
            "Nothing changed: {} already served what {} serves ({}).",
            into.name,
            from.name,
            plural(unchanged as usize, "flag", "flags")
        )
    } else {
        format!(
            "Copied {} into {}: {} changed, {} already equal.",
            from.name,
            into.name,
            plural(changed as usize, "configuration", "configurations"),
            unchanged
        )
    };
    Ok(Some(Promoted { text, equal, more }))
}

#[cfg(test)]
mod tests {
    #[test]
    fn rollout_shares_read_as_percentages() {
        assert_eq!(super::percent(25_000), "25 %");
        assert_eq!(super::percent(12_500), "12.5 %");
        assert_eq!(super::percent(333), "0.333 %");
    }
}
