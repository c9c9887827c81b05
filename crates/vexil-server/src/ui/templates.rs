//! The flag templates page: the project's templates (shape, tags, and the configuration a
//! flag made from one starts with in each environment), creating one — with a simple
//! starting state per environment: on serving a variation, or off — and a template's page
//! (everything it holds, as the API shows it) with delete. Rules and targets in a starting
//! configuration are added through the API; flags are made from a template on the flags
//! page's "new flag" form.

use std::collections::HashMap;

use axum::Extension;
use axum::extract::{Path, Query};
use serde_json::{Map, Value, json};
use vexil_core::FlagType;

use super::flags::{flag_type, parse_variations};
use super::form::{FormData, items};
use super::{Ctx, Done, Frame, Page, PageResult, Place};
use crate::manage::templates::NewTemplate;
use crate::manage::{self, Error};
use crate::store::environments::Environment;
use crate::store::templates::Template;

/// Templates listed on the page (a project has few).
const LIMIT: i64 = 500;

/// The starting state an environment is given in the form.
#[derive(Debug, Clone, Default)]
struct EnvStart {
    key: String,
    name: String,
    protected: bool,
    requires_approval: bool,
    /// `""`: none (new flags start off there, as any flag), `on` or `off`.
    state: String,
    /// The variation served when on (`""`: `on`, or the first variation).
    serve: String,
    /// The variation served when off (`""`: `off`, or the last variation).
    off: String,
}

/// The "new template" form as typed, and its problems by field (`key`, `variations`,
/// `state.{env}`, `serve.{env}`, `off.{env}`, …).
#[derive(Debug, Clone, Default)]
struct TemplateForm {
    key: String,
    name: String,
    description: String,
    kind: String,
    variations: String,
    tags: String,
    temporary: bool,
    client_side: bool,
    envs: Vec<EnvStart>,
    errors: HashMap<String, String>,
}

impl TemplateForm {
    fn blank(envs: &[Environment]) -> TemplateForm {
        TemplateForm {
            kind: "boolean".into(),
            envs: envs
                .iter()
                .map(|e| EnvStart {
                    key: e.key.clone(),
                    name: e.name.clone(),
                    protected: e.protected,
                    requires_approval: e.requires_approval,
                    ..EnvStart::default()
                })
                .collect(),
            ..TemplateForm::default()
        }
    }

    fn read(form: &FormData, envs: &[Environment]) -> TemplateForm {
        let mut t = TemplateForm::blank(envs);
        t.key = form.text("key");
        t.name = form.text("name");
        t.description = form.text("description");
        t.kind = form.text("type");
        t.variations = form.get("variations").unwrap_or_default().to_owned();
        t.tags = form.text("tags");
        t.temporary = form.checked("temporary");
        t.client_side = form.checked("client_side");
        for e in &mut t.envs {
            e.state = match form.text(&format!("state.{}", e.key)).as_str() {
                s @ ("on" | "off") => s.to_owned(),
                _ => String::new(),
            };
            e.serve = form.text(&format!("serve.{}", e.key));
            e.off = form.text(&format!("off.{}", e.key));
        }
        t
    }

    /// The problem shown beside `field` (empty: none).
    fn error(&self, field: &str) -> &str {
        self.errors.get(field).map_or("", String::as_str)
    }

    /// The problem of an environment's field (`state`, `serve`, `off`).
    fn env_error(&self, what: &str, env: &str) -> &str {
        self.error(&format!("{what}.{env}"))
    }

