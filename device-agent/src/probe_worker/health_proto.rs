//! The two messages of `grpc.health.v1.Health/Check` (protobuf, encoded by hand), their
//! gRPC length-prefixed framing, and the names gRPC gives to statuses and codes.

use std::time::Duration;

/// The method a gRPC probe calls.
pub const CHECK_PATH: &str = "/grpc.health.v1.Health/Check";

/// The largest response message accepted (a `HealthCheckResponse` is 2 bytes).
pub const MAX_RESPONSE_BYTES: usize = 4096;

/// gRPC status code `OK`.
pub const CODE_OK: u32 = 0;
/// gRPC status code `DEADLINE_EXCEEDED`.
pub const CODE_DEADLINE_EXCEEDED: u32 = 4;
/// gRPC status code `UNIMPLEMENTED`.
pub const CODE_UNIMPLEMENTED: u32 = 12;
/// gRPC status code `INTERNAL`.
pub const CODE_INTERNAL: u32 = 13;
/// gRPC status code `UNAVAILABLE`.
pub const CODE_UNAVAILABLE: u32 = 14;

/// A `HealthCheckResponse` that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HealthProtoError {
    #[error("response message is truncated")]
    Truncated,
    #[error("response message is compressed, but no compression was negotiated")]
    Compressed,
    #[error("response message of {0} bytes is larger than {MAX_RESPONSE_BYTES}")]
    TooLarge(usize),
    #[error("response has no message")]
    Empty,
    #[error("malformed protobuf in response")]
    Malformed,
}

/// `HealthCheckResponse.status`: `SERVING` is the only healthy value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServingStatus(pub u64);

impl ServingStatus {
    pub const SERVING: ServingStatus = ServingStatus(1);

    /// The enum's name as gRPC prints it (`NOT_SERVING`), or the number when unknown.
    pub fn name(self) -> String {
        match self.0 {
            0 => "UNKNOWN".to_owned(),
            1 => "SERVING".to_owned(),
            2 => "NOT_SERVING".to_owned(),
            3 => "SERVICE_UNKNOWN".to_owned(),
            n => n.to_string(),
        }
    }
}

/// A `HealthCheckRequest { service }` as one uncompressed gRPC message (length-prefixed).
pub fn check_request(service: &str) -> Vec<u8> {
    let mut message = Vec::with_capacity(service.len() + 6);
    if !service.is_empty() {
        // field 1, wire type 2 (length-delimited); proto3 leaves out an empty string
        message.push(0x0a);
        put_varint(&mut message, service.len() as u64);
        message.extend_from_slice(service.as_bytes());
    }
    let mut framed = Vec::with_capacity(message.len() + 5);
    framed.push(0);
    framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
    framed.extend_from_slice(&message);
    framed
}

/// The `status` of the first gRPC message in `body` (a `HealthCheckResponse`).
pub fn check_response(body: &[u8]) -> Result<ServingStatus, HealthProtoError> {
    let Some((&flag, rest)) = body.split_first() else {
        return Err(HealthProtoError::Empty);
    };
    if flag != 0 {
        return Err(HealthProtoError::Compressed);
    }
    let len = rest
        .get(..4)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(u32::from_be_bytes)
        .ok_or(HealthProtoError::Truncated)?;
    let len = usize::try_from(len).map_err(|_| HealthProtoError::Malformed)?;
    if len > MAX_RESPONSE_BYTES {
        return Err(HealthProtoError::TooLarge(len));
    }
    let message = rest.get(4..4 + len).ok_or(HealthProtoError::Truncated)?;
    decode_status(message)
}

/// Reads field 1 (varint) of a `HealthCheckResponse`, skipping unknown fields; absent
/// means `UNKNOWN` (0), as in proto3.
fn decode_status(mut message: &[u8]) -> Result<ServingStatus, HealthProtoError> {
    let mut status = 0;
    while !message.is_empty() {
        let key = take_varint(&mut message)?;
        let value_len = match key & 7 {
            0 => {
                let v = take_varint(&mut message)?;
                if key >> 3 == 1 {
                    status = v;
                }
                0
            }
            1 => 8,
            2 => usize::try_from(take_varint(&mut message)?)
                .map_err(|_| HealthProtoError::Malformed)?,
            5 => 4,
            _ => return Err(HealthProtoError::Malformed),
        };
        message = message
            .get(value_len..)
            .ok_or(HealthProtoError::Truncated)?;
    }
    Ok(ServingStatus(status))
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn take_varint(input: &mut &[u8]) -> Result<u64, HealthProtoError> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = input.split_first().ok_or(HealthProtoError::Truncated)?;
        *input = rest;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(HealthProtoError::Malformed)
}

/// The name gRPC prints for a status code (`NotFound`), as in `rpc error: code = ...`.
pub fn code_name(code: u32) -> String {
    const NAMES: [&str; 17] = [
        "OK",
        "Canceled",
        "Unknown",
        "InvalidArgument",
        "DeadlineExceeded",
        "NotFound",
        "AlreadyExists",
        "PermissionDenied",
        "ResourceExhausted",
        "FailedPrecondition",
        "Aborted",
        "OutOfRange",
        "Unimplemented",
        "Internal",
        "Unavailable",
        "DataLoss",
        "Unauthenticated",
    ];
    usize::try_from(code)
        .ok()
        .and_then(|i| NAMES.get(i))
        .map_or_else(|| format!("Code({code})"), |n| (*n).to_owned())
}

/// The gRPC code of a response whose HTTP status is not 200 (gRPC's
/// "HTTP to gRPC status code mapping").
pub fn code_of_http_status(status: u16) -> u32 {
    match status {
        400 => CODE_INTERNAL,
        401 => 16,
        403 => 7,
        404 => CODE_UNIMPLEMENTED,
        429 | 502..=504 => CODE_UNAVAILABLE,
        _ => 2,
    }
}

/// `grpc-message` is percent-encoded (`%XX`); anything malformed is kept as is.
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A duration as Go prints it (`1s`, `1m30s`, `1h0m0s`, `500ms`), for the kubelet's
/// messages.
pub fn go_duration(d: Duration) -> String {
    let secs = d.as_secs();
    let millis = d.subsec_millis();
    if secs == 0 {
        return format!("{millis}ms");
    }
    let fraction = if millis == 0 {
        String::new()
    } else {
        format!(".{millis:03}").trim_end_matches('0').to_owned()
    };
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s}{fraction}s"),
        (0, _) => format!("{m}m{s}{fraction}s"),
        _ => format!("{h}h{m}m{s}{fraction}s"),
    }
}

/// The `grpc-timeout` header for `d` (milliseconds, at most 8 digits).
pub fn grpc_timeout(d: Duration) -> String {
    format!("{}m", d.as_millis().clamp(1, 99_999_999))
}

#[cfg(test)]
mod tests;
