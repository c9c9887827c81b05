//! flagd's evaluation protocol over gRPC (`--grpc-listen`), driven by a tonic client
//! generated from the same protos: the six resolves in `flagd.evaluation.v1` and `v2`,
//! reasons and metadata, targeting, statuses (NOT_FOUND, INVALID_ARGUMENT,
//! UNAUTHENTICATED), the default key and its revocation, malformed key metadata,
//! client-key visibility, `EventStream` (ready, changes after a toggle over HTTP, deletions
//! a client key hears of, the end at revocation and at shutdown), and the listener's bounds
//! (silent connections closed, shutdown bounded).

use std::collections::HashMap;
use std::time::Duration;

use prost_types::value::Kind;
use prost_types::{Struct, Value as ProtoValue};
use serde_json::{Value, json};
use tonic::transport::Channel;
use tonic::{Code, Request, Status, Streaming};

use crate::flags::{config_path, create_flag, id};
use crate::{Backend, TestApp, json_ok, json_status};

#[allow(unreachable_pub, clippy::all, clippy::pedantic)]
mod v1 {
    include!(concat!(env!("OUT_DIR"), "/client/flagd.evaluation.v1.rs"));
}

#[allow(unreachable_pub, clippy::all, clippy::pedantic)]
mod v2 {
    include!(concat!(env!("OUT_DIR"), "/client/flagd.evaluation.v2.rs"));
}

/// A test server with gRPC on a free port.
async fn spawn(backend: Backend) -> Option<TestApp> {
    TestApp::spawn_with(backend, |c| {
        c.grpc_listen = Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
    })
    .await
}

async fn channel(app: &TestApp) -> Channel {
    let addr = app.grpc_addr.expect("gRPC is listening");
    Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .expect("gRPC connects")
}

/// `message` with `authorization: Bearer <key>` metadata (none for `None`).
fn authed<T>(key: Option<&str>, message: T) -> Request<T> {
    let mut request = Request::new(message);
    if let Some(key) = key {
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {key}").parse().unwrap());
    }
    request
}

/// A JSON object as a `Struct` (numbers as doubles, as every flagd provider sends them).
fn to_struct(v: Value) -> Struct {
    fn value(v: Value) -> ProtoValue {
        let kind = match v {
            Value::Null => Kind::NullValue(0),
            Value::Bool(b) => Kind::BoolValue(b),
            Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap()),
            Value::String(s) => Kind::StringValue(s),
            Value::Array(items) => Kind::ListValue(prost_types::ListValue {
                values: items.into_iter().map(value).collect(),
            }),
            Value::Object(_) => Kind::StructValue(to_struct(v)),
        };
        ProtoValue { kind: Some(kind) }
    }
    let Value::Object(map) = v else {
        panic!("not an object")
    };
    Struct {
        fields: map.into_iter().map(|(k, v)| (k, value(v))).collect(),
    }
}

/// A `Struct` as JSON (whole doubles as integers, for readable assertions).
fn to_json(s: &Struct) -> Value {
    fn value(v: &ProtoValue) -> Value {
        match &v.kind {
            None | Some(Kind::NullValue(_)) => Value::Null,
            Some(Kind::BoolValue(b)) => json!(b),
            Some(Kind::NumberValue(n)) if n.fract() == 0.0 => json!(*n as i64),
            Some(Kind::NumberValue(n)) => json!(n),
            Some(Kind::StringValue(s)) => json!(s),
            Some(Kind::ListValue(l)) => Value::Array(l.values.iter().map(value).collect()),
            Some(Kind::StructValue(s)) => to_json(s),
        }
    }
    Value::Object(
        s.fields
            .iter()
            .map(|(k, v)| (k.clone(), value(v)))
            .collect(),
    )
}

/// The default project's production environment with flags of every type:
/// `(project, environment, server key, client key, flag ids by key)`.
struct Fixture {
    project: String,
    env: String,
    server: String,
    client: String,
    ids: HashMap<&'static str, String>,
}

