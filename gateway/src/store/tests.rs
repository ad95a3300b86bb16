use super::*;
use edge_protocol::{DesiredSet, PodSpec};

#[tokio::test]
async fn records_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let id = DeviceId::new("pi-01").unwrap();
    let rec = PersistedDevice {
        desired: DesiredSet {
            generation: 4,
            pods: vec![PodSpec {
                uid: "u".into(),
                ..Default::default()
            }],
        },
        acked_generation: 3,
    };
    {
        let store = Store::open(dir.path()).unwrap();
        store.put_device(&id, &rec).unwrap();
        store.flush().await.unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    let loaded: Vec<_> = store
        .load_devices()
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(loaded, vec![(id, rec)]);
}
