//! flagd's own OpenFeature provider for Python (`openfeature-provider-flagd` from PyPI,
//! unmodified, RPC resolver) evaluating against `vexil serve --grpc-listen`: booleans with
//! a targeting rule, strings, integers, floats, objects, a missing flag (the caller's
//! default with `FLAG_NOT_FOUND`), a type mismatch, and `PROVIDER_CONFIGURATION_CHANGED`
//! naming a flag toggled over HTTP. One run uses `--grpc-default-key` (the provider sends no
//! credentials by default); another sends a client key as `authorization` metadata through
//! gRPC call credentials. Needs `python3` with `venv`; without it the test says it is
//! skipped, unless `VEXIL_REQUIRE_PYTHON=1` (CI), where that is a failure.

use std::fs;
use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::python_sdk::{package_venv, run};
use crate::server::Server;

const TOKEN: &str = "vx_pat_flagd-test-token-0123456789";

/// The provider and everything it installs, pinned.
const PACKAGES: &[&str] = &[
    "openfeature-provider-flagd==0.6.1",
    "openfeature-sdk==0.10.0",
    "openfeature-flagd-api==1.0.0",
    "openfeature-flagd-core==2.0.0",
    "grpcio==1.85.3",
    "protobuf==7.36.2",
    "cachebox==5.2.3",
    "cbor2==5.9.0",
    "mmh3==5.3.1",
    "panzi-json-logic==1.0.1",
    "PyYAML==6.0.4",
    "semver==3.1.2",
    "typing_extensions==4.16.0",
];

/// Evaluates through the provider and prints the results as one JSON line; with `watch`,
/// then prints `waiting`, reads a line (the test has toggled `banner`) and prints the flags
/// that `PROVIDER_CONFIGURATION_CHANGED` named within 15 s.
const SCRIPT: &str = r#"
import json, sys, threading
import grpc
from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from openfeature.event import ProviderEvent
from openfeature.contrib.provider.flagd import FlagdProvider
from openfeature.contrib.provider.flagd.config import ResolverType

port, key, watch = int(sys.argv[1]), sys.argv[2], sys.argv[3] == "watch"
options = {}
if key:
    # Call credentials need a channel that carries them: a local plain-text one here.
    options["channel_credentials"] = grpc.composite_channel_credentials(
        grpc.local_channel_credentials(grpc.LocalConnectionType.LOCAL_TCP),
        grpc.access_token_call_credentials(key),
    )
changed, seen = [], threading.Event()

def on_change(details):
    changed.extend(details.flags_changed or [])
    if "banner" in changed:
        seen.set()

api.add_handler(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED, on_change)
api.set_provider_and_wait(FlagdProvider(
    host="127.0.0.1", port=port, resolver_type=ResolverType.RPC, deadline_ms=5000, **options))
client = api.get_client()
user = EvaluationContext("u-1", {"email": "ann@example.com"})
staff = EvaluationContext("u-2", {"email": "bob@acme.com"})

def detail(d):
    return {"value": d.value, "reason": getattr(d.reason, "value", d.reason),
            "variant": d.variant, "error": d.error_code.value if d.error_code else None}

print(json.dumps({
    "boolean": detail(client.get_boolean_details("banner", True, user)),
    "targeted": detail(client.get_boolean_details("banner", False, staff)),
    "string": detail(client.get_string_details("colour", "none", user)),
    "integer": detail(client.get_integer_details("limit", 0, user)),
    "float": detail(client.get_float_details("ratio", 0.0, user)),
    "object": detail(client.get_object_details("settings", {}, user)),
    "missing": detail(client.get_boolean_details("nope", True, user)),
    "mismatch": detail(client.get_integer_details("colour", 7, user)),
    "secret": detail(client.get_boolean_details("secret", False, user)),
}), flush=True)
if watch:
    print("waiting", flush=True)
    sys.stdin.readline()
    got = seen.wait(15)
    print(json.dumps({"changed": sorted(set(changed)), "seen": got}), flush=True)
api.shutdown()
"#;

