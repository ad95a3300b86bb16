//! Which reliable (QoS 1) uplink message goes out next, and which PUBACK belongs to
//! which message: a pure state machine.
//!
//! One message at a time is *current*: the next one goes only once the broker
//! acknowledged it or the connection that carried it is gone. Acknowledgements are
//! matched by **connection epoch and packet id**, never by order:
//!
//! - every publish the window issues gets a ticket, queued in request order
//!   ([`UplinkWindow::next`]);
//! - when the MQTT client writes a QoS 1 publish it reports the packet id it chose
//!   (`Event::Outgoing(Outgoing::Publish(pkid))` in rumqttc); requests are written in the
//!   order they were made, so the oldest queued ticket is bound to `(epoch, pkid)`
//!   ([`UplinkWindow::on_written`]);
//! - a PUBACK in that epoch with that packet id acknowledges exactly that ticket
//!   ([`UplinkWindow::on_acked`]); any other PUBACK acknowledges nothing;
//! - on a disconnect the session reports how many queued requests the client dropped
//!   without writing them; everything written in the lost connection is forgotten (the
//!   agent uses clean sessions, so the broker forgot it too) and sent again.
//!
//! A request made just after the connection broke but before the window heard of it
//! stays queued in the client and is written on the next connection: the window keeps
//! waiting for it instead of issuing a second copy, so it can never credit that copy's
//! PUBACK to a later entry. Connect-time messages (online state, node report, resync
//! request) go before the outbox backlog and are dropped on disconnect (they are
//! regenerated). The gateway drops duplicate reports by sequence.

use std::collections::{BTreeMap, VecDeque};

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Carrying {
    Priority,
    Outbox(u64),
}

/// One publish request the window made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ticket {
    id: u64,
    carrying: Carrying,
}

/// Identifies a publish on the wire: the connection it was written on and its packet id.
pub type WireId = (u64, u16);

#[derive(Debug, Default)]
pub struct UplinkWindow {
    connected: bool,
    /// The ticket the window waits for before issuing the next message.
    current: Option<u64>,
    next_ticket: u64,
    /// Requested from the client, not yet written (request order).
    queued: VecDeque<Ticket>,
    /// Written on `(epoch, packet id)`, waiting for its PUBACK.
    written: BTreeMap<WireId, Ticket>,
    /// Waiting connect-time and status messages; `true`: a newer one of its channel
    /// replaces it ([`UplinkWindow::push_priority_latest`]).
    priority: VecDeque<(PriorityMessage, bool)>,
}

impl UplinkWindow {
    pub fn connected(&self) -> bool {
        self.connected
    }

    /// A connection is up (a new clean session).
    pub fn on_connected(&mut self) {
        self.connected = true;
    }

    /// The connection is gone. `unsent` is how many of the requests the window made
    /// were dropped by the client without being written (the oldest queued ones).
    pub fn on_disconnected(&mut self, unsent: usize) {
        self.connected = false;
        self.priority.clear();
        for _ in 0..unsent {
            if self.queued.pop_front().is_none() {
                tracing::warn!("the client dropped more publishes than the window made");
                break;
            }
        }
        // A clean session: the broker forgets what it did not acknowledge.
        self.written.clear();
        if let Some(current) = self.current
            && !self.queued.iter().any(|t| t.id == current)
        {
            self.current = None;
        }
    }

    pub fn push_priority(&mut self, message: PriorityMessage) {
        if self.connected {
            self.priority.push_back((message, false));
        }
    }

    /// Like [`UplinkWindow::push_priority`] for a message only the latest of which
    /// matters (byte progress): it replaces, in its place, a waiting message of its
    /// channel pushed the same way, so a slow link never queues stale progress. Messages
    /// pushed with [`UplinkWindow::push_priority`] are never replaced.
    pub fn push_priority_latest(&mut self, message: PriorityMessage) {
        if !self.connected {
            return;
        }
        match self
            .priority
            .iter_mut()
            .find(|(p, latest)| *latest && p.channel == message.channel)
        {
            Some((waiting, _)) => *waiting = message,
            None => self.priority.push_back((message, true)),
        }
    }

    /// The client wrote a QoS 1 publish with packet id `pkid` on connection `epoch`.
    /// Returns false when the window made no request that could be it.
    pub fn on_written(&mut self, epoch: u64, pkid: u16) -> bool {
        match self.queued.pop_front() {
            Some(ticket) => {
                self.written.insert((epoch, pkid), ticket);
                true
            }
            None => false,
        }
    }

    /// The last request could not be handed to the client (its channel is closed).
    pub fn on_request_failed(&mut self) {
        if let Some(ticket) = self.queued.pop_back()
            && self.current == Some(ticket.id)
        {
            self.current = None;
        }
    }

    /// A PUBACK for `pkid` arrived on connection `epoch`: returns the outbox key that
    /// may now be deleted (None for a connect-time message or an unknown packet id).
    pub fn on_acked(&mut self, epoch: u64, pkid: u16) -> Option<u64> {
        let ticket = self.written.remove(&(epoch, pkid))?;
        if self.current == Some(ticket.id) {
            self.current = None;
        }
        match ticket.carrying {
            Carrying::Outbox(key) => Some(key),
            Carrying::Priority => None,
        }
    }

    /// The next message to publish, given the outbox head's key.
    pub fn next(&mut self, outbox_head: Option<u64>) -> Option<Send> {
        if !self.connected || self.current.is_some() {
            return None;
        }
        let (send, carrying) = match self.priority.pop_front() {
            Some((p, _)) => (Send::Priority(p), Carrying::Priority),
            None => {
                let key = outbox_head?;
                (Send::Outbox(key), Carrying::Outbox(key))
            }
        };
        let id = self.next_ticket;
        self.next_ticket += 1;
        self.queued.push_back(Ticket { id, carrying });
        self.current = Some(id);
        Some(send)
    }

    /// Nothing requested, written or waiting.
    pub fn idle(&self) -> bool {
        self.current.is_none() && self.queued.is_empty() && self.written.is_empty()
    }
}

#[cfg(test)]
mod tests;
