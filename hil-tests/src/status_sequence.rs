//! "Nothing acknowledged was lost": the sequence numbers of an agent's status reports as
//! the gateway logged their arrival ("status report received", a debug line of
//! `edge_gateway::fleet`), checked against the agent's last sequence number (its
//! `store/sequence`).

use std::path::Path;

/// The sequence numbers of the status reports the gateway received from `device`, in
/// arrival order (from its debug log).
pub fn gateway_received(log: &str, device: &str) -> Vec<u64> {
    let device_field = format!("device={device} ");
    log.lines()
        .map(strip_ansi)
        .filter(|l| l.contains("status report received") && l.contains(&device_field))
        .filter_map(|l| {
            let rest = &l[l.find("sequence=")? + "sequence=".len()..];
            rest.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
        .collect()
}

/// The text of a log line without its terminal colour codes (`ESC [ ... m`).
pub fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Every report `1..=last` arrived, first arrivals in order (duplicates allowed).
pub fn check_none_lost_in_order(received: &[u64], last: u64) -> Result<(), String> {
    let mut next = 1;
    for &s in received {
        if s < next {
            continue; // a duplicate
        }
        if s != next {
            return Err(format!(
                "report {next} missing: {s} arrived next (arrivals {received:?})"
            ));
        }
        next += 1;
    }
    if next <= last {
        return Err(format!(
            "reports {next}..={last} never arrived (arrivals {received:?})"
        ));
    }
    Ok(())
}

/// How many reports wait in the agent's outbox (`<state dir>/store/outbox`).
pub fn outbox_len(state_dir: &Path) -> usize {
    std::fs::read_dir(state_dir.join("store/outbox"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// The agent's last status report sequence number (`<state dir>/store/sequence`).
pub fn agent_sequence(state_dir: &Path) -> u64 {
    std::fs::read_to_string(state_dir.join("store/sequence"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests;
