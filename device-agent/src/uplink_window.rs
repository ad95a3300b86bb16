//! Which reliable (QoS 1) uplink message goes out next: a pure state machine.
//!
//! At most one reliable message is in flight, so every PUBACK belongs to it and
//! outbox entries are deleted only once the broker has them; after a reconnect without
//! a session the in-flight message is sent again (the gateway drops duplicates by
//! sequence). Connect-time messages (online state, node report, resync request) go
//! before the outbox backlog and are dropped on disconnect (they are regenerated).

use std::collections::VecDeque;

use edge_protocol::UpChannel;

/// A connect-time message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriorityMessage {
    pub channel: UpChannel,
    pub payload: Vec<u8>,
}

/// What to publish now.
#[derive(Clone, PartialEq, Eq)]
pub enum Send {
    Priority(PriorityMessage),
    /// The outbox entry with this key.
    Outbox(u64),
}

impl std::fmt::Debug for Send {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Send::Priority(p) => write!(f, "{:?} ({} bytes)", p.channel, p.payload.len()),
            Send::Outbox(key) => write!(f, "outbox #{key}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum InFlight {
    Priority,
    Outbox(u64),
}

#[derive(Debug, Default)]
pub struct UplinkWindow {
    connected: bool,
    in_flight: Option<InFlight>,
    priority: VecDeque<PriorityMessage>,
}

impl UplinkWindow {
    pub fn connected(&self) -> bool {
        self.connected
    }

    pub fn on_connected(&mut self, session_present: bool) {
        self.connected = true;
        if !session_present {
            // The broker forgot the message: send it again.
            self.in_flight = None;
        }
    }

    pub fn on_disconnected(&mut self) {
        self.connected = false;
        self.priority.clear();
        if self.in_flight == Some(InFlight::Priority) {
            self.in_flight = None;
        }
    }

    pub fn push_priority(&mut self, message: PriorityMessage) {
        if self.connected {
            self.priority.push_back(message);
        }
    }

    /// A PUBACK arrived: returns the outbox key that may now be deleted.
    pub fn on_acked(&mut self) -> Option<u64> {
        match self.in_flight.take() {
            Some(InFlight::Outbox(key)) => Some(key),
            _ => None,
        }
    }

    /// The next message to publish, given the outbox head's key.
    pub fn next(&mut self, outbox_head: Option<u64>) -> Option<Send> {
        if !self.connected || self.in_flight.is_some() {
            return None;
        }
        if let Some(p) = self.priority.pop_front() {
            self.in_flight = Some(InFlight::Priority);
            return Some(Send::Priority(p));
        }
        let key = outbox_head?;
        self.in_flight = Some(InFlight::Outbox(key));
        Some(Send::Outbox(key))
    }

    pub fn idle(&self) -> bool {
        self.in_flight.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg() -> PriorityMessage {
        PriorityMessage {
            channel: UpChannel::Hello,
            payload: vec![1],
        }
    }

    #[test]
    fn one_in_flight_priority_first_resend_after_new_session() {
        let mut w = UplinkWindow::default();
        assert_eq!(w.next(Some(1)), None, "offline: nothing goes");
        w.push_priority(msg());
        w.on_connected(false);
        w.push_priority(msg());
        assert_eq!(w.next(Some(1)), Some(Send::Priority(msg())));
        assert_eq!(w.next(Some(1)), None, "window of one");
        assert_eq!(w.on_acked(), None);
        assert_eq!(w.next(Some(1)), Some(Send::Outbox(1)));
        w.on_disconnected();
        assert_eq!(w.next(Some(1)), None);
        w.on_connected(false);
        assert_eq!(w.next(Some(1)), Some(Send::Outbox(1)), "re-sent");
        assert_eq!(w.on_acked(), Some(1));
        assert_eq!(w.next(None), None);
        assert!(w.idle());
    }

    #[test]
    fn resumed_session_waits_for_the_retransmission() {
        let mut w = UplinkWindow::default();
        w.on_connected(false);
        assert_eq!(w.next(Some(5)), Some(Send::Outbox(5)));
        w.on_disconnected();
        w.on_connected(true);
        assert_eq!(w.next(Some(5)), None);
        assert_eq!(w.on_acked(), Some(5));
    }
}
