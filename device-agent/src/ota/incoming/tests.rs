#![allow(clippy::unwrap_used)]
use super::*;
use crate::ota::signature::tests::{key_pair, sign};
use crate::ota::slots::Slot;
use edge_protocol::binary::Base64Bytes;

struct Fixture {
    dir: tempfile::TempDir,
    incoming: Incoming,
    slots: SlotDir,
    key: PathBuf,
    pair: ring::signature::Ed25519KeyPair,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let (pair, pem) = key_pair();
    let key = dir.path().join("ota-signing.pub");
    std::fs::write(&key, pem).unwrap();
    let ota = dir.path().join("ota");
    Fixture {
        incoming: Incoming::new(&ota),
        slots: SlotDir::new(ota),
        key,
        pair,
        dir,
    }
}

impl Fixture {
    /// The order of `content` as `version`, signed with the pinned key.
    fn order(&self, version: &str, content: &[u8]) -> AgentUpdateOrder {
        let file = self.dir.path().join("signed");
        std::fs::write(&file, content).unwrap();
        AgentUpdateOrder {
            version: version.to_owned(),
            sha256: signature::sha256_file(&file).unwrap(),
            size_bytes: content.len() as u64,
            signature: Base64Bytes(sign(&self.pair, version, &file)),
            health_deadline_seconds: 0,
        }
    }

    fn download(&self, version: &str, content: &[u8]) {
        for (i, piece) in content.chunks(4).enumerate() {
            self.incoming
                .write_at(version, (i * 4) as u64, piece)
                .unwrap();
        }
    }
}

#[test]
fn chunks_are_written_in_place_and_a_rewrite_cuts_the_file_there() {
    let f = fixture();
    assert_eq!(f.incoming.part_len("0.2.0"), 0);
    f.download("0.2.0", b"0123456789");
    assert_eq!(f.incoming.part_len("0.2.0"), 10);
    f.incoming.write_at("0.2.0", 4, b"ab").unwrap();
    assert_eq!(std::fs::read(f.incoming.part("0.2.0")).unwrap(), b"0123ab");
    assert!(f.incoming.write_at("../x", 0, b"a").is_err());
    // a name that leaves incoming/ is never looked at, even when such a file exists
    std::fs::write(f.dir.path().join("ota/x.part"), b"abc").unwrap();
    assert_eq!(f.incoming.part_len("../x"), 0);
}

#[test]
fn clearing_keeps_only_the_named_part_file() {
    let f = fixture();
    f.download("0.2.0", b"abc");
    f.download("0.3.0", b"abc");
    let other = f.dir.path().join("ota/incoming/notes.txt");
    std::fs::write(&other, b"x").unwrap();
    f.incoming.clear(Some("0.3.0"));
    assert!(!f.incoming.part("0.2.0").exists());
    assert!(f.incoming.part("0.3.0").exists());
    assert!(other.exists(), "only part files are removed");
    f.incoming.clear(None);
    assert!(!f.incoming.part("0.3.0").exists());
    // no directory yet: nothing to do
    Incoming::new(&f.dir.path().join("nowhere")).clear(None);
}

#[test]
fn a_complete_signed_download_is_staged_with_the_default_deadline() {
    let f = fixture();
    let content = b"\x7fELF agent 0.2.0";
    let order = f.order("0.2.0", content);
    f.download("0.2.0", content);
    let trial = f
        .incoming
        .verify_and_stage(&f.slots, &f.key, &order)
        .unwrap();
    assert_eq!(
        (trial.slot, trial.version.as_str(), trial.deadline_seconds),
        (Slot::A, "0.2.0", 120)
    );
    assert_eq!(trial.sha256, order.sha256);
    assert_eq!(
        std::fs::read(f.slots.root().join("bin/a")).unwrap(),
        content
    );
    assert_eq!(f.slots.load().unwrap().trial, Some(trial));
}

#[test]
fn a_wrong_size_digest_or_signature_stages_nothing() {
    let f = fixture();
    let content = b"\x7fELF agent 0.2.0";
    let order = f.order("0.2.0", content);
    // short
    f.download("0.2.0", &content[..8]);
    assert!(matches!(
        f.incoming.verify_and_stage(&f.slots, &f.key, &order),
        Err(IncomingError::Size { got: 8, .. })
    ));
    // same size, other bytes
    let mut evil = content.to_vec();
    evil[3] ^= 1;
    f.download("0.2.0", &evil);
    assert!(matches!(
        f.incoming.verify_and_stage(&f.slots, &f.key, &order),
        Err(IncomingError::Digest { .. })
    ));
    // the digest the order names, signed by another key
    let mut forged = order.clone();
    let (other, _) = key_pair();
    let file = f.dir.path().join("forged");
    std::fs::write(&file, content).unwrap();
    forged.signature = Base64Bytes(sign(&other, "0.2.0", &file));
    f.download("0.2.0", content);
    let err = f
        .incoming
        .verify_and_stage(&f.slots, &f.key, &forged)
        .unwrap_err();
    assert!(
        matches!(err, IncomingError::Slots(SlotError::Signature(_))),
        "{err}"
    );
    assert_eq!(f.slots.load().unwrap().trial, None);
    assert!(!f.slots.root().join("bin/a").exists());
    // no pinned key
    let err = f
        .incoming
        .verify_and_stage(&f.slots, &f.dir.path().join("missing.pub"), &order)
        .unwrap_err();
    assert!(matches!(
        err,
        IncomingError::Slots(SlotError::NoPinnedKey { .. })
    ));
}
