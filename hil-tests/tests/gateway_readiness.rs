//! `/readyz` of the real gateway binary follows its MQTT connection: with Mosquitto
//! stopped it answers 503 and says why, and 200 again once the broker is back.
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
    stack.mosquitto.as_mut().context("mosquitto")?.stop();
    let body = wait_readyz(&stack, 503, "mqtt").await?;
    assert!(body.contains("not connected to the broker"), "{body}");
    stack.mosquitto.as_mut().context("mosquitto")?.restart()?;
    wait_readyz(&stack, 200, "ok").await?;
    Ok(())
}