async fn setup(app: &TestApp) -> Fixture {
    let project = app.default_project().await;
    let env = app.environment(&project, "production").await;
    let flags: [(&str, Value, Value); 7] = [
        (
            "banner",
            json!({"client_side": true}),
            json!({"enabled": true,
            "rules": [{"id": "staff", "clauses": [{"attribute": "email", "op": "ends_with", "values": ["@acme.com"]}], "serve": {"variation": "on"}}],
            "fallthrough": {"variation": "off"}}),
        ),
        (
            "colour",
            json!({"type": "string", "client_side": true,
            "variations": [{"key": "red", "value": "#f00"}, {"key": "blue", "value": "#00f"}]}),
            json!({"enabled": true, "fallthrough": {"variation": "blue"}}),
        ),
        (
            "limit",
            json!({"type": "number", "variations": [{"key": "int", "value": 42}, {"key": "float", "value": 3.5}]}),
            json!({"enabled": true, "targets": [{"variation": "float", "values": ["u-float"]}], "fallthrough": {"variation": "int"}}),
        ),
        (
            "settings",
            json!({"type": "json", "variations": [{"key": "v1", "value": {"retries": 3, "nested": {"tags": ["a", "b"]}}}]}),
            json!({"enabled": true}),
        ),
        (
            "list",
            json!({"type": "json", "variations": [{"key": "v1", "value": [1, 2]}]}),
            json!({"enabled": true}),
        ),
        (
            "ramp",
            json!({}),
            json!({"enabled": true, "fallthrough": {"rollout": {"variations": [
                {"variation": "on", "weight": 50000}, {"variation": "off", "weight": 50000}]}}}),
        ),
        (
            "secret",
            json!({"client_side": false}),
            json!({"enabled": true}),
        ),
    ];
    let mut ids = HashMap::new();
    for (key, mut body, config) in flags {
        body["key"] = json!(key);
        let flag = id(&create_flag(app, &project, body).await);
        json_ok(app.patch(&config_path(&flag, &env), config).await).await;
        ids.insert(key, flag);
    }
    Fixture {
        server: app.api_key(&project, &env, "server").await,
        client: app.api_key(&project, &env, "client").await,
        project,
        env,
        ids,
    }
}

fn code<T: std::fmt::Debug>(result: Result<T, Status>) -> Code {
    result.expect_err("an error status").code()
}