    /// The template the form describes.
    fn input(&self) -> Result<NewTemplate, Error> {
        let kind = match self.kind.as_str() {
            "" => FlagType::Boolean,
            k => flag_type(k).ok_or_else(|| {
                Error::invalid_field("type", "must be boolean, string, number or json")
            })?,
        };
        let variations = match kind {
            FlagType::Boolean => None,
            _ => Some(parse_variations(kind, &self.variations)?),
        };
        let keys: Vec<String> = variations.as_ref().map_or_else(
            || vec!["on".to_owned(), "off".to_owned()],
            |vs| vs.iter().map(|v| v.key.clone()).collect(),
        );
        let boolean = kind == FlagType::Boolean;
        let (first, last) = (
            keys.first().cloned().unwrap_or_default(),
            keys.last().cloned().unwrap_or_default(),
        );
        let mut environments = Map::new();
        for e in self.envs.iter().filter(|e| !e.state.is_empty()) {
            let serve = match e.serve.as_str() {
                "" if boolean => "on".to_owned(),
                "" => first.clone(),
                s => s.to_owned(),
            };
            let off = match e.off.as_str() {
                "" if boolean => "off".to_owned(),
                "" => last.clone(),
                s => s.to_owned(),
            };
            environments.insert(
                e.key.clone(),
                json!({"enabled": e.state == "on", "off_variation": off,
                    "fallthrough": {"variation": serve}}),
            );
        }
        let environments = serde_json::from_value(Value::Object(environments))
            .map_err(|e| Error::invalid_field("environments", e.to_string()))?;
        Ok(NewTemplate {
            key: self.key.clone(),
            name: Some(self.name.clone()).filter(|s| !s.is_empty()),
            description: self.description.clone(),
            kind: Some(kind),
            variations,
            tags: items(&self.tags),
            client_side: self.client_side,
            temporary: self.temporary,
            environments,
            comment: None,
        })
    }

    /// Takes the domain's field problems, each beside its field of the form; returns those
    /// that belong to none.
    fn take_errors(&mut self, fields: &Map<String, Value>) -> Vec<String> {
        let mut unplaced = Vec::new();
        for (path, problem) in fields {
            let problem = problem.as_str().unwrap_or_default().to_owned();
            let field = match path.split_once(['.', '[']) {
                _ if path.starts_with("environments.") => {
                    let rest = &path["environments.".len()..];
                    match self
                        .envs
                        .iter()
                        .find(|e| rest == e.key || rest.starts_with(&format!("{}.", e.key)))
                    {
                        Some(e) => {
                            let sub = &rest[e.key.len()..];
                            if sub.starts_with(".fallthrough") {
                                format!("serve.{}", e.key)
                            } else if sub.starts_with(".off_variation") {
                                format!("off.{}", e.key)
                            } else {
                                format!("state.{}", e.key)
                            }
                        }
                        None => {
                            unplaced.push(format!("{path}: {problem}"));
                            continue;
                        }
                    }
                }
                Some((head, _)) => head.to_owned(),
                None => path.clone(),
            };
            if !["key", "name", "description", "type", "variations", "tags"]
                .contains(&field.as_str())
                && !field.contains('.')
            {
                unplaced.push(format!("{path}: {problem}"));
                continue;
            }
            self.errors
                .entry(field)
                .and_modify(|e| {
                    e.push_str("; ");
                    e.push_str(&problem);
                })
                .or_insert(problem);
        }
        unplaced
    }
}

/// One environment's starting configuration as a template's row shows it.
struct Start {
    env: String,
    on: bool,
    text: String,
}

/// The environments a template configures, in the project's order (then any it names
/// that the project no longer has), each with what a new flag starts with there.
fn starts(t: &Template, envs: &[Environment]) -> Vec<Start> {
    let name = |key: &str| {
        envs.iter().find(|e| e.key == key).map_or_else(
            || format!("{key} (no longer in the project)"),
            |e| e.name.clone(),
        )
    };
    let mut keys: Vec<&String> = envs
        .iter()
        .map(|e| &e.key)
        .filter(|k| t.def.environments.contains_key(*k))
        .collect();
    keys.extend(
        t.def
            .environments
            .keys()
            .filter(|k| !envs.iter().any(|e| &&e.key == k)),
    );
    keys.into_iter()
        .filter_map(|key| {
            let c = t.def.environments.get(key)?;
            let serving = match (&c.fallthrough.variation, &c.fallthrough.rollout) {
                (Some(v), _) => v.clone(),
                (None, Some(_)) => "a rollout".to_owned(),
                _ => "—".to_owned(),
            };
            let mut text = if c.enabled {
                format!("serving {serving}")
            } else {
                format!("serving {}", c.off_variation)
            };
            let extra = c.targets.len() + c.rules.len() + c.prerequisites.len();
            if extra > 0 {
                text.push_str(&format!(
                    " ({} targets, {} rules, {} prerequisites)",
                    c.targets.len(),
                    c.rules.len(),
                    c.prerequisites.len()
                ));
            }
            Some(Start {
                env: name(key),
                on: c.enabled,
                text,
            })
        })
        .collect()
}

