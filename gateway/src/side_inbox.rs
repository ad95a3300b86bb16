//! A bounded queue from the [`crate::fleet::Fleet`] handle to a controller beside the
//! fleet (agent rollouts, image pre-pull): offered without waiting, so a slow controller
//! never holds up the broker connection; when full, the message is dropped (devices
//! repeat what matters: hellos, statuses and fetches come again).

use tokio::sync::mpsc;

#[derive(Debug)]
pub struct SideInbox<T> {
    tx: mpsc::Sender<T>,
}

impl<T> Clone for SideInbox<T> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
        }
    }
}

impl<T> SideInbox<T> {
    /// A queue of at most `capacity` messages and its receiving end.
    pub fn channel(capacity: usize) -> (Self, mpsc::Receiver<T>) {
        let (tx, rx) = mpsc::channel(capacity);
        (Self { tx }, rx)
    }

    /// Queues a message; `false` when the queue is full (the message is dropped).
    pub fn offer(&self, message: T) -> bool {
        self.tx.try_send(message).is_ok()
    }
}
