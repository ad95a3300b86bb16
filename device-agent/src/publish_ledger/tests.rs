#![allow(clippy::unwrap_used)]
use super::*;

#[test]
fn stream_topics_belong_to_streams_everything_else_to_the_window() {
    assert_eq!(
        Publisher::of_topic("edge/v1/pi-01/up/stream/s-1"),
        Publisher::Stream
    );
    assert_eq!(
        Publisher::of_topic("edge/v1/pi-01/up/status"),
        Publisher::UplinkWindow
    );
    assert_eq!(
        Publisher::of_topic("edge/v1/pi-01/up/state"),
        Publisher::UplinkWindow
    );
}

#[tokio::test]
async fn written_publishes_are_attributed_in_request_order() {
    let options = rumqttc::MqttOptions::new("ledger-test", "127.0.0.1", 1);
    let (client, _eventloop) = AsyncClient::new(options, 10);
    let ledger = PublishLedger::default();
    for publisher in [
        Publisher::Stream,
        Publisher::UplinkWindow,
        Publisher::Stream,
        Publisher::Stream,
    ] {
        ledger
            .publish(&client, publisher, "t".into(), false, vec![1])
            .await
            .unwrap();
    }
    assert_eq!(ledger.written(), Some(Publisher::Stream));
    assert_eq!(ledger.written(), Some(Publisher::UplinkWindow));
    ledger.dropped(1);
    assert_eq!(ledger.written(), Some(Publisher::Stream));
    assert_eq!(ledger.written(), None);
}

#[tokio::test]
async fn a_request_the_client_refused_is_not_recorded() {
    let options = rumqttc::MqttOptions::new("ledger-test", "127.0.0.1", 1);
    let (client, eventloop) = AsyncClient::new(options, 10);
    drop(eventloop);
    let ledger = PublishLedger::default();
    assert!(
        ledger
            .publish(&client, Publisher::Stream, "t".into(), false, vec![1])
            .await
            .is_err()
    );
    assert_eq!(ledger.written(), None);
}
