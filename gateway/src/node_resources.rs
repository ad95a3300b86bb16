//! Validation of the resources a device reports (capacity and allocatable) before they
//! become a Node's status.
//!
//! A device is not trusted to name resources: an extended resource called `cpu`,
//! `pods` or `kubernetes.io/anything` would override or fake the standard ones, and a
//! count beyond int64 breaks every status patch of the Node. The rules are the API
//! server's for extended resources (`IsExtendedResourceName`): a domain-prefixed
//! qualified name, outside the `kubernetes.io/` domains and not starting with
//! `requests.`, with an integer value.

use edge_protocol::{NodeReport, NodeResources};

/// Why a report's resources cannot be used at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResourceError {
    #[error(
        "{which}.{field} is {value}, beyond the largest Kubernetes quantity ({})",
        i64::MAX
    )]
    OutOfRange {
        which: &'static str,
        field: &'static str,
        value: u64,
    },
}

/// An extended resource the gateway left out of the Node, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DroppedResource {
    pub name: String,
    pub why: &'static str,
}

/// Why `name` cannot be an extended resource, if it cannot.
pub fn extended_name_problem(name: &str) -> Option<&'static str> {
    let Some((domain, _)) = name.split_once('/') else {
        return Some(
            "not domain-prefixed: standard resources (cpu, memory, pods, ...) are reported in their own fields",
        );
    };
    let domain = domain.to_ascii_lowercase();
    if domain == "kubernetes.io" || domain.ends_with(".kubernetes.io") {
        return Some("the kubernetes.io domains are reserved for Kubernetes' own resources");
    }
    if name.starts_with("requests.") {
        return Some("the requests. prefix is reserved for quotas");
    }
    if !crate::node_object::is_valid_label_key(name) {
        return Some("not a valid qualified name");
    }
    None
}

fn check_core(which: &'static str, r: &NodeResources) -> Result<(), ResourceError> {
    let max = i64::MAX.unsigned_abs();
    for (field, value) in [
        ("cpuMillis", r.cpu_millis),
        ("memoryBytes", r.memory_bytes),
        ("ephemeralStorageBytes", r.ephemeral_storage_bytes),
        ("pods", r.pods),
    ] {
        if value > max {
            return Err(ResourceError::OutOfRange {
                which,
                field,
                value,
            });
        }
    }
    Ok(())
}

fn drop_bad_extended(r: &mut NodeResources, dropped: &mut Vec<DroppedResource>) {
    let max = i64::MAX.unsigned_abs();
    r.extended.retain(|name, value| {
        let why = extended_name_problem(name).or((*value > max).then_some("count beyond int64"));
        if let Some(why) = why {
            if !dropped.iter().any(|d| d.name == *name) {
                dropped.push(DroppedResource {
                    name: name.chars().take(300).collect(),
                    why,
                });
            }
        }
        why.is_none()
    });
}

/// The report with only valid extended resources, and what was dropped; an error when
/// a standard resource is out of range (the whole report is then refused).
pub fn checked_report(
    mut report: NodeReport,
) -> Result<(NodeReport, Vec<DroppedResource>), ResourceError> {
    check_core("capacity", &report.capacity)?;
    check_core("allocatable", &report.allocatable)?;
    let mut dropped = Vec::new();
    drop_bad_extended(&mut report.capacity, &mut dropped);
    drop_bad_extended(&mut report.allocatable, &mut dropped);
    Ok((report, dropped))
}

#[cfg(test)]
mod tests;
