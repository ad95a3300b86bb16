use super::*;

#[test]
fn renders_every_family() {
    let m = Metrics::new();
    m.devices_total.set(2);
    m.message_in("heartbeat");
    m.rejected("malformed");
    m.api_error("patch_pod_status");
    m.pod_phase_changed(None, Some("Running"));
    m.desired_to_running_seconds.observe(0.3);
    let text = m.render();
    for needle in [
        "edge_gateway_devices 2",
        "edge_gateway_mqtt_messages_received_total{kind=\"heartbeat\"} 1",
        "edge_gateway_rejected_messages_total{reason=\"malformed\"} 1",
        "edge_gateway_kubernetes_api_errors_total{operation=\"patch_pod_status\"} 1",
        "edge_gateway_pods{phase=\"Running\"} 1",
        "edge_gateway_desired_to_running_seconds_count 1",
    ] {
        assert!(text.contains(needle), "{needle} missing in:\n{text}");
    }
}