/// The same checks against protocol version `$v`; `$get` reads a response's `value` or
/// `variant` (plain in v1, optional in v2).
macro_rules! resolves_in {
    ($name:ident, $v:ident, $get:expr) => {
        async fn $name(app: &TestApp, f: &Fixture) {
            use $v::service_client::ServiceClient;
            let mut c = ServiceClient::new(channel(app).await);
            let key = Some(f.server.as_str());
            let staff = to_struct(json!({"targetingKey": "u-2", "email": "bob@acme.com"}));
            let user = to_struct(json!({"targetingKey": "u-1", "email": "ann@example.com"}));

            let b = c.resolve_boolean(authed(key, $v::ResolveBooleanRequest {
                flag_key: "banner".into(), context: Some(staff.clone()) })).await.unwrap().into_inner();
            assert_eq!(($get(b.value), b.reason.as_str(), $get(b.variant).as_str()), (true, "TARGETING_MATCH", "on"));
            assert_eq!(to_json(b.metadata.as_ref().unwrap())["ruleId"], "staff");
            assert_eq!(to_json(b.metadata.as_ref().unwrap())["flagVersion"], 2);
            assert!(to_json(b.metadata.as_ref().unwrap())["environmentVersion"].is_u64());
            let b = c.resolve_boolean(authed(key, $v::ResolveBooleanRequest {
                flag_key: "banner".into(), context: Some(user.clone()) })).await.unwrap().into_inner();
            assert_eq!(($get(b.value), b.reason.as_str()), (false, "DEFAULT"));

            let s = c.resolve_string(authed(key, $v::ResolveStringRequest {
                flag_key: "colour".into(), context: None })).await.unwrap().into_inner();
            assert_eq!(($get(s.value).as_str(), s.reason.as_str(), $get(s.variant).as_str()), ("#00f", "STATIC", "blue"));

            let i = c.resolve_int(authed(key, $v::ResolveIntRequest {
                flag_key: "limit".into(), context: Some(user.clone()) })).await.unwrap().into_inner();
            assert_eq!(($get(i.value), $get(i.variant).as_str()), (42, "int"));
            let x = c.resolve_float(authed(key, $v::ResolveFloatRequest {
                flag_key: "limit".into(), context: Some(user.clone()) })).await.unwrap().into_inner();
            assert_eq!($get(x.value), 42.0);
            let float_user = to_struct(json!({"targetingKey": "u-float"}));
            let x = c.resolve_float(authed(key, $v::ResolveFloatRequest {
                flag_key: "limit".into(), context: Some(float_user.clone()) })).await.unwrap().into_inner();
            assert_eq!(($get(x.value), x.reason.as_str()), (3.5, "TARGETING_MATCH"));
            // 3.5 is no integer: flagd's TYPE_MISMATCH.
            assert_eq!(code(c.resolve_int(authed(key, $v::ResolveIntRequest {
                flag_key: "limit".into(), context: Some(float_user) })).await), Code::InvalidArgument);

            let o = c.resolve_object(authed(key, $v::ResolveObjectRequest {
                flag_key: "settings".into(), context: None })).await.unwrap().into_inner();
            assert_eq!(to_json(o.value.as_ref().unwrap()), json!({"retries": 3, "nested": {"tags": ["a", "b"]}}));
            assert_eq!(o.reason, "STATIC");
            // A JSON value that is not an object cannot travel as a Struct.
            assert_eq!(code(c.resolve_object(authed(key, $v::ResolveObjectRequest {
                flag_key: "list".into(), context: None })).await), Code::InvalidArgument);

            // Type mismatches, a missing flag, a split without the attribute it splits by.
            assert_eq!(code(c.resolve_boolean(authed(key, $v::ResolveBooleanRequest {
                flag_key: "colour".into(), context: None })).await), Code::InvalidArgument);
            assert_eq!(code(c.resolve_string(authed(key, $v::ResolveStringRequest {
                flag_key: "banner".into(), context: None })).await), Code::InvalidArgument);
            assert_eq!(code(c.resolve_boolean(authed(key, $v::ResolveBooleanRequest {
                flag_key: "nope".into(), context: None })).await), Code::NotFound);
            let r = c.resolve_boolean(authed(key, $v::ResolveBooleanRequest {
                flag_key: "ramp".into(), context: Some(to_struct(json!({"email": "x@y.z"}))) })).await;
            assert_eq!(code(r), Code::InvalidArgument);
            let r = c.resolve_boolean(authed(key, $v::ResolveBooleanRequest {
                flag_key: "ramp".into(), context: Some(to_struct(json!({"targetingKey": "u-7"}))) })).await.unwrap().into_inner();
            assert_eq!(r.reason, "SPLIT");

            let all = c.resolve_all(authed(key, $v::ResolveAllRequest { context: Some(staff) }))
                .await.unwrap().into_inner();
            let mut keys: Vec<_> = all.flags.keys().cloned().collect();
            keys.sort();
            // `list` has no AnyFlag field; `ramp` splits by a targeting key it has.
            assert_eq!(keys, ["banner", "colour", "limit", "ramp", "secret", "settings"]);
            use $v::any_flag::Value as Any;
            assert_eq!(all.flags["banner"].value, Some(Any::BoolValue(true)));
            assert_eq!(all.flags["banner"].reason, "TARGETING_MATCH");
            assert_eq!(all.flags["limit"].value, Some(Any::DoubleValue(42.0)));
            assert_eq!(all.flags["colour"].value, Some(Any::StringValue("#00f".into())));
            assert!(matches!(&all.flags["settings"].value, Some(Any::ObjectValue(s)) if to_json(s)["retries"] == 3));
            assert!(to_json(all.metadata.as_ref().unwrap())["environmentVersion"].is_u64());
        }
    };
}

resolves_in!(resolves_v1, v1, std::convert::identity);
resolves_in!(resolves_v2, v2, |v: Option<_>| v
    .expect("v2 sets every value and variant"));

/// The next event that is not a `keep_alive`, within `wait`; `None` when the stream ended.
async fn next_event(
    stream: &mut Streaming<v2::EventStreamResponse>,
    wait: Duration,
) -> Option<v2::EventStreamResponse> {
    loop {
        let message = tokio::time::timeout(wait, stream.message())
            .await
            .expect("an event in time")
            .expect("the stream ends without an error")?;
        if message.r#type != "keep_alive" {
            return Some(message);
        }
    }
}

