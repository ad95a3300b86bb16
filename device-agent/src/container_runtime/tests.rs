use super::*;

#[test]
fn cpu_shares_as_the_kubelet_maps_them() {
    assert_eq!(cpu_shares(Some(1000)), 1024);
    assert_eq!(cpu_shares(Some(250)), 256);
    assert_eq!(cpu_shares(Some(100)), 102);
    // no request, or a tiny one: the minimum
    assert_eq!(cpu_shares(None), 2);
    assert_eq!(cpu_shares(Some(1)), 2);
    assert_eq!(cpu_shares(Some(u64::MAX)), 262_144);
}
