//! Containers the reconciler asked the runtime for that no listing has shown yet. The
//! pod's infra container outlives them: a new container joins its namespaces, and an
//! infra container removed under a joining one is left half-removed by Podman 4.3
//! ("Removing", its storage gone), which then fails every `GET /containers/json` that
//! would list it, so the agent could no longer see its own containers.

use std::collections::{HashMap, HashSet};

use edge_protocol::UnixMillis;

use super::container_memory::AWAITING_LIMIT_MS;
use super::inputs_effects::ContainerKey;

/// Creates asked for, by pod uid and container name: the runtime id once created.
#[derive(Debug, Default)]
pub(super) struct UnlistedCreates {
    by_key: HashMap<ContainerKey, Unlisted>,
}

#[derive(Debug)]
struct Unlisted {
    id: Option<String>,
    since: UnixMillis,
}

impl UnlistedCreates {
    /// The reconciler asked for the container.
    pub(super) fn asked(&mut self, key: ContainerKey, now: UnixMillis) {
        self.by_key.insert(
            key,
            Unlisted {
                id: None,
                since: now,
            },
        );
    }

    /// The runtime created it; it counts until a listing shows it.
    pub(super) fn created(&mut self, key: &ContainerKey, id: &str, now: UnixMillis) {
        self.by_key.insert(
            key.clone(),
            Unlisted {
                id: Some(id.to_owned()),
                since: now,
            },
        );
    }

    /// The runtime refused it: nothing joins the infra container.
    pub(super) fn failed(&mut self, key: &ContainerKey) {
        self.by_key.remove(key);
    }

    /// A listing: what it shows is no longer unlisted, nor is a created container missing
    /// from listings for longer than the agent waits for one (removed behind its back).
    pub(super) fn listed(&mut self, live: &HashSet<&String>, now: UnixMillis) {
        self.by_key.retain(|_, u| match &u.id {
            None => true,
            Some(id) => !live.contains(id) && now.saturating_sub(u.since) < AWAITING_LIMIT_MS,
        });
    }

    /// Whether a container of pod `pod_uid` is on its way (asked for, or created and not
    /// listed yet).
    pub(super) fn pending_for(&self, pod_uid: &str) -> bool {
        self.by_key.keys().any(|(uid, _)| uid == pod_uid)
    }
}
