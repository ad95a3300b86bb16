//! A fault-injection TCP proxy that understands MQTT framing, to put between a client
//! (agent or gateway) and a broker (Mosquitto or the embedded rumqttd).
//!
//! It forwards whole packets and can, on command:
//! - cut every connection right after forwarding the Nth PUBACK in a direction
//!   ([`FaultProxy::cut_after_puback`]) or at once ([`FaultProxy::cut_now`]);
//! - drop the next packets of a kind in a direction ([`FaultProxy::drop_next`]);
//! - delay every packet in a direction ([`FaultProxy::set_delay`]);
//! - stall: stop forwarding for a while without closing ([`FaultProxy::stall`]).
//!
//! It listens on `127.0.0.1:0`; clients reconnect through it after a cut. Everything it
//! forwarded is counted and recorded ([`FaultProxy::stats`], [`FaultProxy::seen`]).

mod mqtt_frame;
mod pump;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

pub use mqtt_frame::{Frame, FrameError, PacketKind, split_frame};

/// Which way a packet travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From the client (agent, gateway) to the broker.
    ToBroker,
    /// From the broker to the client.
    ToClient,
}

impl Direction {
    fn index(self) -> usize {
        match self {
            Direction::ToBroker => 0,
            Direction::ToClient => 1,
        }
    }
}

/// A packet the proxy forwarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenPacket {
    pub connection: u64,
    pub direction: Direction,
    pub kind: PacketKind,
    pub packet_id: Option<u16>,
    pub topic: Option<String>,
}

/// Counters since the proxy started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProxyStats {
    pub connections: u64,
    pub cuts: u64,
    pub pubacks_to_broker: u64,
    pub pubacks_to_client: u64,
    pub dropped: u64,
}

#[derive(Debug)]
struct DropRule {
    direction: Direction,
    kind: PacketKind,
    remaining: u64,
}

#[derive(Debug, Default)]
struct Control {
    next_connection: u64,
    connections: Vec<(u64, CancellationToken)>,
    pubacks: [u64; 2],
    /// Cut after this many PUBACKs, that long after forwarding the last one.
    cut_at: [Option<(u64, Duration)>; 2],
    stall_until: Option<Instant>,
    delay: [Duration; 2],
    drops: Vec<DropRule>,
    stats: ProxyStats,
    seen: Vec<SeenPacket>,
}

/// At most this many forwarded packets are recorded (the oldest go first).
const SEEN_LIMIT: usize = 100_000;

impl Control {
    fn cut_all(&mut self) {
        if self.connections.is_empty() {
            return;
        }
        for (_, token) in self.connections.drain(..) {
            token.cancel();
        }
        self.stats.cuts += 1;
    }
}

/// What to do with one packet, decided under the lock.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// `cut_after`: cut once forwarded; zero: the FIN goes with the packet.
    Forward {
        wait: Duration,
        cut_after: Option<Duration>,
    },
    Drop,
}

#[derive(Debug, Clone)]
struct Shared(Arc<Mutex<Control>>);

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Control> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Decides the fate of `frame` and records it as forwarded (when it is).
    fn verdict(&self, connection: u64, direction: Direction, frame: &Frame) -> Verdict {
        let mut c = self.lock();
        if let Some(rule) = c
            .drops
            .iter_mut()
            .find(|r| r.direction == direction && r.kind == frame.kind && r.remaining > 0)
        {
            rule.remaining -= 1;
            c.drops.retain(|r| r.remaining > 0);
            c.stats.dropped += 1;
            return Verdict::Drop;
        }
        let now = Instant::now();
        let stall = c
            .stall_until
            .map_or(Duration::ZERO, |t| t.saturating_duration_since(now));
        let wait = stall + c.delay[direction.index()];
        let mut cut_after = None;
        if frame.kind == PacketKind::PubAck {
            let i = direction.index();
            c.pubacks[i] += 1;
            match direction {
                Direction::ToBroker => c.stats.pubacks_to_broker += 1,
                Direction::ToClient => c.stats.pubacks_to_client += 1,
            }
            if let Some((at, linger)) = c.cut_at[i]
                && c.pubacks[i] >= at
            {
                c.cut_at[i] = None;
                cut_after = Some(linger);
            }
        }
        if c.seen.len() >= SEEN_LIMIT {
            c.seen.remove(0);
        }
        c.seen.push(SeenPacket {
            connection,
            direction,
            kind: frame.kind,
            packet_id: frame.packet_id(),
            topic: frame.topic(),
        });
        Verdict::Forward { wait, cut_after }
    }
}

