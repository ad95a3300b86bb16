use super::*;

fn refused(reason: RefusalReason) -> BootstrapError {
    BootstrapError::Refused {
        reason,
        message: "refused".to_owned(),
    }
}

#[test]
fn only_a_retired_id_stops_the_agent_for_good() {
    assert!(refused(RefusalReason::Revoked).is_retired());
    for retry in [
        refused(RefusalReason::TokenInvalid),
        refused(RefusalReason::Denied),
        BootstrapError::Cancelled,
        BootstrapError::TimedOut(std::time::Duration::from_secs(1)),
    ] {
        assert!(!retry.is_retired(), "{retry}");
    }
}
