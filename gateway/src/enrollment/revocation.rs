//! The revocation list: `<store-dir>/enrollment/revoked.txt`, one device id per line.
//!
//! The gateway refuses a revoked device at hello (`RevocationList::load(store_dir)?
//! .contains(&id)`), and `broker-config` puts the device's certificates on the broker's
//! CRL so it cannot even connect. Blank lines and `#` comments are allowed.

use std::collections::BTreeSet;
use std::path::Path;

use edge_protocol::DeviceId;

use super::error::{EnrollmentError, Result};
use super::layout::EnrollmentLayout;
use super::private_file::{create_dir, write_public};

/// The set of revoked device ids.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RevocationList {
    ids: BTreeSet<DeviceId>,
}

impl RevocationList {
    /// Loads `<store_dir>/enrollment/revoked.txt`; a missing file is an empty list.
    /// A line that is not a valid device id is an error (never silently ignored).
    pub fn load(store_dir: impl AsRef<Path>) -> Result<Self> {
        let path = EnrollmentLayout::new(store_dir).revoked_list();
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(EnrollmentError::io("read", &path)(e)),
        };
        let mut ids = BTreeSet::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let id = DeviceId::new(line).map_err(|e| EnrollmentError::BadRevocationList {
                path: path.clone(),
                line: n + 1,
                reason: e.to_string(),
            })?;
            ids.insert(id);
        }
        Ok(Self { ids })
    }

    /// Whether `id` is revoked.
    pub fn contains(&self, id: &DeviceId) -> bool {
        self.ids.contains(id)
    }

    /// Adds `id`; returns false if it was already there.
    pub fn insert(&mut self, id: DeviceId) -> bool {
        self.ids.insert(id)
    }

    pub fn iter(&self) -> impl Iterator<Item = &DeviceId> {
        self.ids.iter()
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Writes the list back to `<store_dir>/enrollment/revoked.txt` (atomically).
    pub fn save(&self, store_dir: impl AsRef<Path>) -> Result<()> {
        let layout = EnrollmentLayout::new(store_dir);
        create_dir(layout.root(), 0o700)?;
        let mut text = String::from("# revoked device ids, one per line (edge-gateway revoke)\n");
        for id in &self.ids {
            text.push_str(id.as_str());
            text.push('\n');
        }
        write_public(&layout.revoked_list(), text.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn missing_file_is_empty_and_round_trip_keeps_ids() {
        let dir = tempfile::tempdir().unwrap();
        let mut list = RevocationList::load(dir.path()).unwrap();
        assert!(list.is_empty());
        assert!(list.insert(DeviceId::new("pi-01").unwrap()));
        assert!(!list.insert(DeviceId::new("pi-01").unwrap()));
        list.save(dir.path()).unwrap();
        let again = RevocationList::load(dir.path()).unwrap();
        assert!(again.contains(&DeviceId::new("pi-01").unwrap()));
        assert!(!again.contains(&DeviceId::new("pi-02").unwrap()));
        assert_eq!(again.len(), 1);
    }

    #[test]
    fn bad_line_is_an_error_with_its_line_number() {
        let dir = tempfile::tempdir().unwrap();
        let layout = EnrollmentLayout::new(dir.path());
        std::fs::create_dir_all(layout.root()).unwrap();
        std::fs::write(layout.revoked_list(), "# c\n\npi-01\nNot Valid\n").unwrap();
        let err = RevocationList::load(dir.path()).unwrap_err();
        assert!(
            matches!(err, EnrollmentError::BadRevocationList { line: 4, .. }),
            "{err}"
        );
    }
}