/// The keys of a `configuration_change`'s `data.flags`, sorted.
fn changed_flags(event: &v2::EventStreamResponse) -> Vec<String> {
    assert_eq!(event.r#type, "configuration_change");
    let data = to_json(event.data.as_ref().expect("data"));
    let mut keys: Vec<String> = data["flags"]
        .as_object()
        .expect("data.flags")
        .keys()
        .cloned()
        .collect();
    keys.sort();
    keys
}

async fn both(backend: Backend, test: impl AsyncFnOnce(TestApp)) {
    if let Some(app) = spawn(backend).await {
        test(app).await;
    }
}

async fn resolves_every_type(app: TestApp) {
    let f = setup(&app).await;
    resolves_v1(&app, &f).await;
    resolves_v2(&app, &f).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolves_every_type_in_v1_and_v2_sqlite() {
    both(Backend::Sqlite, resolves_every_type).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolves_every_type_in_v1_and_v2_postgres() {
    both(Backend::Postgres, resolves_every_type).await;
}

async fn keys_and_visibility(mut app: TestApp) {
    let f = setup(&app).await;
    let mut c = v2::service_client::ServiceClient::new(channel(&app).await);
    let ask = |key: Option<&str>, flag: &str| {
        authed(
            key,
            v2::ResolveBooleanRequest {
                flag_key: flag.into(),
                context: None,
            },
        )
    };
    // No key and no default key; an unknown key.
    assert_eq!(
        code(c.resolve_boolean(ask(None, "banner")).await),
        Code::Unauthenticated
    );
    assert_eq!(
        code(c.resolve_boolean(ask(Some("vx_srv_nope"), "banner")).await),
        Code::Unauthenticated
    );
    let mut events = v1::service_client::ServiceClient::new(channel(&app).await);
    let refused = events
        .event_stream(authed(None, v1::EventStreamRequest {}))
        .await;
    assert_eq!(code(refused), Code::Unauthenticated);

    // Messages over 1 MiB are refused before they are read.
    let huge = to_struct(json!({"targetingKey": "u", "blob": "x".repeat(1 << 20)}));
    let r = c
        .resolve_boolean(authed(
            Some(&f.server),
            v2::ResolveBooleanRequest {
                flag_key: "banner".into(),
                context: Some(huge),
            },
        ))
        .await;
    assert_eq!(code(r), Code::OutOfRange);

    // A client key sees client-side flags only; anything else reads as missing.
    let client = Some(f.client.as_str());
    let banner = c.resolve_boolean(ask(client, "banner")).await.unwrap();
    assert_eq!(banner.into_inner().value, Some(false));
    assert_eq!(
        code(c.resolve_boolean(ask(client, "secret")).await),
        Code::NotFound
    );
    let all = c
        .resolve_all(authed(client, v2::ResolveAllRequest { context: None }))
        .await
        .unwrap()
        .into_inner();
    let mut keys: Vec<_> = all.flags.keys().cloned().collect();
    keys.sort();
    assert_eq!(keys, ["banner", "colour"]);
    // Client keys do not learn which rule matched.
    let staff = to_struct(json!({"targetingKey": "u-2", "email": "bob@acme.com"}));
    let b = c
        .resolve_boolean(authed(
            client,
            v2::ResolveBooleanRequest {
                flag_key: "banner".into(),
                context: Some(staff),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(b.reason, "TARGETING_MATCH");
    assert!(
        to_json(b.metadata.as_ref().unwrap())
            .get("ruleId")
            .is_none()
    );

    // The default key: callers without metadata evaluate in its environment with its kind;
    // a presented key still wins; revoking the default key stops them at once.
    let created = json_status(
        app.post(
            &format!("/api/v1/projects/{}/api-keys", f.project),
            json!({"name": "flagd default", "type": "client", "environment_id": f.env}),
        )
        .await,
        201,
    )
    .await;
    let default_secret = created["key"].as_str().unwrap().to_owned();
    app.grpc_default_key = Some(default_secret);
    app.restart().await;
    let mut c = v2::service_client::ServiceClient::new(channel(&app).await);
    let banner = c.resolve_boolean(ask(None, "banner")).await.unwrap();
    assert_eq!(banner.into_inner().value, Some(false));
    assert_eq!(
        code(c.resolve_boolean(ask(None, "secret")).await),
        Code::NotFound
    );
    let secret = c
        .resolve_boolean(ask(Some(&f.server), "secret"))
        .await
        .unwrap();
    assert_eq!(secret.into_inner().value, Some(true));
    assert_eq!(
        code(c.resolve_boolean(ask(Some("vx_srv_nope"), "banner")).await),
        Code::Unauthenticated
    );
    // Key metadata that cannot be read as a key is refused, not taken for no key.
    let malformed = |name: &'static str, value: String| {
        let mut request = ask(None, "banner");
        request.metadata_mut().insert(name, value.parse().unwrap());
        request
    };
    for (name, value) in [
        ("authorization", format!("Basic {}", f.server)),
        ("authorization", format!("Bearer {}", "x".repeat(300))),
        ("authorization", "Bearer  ".to_owned()),
        ("x-api-key", "y".repeat(300)),
    ] {
        assert_eq!(
            code(c.resolve_boolean(malformed(name, value)).await),
            Code::Unauthenticated,
            "{name}"
        );
    }
    let mut by_header = ask(None, "secret");
    by_header
        .metadata_mut()
        .insert("x-api-key", f.server.parse().unwrap());
    let by_header = c.resolve_boolean(by_header).await.unwrap();
    assert_eq!(by_header.into_inner().value, Some(true));
    json_ok(
        app.patch(
            &format!("/api/v1/api-keys/{}/revoke", id(&created)),
            json!({}),
        )
        .await,
    )
    .await;
    assert_eq!(
        code(c.resolve_boolean(ask(None, "banner")).await),
        Code::Unauthenticated
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_default_key_and_client_visibility_sqlite() {
    both(Backend::Sqlite, keys_and_visibility).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_default_key_and_client_visibility_postgres() {
    both(Backend::Postgres, keys_and_visibility).await;
}

async fn event_stream(mut app: TestApp) {
    let f = setup(&app).await;
    let wait = Duration::from_secs(10);
    let connect = async |key: &str| {
        v2::service_client::ServiceClient::new(channel(&app).await)
            .event_stream(authed(Some(key), v2::EventStreamRequest {}))
            .await
            .expect("the stream opens")
            .into_inner()
    };
    let mut server = connect(&f.server).await;
    let mut client = connect(&f.client).await;
    for stream in [&mut server, &mut client] {
        let ready = next_event(stream, wait).await.expect("provider_ready");
        assert_eq!(ready.r#type, "provider_ready");
    }
    // The v1 service streams too.
    let mut old = v1::service_client::ServiceClient::new(channel(&app).await)
        .event_stream(authed(Some(&f.server), v1::EventStreamRequest {}))
        .await
        .unwrap()
        .into_inner();
    let ready = tokio::time::timeout(wait, old.message())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ready.unwrap().r#type, "provider_ready");

    // A server-side flag changes: server keys hear of it, client keys do not.
    let secret = config_path(&f.ids["secret"], &f.env);
    json_ok(app.patch(&secret, json!({"enabled": false})).await).await;
    let banner = config_path(&f.ids["banner"], &f.env);
    json_ok(app.patch(&banner, json!({"enabled": false})).await).await;
    let first = next_event(&mut server, wait).await.unwrap();
    assert_eq!(changed_flags(&first), ["secret"]);
    assert_eq!(
        to_json(first.data.as_ref().unwrap())["flags"]["secret"],
        json!({"type": "update"})
    );
    let second = next_event(&mut server, wait).await.unwrap();
    assert_eq!(changed_flags(&second), ["banner"]);
    let to_client = next_event(&mut client, wait).await.unwrap();
    assert_eq!(changed_flags(&to_client), ["banner"]);

    // A segment change may change any flag: the change names them all.
    let segment = json!({"key": "staff"});
    json_status(
        app.post(&format!("/api/v1/projects/{}/segments", f.project), segment)
            .await,
        201,
    )
    .await;
    let everything = next_event(&mut client, wait).await.unwrap();
    assert_eq!(changed_flags(&everything), ["banner", "colour"]);
    let everything = next_event(&mut server, wait).await.unwrap();
    assert_eq!(
        changed_flags(&everything),
        [
            "banner", "colour", "limit", "list", "ramp", "secret", "settings"
        ]
    );

    // Shutdown ends every stream, and the server finishes draining.
    tokio::time::timeout(Duration::from_secs(15), app.stop())
        .await
        .expect("the server drains with event streams open");
    assert!(next_event(&mut server, wait).await.is_none());
    assert!(next_event(&mut client, wait).await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_stream_ready_changes_and_shutdown_sqlite() {
    both(Backend::Sqlite, event_stream).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_stream_ready_changes_and_shutdown_postgres() {
    both(Backend::Postgres, event_stream).await;
}

async fn client_streams_hear_of_flags_gone(app: TestApp) {
    let f = setup(&app).await;
    let wait = Duration::from_secs(10);
    let created = json_status(
        app.post(
            &format!("/api/v1/projects/{}/api-keys", f.project),
            json!({"name": "browser", "type": "client", "environment_id": f.env}),
        )
        .await,
        201,
    )
    .await;
    let secret = created["key"].as_str().unwrap().to_owned();
    let mut client = v2::service_client::ServiceClient::new(channel(&app).await)
        .event_stream(authed(Some(&secret), v2::EventStreamRequest {}))
        .await
        .expect("the stream opens")
        .into_inner();
    let ready = next_event(&mut client, wait).await.unwrap();
    assert_eq!(ready.r#type, "provider_ready");

    // No longer client-side: the client key is told to drop it.
    let banner = format!("/api/v1/feature-flags/{}", f.ids["banner"]);
    json_ok(app.patch(&banner, json!({"client_side": false})).await).await;
    let gone = next_event(&mut client, wait).await.unwrap();
    assert_eq!(changed_flags(&gone), ["banner"]);
    assert_eq!(
        to_json(gone.data.as_ref().unwrap())["flags"]["banner"],
        json!({"type": "delete"})
    );
    // Archived: the same.
    let colour = format!("/api/v1/feature-flags/{}/archive", f.ids["colour"]);
    json_ok(app.patch(&colour, json!({})).await).await;
    let gone = next_event(&mut client, wait).await.unwrap();
    assert_eq!(
        to_json(gone.data.as_ref().unwrap())["flags"],
        json!({"colour": {"type": "delete"}})
    );
    // A server-side flag it never saw is still not named.
    let secret_flag = format!("/api/v1/feature-flags/{}/archive", f.ids["secret"]);
    json_ok(app.patch(&secret_flag, json!({})).await).await;
    // After a change it may not see, a segment change names what it sees now: nothing.
    json_status(
        app.post(
            &format!("/api/v1/projects/{}/segments", f.project),
            json!({"key": "staff"}),
        )
        .await,
        201,
    )
    .await;
    let everything = next_event(&mut client, wait).await.unwrap();
    assert_eq!(changed_flags(&everything), Vec::<String>::new());

    // Revoked: new calls are refused at once; the open stream ends at its next keep-alive.
    json_ok(
        app.patch(
            &format!("/api/v1/api-keys/{}/revoke", id(&created)),
            json!({}),
        )
        .await,
    )
    .await;
    let ended = next_event(&mut client, Duration::from_secs(25)).await;
    assert!(ended.is_none(), "{ended:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_streams_hear_of_flags_gone_and_end_at_revocation_sqlite() {
    both(Backend::Sqlite, client_streams_hear_of_flags_gone).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_streams_hear_of_flags_gone_and_end_at_revocation_postgres() {
    both(Backend::Postgres, client_streams_hear_of_flags_gone).await;
}

/// The HTTP/2 client preface and an empty SETTINGS frame: a connection that then says
/// nothing more and never closes.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_is_bounded_with_stuck_connections() {
    use tokio::io::AsyncWriteExt;
    let Some(mut app) = spawn(Backend::Sqlite).await else {
        return;
    };
    let addr = app.grpc_addr.expect("gRPC is listening");
    // One that never sends its preface, one that sends it and then nothing.
    let _bare = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut quiet = tokio::net::TcpStream::connect(addr).await.unwrap();
    quiet.write_all(PREFACE).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = std::time::Instant::now();
    tokio::time::timeout(Duration::from_secs(15), app.stop())
        .await
        .expect("shutdown finishes despite connections that never close");
    assert!(started.elapsed() < Duration::from_secs(15));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_that_send_nothing_are_closed() {
    use tokio::io::AsyncReadExt;
    let Some(app) = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.grpc_listen = Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
        c.header_read_timeout = 1;
    })
    .await
    else {
        return;
    };
    let addr = app.grpc_addr.expect("gRPC is listening");
    let mut bare = tokio::net::TcpStream::connect(addr).await.unwrap();
    // The server's SETTINGS may come first; then the connection closes.
    let mut buf = [0u8; 256];
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match bare.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the server closes a silent connection");
    // A real client is still served.
    let f = setup(&app).await;
    let mut c = v2::service_client::ServiceClient::new(channel(&app).await);
    let r = c
        .resolve_boolean(authed(
            Some(&f.server),
            v2::ResolveBooleanRequest {
                flag_key: "secret".into(),
                context: None,
            },
        ))
        .await
        .unwrap();
    assert_eq!(r.into_inner().value, Some(true));
}
