//! Sub-protocol negotiation as the kubelet does it (`httpstream.Handshake`): the first
//! protocol in the client's order that the server supports wins; the client's list may
//! span several header values, each comma-separated.

/// Request header carrying the client's protocols (SPDY upgrade path).
pub const HEADER_PROTOCOL_VERSION: &str = "X-Stream-Protocol-Version";
/// Response header listing the server's protocols when negotiation fails.
pub const HEADER_ACCEPTED_PROTOCOL_VERSIONS: &str = "X-Accepted-Stream-Protocol-Versions";
/// `Upgrade` token of the SPDY path.
pub const UPGRADE_SPDY_31: &str = "SPDY/3.1";

/// Why no protocol could be chosen. The kubelet answers `MissingHeader` with
/// 400 Bad Request and `NoCommonProtocol` with 403 Forbidden plus
/// [`HEADER_ACCEPTED_PROTOCOL_VERSIONS`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NegotiationError {
    #[error(
        "unable to upgrade: header {HEADER_PROTOCOL_VERSION} is missing or has no valid protocols"
    )]
    MissingHeader,
    #[error(
        "unable to upgrade: unable to negotiate protocol: client supports {client:?}, server accepts {server:?}"
    )]
    NoCommonProtocol {
        client: Vec<String>,
        server: Vec<String>,
    },
}

impl NegotiationError {
    /// The HTTP status the kubelet sends for this error.
    pub fn http_status(&self) -> u16 {
        match self {
            NegotiationError::MissingHeader => 400,
            NegotiationError::NoCommonProtocol { .. } => 403,
        }
    }
}

/// Chooses a protocol from the values of the client's protocol header.
pub fn negotiate<'s>(
    client_header_values: &[&str],
    server: &[&'s str],
) -> Result<&'s str, NegotiationError> {
    let client: Vec<&str> = client_header_values
        .iter()
        .flat_map(|v| v.split(','))
        .map(|p| p.trim_matches(' '))
        .filter(|p| !p.is_empty())
        .collect();
    if client.is_empty() {
        return Err(NegotiationError::MissingHeader);
    }
    client
        .iter()
        .find_map(|c| server.iter().find(|s| **s == *c).copied())
        .ok_or_else(|| NegotiationError::NoCommonProtocol {
            client: client.iter().map(|s| s.to_string()).collect(),
            server: server.iter().map(|s| s.to_string()).collect(),
        })
}

/// True when the `Connection` and `Upgrade` header values ask for SPDY/3.1
/// (case-insensitive substring match, like the kubelet's upgrader).
pub fn is_spdy_upgrade(connection: &str, upgrade: &str) -> bool {
    connection.to_ascii_lowercase().contains("upgrade")
        && upgrade
            .to_ascii_lowercase()
            .contains(&UPGRADE_SPDY_31.to_ascii_lowercase())
}

#[cfg(test)]
mod tests;
