//! The domain layer without HTTP: operations against a fresh SQLite store, as the console
//! and jobs will call them.

use std::sync::Arc;

use serde_json::json;

use super::fields::Patch;
use super::flags::actions::{self, KillSwitch};
use super::flags::{self, NewFlag};
use super::{By, Error, flag_configs};
use crate::audit::Actor;
use crate::store::audit::{self, Filter};
use crate::store::{Store, environments, organizations, projects};

/// A migrated, bootstrapped store in a fresh file, with the ids of organization, project
/// and environments `default`, `development` and `production`.
struct Fixture {
    store: Arc<Store>,
    path: std::path::PathBuf,
    org: String,
    project: String,
    development: String,
    production: String,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.path.display()));
        }
    }
}

async fn fixture() -> Fixture {
    let path = std::env::temp_dir().join(format!("vexil-manage-{}.db", uuid::Uuid::new_v4()));
    let store = Store::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let token = secrecy::SecretString::from("vx_pat_manage-test-token-0123456789");
    crate::bootstrap::run(&store, Some(&token), "admin@localhost")
        .await
        .unwrap();
    let mut conn = store.read().await.unwrap();
    let org = organizations::get_by_key(&mut conn, "default")
        .await
        .unwrap()
        .unwrap();
    let project = projects::get_by_key(&mut conn, &org.id, "default")
        .await
        .unwrap()
        .unwrap();
    let development = environments::get_by_key(&mut conn, &project.id, "development")
        .await
        .unwrap()
        .unwrap()
        .id;
    let production = environments::get_by_key(&mut conn, &project.id, "production")
        .await
        .unwrap()
        .unwrap()
        .id;
    drop(conn);
    Fixture {
        store,
        path,
        org: org.id,
        project: project.id,
        development,
        production,
    }
}

fn by(f: &Fixture) -> By {
    let mut by = By::system();
    by.actor = Actor {
        id: "tester".into(),
        name: "a test".into(),
    };
    by.meta.organization_id = Some(f.org.clone());
    by
}

fn patch(value: serde_json::Value) -> Patch {
    serde_json::from_value(value).unwrap()
}

async fn new_flag(f: &Fixture, key: &str) -> crate::store::flags::Flag {
    let input: NewFlag = serde_json::from_value(json!({"key": key})).unwrap();
    let principal = crate::access::Principal {
        actor: by(f).actor,
        subject: crate::access::Subject::Instance,
        cap: crate::access::Role::Owner,
        token_id: None,
        session_id: None,
    };
    flags::create(&f.store, &principal, &by(f), &f.project, input)
        .await
        .unwrap()
}

async fn entries(f: &Fixture, action: &str) -> Vec<crate::audit::AuditEntry> {
    let mut conn = f.store.read().await.unwrap();
    let filter = Filter {
        action: Some(action.into()),
        ..Filter::default()
    };
    audit::list(&mut conn, &filter, 100, 0).await.unwrap().0
}

#[tokio::test]
async fn configuration_changes_are_validated_versioned_and_audited() {
    let f = fixture().await;
    let flag = new_flag(&f, "checkout").await;
    let at = (flag.id.as_str(), f.development.as_str());

    // A rule serving a variation the flag does not have: nothing is stored, and the
    // problem has a path relative to the configuration.
    let bad = patch(
        json!({"rules": [{"clauses": [{"attribute": "country", "op": "in",
        "values": ["NZ"]}], "serve": {"variation": "nope"}}]}),
    );
    let err = flag_configs::update(&f.store, &by(&f), at, None, &bad)
        .await
        .unwrap_err();
    let Error::Invalid { fields, .. } = err else {
        panic!("expected invalid input, got {err:?}");
    };
    assert!(
        fields.keys().any(|k| k.starts_with("rules[0]")),
        "{fields:?}"
    );
    assert_eq!(
        flag_configs::get(&f.store, at.0, at.1)
            .await
            .unwrap()
            .version,
        1
    );

    // A good change: a new version, a rule id, a revision and one audit entry with the
    // comment.
    let good = patch(json!({"enabled": true, "comment": "launch",
        "rules": [{"clauses": [{"attribute": "country", "op": "in", "values": ["NZ"]}],
                   "serve": {"variation": "on"}}]}));
    let after = flag_configs::update(&f.store, &by(&f), at, Some(1), &good)
        .await
        .unwrap();
    assert_eq!(after.version, 2);
    assert!(after.config.enabled);
    assert!(after.config.rules[0].id.is_some());
    let audited = entries(&f, "flag_config.update").await;
    assert_eq!(audited.len(), 1);
    assert_eq!(audited[0].comment.as_deref(), Some("launch"));
    assert_eq!(audited[0].resource_id, flag.id);
    assert_eq!(audited[0].actor["id"], "tester");
    assert_eq!(audited[0].organization_id.as_deref(), Some(f.org.as_str()));

    // A stale expected version is refused with the current one.
    let err = flag_configs::toggle(&f.store, &by(&f), at, Some(1), None, None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::VersionMismatch { current: 2 }),
        "{err:?}"
    );
    let (revisions, total) = flag_configs::revisions(&f.store, at, 10, 0).await.unwrap();
    assert_eq!((total, revisions[0].version), (2, 2));
}

#[tokio::test]
async fn the_kill_switch_disables_everywhere_in_one_audited_step() {
    let f = fixture().await;
    let flag = new_flag(&f, "widget").await;
    for env in [&f.development, &f.production] {
        let at = (flag.id.as_str(), env.as_str());
        flag_configs::toggle(&f.store, &by(&f), at, None, Some(true), None)
            .await
            .unwrap();
    }
    let kill =
        |reason: &str| -> KillSwitch { serde_json::from_value(json!({"reason": reason})).unwrap() };

    // Stopping is the safe direction: no role beyond the route's editor is asked for,
    // even though production is protected.
    let result = actions::kill_switch(&f.store, &by(&f), &flag.id, kill("errors"))
        .await
        .unwrap();
    assert_eq!(result["changed"], 2);
    for env in [&f.development, &f.production] {
        let config = flag_configs::get(&f.store, &flag.id, env).await.unwrap();
        assert!(!config.config.enabled);
        assert_eq!(config.version, 3);
    }
    let audited = entries(&f, "flag.kill_switch").await;
    assert_eq!(audited.len(), 1);
    assert_eq!(audited[0].comment.as_deref(), Some("errors"));
    assert_eq!(
        audited[0].after.as_ref().unwrap().as_array().unwrap().len(),
        2
    );

    // Pressed again with nothing on: nothing changes, nothing is recorded.
    let again = actions::kill_switch(&f.store, &by(&f), &flag.id, kill("again"))
        .await
        .unwrap();
    assert_eq!(again["changed"], 0);
    assert_eq!(entries(&f, "flag.kill_switch").await.len(), 1);

    // A blank reason is refused before anything happens.
    let err = actions::kill_switch(&f.store, &by(&f), &flag.id, kill("  "))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Invalid { .. }), "{err:?}");
}
