//! The `containerLogs` query parameters, validated as the kubelet does.

use edge_protocol::UnixMillis;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogQueryError {
    #[error("invalid {name}={value:?}: {why}")]
    Invalid {
        name: &'static str,
        value: String,
        why: &'static str,
    },
    #[error("at most one of sinceTime or sinceSeconds may be specified")]
    BothSince,
}

/// tailLines, sinceSeconds, sinceTime, timestamps, follow, limitBytes, previous.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogQuery {
    pub tail_lines: Option<u64>,
    pub since_seconds: Option<u64>,
    pub since_time: Option<UnixMillis>,
    pub timestamps: bool,
    pub follow: bool,
    pub limit_bytes: Option<u64>,
    pub previous: bool,
}

fn boolean(name: &'static str, v: &str) -> Result<bool, LogQueryError> {
    match v {
        "" | "true" | "1" | "True" | "TRUE" => Ok(true),
        "false" | "0" | "False" | "FALSE" => Ok(false),
        _ => Err(LogQueryError::Invalid {
            name,
            value: v.to_owned(),
            why: "expected true or false",
        }),
    }
}

fn number(name: &'static str, v: &str, min: u64) -> Result<u64, LogQueryError> {
    let n: i64 = v.parse().map_err(|_| LogQueryError::Invalid {
        name,
        value: v.to_owned(),
        why: "expected an integer",
    })?;
    u64::try_from(n)
        .ok()
        .filter(|n| *n >= min)
        .ok_or(LogQueryError::Invalid {
            name,
            value: v.to_owned(),
            why: if min == 0 {
                "must not be negative"
            } else {
                "must be greater than zero"
            },
        })
}

impl LogQuery {
    pub fn parse(query: &str) -> Result<Self, LogQueryError> {
        let mut q = LogQuery::default();
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            match k.as_ref() {
                "tailLines" => q.tail_lines = Some(number("tailLines", &v, 0)?),
                "sinceSeconds" => q.since_seconds = Some(number("sinceSeconds", &v, 1)?),
                "limitBytes" => q.limit_bytes = Some(number("limitBytes", &v, 1)?),
                "timestamps" => q.timestamps = boolean("timestamps", &v)?,
                "follow" => q.follow = boolean("follow", &v)?,
                "previous" => q.previous = boolean("previous", &v)?,
                "sinceTime" => {
                    let t: jiff::Timestamp = v.parse().map_err(|_| LogQueryError::Invalid {
                        name: "sinceTime",
                        value: v.to_string(),
                        why: "expected an RFC 3339 time",
                    })?;
                    q.since_time = Some(u64::try_from(t.as_millisecond()).unwrap_or(0));
                }
                _ => {}
            }
        }
        if q.since_seconds.is_some() && q.since_time.is_some() {
            return Err(LogQueryError::BothSince);
        }
        Ok(q)
    }
}

#[cfg(test)]
mod tests;
