//! The audit trail: what segment mutations record, the list filters, and the hash chain's
//! verification, including after tampering with the database behind the server's back.

use reqwest::Method;
use serde_json::{Value, json};
use vexil_core::time::{format_rfc3339, parse_rfc3339};

use crate::{TestApp, both_backends, error_of, json_ok, json_status};

/// Every entry, newest first.
async fn all_entries(app: &TestApp) -> Vec<Value> {
    let page = json_ok(app.get("/api/v1/audit-logs?limit=500").await).await;
    page["items"].as_array().expect("items").clone()
}

/// The id of the entry with sequence number `seq`.
async fn id_at_seq(app: &TestApp, seq: i64) -> String {
    let entries = all_entries(app).await;
    let entry = entries
        .iter()
        .find(|e| e["seq"] == seq)
        .expect("entry with seq");
    entry["id"].as_str().expect("id").to_owned()
}

/// Creates a few segments, so that the chain holds more than the first-start entries.
async fn some_changes(app: &TestApp) {
    let project = app.default_project().await;
    for key in ["one", "two", "three"] {
        let path = format!("/api/v1/projects/{project}/segments");
        json_status(app.post(&path, json!({"key": key})).await, 201).await;
    }
}

async fn verify(app: &TestApp) -> Value {
    json_ok(app.get("/api/v1/audit-logs/verify").await).await
}

