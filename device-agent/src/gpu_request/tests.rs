use super::*;

fn ids(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn auto_is_the_nvidia_device_request_on_docker_and_the_variable_on_podman() {
    assert_eq!(GpuRequestMode::Auto.resolve(false), GpuRequestMode::Nvidia);
    assert_eq!(GpuRequestMode::Auto.resolve(true), GpuRequestMode::Env);
    assert_eq!(GpuRequestMode::Cdi.resolve(true), GpuRequestMode::Cdi);
    assert_eq!(GpuRequestMode::Env.resolve(false), GpuRequestMode::Env);
}

#[test]
fn modes_parse_and_print() {
    for m in ["auto", "nvidia", "cdi", "env"] {
        assert_eq!(m.parse::<GpuRequestMode>().unwrap().to_string(), m);
    }
    let e = "gpus".parse::<GpuRequestMode>().unwrap_err();
    assert!(e.to_string().contains("auto, nvidia, cdi or env"), "{e}");
}

#[test]
fn nvidia_mode_is_the_toolkits_device_request_with_the_ids() {
    let p = create_parts(GpuRequestMode::Nvidia, &ids(&["1", "GPU-abc"]));
    assert_eq!(p.device_requests.len(), 1);
    let r = &p.device_requests[0];
    assert_eq!(r.driver.as_deref(), Some("nvidia"));
    assert_eq!(r.device_ids, Some(ids(&["1", "GPU-abc"])));
    assert_eq!(r.capabilities, Some(vec![vec!["gpu".to_owned()]]));
    assert_eq!(r.count, None, "ids, not a count");
    assert_eq!(p.env, ids(&["NVIDIA_VISIBLE_DEVICES=1,GPU-abc"]));
}

#[test]
fn cdi_mode_names_cdi_devices() {
    let p = create_parts(GpuRequestMode::Cdi, &ids(&["0", "1"]));
    assert_eq!(p.device_requests[0].driver.as_deref(), Some("cdi"));
    assert_eq!(
        p.device_requests[0].device_ids,
        Some(ids(&["nvidia.com/gpu=0", "nvidia.com/gpu=1"]))
    );
    assert!(p.env.is_empty());
}

#[test]
fn env_mode_sets_only_the_variable_and_no_ids_pass_nothing() {
    let p = create_parts(GpuRequestMode::Env, &ids(&["0"]));
    assert!(p.device_requests.is_empty());
    assert_eq!(p.env, ids(&["NVIDIA_VISIBLE_DEVICES=0"]));
    for mode in [
        GpuRequestMode::Nvidia,
        GpuRequestMode::Cdi,
        GpuRequestMode::Env,
    ] {
        assert_eq!(create_parts(mode, &[]), GpuCreateParts::default());
    }
}
