//! Routing of log chunks (`up/logs/{request}`) to the kubelet API request waiting for
//! them. A chunk is only accepted from the device the request was sent to.

use std::collections::HashMap;
use std::sync::Mutex;

use edge_protocol::{DeviceId, LogChunk, MAX_LOG_CHUNK_BYTES, RequestId};
use tokio::sync::mpsc;

/// Chunks buffered per request before further ones are dropped (QoS 0 semantics).
pub const CHUNK_BUFFER: usize = 128;

/// The most log data buffered per request: chunks are at most
/// [`MAX_LOG_CHUNK_BYTES`] (bigger ones are refused), so a slow reader holds at most this.
pub const MAX_BUFFERED_LOG_BYTES: usize = CHUNK_BUFFER * MAX_LOG_CHUNK_BYTES;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryError {
    /// No open request with this id (finished, cancelled, or never made).
    UnknownRequest,
    /// The request was sent to another device: a spoofing attempt.
    WrongDevice,
    /// The reader is too slow; the chunk was dropped.
    Overflow,
    /// The chunk carries more than [`MAX_LOG_CHUNK_BYTES`]; it was dropped.
    Oversized,
}

#[derive(Debug)]
struct Route {
    device: DeviceId,
    tx: mpsc::Sender<LogChunk>,
}

/// Open log requests.
#[derive(Debug, Default)]
pub struct LogStreams {
    routes: Mutex<HashMap<RequestId, Route>>,
}

impl LogStreams {
    /// Opens a route for a new request to `device`.
    pub fn open(&self, device: &DeviceId) -> (RequestId, mpsc::Receiver<LogChunk>) {
        let (tx, rx) = mpsc::channel(CHUNK_BUFFER);
        let id = loop {
            let raw = uuid::Uuid::new_v4().simple().to_string();
            if let Ok(id) = RequestId::new(raw) {
                break id;
            }
        };
        if let Ok(mut routes) = self.routes.lock() {
            routes.insert(
                id.clone(),
                Route {
                    device: device.clone(),
                    tx,
                },
            );
        }
        (id, rx)
    }

    /// Hands a chunk from `device` to its request.
    pub fn deliver(
        &self,
        device: &DeviceId,
        id: &RequestId,
        chunk: LogChunk,
    ) -> Result<(), DeliveryError> {
        let Ok(mut routes) = self.routes.lock() else {
            return Err(DeliveryError::UnknownRequest);
        };
        let route = routes.get(id).ok_or(DeliveryError::UnknownRequest)?;
        if &route.device != device {
            return Err(DeliveryError::WrongDevice);
        }
        if chunk.data.0.len() > MAX_LOG_CHUNK_BYTES {
            return Err(DeliveryError::Oversized);
        }
        let last = chunk.end_of_stream;
        let result = route.tx.try_send(chunk).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => DeliveryError::Overflow,
            mpsc::error::TrySendError::Closed(_) => DeliveryError::UnknownRequest,
        });
        if last || matches!(result, Err(DeliveryError::UnknownRequest)) {
            routes.remove(id);
        }
        result
    }

    /// Forgets a request (finished or abandoned by the HTTP client).
    pub fn close(&self, id: &RequestId) -> bool {
        self.routes
            .lock()
            .map(|mut r| r.remove(id).is_some())
            .unwrap_or(false)
    }

    /// Ends every open request of a device that went offline; returns their ids.
    pub fn close_device(&self, device: &DeviceId) -> Vec<RequestId> {
        let Ok(mut routes) = self.routes.lock() else {
            return Vec::new();
        };
        let ids: Vec<RequestId> = routes
            .iter()
            .filter(|(_, r)| &r.device == device)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &ids {
            routes.remove(id);
        }
        ids
    }

    pub fn open_count(&self) -> usize {
        self.routes.lock().map(|r| r.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests;
