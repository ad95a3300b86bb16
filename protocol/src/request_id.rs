//! Identifier of one log request (and, later, exec session), carried in its topic.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest request id accepted.
pub const MAX_REQUEST_ID_LEN: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestIdError {
    #[error("request id is empty")]
    Empty,
    #[error("request id is {len} characters; the limit is {MAX_REQUEST_ID_LEN}")]
    TooLong { len: usize },
    #[error("request id has {found:?}: only a-z, A-Z, 0-9, '-' and '_' are allowed")]
    InvalidCharacter { found: char },
}

/// A request id: 1 to 64 characters of `[A-Za-z0-9_-]`, so it is one safe topic level.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(String);

impl RequestId {
    pub fn new(id: impl Into<String>) -> Result<Self, RequestIdError> {
        let id = id.into();
        if id.is_empty() {
            return Err(RequestIdError::Empty);
        }
        let len = id.chars().count();
        if len > MAX_REQUEST_ID_LEN {
            return Err(RequestIdError::TooLong { len });
        }
        if let Some(found) = id
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        {
            return Err(RequestIdError::InvalidCharacter { found });
        }
        Ok(Self(id))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for RequestId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for RequestId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        RequestId::new(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests;
