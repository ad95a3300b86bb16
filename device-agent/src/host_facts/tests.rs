#![allow(clippy::unwrap_used)]
use super::*;

#[test]
fn reads_a_raspberry_pi_and_a_jetson() {
    let root = tempfile::tempdir().unwrap();
    let w = |p: &str, c: &str| {
        let path = root.path().join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, c).unwrap();
    };
    w(
        "etc/os-release",
        "NAME=x\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n",
    );
    w(
        "proc/meminfo",
        "MemTotal:        3884328 kB\nMemFree: 1 kB\n",
    );
    w("proc/device-tree/model", "Raspberry Pi 4 Model B Rev 1.4\0");
    let facts = HostFacts {
        root: root.path().into(),
    };
    assert_eq!(facts.os_image(), "Debian GNU/Linux 12 (bookworm)");
    assert_eq!(facts.memory_bytes(), 3_884_328 * 1024);
    assert_eq!(
        facts.board_model().as_deref(),
        Some("Raspberry Pi 4 Model B Rev 1.4")
    );
    assert_eq!(facts.nvidia_gpus(), 0);
    w("dev/nvidia0", "");
    w("dev/nvidia1", "");
    w("dev/nvidiactl", "");
    assert_eq!(facts.nvidia_gpus(), 2);
    std::fs::remove_dir_all(root.path().join("dev")).unwrap();
    w(
        "proc/device-tree/model",
        "NVIDIA Jetson Nano Developer Kit\0",
    );
    assert_eq!(facts.nvidia_gpus(), 1);
    let report = facts.node_report("docker://1", root.path(), 110, &BTreeMap::new());
    assert_eq!(report.capacity.extended["nvidia.com/gpu"], 1);
    assert_eq!(report.architecture, kubernetes_arch());
    assert!(report.capacity.ephemeral_storage_bytes > 0);
}
