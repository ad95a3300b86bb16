//! `kubectl exec`, `attach`, `cp`, `port-forward` and `debug` end to end (the scenarios are in
//! `stream_scenarios/`): kube-apiserver v1.37 with its default feature gates passes its
//! clients' WebSockets through to the gateway (`ExtendWebSocketsToKubelet`, declared by
//! the gateway's Nodes), so kubectl on WebSocket reaches the gateway on WebSocket and
//! kubectl on SPDY reaches it on SPDY. The emulator passes WebSockets through the same
//! way (`e2e_streams_emulator_websocket.rs`); here it is tested on SPDY.

#![allow(clippy::unwrap_used)]

mod stream_scenarios;

use anyhow::Result;
use edge_hil_tests::stack::{BrokerKind, ClusterBackend};
use stream_scenarios::*;

mod control_plane {
    use super::*;

    #[tokio::test(flavor = "multi_thread")]
    async fn exec_and_attach_over_websocket() -> Result<()> {
        exec_and_attach(
            on(BrokerKind::Embedded, ClusterBackend::ControlPlane),
            ClientProtocol::WebSocket,
            GatewayUpgrade::WebSocket,
        )
        .await
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn exec_and_attach_over_spdy() -> Result<()> {
        exec_and_attach(
            on(BrokerKind::Embedded, ClusterBackend::ControlPlane),
            ClientProtocol::Spdy,
            GatewayUpgrade::Spdy,
        )
        .await
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn exec_and_attach_with_mosquitto() -> Result<()> {
        exec_and_attach(
            on(BrokerKind::Mosquitto, ClusterBackend::ControlPlane),
            ClientProtocol::WebSocket,
            GatewayUpgrade::WebSocket,
        )
        .await
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn copy_files_both_ways() -> Result<()> {
        copy_files(
            on(BrokerKind::Embedded, ClusterBackend::ControlPlane),
            ClientProtocol::WebSocket,
        )
        .await
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn port_forward_over_websocket() -> Result<()> {
        port_forward(
            on(BrokerKind::Embedded, ClusterBackend::ControlPlane),
            ClientProtocol::WebSocket,
            GatewayUpgrade::WebSocket,
        )
        .await
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn port_forward_over_spdy() -> Result<()> {
        port_forward(
            on(BrokerKind::Mosquitto, ClusterBackend::ControlPlane),
            ClientProtocol::Spdy,
            GatewayUpgrade::Spdy,
        )
        .await
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn offline_device_fails_fast() -> Result<()> {
        device_offline(on(BrokerKind::Embedded, ClusterBackend::ControlPlane)).await
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn exec_needs_rights() -> Result<()> {
        exec_forbidden(on(BrokerKind::Embedded, ClusterBackend::ControlPlane)).await
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn debug_with_an_ephemeral_container() -> Result<()> {
        debug::debug_with_ephemeral_container(on(
            BrokerKind::Embedded,
            ClusterBackend::ControlPlane,
        ))
        .await
    }
}

mod emulator {
    use super::*;

    #[tokio::test(flavor = "multi_thread")]
    async fn exec_and_attach_over_spdy() -> Result<()> {
        exec_and_attach(
            on(BrokerKind::Embedded, ClusterBackend::Emulator),
            ClientProtocol::Spdy,
            GatewayUpgrade::Spdy,
        )
        .await
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn port_forward_over_spdy() -> Result<()> {
        port_forward(
            on(BrokerKind::Embedded, ClusterBackend::Emulator),
            ClientProtocol::Spdy,
            GatewayUpgrade::Spdy,
        )
        .await
    }
}
