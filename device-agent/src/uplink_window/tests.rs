use super::*;

fn msg() -> PriorityMessage {
    PriorityMessage {
        channel: UpChannel::Hello,
        payload: vec![1],
    }
}

#[test]
fn one_at_a_time_priority_first_resend_after_reconnect() {
    let mut w = UplinkWindow::default();
    assert_eq!(w.next(Some(1)), None, "offline: nothing goes");
    w.push_priority(msg());
    w.on_connected();
    w.push_priority(msg());
    assert_eq!(w.next(Some(1)), Some(Send::Priority(msg())));
    assert_eq!(w.next(Some(1)), None, "one at a time");
    assert!(w.on_written(1, 1));
    assert_eq!(w.on_acked(1, 1), None);
    assert_eq!(w.next(Some(1)), Some(Send::Outbox(1)));
    assert!(w.on_written(1, 2));
    w.on_disconnected(0);
    assert_eq!(w.next(Some(1)), None);
    assert_eq!(w.on_acked(1, 2), None, "a PUBACK of a lost connection");
    w.on_connected();
    assert_eq!(w.next(Some(1)), Some(Send::Outbox(1)), "re-sent");
    assert!(w.on_written(2, 1));
    assert_eq!(w.on_acked(2, 1), Some(1));
    assert_eq!(w.next(None), None);
    assert!(w.idle());
}

#[test]
fn acks_match_packet_ids_not_order() {
    let mut w = UplinkWindow::default();
    w.on_connected();
    assert_eq!(w.next(Some(7)), Some(Send::Outbox(7)));
    assert!(w.on_written(1, 4));
    assert_eq!(w.on_acked(1, 3), None, "someone else's packet id");
    assert_eq!(w.on_acked(2, 4), None, "another connection");
    assert_eq!(w.next(Some(8)), None, "still waiting for #7");
    assert_eq!(w.on_acked(1, 4), Some(7));
    assert_eq!(
        w.on_acked(1, 4),
        None,
        "a duplicate PUBACK acknowledges nothing"
    );
}

/// The defect of the order-matching window: the PUBACK of #1 arrives, #2 is
/// requested, and the connection breaks before the client takes the request (it
/// stays in the client's queue and is written on the next connection). The window
/// must wait for that copy instead of sending #2 again; otherwise the second copy's
/// PUBACK is credited to #3, #3 is deleted unsent, and the next disconnect loses it.
#[test]
fn a_request_made_while_the_connection_broke_is_not_sent_twice() {
    let mut w = UplinkWindow::default();
    w.on_connected();
    assert_eq!(w.next(Some(1)), Some(Send::Outbox(1)));
    assert!(w.on_written(1, 1));
    assert_eq!(w.on_acked(1, 1), Some(1));
    assert_eq!(w.next(Some(2)), Some(Send::Outbox(2)));
    w.on_disconnected(0); // the request for #2 was still in the client's channel
    w.on_connected();
    assert_eq!(
        w.next(Some(2)),
        None,
        "#2 is still requested: no second copy"
    );
    assert!(
        w.on_written(2, 1),
        "the old request goes out on the new connection"
    );
    assert_eq!(w.on_acked(2, 1), Some(2));
    assert_eq!(w.next(Some(3)), Some(Send::Outbox(3)));
    assert!(w.on_written(2, 2));
    assert_eq!(w.on_acked(2, 2), Some(3));
    assert!(w.idle());
}

#[test]
fn requests_the_client_dropped_are_sent_again() {
    let mut w = UplinkWindow::default();
    w.on_connected();
    assert_eq!(w.next(Some(5)), Some(Send::Outbox(5)));
    w.on_disconnected(1); // drained from the client's channel and discarded
    w.on_connected();
    assert_eq!(w.next(Some(5)), Some(Send::Outbox(5)));
    assert!(w.on_written(2, 1));
    assert_eq!(w.on_acked(2, 1), Some(5));
}

#[test]
fn a_request_that_never_reached_the_client_is_forgotten() {
    let mut w = UplinkWindow::default();
    w.on_connected();
    assert_eq!(w.next(Some(5)), Some(Send::Outbox(5)));
    w.on_request_failed();
    assert!(w.idle());
    assert!(!w.on_written(1, 1), "nothing was requested");
    assert_eq!(w.next(Some(5)), Some(Send::Outbox(5)));
}

#[test]
fn newer_progress_replaces_progress_still_waiting_but_never_a_phase_change() {
    let status = |n: u8| PriorityMessage {
        channel: UpChannel::Prepull,
        payload: vec![n],
    };
    let mut w = UplinkWindow::default();
    w.push_priority_latest(status(0));
    w.on_connected();
    assert_eq!(w.next(None), None, "dropped while offline");
    w.push_priority(msg());
    w.push_priority_latest(status(1));
    // the first goes out; the rest wait behind it
    assert_eq!(w.next(None), Some(Send::Priority(msg())));
    w.push_priority_latest(status(2));
    // a phase change: kept, and not replaced by later progress
    w.push_priority(status(10));
    w.push_priority_latest(status(3));
    w.push_priority(msg());
    w.push_priority_latest(status(4));
    let mut sent = Vec::new();
    let mut pkid = 1;
    loop {
        assert!(w.on_written(1, pkid));
        w.on_acked(1, pkid);
        pkid += 1;
        match w.next(None) {
            Some(Send::Priority(p)) => sent.push(p),
            other => {
                assert_eq!(other, None);
                break;
            }
        }
    }
    assert_eq!(
        sent,
        vec![status(4), status(10), msg()],
        "the latest progress in the first one's place; the phase change kept"
    );
    // a waiting phase change is not taken for progress: progress queues behind it
    w.push_priority(msg());
    assert_eq!(w.next(None), Some(Send::Priority(msg())));
    w.push_priority(status(20));
    w.push_priority_latest(status(5));
    assert!(w.on_written(1, pkid));
    w.on_acked(1, pkid);
    assert_eq!(w.next(None), Some(Send::Priority(status(20))));
    assert!(w.on_written(1, pkid + 1));
    w.on_acked(1, pkid + 1);
    assert_eq!(w.next(None), Some(Send::Priority(status(5))));
}
