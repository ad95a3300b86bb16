//! `/readyz` of the real gateway binary follows its MQTT connection: with Mosquitto
//! stopped it answers 503 and says why, and 200 again once the broker is back; and
//! `edge-gateway check-ready` (the kustomize readiness probe) exits 0 / 1 with it.
//! (The store side of readiness is covered by the fleet's unit tests, which make store
//! writes fail.)

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use edge_hil_tests::stack::{BrokerKind, Stack, StackOptions, eventually};

fn readyz(stack: &Stack) -> Result<(u16, String)> {
    let url = stack.gateway.metrics_url().replace("/metrics", "/readyz");
    let out = std::process::Command::new("curl")
        .args(["-s", "-o", "-", "-w", "\n%{http_code}", &url])
        .output()
        .context("curl is needed for this test (scripts/install-test-deps.sh)")?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    Ok((code.trim().parse().unwrap_or(0), body.to_owned()))
}

/// `edge-gateway check-ready` against the stack's gateway: (exit success, stdout + stderr).
fn check_ready(stack: &Stack) -> Result<(bool, String)> {
    let bin = std::env::var_os("EDGE_TEST_BIN_DIR")
        .map(std::path::PathBuf::from)
        .context("EDGE_TEST_BIN_DIR is not set: run `cargo build --workspace --bins` and `eval \"$(bash scripts/test-env.sh)\"`")?
        .join("edge-gateway");
    let addr = format!("127.0.0.1:{}", stack.gateway.ready().metrics_port);
    let out = std::process::Command::new(&bin)
        .args(["check-ready", "--metrics-listen", &addr])
        .env_remove("EDGE_GATEWAY_METRICS_LISTEN")
        .output()
        .with_context(|| bin.display().to_string())?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((out.status.success(), text))
}

async fn wait_readyz(stack: &Stack, want: u16, contains: &str) -> Result<String> {
    eventually(
        &format!("/readyz {want}"),
        Duration::from_secs(30),
        || async {
            match readyz(stack) {
                Ok((code, body)) if code == want && body.contains(contains) => Ok(Some(body)),
                Ok((code, body)) => Err(format!("{code}: {body}")),
                Err(e) => Err(e.to_string()),
            }
        },
    )
    .await
    .map_err(|e| anyhow!("{e}\n{}", stack.logs()))
}

#[tokio::test(flavor = "multi_thread")]
async fn readyz_follows_the_broker_connection() -> Result<()> {
    let mut stack = Stack::start(StackOptions::fast(BrokerKind::Mosquitto)).await?;
    wait_readyz(&stack, 200, "ok").await?;
    let (ready, out) = check_ready(&stack)?;
    assert!(ready && out.trim() == "ok", "check-ready: {out}");
    stack.mosquitto.as_mut().context("mosquitto")?.stop();
    let body = wait_readyz(&stack, 503, "mqtt").await?;
    assert!(body.contains("not connected to the broker"), "{body}");
    let (ready, out) = check_ready(&stack)?;
    assert!(!ready, "check-ready succeeded while not ready: {out}");
    assert!(
        out.contains("HTTP 503") && out.contains("not connected to the broker"),
        "{out}"
    );
    stack.mosquitto.as_mut().context("mosquitto")?.restart()?;
    wait_readyz(&stack, 200, "ok").await?;
    assert!(check_ready(&stack)?.0);
    Ok(())
}
