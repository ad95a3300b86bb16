//! The one name of a device: MQTT client id, Kubernetes Node name, certificate CN.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest DNS-1123 subdomain Kubernetes accepts as an object name.
pub const MAX_DEVICE_ID_LEN: usize = 253;

/// Why a string is not a valid device id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceIdError {
    #[error("device id is empty")]
    Empty,
    #[error(
        "device id is {len} characters long; the limit is {MAX_DEVICE_ID_LEN} (DNS-1123 subdomain)"
    )]
    TooLong { len: usize },
    #[error(
        "device id {id:?} has {found:?} at position {position}: only lower-case a-z, 0-9, '-' and '.' \
         are allowed (DNS-1123 subdomain, it becomes a Kubernetes Node name)"
    )]
    InvalidCharacter {
        id: String,
        found: char,
        position: usize,
    },
    #[error(
        "device id {id:?} is not a DNS-1123 subdomain: each dot-separated part must start and end \
         with a lower-case letter or digit"
    )]
    BadLabelBoundary { id: String },
}

/// A validated device id: a DNS-1123 subdomain (the rule Kubernetes applies to Node names).
///
/// Such an id can never contain the MQTT wildcards `+` and `#` or the level separator `/`,
/// so it is safe to place into a topic.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DeviceId(String);

impl DeviceId {
    /// Validates `id` as a DNS-1123 subdomain.
    pub fn new(id: impl Into<String>) -> Result<Self, DeviceIdError> {
        let id = id.into();
        validate_dns1123_subdomain(&id)?;
        Ok(Self(id))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

fn validate_dns1123_subdomain(id: &str) -> Result<(), DeviceIdError> {
    if id.is_empty() {
        return Err(DeviceIdError::Empty);
    }
    let len = id.chars().count();
    if len > MAX_DEVICE_ID_LEN {
        return Err(DeviceIdError::TooLong { len });
    }
    for (position, found) in id.chars().enumerate() {
        if !(found.is_ascii_lowercase() || found.is_ascii_digit() || found == '-' || found == '.') {
            return Err(DeviceIdError::InvalidCharacter {
                id: id.to_owned(),
                found,
                position,
            });
        }
    }
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    for label in id.split('.') {
        if !alnum(label.chars().next()) || !alnum(label.chars().last()) {
            return Err(DeviceIdError::BadLabelBoundary { id: id.to_owned() });
        }
    }
    Ok(())
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for DeviceId {
    type Err = DeviceIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl AsRef<str> for DeviceId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Serialize for DeviceId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for DeviceId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        DeviceId::new(raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests;
