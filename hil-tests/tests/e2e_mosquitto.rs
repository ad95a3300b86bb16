//! End-to-end scenarios with a real Mosquitto broker. The placement scenario's second
//! device is the static aarch64 agent under qemu-aarch64 user-mode emulation.
//!
//! Against a real cluster instead of the emulator:
//! `EDGE_E2E_KUBECONFIG=~/.kube/config cargo test -p edge-hil-tests --test e2e_mosquitto`
//! (see hil-tests/README.md).

#[macro_use]
mod e2e_scenarios;

use edge_hil_tests::stack::{AgentBuild, BrokerKind};

scenario_tests!(BrokerKind::Mosquitto, AgentBuild::Aarch64Qemu);
