#![allow(clippy::unwrap_used)]
use super::*;
use rumqttc::QoS;

fn set(generation: u64) -> DesiredSet {
    DesiredSet {
        generation,
        pods: vec![],
    }
}

fn delivery(pkid: u16) -> Publish {
    let mut p = Publish::new("edge/v1/d/down/desired", QoS::AtLeastOnce, vec![]);
    p.pkid = pkid;
    p
}

#[test]
fn newest_set_wins_and_all_deliveries_are_acknowledged_after_the_save() {
    let mut u = UnsavedDesired::default();
    assert!(u.is_empty());
    u.hold(set(3), delivery(1));
    u.hold(set(2), delivery(2));
    u.hold_delivery(delivery(3));
    assert_eq!(u.generation(), Some(3));
    let (saved, acks) = u.saved();
    assert_eq!(saved.unwrap().generation, 3);
    assert_eq!(acks.iter().map(|p| p.pkid).collect::<Vec<_>>(), [1, 2, 3]);
    assert!(u.is_empty());
}

#[test]
fn deliveries_of_a_lost_connection_are_not_acknowledged() {
    let mut u = UnsavedDesired::default();
    u.hold(set(4), delivery(1));
    u.disconnected();
    let (saved, acks) = u.saved();
    assert_eq!(
        saved.unwrap().generation,
        4,
        "the set is still saved and applied"
    );
    assert!(acks.is_empty());
}
