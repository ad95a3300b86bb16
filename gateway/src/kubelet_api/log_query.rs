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
mod tests {
    use super::*;

    #[test]
    fn parses_every_parameter() {
        let q = LogQuery::parse(
            "tailLines=10&timestamps=true&follow=1&limitBytes=500&previous=false&sinceTime=2024-01-01T00%3A00%3A00Z",
        )
        .unwrap();
        assert_eq!(q.tail_lines, Some(10));
        assert!(q.timestamps && q.follow && !q.previous);
        assert_eq!(q.limit_bytes, Some(500));
        assert_eq!(q.since_time, Some(1_704_067_200_000));
        assert_eq!(
            LogQuery::parse("sinceSeconds=5").unwrap().since_seconds,
            Some(5)
        );
    }

    #[test]
    fn rejects_bad_values() {
        assert!(LogQuery::parse("tailLines=-1").is_err());
        assert!(LogQuery::parse("limitBytes=0").is_err());
        assert!(LogQuery::parse("follow=maybe").is_err());
        assert!(LogQuery::parse("sinceTime=yesterday").is_err());
        assert_eq!(
            LogQuery::parse("sinceSeconds=1&sinceTime=2024-01-01T00:00:00Z"),
            Err(LogQueryError::BothSince)
        );
    }
}