both_backends! {
    async fn segment_mutations_leave_complete_entries(app) {
        let project = app.default_project().await;
        let send = |method: Method, path: String, request_id: &'static str| {
            app.request(method, &path).header("x-request-id", request_id).header("user-agent", "audit-test/1.0")
        };
        let created = json_status(send(Method::POST, format!("/api/v1/projects/{project}/segments"), "req-create")
            .json(&json!({"key": "vip", "included": ["u1"], "comment": "launch list"})).send().await.unwrap(), 201).await;
        let id = created["id"].as_str().unwrap().to_owned();
        let updated = json_ok(send(Method::PATCH, format!("/api/v1/segments/{id}"), "req-update")
            .json(&json!({"included": ["u1", "u2"], "comment": "add u2"})).send().await.unwrap()).await;
        let deleted = send(Method::DELETE, format!("/api/v1/segments/{id}"), "req-delete").send().await.unwrap();
        assert_eq!(deleted.status(), 204);

        let page = json_ok(app.get(&format!("/api/v1/audit-logs?resource_type=segment&resource_id={id}")).await).await;
        assert_eq!(page["total"], 3);
        let items = page["items"].as_array().unwrap();
        let actions: Vec<&str> = items.iter().map(|e| e["action"].as_str().unwrap()).collect();
        assert_eq!(actions, ["segment.delete", "segment.update", "segment.create"]);
        let (delete, update, create) = (&items[0], &items[1], &items[2]);
        assert_eq!((create["before"].clone(), create["after"].clone()), (Value::Null, created.clone()));
        assert_eq!((update["before"].clone(), update["after"].clone()), (created.clone(), updated.clone()));
        assert_eq!((delete["before"].clone(), delete["after"].clone()), (updated, Value::Null));
        assert_eq!((create["comment"].clone(), update["comment"].clone(), delete["comment"].clone()),
            (json!("launch list"), json!("add u2"), Value::Null));
        let request_ids: Vec<&Value> = items.iter().map(|e| &e["request_id"]).collect();
        assert_eq!(request_ids, [&json!("req-delete"), &json!("req-update"), &json!("req-create")]);
        for e in items {
            assert_eq!(e["actor"]["name"], "bootstrap", "{e}");
            assert!(e["actor"]["id"].is_string(), "{e}");
            assert_eq!((e["ip"].clone(), e["user_agent"].clone()), (json!("127.0.0.1"), json!("audit-test/1.0")), "{e}");
            assert_eq!((e["resource_type"].clone(), e["resource_id"].clone()), (json!("segment"), json!(id)), "{e}");
            assert_eq!(e["hash"].as_str().map(str::len), Some(64), "{e}");
        }
        // Each entry links to the one before it.
        assert_eq!(delete["prev_hash"], update["hash"]);
        assert_eq!(update["prev_hash"], create["hash"]);

        // One entry by id; `verify` is a route of its own, not an id.
        let one = json_ok(app.get(&format!("/api/v1/audit-logs/{}", update["id"].as_str().unwrap())).await).await;
        assert_eq!(&one, update);
        error_of(app.get("/api/v1/audit-logs/no-such-entry").await, 404, "not_found").await;
        assert_eq!(verify(&app).await["valid"], true);
        // Entries survive a restart.
        app.restart().await;
        assert_eq!(json_ok(app.get(&format!("/api/v1/audit-logs?resource_id={id}")).await).await["total"], 3);
    }

    async fn list_filters_and_pagination(app) {
        some_changes(&app).await;
        let all = all_entries(&app).await;
        // First start: organization, project, two environments, the bootstrap token.
        assert_eq!(all.len(), 5 + 3);
        let seqs: Vec<i64> = all.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
        assert_eq!(seqs, (1..=8).rev().collect::<Vec<_>>(), "newest first");

        let app_ref = &app;
        let q = |query: &'static str| async move { json_ok(app_ref.get(&format!("/api/v1/audit-logs?{query}")).await).await };
        assert_eq!(q("action=segment.create").await["total"], 3);
        assert_eq!(q("resource_type=environment").await["total"], 2);
        assert_eq!(q("actor_id=system").await["total"], 5);
        let actor = all[0]["actor"]["id"].as_str().unwrap().to_owned();
        let mine = json_ok(app.request(Method::GET, "/api/v1/audit-logs").query(&[("actor_id", &actor)]).send().await.unwrap()).await;
        assert_eq!(mine["total"], 3);
        assert_eq!(q("action=segment.create&resource_type=project").await["total"], 0);

        let page = q("limit=2&offset=1").await;
        assert_eq!((page["total"].clone(), page["limit"].clone(), page["offset"].clone()), (json!(8), json!(2), json!(1)));
        let page_seqs: Vec<&Value> = page["items"].as_array().unwrap().iter().map(|e| &e["seq"]).collect();
        assert_eq!(page_seqs, [&json!(7), &json!(6)]);
        error_of(app.get("/api/v1/audit-logs?limit=0").await, 400, "invalid_request").await;
        error_of(app.get("/api/v1/audit-logs?colour=red").await, 400, "invalid_request").await;

        // Time windows: `since` inclusive, `until` exclusive, any offset accepted.
        let newest = all[0]["at"].as_str().unwrap();
        let ms = parse_rfc3339(newest).unwrap();
        let count = |pred: &dyn Fn(&str) -> bool| all.iter().filter(|e| pred(e["at"].as_str().unwrap())).count();
        let window = |params: Vec<(&'static str, String)>| {
            let request = app.request(Method::GET, "/api/v1/audit-logs").query(&params);
            async move { json_ok(request.send().await.unwrap()).await["total"].as_u64().unwrap() as usize }
        };
        assert_eq!(window(vec![("since", newest.to_owned())]).await, count(&|at| at >= newest));
        assert_eq!(window(vec![("until", newest.to_owned())]).await, count(&|at| at < newest));
        // The same instant one hour ahead of UTC: textually later, so only normalization finds it.
        let shifted = format_rfc3339(ms + 3_600_000).replace('Z', "+01:00");
        assert_eq!(window(vec![("since", shifted)]).await, count(&|at| at >= newest));
        let (old, future) = ("2000-01-01T00:00:00Z".to_owned(), format_rfc3339(ms + 86_400_000));
        assert_eq!(window(vec![("since", old.clone()), ("until", future.clone())]).await, 8);
        assert_eq!(window(vec![("since", future)]).await, 0);
        assert_eq!(window(vec![("until", old)]).await, 0);
        let err = error_of(app.get("/api/v1/audit-logs?since=yesterday").await, 400, "invalid_request").await;
        assert!(err["details"]["fields"]["since"].is_string(), "{err}");
        error_of(app.get("/api/v1/audit-logs?until=2026-02-30T00:00:00Z").await, 400, "invalid_request").await;

        error_of(app.anonymous(Method::GET, "/api/v1/audit-logs").send().await.unwrap(), 401, "unauthorized").await;
        error_of(app.anonymous(Method::GET, "/api/v1/audit-logs/verify").send().await.unwrap(), 401, "unauthorized").await;
    }

    async fn verify_accepts_an_untouched_chain(app) {
        let fresh = verify(&app).await;
        assert_eq!(fresh, json!({"valid": true, "entries": 5, "first_broken": null, "head_hash": all_entries(&app).await[0]["hash"]}));
        some_changes(&app).await;
        // A float that serde_json does not parse back bit for bit must not look like tampering.
        let project = app.default_project().await;
        let body = r#"{"key": "tiny", "rules": [{"clauses": [{"attribute": "score", "op": "lt", "values": [1.079907802215119e-66]}]}]}"#;
        let r = app.request(Method::POST, &format!("/api/v1/projects/{project}/segments"))
            .header("content-type", "application/json").body(body).send().await.unwrap();
        json_status(r, 201).await;
        let v = verify(&app).await;
        assert_eq!((v["valid"].clone(), v["entries"].clone(), v["first_broken"].clone()), (json!(true), json!(9), Value::Null));
        assert_eq!(v["head_hash"], all_entries(&app).await[0]["hash"]);
    }

    async fn verify_finds_an_edited_entry(app) {
        some_changes(&app).await;
        let third = id_at_seq(&app, 3).await;
        app.raw_sql("UPDATE audit_log SET comment = 'forged' WHERE seq = 3").await;
        let v = verify(&app).await;
        assert_eq!((v["valid"].clone(), v["first_broken"].clone(), v["entries"].clone()), (json!(false), json!(third), json!(3)), "{v}");
        // Writes go on (the chain continues from its head); the break stays visible.
        json_status(app.post(&format!("/api/v1/projects/{}/segments", app.default_project().await), json!({"key": "later"})).await, 201).await;
        assert_eq!(verify(&app).await["first_broken"], json!(third));
    }

    async fn verify_finds_a_deleted_entry(app) {
        some_changes(&app).await;
        let fourth = id_at_seq(&app, 4).await;
        app.raw_sql("DELETE FROM audit_log WHERE seq = 3").await;
        let v = verify(&app).await;
        assert_eq!((v["valid"].clone(), v["first_broken"].clone(), v["entries"].clone()), (json!(false), json!(fourth), json!(3)), "{v}");
    }
}

both_backends! {
    async fn a_flags_history_includes_its_configuration_changes(app) {
        let project = app.default_project().await;
        let production = app.environment(&project, "production").await;
        let flag = crate::json_status(app.post(&format!("/api/v1/projects/{project}/feature-flags"),
            serde_json::json!({"key": "history"})).await, 201).await;
        let id = flag["id"].as_str().unwrap();
        crate::json_ok(app.patch(&format!("/api/v1/flags/{id}/environments/{production}/config"),
            serde_json::json!({"enabled": true, "comment": "launch"})).await).await;
        let log = crate::json_ok(app.get(&format!("/api/v1/audit-logs?resource_id={id}")).await).await;
        let actions: Vec<_> = log["items"].as_array().unwrap().iter()
            .map(|e| (e["action"].as_str().unwrap().to_owned(), e["comment"].clone())).collect();
        assert_eq!(actions, vec![
            ("flag_config.update".to_owned(), serde_json::json!("launch")),
            ("flag.create".to_owned(), serde_json::Value::Null),
        ]);
        assert_eq!(log["items"][0]["after"]["environment_id"], production.as_str());
    }
}
