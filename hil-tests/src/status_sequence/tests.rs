#![allow(clippy::unwrap_used)]
use super::*;

#[test]
fn the_order_check_allows_duplicates_and_finds_gaps() {
    assert!(check_none_lost_in_order(&[1, 2, 2, 1, 3, 4], 4).is_ok());
    assert!(
        check_none_lost_in_order(&[1, 2, 4, 3], 4).is_err(),
        "out of order"
    );
    assert!(
        check_none_lost_in_order(&[1, 2, 3], 4).is_err(),
        "tail missing"
    );
    assert!(
        check_none_lost_in_order(&[2, 3], 3).is_err(),
        "head missing"
    );
    let log = "2026 DEBUG edge_gateway::fleet: status report received device=fault-1 sequence=12 full=false\n\
               2026 DEBUG edge_gateway::fleet: status report received device=fault-10 sequence=3 full=false";
    assert_eq!(gateway_received(log, "fault-1"), [12]);
}
