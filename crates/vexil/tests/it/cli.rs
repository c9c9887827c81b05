//! The `vexil` client commands against a real `vexil serve` (one server, one sequential
//! story): a flag created, listed (table and `--json`), toggled on in production, killed,
//! archived and restored; a segment; an API key whose secret works until it is revoked; the
//! audit trail showing all of it; the documented exit codes (3 not found, 4 bad token,
//! 5 duplicate, 1 invalid input with the field's message, 6 server down, 2 usage); shell
//! completions. The token never appears in any output.

use std::net::TcpListener;
use std::process::Command;

use serde_json::Value;

use crate::server::Server;

const BIN: &str = env!("CARGO_BIN_EXE_vexil");
const TOKEN: &str = "cli-test-instance-token-0123456789abcdef";

/// What one run of the binary did.
struct Run {
    code: i32,
    out: String,
    err: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.out)
            .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}\n{}", self.out, self.err))
    }
}

/// Runs `vexil <args>` with `VEXIL_URL` and `VEXIL_TOKEN`; every output is kept in `seen`.
struct Cli {
    url: String,
    token: String,
    seen: String,
}

impl Cli {
    fn run(&mut self, args: &[&str]) -> Run {
        let out = Command::new(BIN)
            .args(args)
            .env("VEXIL_URL", &self.url)
            .env("VEXIL_TOKEN", &self.token)
            .env_remove("VEXIL_PROJECT")
            .output()
            .expect("vexil runs");
        let run = Run {
            code: out.status.code().expect("an exit code"),
            out: String::from_utf8_lossy(&out.stdout).into_owned(),
            err: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        self.seen.push_str(&run.out);
        self.seen.push_str(&run.err);
        run
    }

    /// Runs and expects success.
    fn ok(&mut self, args: &[&str]) -> Run {
        let run = self.run(args);
        assert_eq!(
            run.code, 0,
            "vexil {args:?}\nstdout:\n{}\nstderr:\n{}",
            run.out, run.err
        );
        run
    }

    /// Runs and expects exit code `code`.
    fn fails(&mut self, code: i32, args: &[&str]) -> Run {
        let run = self.run(args);
        assert_eq!(
            run.code, code,
            "vexil {args:?}\nstdout:\n{}\nstderr:\n{}",
            run.out, run.err
        );
        assert!(run.err.starts_with("error: "), "{}", run.err);
        run
    }
}

/// The words of the table row that starts with `first`.
fn row(table: &str, first: &str) -> Vec<String> {
    table
        .lines()
        .map(|l| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .find(|words| words.first().is_some_and(|w| w == first))
        .unwrap_or_else(|| panic!("no row '{first}' in:\n{table}"))
}

/// The Simple API read with an API key: its HTTP status.
fn read_with_key(base: &str, key: &str) -> u16 {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        reqwest::Client::new()
            .get(format!("{base}/v1/feature-flags/"))
            .header("X-API-Key", key)
            .send()
            .await
            .expect("request")
            .status()
            .as_u16()
    })
}