/// The running proxy; dropping it closes the listener and every connection.
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    upstream: SocketAddr,
    shared: Shared,
    stop: CancellationToken,
}

impl FaultProxy {
    /// Listens on `127.0.0.1:0` and forwards every connection to `upstream`.
    pub async fn start(upstream: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Shared(Arc::new(Mutex::new(Control::default())));
        let stop = CancellationToken::new();
        tokio::spawn(accept_loop(
            listener,
            upstream,
            shared.clone(),
            stop.clone(),
        ));
        Ok(Self {
            addr,
            upstream,
            shared,
            stop,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn upstream(&self) -> SocketAddr {
        self.upstream
    }

    /// `mqtt://127.0.0.1:<port>` for clients.
    pub fn url(&self) -> String {
        format!("mqtt://{}", self.addr)
    }

    /// Cuts every connection right after forwarding the `n`th PUBACK (counted from now,
    /// `n >= 1`) travelling in `direction`: the PUBACK and the FIN go in one TCP segment,
    /// so the receiver reads the acknowledgement and the end of the connection together.
    pub fn cut_after_puback(&self, direction: Direction, n: u64) {
        self.cut_shortly_after_puback(direction, n, Duration::ZERO);
    }

    /// Like [`FaultProxy::cut_after_puback`], but the cut comes `linger` after the
    /// PUBACK (the receiver has acted on it); meanwhile the other direction still flows.
    pub fn cut_shortly_after_puback(&self, direction: Direction, n: u64, linger: Duration) {
        let mut c = self.shared.lock();
        let i = direction.index();
        c.cut_at[i] = Some((c.pubacks[i] + n.max(1), linger));
    }

    /// Whether a [`FaultProxy::cut_after_puback`] is still waiting for its PUBACK.
    pub fn cut_armed(&self, direction: Direction) -> bool {
        self.shared.lock().cut_at[direction.index()].is_some()
    }

    /// Forgets an armed PUBACK cut.
    pub fn disarm(&self) {
        self.shared.lock().cut_at = [None, None];
    }

    /// Closes every connection now.
    pub fn cut_now(&self) {
        self.shared.lock().cut_all();
    }

    /// Drops the next `count` packets of `kind` travelling in `direction`.
    pub fn drop_next(&self, direction: Direction, kind: PacketKind, count: u64) {
        self.shared.lock().drops.push(DropRule {
            direction,
            kind,
            remaining: count,
        });
    }

    /// Delays every packet travelling in `direction` by `delay` (zero: no delay).
    pub fn set_delay(&self, direction: Direction, delay: Duration) {
        self.shared.lock().delay[direction.index()] = delay;
    }

    /// Stops forwarding in both directions for `duration`; connections stay open.
    pub fn stall(&self, duration: Duration) {
        self.shared.lock().stall_until = Some(Instant::now() + duration);
    }

    pub fn stats(&self) -> ProxyStats {
        self.shared.lock().stats
    }

    /// Connections open now.
    pub fn open_connections(&self) -> usize {
        self.shared.lock().connections.len()
    }

    /// The packets forwarded so far (the last 100,000).
    pub fn seen(&self) -> Vec<SeenPacket> {
        self.shared.lock().seen.clone()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.cancel();
        self.shared.lock().cut_all();
    }
}

async fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    shared: Shared,
    stop: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => return,
            a = listener.accept() => a,
        };
        let client = match accepted {
            Ok((client, _)) => client,
            Err(e) => {
                tracing::warn!(error = %e, "fault proxy: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let broker = match TcpStream::connect(upstream).await {
            Ok(b) => b,
            Err(e) => {
                tracing::debug!(error = %e, %upstream, "fault proxy: upstream refused; closing the client");
                continue;
            }
        };
        let _ = client.set_nodelay(true);
        let _ = broker.set_nodelay(true);
        let token = stop.child_token();
        let id = {
            let mut c = shared.lock();
            let id = c.next_connection;
            c.next_connection += 1;
            c.stats.connections += 1;
            c.connections.push((id, token.clone()));
            id
        };
        let (client_read, client_write) = client.into_split();
        let (broker_read, broker_write) = broker.into_split();
        let link = pump::Link {
            connection: id,
            shared: shared.clone(),
            token: token.clone(),
        };
        tokio::spawn(pump::forward(
            link.clone(),
            Direction::ToBroker,
            client_read,
            broker_write,
        ));
        tokio::spawn(pump::forward(
            link,
            Direction::ToClient,
            broker_read,
            client_write,
        ));
    }
}

#[cfg(test)]
mod tests;
