use super::*;

/// A container spec as a 1.1 gateway sent it, encoded exactly as the 1.1 agent hashed
/// it (env left out). Fields added to `ContainerSpec` later must not change this hash:
/// the hash is on every running container's label, and a different one makes an
/// upgraded agent replace (restart) every container it adopts.
const SPEC_1_1: &str = r#"{"name":"app","image":"busybox:1.36","imagePullPolicy":"IfNotPresent","command":["sh","-c","sleep 1d"],"args":[],"workingDir":null,"env":[],"ports":[],"resources":{"cpuRequestMillis":null,"cpuLimitMillis":null,"memoryRequestBytes":null,"memoryLimitBytes":null},"volumeMounts":[],"devices":[],"livenessProbe":null,"readinessProbe":null,"startupProbe":null,"privileged":false}"#;

#[test]
fn fields_added_after_1_1_do_not_change_the_hash_of_an_older_spec() {
    let spec: ContainerSpec = serde_json::from_str(SPEC_1_1).unwrap();
    assert_eq!(
        spec_hash(&spec),
        format!("{:016x}", spec_hash_bytes(SPEC_1_1.as_bytes())),
        "the encoding of a 1.1 spec changed: {}",
        serde_json::to_string(&spec).unwrap()
    );
}

#[test]
fn env_is_not_part_of_the_hash_but_stdin_and_tty_are() {
    let spec: ContainerSpec = serde_json::from_str(SPEC_1_1).unwrap();
    let mut with_env = spec.clone();
    with_env.env.push(edge_protocol::EnvVar {
        name: "A".into(),
        value: "1".into(),
    });
    assert_eq!(spec_hash(&spec), spec_hash(&with_env));
    let mut tty = spec.clone();
    tty.stdin = true;
    tty.tty = true;
    assert_ne!(spec_hash(&spec), spec_hash(&tty));
}
