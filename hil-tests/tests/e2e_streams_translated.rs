//! `kubectl exec`, `attach`, `cp` and `port-forward` end to end with kube-apiserver's
//! `ExtendWebSocketsToKubelet` feature gate off: kube-apiserver then translates kubectl's
//! WebSockets to SPDY towards the gateway, as clusters before v1.36 do.

#![allow(clippy::unwrap_used)]

#[allow(dead_code)]
mod stream_scenarios;

use anyhow::Result;
use edge_hil_tests::controlplane::{ControlPlane, SharedControlPlaneSettings};
use edge_hil_tests::stack::{BrokerKind, ClusterBackend};
use stream_scenarios::*;

fn translating() -> Result<()> {
    ControlPlane::configure_shared(SharedControlPlaneSettings {
        apiserver_feature_gates: Some("ExtendWebSocketsToKubelet=false"),
        ..Default::default()
    })?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_and_attach_over_websocket_translated_to_spdy() -> Result<()> {
    translating()?;
    exec_and_attach(
        on(BrokerKind::Embedded, ClusterBackend::ControlPlane),
        ClientProtocol::WebSocket,
        GatewayUpgrade::Spdy,
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn port_forward_over_websocket_translated_to_spdy() -> Result<()> {
    translating()?;
    port_forward(
        on(BrokerKind::Embedded, ClusterBackend::ControlPlane),
        ClientProtocol::WebSocket,
        GatewayUpgrade::Spdy,
    )
    .await
}
