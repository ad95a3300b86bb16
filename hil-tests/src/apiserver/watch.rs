//! Watch: initial events, resume from a resourceVersion, selector transitions, bookmarks
//! (including the `k8s.io/initial-events-end` one of streaming lists), timeoutSeconds, and
//! 410 Gone for versions the history no longer holds.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use super::cluster::{Cluster, meta_str};
use super::errors::{ApiError, ApiResult};
use super::resources::ResourceType;
use super::selectors::{FieldSelector, LabelSelector};
use super::store::{EventType, StoredEvent};

/// Renders a stored object for the wire (version conversion, Table rows).
pub type Render = Arc<dyn Fn(&Value) -> Value + Send + Sync>;

/// Watch parameters.
#[derive(Debug, Clone, Default)]
pub struct WatchOptions {
    /// resourceVersion ("" / "0" = start with the current state as ADDED events).
    pub resource_version: String,
    /// labelSelector.
    pub label: LabelSelector,
    /// fieldSelector.
    pub field: FieldSelector,
    /// allowWatchBookmarks.
    pub bookmarks: bool,
    /// timeoutSeconds.
    pub timeout: Option<Duration>,
    /// sendInitialEvents.
    pub send_initial_events: Option<bool>,
}

fn line(ev_type: &str, object: Value) -> Bytes {
    let mut s = json!({"type": ev_type, "object": object}).to_string();
    s.push('\n');
    Bytes::from(s)
}

struct Filter {
    rt: &'static ResourceType,
    ns: Option<String>,
    label: LabelSelector,
    field: FieldSelector,
}

impl Filter {
    fn matches(&self, obj: &Value) -> bool {
        (self.ns.is_none()
            || !self.rt.namespaced
            || self.ns.as_deref() == Some(meta_str(obj, "namespace")))
            && self.label.matches(obj)
            && self.field.matches(self.rt.storage, obj)
    }

    /// The event this watcher sees for a stored change, if any.
    fn translate(&self, ev: &StoredEvent) -> Option<(&'static str, Arc<Value>)> {
        if ev.storage != self.rt.storage {
            return None;
        }
        let cur = self.matches(&ev.object);
        let old = ev.old.as_ref().is_some_and(|o| self.matches(o));
        match ev.kind {
            EventType::Added if cur => Some(("ADDED", ev.object.clone())),
            EventType::Deleted if old || cur => Some(("DELETED", ev.object.clone())),
            EventType::Modified if cur && old => Some(("MODIFIED", ev.object.clone())),
            EventType::Modified if cur => Some(("ADDED", ev.object.clone())),
            EventType::Modified if old => {
                let mut o = ev.old.as_ref().map(|o| (**o).clone()).unwrap_or_default();
                o["metadata"]["resourceVersion"] = json!(ev.rv.to_string());
                Some(("DELETED", Arc::new(o)))
            }
            _ => None,
        }
    }
}

/// Starts a watch; the returned channel yields newline-delimited JSON watch events.
pub fn start(
    cluster: &Cluster,
    rt: &'static ResourceType,
    ns: Option<String>,
    opts: WatchOptions,
    render: Render,
    bookmark_interval: Duration,
    cancel: CancellationToken,
) -> ApiResult<mpsc::Receiver<Bytes>> {
    let filter = Filter {
        rt,
        ns,
        label: opts.label.clone(),
        field: opts.field.clone(),
    };
    let rv_param = opts.resource_version.as_str();
    let initial_wanted = match opts.send_initial_events {
        Some(v) => v,
        None => rv_param.is_empty() || rv_param == "0",
    };
    let (mut initial, rx, start_rv, too_old) = {
        let store = cluster.lock();
        let current = store.current_rv();
        if initial_wanted {
            let objs: Vec<Arc<Value>> = store
                .list(
                    rt.storage,
                    if rt.namespaced {
                        filter.ns.as_deref()
                    } else {
                        None
                    },
                )
                .into_iter()
                .filter(|o| filter.matches(o))
                .collect();
            (
                objs.into_iter().map(|o| ("ADDED", o)).collect::<Vec<_>>(),
                Some(store.subscribe_now()),
                current,
                None,
            )
        } else {
            let since: u64 = rv_param.parse().map_err(|_| {
                ApiError::bad_request(format!("invalid resource version: {rv_param}"))
            })?;
            if since > current {
                // kube-apiserver waits up to 3 s for a future version, then gives up.
                (Vec::new(), None, current, Some((since, 0)))
            } else {
                match store.subscribe(rt.storage, since) {
                    Ok((past, rx)) => {
                        let evs = past.iter().filter_map(|e| filter.translate(e)).collect();
                        (
                            evs,
                            Some(rx),
                            since.max(past.last().map_or(since, |e| e.rv)),
                            None,
                        )
                    }
                    Err(old) => (Vec::new(), None, current, Some((since, old.oldest))),
                }
            }
        }
    };
    let (tx, out) = mpsc::channel::<Bytes>(256);
    let initial_end_bookmark = opts.send_initial_events == Some(true) && opts.bookmarks;
    let kind = rt.kind;
    let api_version = rt.api_version();
    tokio::spawn(async move {
        if let Some((since, oldest)) = too_old {
            let status = if oldest == 0 {
                tokio::time::sleep(Duration::from_secs(3)).await;
                ApiError::new(
                    504,
                    "Timeout",
                    format!("Too large resource version: {since}, current: {start_rv}"),
                )
                .to_status()
            } else {
                ApiError::gone(format!("too old resource version: {since} ({oldest})")).to_status()
            };
            let _ = tx.send(line("ERROR", status)).await;
            return;
        }
        let Some(mut rx) = rx else { return };
        let mut last_rv = start_rv;
        for (t, o) in initial.drain(..) {
            if tx.send(line(t, render(&o))).await.is_err() {
                return;
            }
        }
        let bookmark = |rv: u64, initial_end: bool| {
            let mut o = json!({"kind": kind, "apiVersion": api_version, "metadata": {"resourceVersion": rv.to_string()}});
            if initial_end {
                o["metadata"]["annotations"] = json!({"k8s.io/initial-events-end": "true"});
            }
            line("BOOKMARK", o)
        };
        if initial_end_bookmark && tx.send(bookmark(last_rv, true)).await.is_err() {
            return;
        }
        let deadline = opts.timeout.map(|t| tokio::time::Instant::now() + t);
        let mut tick = tokio::time::interval(bookmark_interval);
        tick.tick().await;
        loop {
            let sleep_until =
                deadline.unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tx.closed() => return,
                _ = tokio::time::sleep_until(sleep_until) => {
                    if deadline.is_some() { return; }
                }
                _ = tick.tick(), if opts.bookmarks => {
                    if tx.send(bookmark(last_rv, false)).await.is_err() { return; }
                }
                ev = rx.recv() => match ev {
                    Ok(ev) => {
                        if ev.rv <= last_rv { continue; }
                        last_rv = ev.rv;
                        if let Some((t, o)) = filter.translate(&ev)
                            && tx.send(line(t, render(&o))).await.is_err()
                        {
                            return;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) | Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        }
    });
    Ok(out)
}
