use super::*;

#[test]
fn the_node_is_the_last_path_segment_of_a_usage_path() {
    assert_eq!(node_of_path("/stats/summary/pi-01"), Some("pi-01"));
    assert_eq!(node_of_path("/metrics/resource/pi-01"), Some("pi-01"));
    assert_eq!(node_of_path("/metrics/resource/"), None);
    assert_eq!(node_of_path("/metrics/resource"), None);
    assert_eq!(node_of_path("/metrics/resource/a/b"), None);
    assert_eq!(node_of_path("/metrics/cadvisor/pi-01"), None);
    assert_eq!(node_of_path("/containerLogs/ns/pod/c"), None);
}

#[test]
fn the_annotation_names_a_path_the_router_serves() {
    let path = resource_metrics_path("pi-01");
    assert_eq!(path, "/metrics/resource/pi-01");
    assert_eq!(node_of_path(&path), Some("pi-01"));
}
