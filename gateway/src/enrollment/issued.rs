//! The record of issued device certificates: `issued/<id>.pem` is the current certificate
//! of each device, `superseded/<id>-<serial>.pem` the ones `enroll --reissue` replaced.
//! Both feed the CRL: revoked devices' current certificates and every superseded one.

use std::fs;
use std::path::{Path, PathBuf};

use edge_protocol::DeviceId;
use time::OffsetDateTime;

use super::error::{EnrollmentError, Result};
use super::fleet_ca::{RevokedSerial, hex};
use super::layout::EnrollmentLayout;
use super::private_file::{create_dir, write_public};
use super::revocation::RevocationList;

/// Issued device certificates under an enrollment directory.
#[derive(Debug, Clone)]
pub struct IssuedCertificates {
    layout: EnrollmentLayout,
}

impl IssuedCertificates {
    pub fn new(layout: &EnrollmentLayout) -> Self {
        Self {
            layout: layout.clone(),
        }
    }

    /// The current certificate of `id`, if it was ever enrolled.
    pub fn current(&self, id: &DeviceId) -> Option<PathBuf> {
        let path = self.layout.issued_cert(id);
        path.is_file().then_some(path)
    }

    /// Records `cert_pem` as the current certificate of `id`; a previous one is moved to
    /// `superseded/` (and so lands on the CRL).
    pub fn record(&self, id: &DeviceId, cert_pem: &str) -> Result<()> {
        create_dir(&self.layout.issued_dir(), 0o755)?;
        if let Some(old) = self.current(id) {
            create_dir(&self.layout.superseded_dir(), 0o755)?;
            let serial = serial_of(&old)?;
            let to = self
                .layout
                .superseded_dir()
                .join(format!("{id}-{}.pem", hex(&serial)));
            fs::rename(&old, &to).map_err(EnrollmentError::io("move aside", &old))?;
        }
        write_public(&self.layout.issued_cert(id), cert_pem.as_bytes())
    }

    /// Every enrolled device with its current certificate, sorted by id (files whose name
    /// is not a device id are skipped).
    pub fn devices(&self) -> Result<Vec<(DeviceId, PathBuf)>> {
        let dir = self.layout.issued_dir();
        if !dir.is_dir() {
            return Ok(Vec::new());
        }
        let mut out: Vec<(DeviceId, PathBuf)> = fs::read_dir(&dir)
            .map_err(EnrollmentError::io("list", &dir))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter_map(|p| {
                let id = p.file_name()?.to_str()?.strip_suffix(".pem")?;
                Some((DeviceId::new(id).ok()?, p.clone()))
            })
            .collect();
        out.sort();
        Ok(out)
    }

    /// Every certificate the broker must refuse: the current certificates of revoked
    /// devices and all superseded certificates.
    pub fn to_revoke(&self, revoked: &RevocationList) -> Result<Vec<RevokedSerial>> {
        let now = OffsetDateTime::now_utc();
        let mut out = Vec::new();
        for id in revoked.iter() {
            if let Some(path) = self.current(id) {
                out.push(RevokedSerial {
                    serial: serial_of(&path)?,
                    revoked_at: now,
                    superseded: false,
                });
            }
        }
        let dir = self.layout.superseded_dir();
        if dir.is_dir() {
            let mut paths: Vec<PathBuf> = fs::read_dir(&dir)
                .map_err(EnrollmentError::io("list", &dir))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "pem"))
                .collect();
            paths.sort();
            for path in paths {
                out.push(RevokedSerial {
                    serial: serial_of(&path)?,
                    revoked_at: now,
                    superseded: true,
                });
            }
        }
        Ok(out)
    }
}

/// The serial number of the PEM certificate in `path`.
pub fn serial_of(path: &Path) -> Result<Vec<u8>> {
    let bad = |reason: String| EnrollmentError::BadPem {
        path: path.to_owned(),
        what: "certificate",
        reason,
    };
    let pem = fs::read(path).map_err(EnrollmentError::io("read", path))?;
    let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).map_err(|e| bad(e.to_string()))?;
    let cert = pem.parse_x509().map_err(|e| bad(e.to_string()))?;
    Ok(cert.raw_serial().to_vec())
}
