//! The Rust SDK against a running `vexil serve`: evaluates a flag for two users, then
//! re-evaluates whenever the flag changes on the server (pushed over SSE within
//! milliseconds) and reports status changes, until Ctrl-C (or for SECONDS).
//!
//! ```sh
//! VEXIL_SERVER_KEY=vx_srv_… cargo run -p vexil-sdk-quickstart -- [FLAG] [SECONDS]
//! ```
//!
//! `VEXIL_URL` defaults to `http://127.0.0.1:8080`; FLAG defaults to `new-checkout` (the
//! README's tour). A package of its own, depending on the SDK and tokio only, so that
//! running it builds neither the server nor the SDK's test and benchmark dependencies.
#![allow(clippy::print_stdout)] // Printing is what this example is for.

use std::time::Duration;

use vexil_sdk::{Client, Context, ContextBuilder, InitError};

fn show(client: &Client, flag: &str, users: &[(&str, Context)]) {
    for (name, user) in users {
        let d = client.bool_detail(flag, user, false);
        let why = match (&d.reason.rule_id, d.reason.error_code) {
            (_, Some(code)) => format!("{:?} {code}", d.reason.kind),
            (Some(rule), None) => format!("{:?} (rule {rule})", d.reason.kind),
            (None, None) if d.reason.in_rollout => format!("{:?} (rollout)", d.reason.kind),
            (None, None) => format!("{:?}", d.reason.kind),
        };
        println!(
            "  {flag} for {name:<22} = {:<5}  variation {:<5}  {why}",
            d.value,
            d.variation.as_deref().unwrap_or("-"),
        );
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("VEXIL_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".into());
    let key = std::env::var("VEXIL_SERVER_KEY")
        .map_err(|_| "set VEXIL_SERVER_KEY to a server API key (see the README's tour)")?;
    let mut args = std::env::args().skip(1);
    let flag = args.next().unwrap_or_else(|| "new-checkout".into());
    let seconds: Option<u64> = args.next().map(|s| s.parse()).transpose()?;

    let client = Client::builder(&url, &key).build()?;
    match client.wait_for_initialization(Duration::from_secs(5)).await {
        Ok(()) => {
            let status = client.status();
            println!(
                "connected to {url}: ruleset version {}, {} flags",
                status.version.unwrap_or_default(),
                client.flag_keys().len()
            );
        }
        Err(e @ InitError::KeyRejected { .. }) => return Err(e.into()),
        // Not fatal: evaluations serve the defaults until the server answers.
        Err(e) => println!("{e}; evaluating with defaults meanwhile"),
    }

    let users = [
        (
            "ann@acme.com (staff)",
            ContextBuilder::new("user-1")
                .set("email", "ann@acme.com")
                .build(),
        ),
        (
            "bob@example.com",
            ContextBuilder::new("user-2")
                .set("email", "bob@example.com")
                .build(),
        ),
    ];
    show(&client, &flag, &users);

    let (changed, mut changes) = tokio::sync::mpsc::unbounded_channel();
    client.on_flag_change(flag.clone(), move |change| {
        let _ = changed.send(change.version);
    });
    client.on_status_change(|status| {
        println!("status: {:?} ({})", status.state, status.reason);
    });
    println!("watching '{flag}': change it on the server (e.g. PATCH …/toggle); Ctrl-C to stop");

    let stop = async {
        match seconds {
            Some(s) => tokio::time::sleep(Duration::from_secs(s)).await,
            None => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    };
    tokio::pin!(stop);
    loop {
        tokio::select! {
            Some(version) = changes.recv() => {
                println!("'{flag}' changed (ruleset version {version}):");
                show(&client, &flag, &users);
            }
            () = &mut stop => break,
        }
    }
    client.close().await;
    Ok(())
}