#[test]
fn cli_manages_flags_segments_keys_and_reads_the_audit_trail() {
    let dir = std::env::temp_dir().join(format!("vexil-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let db = format!("sqlite://{}", dir.join("vexil.db").display());
    let server = Server::start(&db, &[], &[("VEXIL_BOOTSTRAP_TOKEN", TOKEN)]);
    let mut cli = Cli {
        url: server.base.clone(),
        token: TOKEN.to_owned(),
        seen: String::new(),
    };

    // A flag: created, listed as a table and as JSON.
    let run = cli.ok(&[
        "flags",
        "create",
        "new-checkout",
        "--name",
        "New checkout",
        "--tag",
        "web",
        "--comment",
        "JIRA-123",
    ]);
    assert!(
        run.out.contains("created flag 'new-checkout'"),
        "{}",
        run.out
    );
    let run = cli.ok(&["flags", "list"]);
    assert_eq!(
        row(&run.out, "KEY"),
        [
            "KEY",
            "TYPE",
            "DEVELOPMENT",
            "PRODUCTION",
            "TAGS",
            "ARCHIVED"
        ]
    );
    assert_eq!(
        row(&run.out, "new-checkout"),
        ["new-checkout", "boolean", "off", "off", "web", "no"]
    );
    let list = cli.ok(&["flags", "list", "--json"]).json();
    assert_eq!(list["total"], 1);
    assert_eq!(list["items"][0]["key"], "new-checkout");
    assert_eq!(list["items"][0]["name"], "New checkout");
    assert_eq!(list["items"][0]["environments"]["production"], false);

    // Toggled on in production: the JSON says so, and the table.
    let run = cli.ok(&[
        "flags",
        "toggle",
        "new-checkout",
        "--environment",
        "production",
        "--on",
        "--comment",
        "go live",
    ]);
    assert!(run.out.contains("is on in production"), "{}", run.out);
    let flag = cli.ok(&["flags", "get", "new-checkout", "--json"]).json();
    assert_eq!(flag["configurations"]["production"]["enabled"], true);
    assert_eq!(flag["configurations"]["development"]["enabled"], false);
    let run = cli.ok(&["flags", "list"]);
    assert_eq!(row(&run.out, "new-checkout")[2..4], ["off", "on"]);
    let run = cli.ok(&["flags", "get", "new-checkout"]);
    assert_eq!(row(&run.out, "production")[..3], ["production", "on", "on"]);

    // The kill switch turns it off everywhere.
    let run = cli.ok(&[
        "flags",
        "kill",
        "new-checkout",
        "--reason",
        "errors spiking",
    ]);
    assert!(
        run.out.contains("1 configuration(s) turned off"),
        "{}",
        run.out
    );
    let flag = cli.ok(&["flags", "get", "new-checkout", "--json"]).json();
    assert_eq!(flag["configurations"]["production"]["enabled"], false);

    // Archived: gone from the list, shown by --archived; restored.
    cli.ok(&["flags", "archive", "new-checkout", "--comment", "done"]);
    assert_eq!(cli.ok(&["flags", "list", "--json"]).json()["total"], 0);
    let archived = cli.ok(&["flags", "list", "--archived", "--json"]).json();
    assert_eq!(archived["items"][0]["archived"], true);
    let restored = cli
        .ok(&["flags", "restore", "new-checkout", "--json"])
        .json();
    assert_eq!(restored["archived"], false);

    // A segment.
    let run = cli.ok(&[
        "segments",
        "create",
        "beta-testers",
        "--name",
        "Beta testers",
        "--include",
        "user-1,user-2",
    ]);
    assert!(run.out.contains("2 included"), "{}", run.out);
    let run = cli.ok(&["segments", "list"]);
    assert_eq!(
        row(&run.out, "beta-testers")[..5],
        ["beta-testers", "Beta", "testers", "2", "0"]
    );
    let segment = cli
        .ok(&["segments", "get", "beta-testers", "--json"])
        .json();
    assert_eq!(segment["included"], serde_json::json!(["user-1", "user-2"]));

    // An API key: the secret printed once (with the warning), working until revoked.
    let run = cli.ok(&[
        "keys",
        "create",
        "--name",
        "checkout-svc",
        "--type",
        "server",
        "--environment",
        "production",
    ]);
    let secret = row(&run.out, "key")[1].clone();
    assert!(secret.starts_with("vx_srv_"), "{}", run.out);
    assert!(run.err.contains("shown only this once"), "{}", run.err);
    assert_eq!(read_with_key(&server.base, &secret), 200);
    let keys = cli.ok(&["keys", "list", "--json"]).json();
    assert_eq!(keys["items"][0]["name"], "checkout-svc");
    assert!(
        keys["items"][0].get("key").is_none(),
        "lists never show secrets"
    );
    let id = keys["items"][0]["id"].as_str().expect("id").to_owned();
    let run = cli.ok(&["keys", "revoke", &id]);
    assert!(
        run.out.contains("revoked API key 'checkout-svc'"),
        "{}",
        run.out
    );
    assert_eq!(read_with_key(&server.base, &secret), 401);
    let run = cli.ok(&["keys", "list"]);
    assert_eq!(row(&run.out, &id)[5], "revoked");

    // The audit trail has it all, newest first in JSON; the table oldest first.
    let audit = cli.ok(&["audit", "tail", "--limit", "50", "--json"]).json();
    let entries = audit["items"].as_array().expect("items");
    let actions: Vec<&str> = entries
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for action in [
        "flag.create",
        "flag_config.update",
        "flag.kill_switch",
        "flag.archive",
        "flag.restore",
        "segment.create",
        "api_key.create",
        "api_key.revoke",
    ] {
        assert!(actions.contains(&action), "{action} in {actions:?}");
    }
    assert_eq!(actions[0], "api_key.revoke");
    let kill = entries
        .iter()
        .find(|e| e["action"] == "flag.kill_switch")
        .expect("kill switch entry");
    assert_eq!(kill["comment"], "errors spiking");
    let run = cli.ok(&["audit", "tail", "-n", "3"]);
    let lines: Vec<&str> = run.out.lines().collect();
    assert_eq!(lines.len(), 4, "{}", run.out);
    assert!(lines[0].starts_with("TIME"), "{}", run.out);
    assert!(lines[3].contains("api_key.revoke"), "{}", run.out);
    assert!(lines[3].contains("api_key checkout-svc"), "{}", run.out);

    // Exit codes scripts can rely on.
    let run = cli.fails(3, &["flags", "get", "no-such-flag"]);
    assert!(run.err.contains("no flag 'no-such-flag'"), "{}", run.err);
    cli.fails(3, &["keys", "revoke", "no-such-key"]);
    cli.fails(3, &["flags", "list", "--project", "no-such-project"]);
    let run = cli.fails(5, &["flags", "create", "new-checkout"]);
    assert!(run.err.contains("already exists"), "{}", run.err);
    let run = cli.fails(1, &["flags", "create", "bad key!"]);
    assert!(run.err.contains("key: must match"), "{}", run.err);
    let run = cli.run(&["flags", "toggle", "new-checkout"]);
    assert_eq!(
        run.code, 2,
        "a missing --environment is a usage error: {}",
        run.err
    );
    cli.token = "vx_pat_wrong-token-of-sufficient-length".to_owned();
    let run = cli.fails(4, &["flags", "list"]);
    assert!(run.err.contains("authentication required"), "{}", run.err);
    cli.token = TOKEN.to_owned();
    let closed = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let url = format!("http://127.0.0.1:{closed}");
    let run = cli.fails(6, &["flags", "list", "--url", &url]);
    assert!(run.err.contains("cannot connect"), "{}", run.err);

    // Completions, and the codes in the help.
    let run = cli.ok(&["completions", "bash"]);
    assert!(run.out.contains("_vexil"), "{}", run.out);
    let run = cli.ok(&["--help"]);
    assert!(
        run.out.contains("6  server or network unavailable"),
        "{}",
        run.out
    );

    assert!(!cli.seen.contains(TOKEN), "the token is never printed");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `PATCH /api/v1/flags/{flag}/environments/{env}/config` with the instance token: its status.
fn patch_config(base: &str, flag_id: &str, env_id: &str, body: &Value) -> u16 {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        reqwest::Client::new()
            .patch(format!(
                "{base}/api/v1/flags/{flag_id}/environments/{env_id}/config"
            ))
            .bearer_auth(TOKEN)
            .json(body)
            .send()
            .await
            .expect("request")
            .status()
            .as_u16()
    })
}

/// Flags as code through the CLI: a project exported from one server as YAML is applied to
/// a fresh second one (creates), which then exports the same bytes; applying again changes
/// nothing; an edited document's dry run shows the changed fields and changes nothing; an
/// invalid one is refused whole with its field path; `--prune` deletes what it leaves out.
#[test]
fn cli_exports_and_applies_flags_as_code() {
    let dir = std::env::temp_dir().join(format!("vexil-cli-as-code-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = |name: &str| dir.join(name).display().to_string();
    let source = Server::start(
        &format!("sqlite://{}", file("source.db")),
        &[],
        &[("VEXIL_BOOTSTRAP_TOKEN", TOKEN)],
    );
    let mut cli = Cli {
        url: source.base.clone(),
        token: TOKEN.to_owned(),
        seen: String::new(),
    };

    // A segment; a flag on in production with a rule serving it to the segment; a string flag.
    cli.ok(&[
        "segments",
        "create",
        "beta-testers",
        "--name",
        "Beta testers",
        "--include",
        "user-1,user-7",
    ]);
    cli.ok(&["flags", "create", "new-checkout", "--tag", "checkout"]);
    cli.ok(&[
        "flags",
        "create",
        "checkout-theme",
        "--type",
        "string",
        "--variation",
        "classic=classic",
        "--variation",
        "modern=modern",
    ]);
    cli.ok(&[
        "flags",
        "toggle",
        "new-checkout",
        "--environment",
        "production",
        "--on",
    ]);
    let flag = cli.ok(&["flags", "get", "new-checkout", "--json"]).json();
    let rules = serde_json::json!({"rules": [{
        "clauses": [{"attribute": "", "op": "in_segment", "values": ["beta-testers"]}],
        "serve": {"variation": "on"}}]});
    let status = patch_config(
        &source.base,
        flag["id"].as_str().expect("flag id"),
        flag["configurations"]["production"]["environment_id"]
            .as_str()
            .expect("environment id"),
        &rules,
    );
    assert_eq!(status, 200);

    // Exported as YAML, keys in the API's order; `-o` writes the same bytes.
    let yaml = cli.ok(&["export"]).out;
    assert!(
        yaml.starts_with(
            "project: default\nsegments:\n- key: beta-testers\n  name: Beta testers\n"
        ),
        "{yaml}"
    );
    assert!(yaml.contains("\n  - user-7\n"), "{yaml}");
    assert!(yaml.contains("op: in_segment"), "{yaml}");
    assert!(yaml.contains("flags:\n- key: checkout-theme\n"), "{yaml}");
    let a = file("a.yaml");
    let run = cli.ok(&["export", "-o", &a]);
    assert!(run.out.contains("(1 segment, 2 flags)"), "{}", run.out);
    assert_eq!(std::fs::read_to_string(&a).expect("a.yaml"), yaml);
    let only = cli
        .ok(&["export", "--environment", "production", "--json"])
        .json();
    assert_eq!(
        only["flags"][1]["environments"]["production"]["enabled"],
        true
    );
    assert!(
        only["flags"][1]["environments"]
            .get("development")
            .is_none()
    );
    cli.fails(3, &["export", "--environment", "staging"]);

    // A second, empty server: applying creates it all, and it exports the same bytes.
    let target = Server::start(
        &format!("sqlite://{}", file("target.db")),
        &[],
        &[("VEXIL_BOOTSTRAP_TOKEN", TOKEN)],
    );
    cli.url = target.base.clone();
    let run = cli.ok(&["apply", "-f", &a]);
    for line in [
        "+ create segment beta-testers",
        "+ create flag checkout-theme",
        "+ create flag new-checkout",
        "~ update config new-checkout in production",
        "    - enabled: false",
        "    + enabled: true",
    ] {
        assert!(
            run.out.lines().any(|l| l == line),
            "{line} in:\n{}",
            run.out
        );
    }
    assert!(run.out.ends_with(" changes applied\n"), "{}", run.out);
    assert_eq!(cli.ok(&["export"]).out, yaml, "the round trip is exact");
    let audit = cli.ok(&["audit", "tail", "-n", "1", "--json"]).json();
    assert_eq!(audit["items"][0]["comment"], format!("vexil apply -f {a}"));
    assert_eq!(cli.ok(&["apply", "-f", &a]).out, "nothing to change\n");

    // Edited (checkout-theme on in production): the dry run shows that field, changes nothing.
    let mut doc: serde_norway::Value = serde_norway::from_str(&yaml).expect("YAML");
    doc["flags"][0]["environments"]["production"]["enabled"] = true.into();
    let b = file("b.yaml");
    std::fs::write(&b, serde_norway::to_string(&doc).expect("YAML")).expect("b.yaml");
    let run = cli.ok(&["apply", "-f", &b, "--dry-run"]);
    assert_eq!(
        run.out,
        "~ update config checkout-theme in production\n    \
         - enabled: false\n    \
         + enabled: true\n\
         1 change planned (dry run: nothing changed)\n"
    );
    let answer = cli.ok(&["apply", "-f", &b, "--dry-run", "--json"]).json();
    assert_eq!(answer["applied"], false);
    assert_eq!(answer["changes"][0]["after"]["enabled"], true);
    assert_eq!(cli.ok(&["export"]).out, yaml, "a dry run changes nothing");

    // Invalid (a segment changed, then an unknown off variation): refused whole, exit 1.
    let c = file("c.yaml");
    let invalid = yaml.replacen("- user-7", "- user-8", 1).replacen(
        "off_variation: modern",
        "off_variation: ghost",
        1,
    );
    std::fs::write(&c, invalid).expect("c.yaml");
    let run = cli.fails(1, &["apply", "-f", &c]);
    assert!(
        run.err
            .contains("document.flags[0].environments.development.off_variation"),
        "{}",
        run.err
    );
    assert!(run.err.contains("ghost"), "{}", run.err);
    assert_eq!(cli.ok(&["export"]).out, yaml, "all or nothing");
    let broken = file("broken.yaml");
    std::fs::write(&broken, "flags:\n- key: [x\n").expect("broken.yaml");
    let run = cli.fails(1, &["apply", "-f", &broken]);
    assert!(run.err.contains("not valid YAML"), "{}", run.err);
    assert!(run.err.contains("line 3 column 1"), "{}", run.err);
    cli.fails(2, &["apply", "-f", &file("missing.yaml")]);

    // Pruned (a JSON document without checkout-theme): the flag is deleted.
    let mut doc: Value = cli.ok(&["export", "--json"]).json();
    doc["flags"]
        .as_array_mut()
        .expect("flags")
        .retain(|f| f["key"] != "checkout-theme");
    let p = file("p.json");
    std::fs::write(&p, doc.to_string()).expect("p.json");
    let run = cli.ok(&["apply", "-f", &p, "--prune", "--comment", "tidy"]);
    assert_eq!(run.out, "- delete flag checkout-theme\n1 change applied\n");
    let flags = cli.ok(&["flags", "list", "--all", "--json"]).json();
    assert_eq!(flags["total"], 1);
    assert_eq!(flags["items"][0]["key"], "new-checkout");

    assert!(!cli.seen.contains(TOKEN), "the token is never printed");
    drop((source, target));
    let _ = std::fs::remove_dir_all(&dir);
}

/// `PATCH /api/v1/environments/{id}` with the instance token: its status.
fn patch_environment(base: &str, env_id: &str, body: &Value) -> u16 {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        reqwest::Client::new()
            .patch(format!("{base}/api/v1/environments/{env_id}"))
            .bearer_auth(TOKEN)
            .json(body)
            .send()
            .await
            .expect("request")
            .status()
            .as_u16()
    })
}

/// A configuration without what belongs to its environment (for comparing two).
fn served(config: &Value) -> Value {
    let mut config = config.clone();
    for field in ["environment_id", "environment_key", "version", "updated_at"] {
        config
            .as_object_mut()
            .expect("a configuration")
            .remove(field);
    }
    config
}

/// Promotion and templates through the CLI: a flag on in development with a rule is
/// promoted to production (which then serves the same), and promoting again finds it the
/// same; a template made with `--on development` is listed, makes a flag (its tag,
/// temporary, on in development, off in production) and is deleted; an unknown template is
/// refused with the API's field message (1); promoting into an environment that requires
/// approval is a conflict (5).
#[test]
fn cli_promotes_environments_and_makes_flags_from_templates() {
    let dir = std::env::temp_dir().join(format!("vexil-cli-promote-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let db = format!("sqlite://{}", dir.join("vexil.db").display());
    let server = Server::start(&db, &[], &[("VEXIL_BOOTSTRAP_TOKEN", TOKEN)]);
    let mut cli = Cli {
        url: server.base.clone(),
        token: TOKEN.to_owned(),
        seen: String::new(),
    };

    // A flag on in development with a rule; off in production.
    cli.ok(&["flags", "create", "new-checkout"]);
    cli.ok(&[
        "flags",
        "toggle",
        "new-checkout",
        "--environment",
        "development",
        "--on",
    ]);
    let flag = cli.ok(&["flags", "get", "new-checkout", "--json"]).json();
    let rules = serde_json::json!({"rules": [{
        "clauses": [{"attribute": "country", "op": "in", "values": ["FR"]}],
        "serve": {"variation": "off"}}]});
    let dev_id = flag["configurations"]["development"]["environment_id"]
        .as_str()
        .expect("environment id")
        .to_owned();
    let prod_id = flag["configurations"]["production"]["environment_id"]
        .as_str()
        .expect("environment id")
        .to_owned();
    let flag_id = flag["id"].as_str().expect("flag id");
    assert_eq!(patch_config(&server.base, flag_id, &dev_id, &rules), 200);

    // Promoted: production serves what development does; again, it is already the same.
    let run = cli.ok(&[
        "promote",
        "--from",
        "development",
        "--to",
        "production",
        "--comment",
        "release 42",
    ]);
    assert_eq!(
        row(&run.out, "FLAG"),
        ["FLAG", "RESULT", "IN", "PRODUCTION", "VERSION"]
    );
    assert_eq!(
        row(&run.out, "new-checkout"),
        ["new-checkout", "copied", "on", "2"]
    );
    assert!(
        run.out
            .ends_with("\n1 configuration copied from development to production\n"),
        "{}",
        run.out
    );
    let flag = cli.ok(&["flags", "get", "new-checkout", "--json"]).json();
    let configs = &flag["configurations"];
    assert_eq!(configs["production"]["enabled"], true);
    assert_eq!(
        configs["production"]["rules"][0]["clauses"][0]["values"][0],
        "FR"
    );
    assert_eq!(
        served(&configs["production"]),
        served(&configs["development"])
    );
    let audit = cli.ok(&["audit", "tail", "-n", "1", "--json"]).json();
    assert_eq!(
        audit["items"][0]["comment"],
        "copied from development: release 42"
    );
    let run = cli.ok(&["promote", "--from", "development", "--to", "production"]);
    assert_eq!(
        row(&run.out, "new-checkout"),
        ["new-checkout", "unchanged", "-", "-"]
    );
    assert!(
        run.out.ends_with(
            "\n0 configurations copied from development to production, 1 already the same\n"
        ),
        "{}",
        run.out
    );
    let answer = cli
        .ok(&[
            "promote",
            "--from",
            "development",
            "--to",
            "production",
            "--flag",
            "new-checkout",
            "--json",
        ])
        .json();
    assert_eq!(answer["changed"], serde_json::json!([]));
    assert_eq!(answer["unchanged"], serde_json::json!(["new-checkout"]));
    cli.fails(3, &["promote", "--from", "development", "--to", "staging"]);
    cli.fails(
        3,
        &[
            "promote",
            "--from",
            "development",
            "--to",
            "production",
            "--flag",
            "no-such-flag",
        ],
    );

    // A template: created with a starting configuration in development, listed, shown.
    let run = cli.ok(&[
        "templates",
        "create",
        "release",
        "--name",
        "Release",
        "--tag",
        "release",
        "--temporary",
        "--on",
        "development",
    ]);
    assert!(
        run.out
            .contains("created template 'release' (boolean) in project 'default'; its flags start configured in development"),
        "{}",
        run.out
    );
    let run = cli.ok(&["templates", "list"]);
    assert_eq!(
        row(&run.out, "KEY"),
        ["KEY", "NAME", "TYPE", "TAGS", "TEMPORARY", "ENVIRONMENTS"]
    );
    assert_eq!(
        row(&run.out, "release"),
        [
            "release",
            "Release",
            "boolean",
            "release",
            "yes",
            "development"
        ]
    );
    let list = cli.ok(&["templates", "list", "--json"]).json();
    assert_eq!(list["total"], 1);
    assert_eq!(list["items"][0]["key"], "release");
    assert_eq!(list["items"][0]["temporary"], true);
    assert_eq!(
        list["items"][0]["environments"]["development"],
        serde_json::json!({"enabled": true, "off_variation": "off",
            "fallthrough": {"variation": "on"}, "targets": [], "rules": [],
            "prerequisites": [], "watch_events": []})
    );
    let run = cli.ok(&["templates", "get", "release"]);
    assert_eq!(
        row(&run.out, "development")[..4],
        ["development", "on", "on", "off"]
    );
    let template = cli.ok(&["templates", "get", "release", "--json"]).json();
    assert_eq!(template["tags"], serde_json::json!(["release"]));

    // A flag made from it: its tag, temporary, on in development, off in production.
    let run = cli.ok(&["flags", "create", "new-search", "--template", "release"]);
    assert!(run.out.contains("from template 'release'"), "{}", run.out);
    let flag = cli.ok(&["flags", "get", "new-search", "--json"]).json();
    assert_eq!(flag["tags"], serde_json::json!(["release"]));
    assert_eq!(flag["temporary"], true);
    assert_eq!(flag["configurations"]["development"]["enabled"], true);
    assert_eq!(
        flag["configurations"]["development"]["fallthrough"]["variation"],
        "on"
    );
    assert_eq!(flag["configurations"]["production"]["enabled"], false);

    // Deleted; an unknown template is refused with the API's field message.
    let run = cli.ok(&["templates", "delete", "release"]);
    assert!(
        run.out.contains("deleted template 'release'"),
        "{}",
        run.out
    );
    assert_eq!(cli.ok(&["templates", "list", "--json"]).json()["total"], 0);
    cli.fails(3, &["templates", "get", "release"]);
    let run = cli.fails(1, &["flags", "create", "other", "--template", "release"]);
    assert!(
        run.err.contains("template: no template 'release'"),
        "{}",
        run.err
    );

    // A target that requires approval refuses copies: exit code 5.
    let body = serde_json::json!({"requires_approval": true});
    assert_eq!(patch_environment(&server.base, &prod_id, &body), 200);
    let run = cli.fails(
        5,
        &["promote", "--from", "development", "--to", "production"],
    );
    assert!(run.err.contains("approval"), "{}", run.err);

    assert!(!cli.seen.contains(TOKEN), "the token is never printed");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
