//! `kubectl exec`, `attach` and `port-forward` on WebSocket through the API emulator:
//! the gateway's Nodes declare `ExtendWebSocketsToKubelet`, so the emulator passes
//! kubectl's WebSocket upgrades through to the gateway as kube-apiserver v1.36+ does,
//! and the gateway must have seen WebSocket upgrades only (from its log). The SPDY path
//! through the emulator is in `e2e_streams.rs`.

#![allow(clippy::unwrap_used)]

#[allow(dead_code)]
mod stream_scenarios;

use anyhow::Result;
use edge_hil_tests::stack::{BrokerKind, ClusterBackend};
use stream_scenarios::*;

#[tokio::test(flavor = "multi_thread")]
async fn exec_and_attach_over_websocket() -> Result<()> {
    exec_and_attach(
        on(BrokerKind::Embedded, ClusterBackend::Emulator),
        ClientProtocol::WebSocket,
        GatewayUpgrade::WebSocket,
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn port_forward_over_websocket() -> Result<()> {
    port_forward(
        on(BrokerKind::Embedded, ClusterBackend::Emulator),
        ClientProtocol::WebSocket,
        GatewayUpgrade::WebSocket,
    )
    .await
}