struct Row {
    t: Template,
    /// `…/templates/{id}`.
    href: String,
    variations: String,
    starts: Vec<Start>,
}

#[derive(askama::Template)]
#[template(path = "templates.html")]
struct TemplatesPage {
    frame: Frame,
    rows: Vec<Row>,
    form: TemplateForm,
    /// The form was refused: open, with why.
    error: Option<String>,
    types: [&'static str; 4],
}

/// The variations of a template in one line (`on, off`).
fn variation_keys(t: &Template) -> String {
    t.def
        .variations
        .iter()
        .map(|v| v.key.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// `GET /ui/{org}/{project}/templates`.
pub(crate) async fn list(
    cx: Ctx,
    Extension(place): Extension<Place>,
    Query(q): Query<Done>,
) -> PageResult {
    let frame = Frame::load(&cx, &place, "templates", "Templates", q.done.as_deref()).await?;
    let form = TemplateForm::blank(&frame.environments);
    render_list(&cx, &place, frame, form, None).await
}

async fn render_list(
    cx: &Ctx,
    place: &Place,
    frame: Frame,
    form: TemplateForm,
    error: Option<String>,
) -> PageResult {
    let (templates, _) = manage::templates::list(&cx.store, &place.project.id, LIMIT, 0).await?;
    let rows = templates
        .into_iter()
        .map(|t| Row {
            href: format!("{}/templates/{}", place.base(), t.id),
            variations: variation_keys(&t),
            starts: starts(&t, &frame.environments),
            t,
        })
        .collect();
    Ok(Page::render_form(
        error.is_some(),
        &TemplatesPage {
            frame,
            rows,
            form,
            error,
            types: ["boolean", "string", "number", "json"],
        },
    ))
}

/// `POST /ui/{org}/{project}/templates`: creates a template; problems come back beside
/// the fields, with what was typed.
pub(crate) async fn create(cx: Ctx, Extension(place): Extension<Place>) -> PageResult {
    let frame = Frame::load(&cx, &place, "templates", "Templates", None).await?;
    let mut form = TemplateForm::read(&cx.form, &frame.environments);
    let result = match form.input() {
        Ok(input) => manage::templates::create(&cx.store, &cx.by, &place.project.id, input).await,
        Err(e) => Err(e),
    };
    let error = match result {
        Ok(_) => {
            return Ok(Page::redirect(format!(
                "{}/templates?done=created",
                place.base()
            )));
        }
        Err(Error::Invalid { fields, message }) => {
            let unplaced = form.take_errors(&fields);
            if unplaced.is_empty() && !fields.is_empty() {
                "The template was not created: see the fields below.".to_owned()
            } else {
                format!("The template was not created: {message}")
            }
        }
        Err(e @ Error::Conflict { .. }) => {
            form.errors.insert("key".into(), e.to_string());
            format!("The template was not created: {e}")
        }
        Err(e) => return Err(e.into()),
    };
    render_list(&cx, &place, frame, form, Some(error)).await
}

#[derive(askama::Template)]
#[template(path = "templates-template.html")]
struct TemplatePage {
    frame: Frame,
    t: Template,
    here: String,
    starts: Vec<Start>,
    /// The template as the API shows it.
    json: String,
    error: Option<String>,
}

/// The template `id` of this project (404 for another project's).
async fn template_here(cx: &Ctx, place: &Place, id: &str) -> Result<Template, Page> {
    let t: Template = manage::get(&cx.store, id).await?;
    if t.project_id != place.project.id {
        return Err(Page::not_found("template"));
    }
    Ok(t)
}

async fn render_template(
    cx: &Ctx,
    place: &Place,
    t: Template,
    error: Option<String>,
    done: Option<&str>,
) -> PageResult {
    let frame = Frame::load(cx, place, "templates", format!("Template {}", t.key), done).await?;
    let json = serde_json::to_string_pretty(&t).unwrap_or_default();
    Ok(Page::render_form(
        error.is_some(),
        &TemplatePage {
            here: format!("{}/templates/{}", place.base(), t.id),
            starts: starts(&t, &frame.environments),
            json,
            frame,
            t,
            error,
        },
    ))
}

/// `GET /ui/{org}/{project}/templates/{template}`.
pub(crate) async fn page(
    cx: Ctx,
    Extension(place): Extension<Place>,
    Path((_, _, id)): Path<(String, String, String)>,
    Query(q): Query<Done>,
) -> PageResult {
    let t = template_here(&cx, &place, &id).await?;
    render_template(&cx, &place, t, None, q.done.as_deref()).await
}

/// `POST /ui/{org}/{project}/templates/{template}/delete`: flags made from it stay.
pub(crate) async fn delete(
    cx: Ctx,
    Extension(place): Extension<Place>,
    Path((_, _, id)): Path<(String, String, String)>,
) -> PageResult {
    let t = template_here(&cx, &place, &id).await?;
    let expected = cx.form.text("version").parse().ok();
    match manage::templates::delete(&cx.store, &cx.by, (&t.id, expected)).await {
        Ok(()) => Ok(Page::redirect(format!(
            "{}/templates?done=deleted",
            place.base()
        ))),
        Err(e @ Error::VersionMismatch { .. }) => {
            let t = template_here(&cx, &place, &id).await?;
            let message = format!(
                "Not deleted: someone changed this template meanwhile ({e}). It is shown as it is now."
            );
            render_template(&cx, &place, t, Some(message), None).await
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(key: &str) -> Environment {
        Environment {
            id: key.into(),
            project_id: "p".into(),
            key: key.into(),
            name: key.into(),
            description: String::new(),
            is_production: false,
            protected: false,
            requires_approval: false,
            ruleset_version: 1,
            version: 1,
            created_at: String::new(),
            updated_at: String::new(),
        }
    }

    #[test]
    fn a_starting_state_defaults_to_the_types_variations() {
        let envs = [env("development"), env("production")];
        let mut form = TemplateForm::blank(&envs);
        form.key = "release".into();
        form.kind = "string".into();
        form.variations = "light = light\ndark = dark\nauto = auto".into();
        form.envs[0].state = "on".into();
        form.envs[1].state = "off".into();
        form.envs[1].off = "light".into();
        let input = form.input().expect("valid");
        let dev = &input.environments["development"];
        assert!(dev.enabled);
        assert_eq!(dev.fallthrough.variation.as_deref(), Some("light"));
        assert_eq!(dev.off_variation, "auto");
        let prod = &input.environments["production"];
        assert!(!prod.enabled);
        assert_eq!(prod.off_variation, "light");

        let mut boolean = TemplateForm::blank(&envs);
        boolean.envs[0].state = "on".into();
        let input = boolean.input().expect("valid");
        assert_eq!(input.environments.len(), 1);
        let dev = &input.environments["development"];
        assert_eq!(
            (
                dev.fallthrough.variation.as_deref(),
                dev.off_variation.as_str()
            ),
            (Some("on"), "off")
        );
    }

    #[test]
    fn problems_are_shown_beside_their_fields() {
        let mut form = TemplateForm::blank(&[env("development"), env("dev")]);
        let mut fields = Map::new();
        fields.insert(
            "environments.development.fallthrough.variation".into(),
            json!("no variation 'purple'"),
        );
        fields.insert(
            "environments.dev.off_variation".into(),
            json!("no variation 'x'"),
        );
        fields.insert("environments.gone".into(), json!("no environment 'gone'"));
        fields.insert("tags[1]".into(), json!("too long"));
        fields.insert("comment".into(), json!("too long"));
        let unplaced = form.take_errors(&fields);
        assert_eq!(
            form.env_error("serve", "development"),
            "no variation 'purple'"
        );
        assert_eq!(form.env_error("off", "dev"), "no variation 'x'");
        assert_eq!(form.env_error("serve", "dev"), "");
        assert_eq!(form.error("tags"), "too long");
        assert_eq!(
            unplaced,
            [
                "comment: too long",
                "environments.gone: no environment 'gone'"
            ]
        );
    }
}
