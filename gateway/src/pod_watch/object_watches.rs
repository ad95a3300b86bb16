//! One watch per referenced ConfigMap or Secret (`metadata.name=<name>` in its
//! namespace, as the kubelet's watch-based manager does): started and stopped as the
//! [`ReferenceIndex`](crate::reference_index::ReferenceIndex) says, each reporting the
//! object's resourceVersion (and whether it is immutable) to the pod watch.

use std::collections::HashMap;
use std::fmt::Debug;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::reference_index::{ObjectRef, WatchChanges};
use crate::translation::ObjectKind;

/// What a watch saw of its object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectChange {
    pub object: ObjectRef,
    /// `None`: the object was deleted.
    pub resource_version: Option<String>,
    pub immutable: bool,
}

/// The running watches.
pub struct ObjectWatches {
    client: kube::Client,
    tx: mpsc::UnboundedSender<ObjectChange>,
    running: HashMap<ObjectRef, CancellationToken>,
    parent: CancellationToken,
}

impl ObjectWatches {
    pub fn new(
        client: kube::Client,
        tx: mpsc::UnboundedSender<ObjectChange>,
        parent: CancellationToken,
    ) -> Self {
        Self {
            client,
            tx,
            running: HashMap::new(),
            parent,
        }
    }

    /// Starts and stops watches.
    pub fn apply(&mut self, changes: WatchChanges) {
        for object in changes.stop {
            if let Some(token) = self.running.remove(&object) {
                token.cancel();
            }
        }
        for object in changes.start {
            if self.running.contains_key(&object) {
                continue;
            }
            let token = self.parent.child_token();
            self.running.insert(object.clone(), token.clone());
            let (client, tx) = (self.client.clone(), self.tx.clone());
            match object.kind {
                ObjectKind::ConfigMap => {
                    let api: Api<ConfigMap> = Api::namespaced(client, &object.namespace);
                    tokio::spawn(watch_one(api, object, tx, token, |c: &ConfigMap| {
                        c.immutable.unwrap_or(false)
                    }));
                }
                ObjectKind::Secret => {
                    let api: Api<Secret> = Api::namespaced(client, &object.namespace);
                    tokio::spawn(watch_one(api, object, tx, token, |s: &Secret| {
                        s.immutable.unwrap_or(false)
                    }));
                }
            }
        }
    }
}

async fn watch_one<K>(
    api: Api<K>,
    object: ObjectRef,
    tx: mpsc::UnboundedSender<ObjectChange>,
    token: CancellationToken,
    immutable: fn(&K) -> bool,
) where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    let config = watcher::Config::default().fields(&format!("metadata.name={}", object.name));
    let mut stream = watcher::watcher(api, config).default_backoff().boxed();
    let send = |obj: Option<&K>| {
        let change = ObjectChange {
            object: object.clone(),
            resource_version: obj.and_then(|o| o.resource_version()),
            immutable: obj.is_some_and(immutable),
        };
        tx.send(change).is_ok()
    };
    loop {
        let event = tokio::select! {
            _ = token.cancelled() => return,
            ev = stream.next() => ev,
        };
        let open = match event {
            Some(Ok(Event::Apply(o) | Event::InitApply(o))) => send(Some(&o)),
            Some(Ok(Event::Delete(_))) => send(None),
            Some(Ok(Event::Init | Event::InitDone)) => true,
            Some(Err(e)) => {
                debug!(object = ?object, error = %e, "object watch error; retrying");
                true
            }
            None => return,
        };
        if !open {
            return;
        }
    }
}
