//! The device id of a board with no identity yet, derived from its hardware: the
//! Raspberry Pi serial from the device tree, else `/etc/machine-id`, else the first
//! network interface's MAC address, through a template such as `pi-{serial}`.
//!
//! Reading ([`HardwareSources::read`]) is separate from rendering ([`render_template`],
//! pure), and every path is under a root directory (`/` on a device, a fake tree in tests).

use std::path::{Path, PathBuf};

use edge_protocol::{DeviceId, DeviceIdError};

/// Where the device tree serial number can be (both hold the same value on a Pi).
const SERIAL_PATHS: [&str; 2] = [
    "proc/device-tree/serial-number",
    "sys/firmware/devicetree/base/serial-number",
];
const MACHINE_ID_PATH: &str = "etc/machine-id";
const NET_CLASS_DIR: &str = "sys/class/net";

/// The hardware identifiers found on this board.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HardwareIds {
    /// Device tree serial number (Raspberry Pi: 16 hex digits), lower case.
    pub serial: Option<String>,
    /// `/etc/machine-id` (32 hex digits).
    pub machine_id: Option<String>,
    /// MAC address of the first physical interface (by name), 12 hex digits, no colons.
    pub mac: Option<String>,
}

/// Which identifier `{serial}` stood for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdSource {
    Serial,
    MachineId,
    Mac,
    /// The template names no hardware identifier.
    Template,
}

impl IdSource {
    pub fn as_str(self) -> &'static str {
        match self {
            IdSource::Serial => "serial",
            IdSource::MachineId => "machine-id",
            IdSource::Mac => "mac",
            IdSource::Template => "template",
        }
    }
}

/// Why no device id can be derived.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HardwareIdError {
    #[error(
        "device_id_template {template:?} needs {{{placeholder}}}, but this board has none (looked under {root})"
    )]
    Missing {
        template: String,
        placeholder: &'static str,
        root: String,
    },
    #[error(
        "device_id_template {template:?} has an unknown or unclosed placeholder near {near:?} (known: {{serial}}, {{machine-id}}, {{mac}})"
    )]
    BadTemplate { template: String, near: String },
    #[error(
        "device_id_template {template:?} gives {rendered:?}, which is not a valid device id: {source}"
    )]
    InvalidId {
        template: String,
        rendered: String,
        #[source]
        source: DeviceIdError,
    },
}

/// Paths of the hardware identifiers under a root directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HardwareSources {
    root: PathBuf,
}

impl HardwareSources {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Reads every identifier this board has (missing or unreadable ones are `None`).
    pub fn read(&self) -> HardwareIds {
        let read = |rel: &str| std::fs::read(self.root.join(rel)).ok();
        HardwareIds {
            serial: SERIAL_PATHS
                .iter()
                .find_map(|p| read(p).and_then(|raw| normalize_hex(&raw))),
            machine_id: read(MACHINE_ID_PATH).and_then(|raw| normalize_hex(&raw)),
            mac: self.first_mac(),
        }
    }

    /// The MAC of the first interface by name that is not loopback and not all zeros;
    /// interfaces backed by a device (`device` link, i.e. not virtual) come first.
    fn first_mac(&self) -> Option<String> {
        let dir = self.root.join(NET_CLASS_DIR);
        let mut names: Vec<(bool, String)> = std::fs::read_dir(&dir)
            .ok()?
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| n != "lo")
            .map(|n| (!dir.join(&n).join("device").exists(), n))
            .collect();
        names.sort();
        names.into_iter().find_map(|(_, name)| {
            let raw = std::fs::read(dir.join(&name).join("address")).ok()?;
            normalize_hex(&raw).filter(|mac| mac.len() == 12 && mac.bytes().any(|b| b != b'0'))
        })
    }
}

/// Trims NULs and white space (the device tree's serial ends in a NUL), drops colons,
/// lower-cases; `None` unless what is left is non-empty hex.
pub fn normalize_hex(raw: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(raw);
    let value: String = text
        .trim_matches(|c: char| c == '\0' || c.is_whitespace())
        .chars()
        .filter(|c| *c != ':')
        .collect::<String>()
        .to_ascii_lowercase();
    (!value.is_empty() && value.bytes().all(|b| b.is_ascii_hexdigit())).then_some(value)
}

/// Renders `template`: `{serial}` is the first identifier this board has (serial, else
/// machine id, else MAC); `{machine-id}` and `{mac}` name one explicitly.
pub fn render_template(
    template: &str,
    ids: &HardwareIds,
    root: &Path,
) -> Result<(DeviceId, IdSource), HardwareIdError> {
    let mut out = String::new();
    let mut source = IdSource::Template;
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let end = after
            .find('}')
            .ok_or_else(|| HardwareIdError::BadTemplate {
                template: template.to_owned(),
                near: rest[start..].to_owned(),
            })?;
        let name = &after[..end];
        let missing = |placeholder: &'static str| HardwareIdError::Missing {
            template: template.to_owned(),
            placeholder,
            root: root.display().to_string(),
        };
        let (value, from) = match name {
            "serial" => [
                (&ids.serial, IdSource::Serial),
                (&ids.machine_id, IdSource::MachineId),
                (&ids.mac, IdSource::Mac),
            ]
            .into_iter()
            .find_map(|(v, s)| v.clone().map(|v| (v, s)))
            .ok_or_else(|| missing("serial"))?,
            "machine-id" => (
                ids.machine_id
                    .clone()
                    .ok_or_else(|| missing("machine-id"))?,
                IdSource::MachineId,
            ),
            "mac" => (
                ids.mac.clone().ok_or_else(|| missing("mac"))?,
                IdSource::Mac,
            ),
            _ => {
                return Err(HardwareIdError::BadTemplate {
                    template: template.to_owned(),
                    near: rest[start..].to_owned(),
                });
            }
        };
        out.push_str(&value);
        if source == IdSource::Template {
            source = from;
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    let id = DeviceId::new(out.clone()).map_err(|source| HardwareIdError::InvalidId {
        template: template.to_owned(),
        rendered: out,
        source,
    })?;
    Ok((id, source))
}

#[cfg(test)]
mod tests;
