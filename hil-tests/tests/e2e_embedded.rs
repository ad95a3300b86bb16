//! End-to-end scenarios with the gateway's embedded MQTT broker (rumqttd).
//!
//! Against a real cluster instead of the emulator:
//! `EDGE_E2E_KUBECONFIG=~/.kube/config cargo test -p edge-hil-tests --test e2e_embedded`
//! (see hil-tests/README.md).

#[macro_use]
mod e2e_scenarios;

use edge_hil_tests::stack::{AgentBuild, BrokerKind};

scenario_tests!(BrokerKind::Embedded, AgentBuild::Host);
