use super::*;
use crate::prometheus_text::parse;

fn scrape(node_cpu: f64, container_cpu: f64, at_ms: i64) -> Vec<Sample> {
    parse(&format!(
        "node_cpu_usage_seconds_total {node_cpu} {at_ms}\n\
         node_memory_working_set_bytes 2000000 {at_ms}\n\
         container_cpu_usage_seconds_total{{container=\"spin\",namespace=\"default\",pod=\"busy\"}} {container_cpu} {at_ms}\n\
         container_memory_working_set_bytes{{container=\"spin\",namespace=\"default\",pod=\"busy\"}} 8000000 {at_ms}\n"
    ))
    .unwrap()
}

#[test]
fn cpu_is_the_rate_between_two_points_and_memory_the_latest() {
    let mut m = MetricsPoints::default();
    m.record("pi-1", &scrape(10.0, 1.0, 1_000));
    assert_eq!(m.node_usage("pi-1"), None, "one point gives no rate");
    assert!(m.container_usage().is_empty());
    // 15 s later: the node used 3 core-seconds (200m), the container 1.5 (100m)
    m.record("pi-1", &scrape(13.0, 2.5, 16_000));
    let node = m.node_usage("pi-1").unwrap();
    assert_eq!(node.nano_cores, 200_000_000);
    assert_eq!(node.memory_bytes, 2_000_000);
    assert_eq!((node.timestamp_ms, node.window_ms), (16_000, 15_000));
    let containers = m.container_usage();
    assert_eq!(containers.len(), 1);
    assert_eq!(containers[0].0.pod, "busy");
    assert_eq!(containers[0].1.nano_cores, 100_000_000);
    assert_eq!(containers[0].1.memory_bytes, 8_000_000);
}

#[test]
fn a_scrape_with_the_same_sample_keeps_the_older_point() {
    let mut m = MetricsPoints::default();
    m.record("pi-1", &scrape(10.0, 1.0, 1_000));
    m.record("pi-1", &scrape(13.0, 2.5, 16_000));
    // the kubelet has no newer sample yet: the same points again
    m.record("pi-1", &scrape(13.0, 2.5, 16_000));
    assert_eq!(m.node_usage("pi-1").unwrap().nano_cores, 200_000_000);
}

#[test]
fn a_node_without_a_fresh_sample_or_a_failed_scrape_drops_out() {
    let mut m = MetricsPoints::default();
    m.record("pi-1", &scrape(10.0, 1.0, 1_000));
    m.record("pi-1", &scrape(13.0, 2.5, 16_000));
    m.record("pi-1", &parse("scrape_error 1\n").unwrap());
    assert_eq!(m.node_usage("pi-1"), None);
    assert_eq!(m.nodes().count(), 0);
    m.record("pi-2", &scrape(10.0, 1.0, 1_000));
    m.record("pi-2", &scrape(13.0, 2.5, 16_000));
    m.forget("pi-2");
    assert!(m.container_usage().is_empty());
}

#[test]
fn a_restarted_container_has_no_rate_until_two_new_points() {
    let mut m = MetricsPoints::default();
    m.record("pi-1", &scrape(10.0, 5.0, 1_000));
    m.record("pi-1", &scrape(13.0, 0.5, 16_000));
    assert!(m.container_usage().is_empty(), "counter went back");
    m.record("pi-1", &scrape(16.0, 2.0, 31_000));
    assert_eq!(m.container_usage()[0].1.nano_cores, 100_000_000);
}
