//! N fake devices in this process, connected at a steady rate.

use std::time::Duration;

use edge_protocol::DeviceId;

use crate::fake_device::{FakeDevice, FakeDeviceConfig};
use crate::stack::{StackError, StackResult};

/// The simulated fleet: devices `sim-00000`, `sim-00001`, ...
#[derive(Debug)]
pub struct Fleet {
    devices: Vec<FakeDevice>,
}

impl Fleet {
    /// Connects `n` devices to the broker on `127.0.0.1:port`, `per_second` at a time,
    /// printing progress every 10 %.
    pub async fn connect(
        n: usize,
        port: u16,
        heartbeat_interval: Duration,
        per_second: usize,
    ) -> StackResult<Self> {
        let mut devices = Vec::with_capacity(n);
        let batch = per_second.max(1);
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut next_report = n / 10;
        for start in (0..n).step_by(batch) {
            tick.tick().await;
            let mut tasks = tokio::task::JoinSet::new();
            for i in start..(start + batch).min(n) {
                let id =
                    DeviceId::new(Self::name(i)).map_err(|e| StackError::Other(e.to_string()))?;
                let mut config = FakeDeviceConfig::new(id, "127.0.0.1", port);
                config.heartbeat_interval = heartbeat_interval;
                config.keep_alive = Duration::from_secs(30);
                // as the agent by default (--reconnect-backoff-max 30s)
                config.reconnect_backoff_max = Duration::from_secs(30);
                config
                    .labels
                    .insert("fleet".to_owned(), format!("group-{}", i % 10));
                tasks.spawn(FakeDevice::start(config));
            }
            while let Some(joined) = tasks.join_next().await {
                let device = joined
                    .map_err(|e| StackError::Other(e.to_string()))?
                    .map_err(|e| StackError::Other(e.to_string()))?;
                devices.push(device);
            }
            if devices.len() >= next_report && n >= 10 {
                eprintln!("[fleet-bench] {} / {n} devices connected", devices.len());
                next_report += n / 10;
            }
        }
        devices.sort_by(|a, b| a.id().cmp(b.id()));
        Ok(Self { devices })
    }

    fn name(i: usize) -> String {
        format!("sim-{i:05}")
    }

    pub fn len(&self) -> usize {
        self.devices.len()
    }

    pub fn is_empty(&self) -> bool {
        self.devices.is_empty()
    }

    /// The id (= Node name) of the i-th device.
    pub fn device_name(&self, i: usize) -> String {
        Self::name(i)
    }
}