/// An authenticated request, answering the JSON body (status checked).
fn call(server: &Server, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut request = reqwest::Client::new()
            .request(method, format!("{}{path}", server.base))
            .bearer_auth(TOKEN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        assert!(status.is_success(), "{path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// The flags of the check in the default project's production environment; returns the
/// environment's id, `banner`'s id, a server key and a client key.
fn create_flags(server: &Server) -> (String, String, String, String) {
    use reqwest::Method;
    let projects = call(server, Method::GET, "/api/v1/projects", None);
    let project = projects["items"][0]["id"].as_str().unwrap().to_owned();
    let envs = call(
        server,
        Method::GET,
        &format!("/api/v1/projects/{project}/environments"),
        None,
    );
    let env = envs["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["key"] == "production")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let flags = [
        (
            json!({"key": "banner", "client_side": true}),
            json!({"enabled": true, "rules": [{"id": "staff", "clauses": [
                {"attribute": "email", "op": "ends_with", "values": ["@acme.com"]}],
                "serve": {"variation": "on"}}], "fallthrough": {"variation": "off"}}),
        ),
        (
            json!({"key": "colour", "type": "string", "client_side": true, "variations": [
                {"key": "red", "value": "#f00"}, {"key": "blue", "value": "#00f"}]}),
            json!({"enabled": true, "fallthrough": {"variation": "blue"}}),
        ),
        (
            json!({"key": "limit", "type": "number", "client_side": true,
                "variations": [{"key": "ten", "value": 10}, {"key": "many", "value": 42}]}),
            json!({"enabled": true, "fallthrough": {"variation": "many"}}),
        ),
        (
            json!({"key": "ratio", "type": "number", "client_side": true,
                "variations": [{"key": "quarter", "value": 0.25}]}),
            json!({"enabled": true}),
        ),
        (
            json!({"key": "settings", "type": "json", "client_side": true, "variations": [
                {"key": "v1", "value": {"retries": 3, "mode": "fast"}}]}),
            json!({"enabled": true}),
        ),
        (json!({"key": "secret"}), json!({"enabled": true})),
    ];
    let mut banner = String::new();
    for (flag, config) in flags {
        let created = call(
            server,
            Method::POST,
            &format!("/api/v1/projects/{project}/feature-flags"),
            Some(flag),
        );
        let id = created["id"].as_str().unwrap().to_owned();
        call(
            server,
            Method::PATCH,
            &format!("/api/v1/flags/{id}/environments/{env}/config"),
            Some(config),
        );
        if created["key"] == "banner" {
            banner = id;
        }
    }
    let key = |kind: &str| {
        let created = call(
            server,
            Method::POST,
            &format!("/api/v1/projects/{project}/api-keys"),
            Some(json!({"name": format!("flagd {kind}"), "type": kind, "environment_id": env})),
        );
        created["key"].as_str().unwrap().to_owned()
    };
    let (server_key, client_key) = (key("server"), key("client"));
    (env, banner, server_key, client_key)
}

/// `(value, reason, variant, error code)` of one result.
fn outcome(results: &Value, name: &str) -> (Value, Value, Value, Value) {
    let r = &results[name];
    (
        r["value"].clone(),
        r["reason"].clone(),
        r["variant"].clone(),
        r["error"].clone(),
    )
}

#[test]
fn flagds_python_provider_evaluates_and_hears_changes() {
    let Some(python) = package_venv("flagd-python-venv", "flagd provider test", PACKAGES) else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("vexil-flagd-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("temp dir");
    let db = format!("sqlite://{}", dir.join("vexil.db").display());

    // First the flags and keys; then the server again, with gRPC and the default key.
    let server = Server::start(&db, &[], &[("VEXIL_BOOTSTRAP_TOKEN", TOKEN)]);
    let (env, banner, server_key, client_key) = create_flags(&server);
    drop(server);
    let grpc_port = free_port().to_string();
    let listen = format!("127.0.0.1:{grpc_port}");
    let server = Server::start(
        &db,
        &["--grpc-listen", &listen],
        &[
            ("VEXIL_BOOTSTRAP_TOKEN", TOKEN),
            ("VEXIL_GRPC_DEFAULT_KEY", &server_key),
        ],
    );

    let mut child = Command::new(&python)
        .args(["-c", SCRIPT, &grpc_port, "", "watch"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python starts");
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut line = || {
        stdout
            .next()
            .expect("a line from the provider script")
            .expect("readable output")
    };
    let results: Value = serde_json::from_str(&line()).expect("results as JSON");
    assert_eq!(
        outcome(&results, "boolean"),
        (json!(false), json!("DEFAULT"), json!("off"), Value::Null)
    );
    assert_eq!(
        outcome(&results, "targeted"),
        (
            json!(true),
            json!("TARGETING_MATCH"),
            json!("on"),
            Value::Null
        )
    );
    assert_eq!(
        outcome(&results, "string"),
        (json!("#00f"), json!("STATIC"), json!("blue"), Value::Null)
    );
    assert_eq!(
        outcome(&results, "integer"),
        (json!(42), json!("STATIC"), json!("many"), Value::Null)
    );
    assert_eq!(
        outcome(&results, "float"),
        (json!(0.25), json!("STATIC"), json!("quarter"), Value::Null)
    );
    let object = &results["object"]["value"];
    assert_eq!(
        (object["retries"].as_f64(), &object["mode"]),
        (Some(3.0), &json!("fast")),
        "{results}"
    );
    assert_eq!(
        (&results["missing"]["value"], &results["missing"]["error"]),
        (&json!(true), &json!("FLAG_NOT_FOUND"))
    );
    assert_eq!(
        (&results["mismatch"]["value"], &results["mismatch"]["error"]),
        (&json!(7), &json!("TYPE_MISMATCH"))
    );
    assert_eq!(
        results["secret"]["value"],
        json!(true),
        "a server key sees it"
    );

    // A change over HTTP reaches the provider's event stream.
    assert_eq!(line(), "waiting");
    call(
        &server,
        reqwest::Method::PATCH,
        &format!("/api/v1/flags/{banner}/environments/{env}/config"),
        Some(json!({"enabled": false})),
    );
    writeln!(child.stdin.as_mut().unwrap(), "go").unwrap();
    let heard: Value = serde_json::from_str(&line()).expect("changes as JSON");
    assert_eq!(heard, json!({"changed": ["banner"], "seen": true}));
    assert!(child.wait().unwrap().success());

    // A key sent as `authorization` metadata wins over the default key: a client key
    // sees client-side flags only.
    let output = run(
        "the flagd provider with a client key",
        Command::new(&python).args(["-c", SCRIPT, &grpc_port, &client_key, "once"]),
    );
    let results: Value = serde_json::from_slice(&output.stdout).expect("results as JSON");
    assert_eq!(
        outcome(&results, "boolean"),
        (json!(false), json!("DISABLED"), json!("off"), Value::Null)
    );
    assert_eq!(
        (&results["secret"]["value"], &results["secret"]["error"]),
        (&json!(false), &json!("FLAG_NOT_FOUND"))
    );
    drop(server);
    let _ = fs::remove_dir_all(dir);
}
