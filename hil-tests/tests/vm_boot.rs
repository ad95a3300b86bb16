//! A flashed image really boots: the Debian bookworm arm64 disk image of
//! `scripts/build-vm-image.sh` (Raspberry Pi style partitions, Podman inside), prepared
//! by `deploy/flash/flash-image.sh --bootstrap` exactly as a fleet's Raspberry Pi image
//! is, boots under `qemu-system-aarch64` with Debian's arm64 kernel. Inside it systemd
//! starts the agent the flash tool put there, the agent names itself from its network
//! card (`vm-{mac}`), enrolls zero-touch through the gateway's auto-approval rule (a
//! CertificateSigningRequest on the real control plane), its Node turns Ready, a pod
//! runs in the VM's Podman and `kubectl logs` brings its output back.
//!
//! The gateway (embedded broker) runs on the host; the VM reaches the host's loopback at
//! 10.0.2.2 through QEMU's user network. The image is built once and cached
//! (`EDGE_TEST_VM_IMAGE_DIR`, set by scripts/test.sh): without it this test fails and
//! says how to build it.
#![allow(clippy::unwrap_used)]

mod enrollment_bed;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use edge_hil_tests::qemu_vm::{QemuVm, VmImage, VmOptions};
use edge_hil_tests::scenario::{container_id, node_ready, phase, pod_manifest};
use edge_hil_tests::stack::{ClusterBackend, Gateway, GatewayOptions, binary, eventually};
use enrollment_bed::{cluster_with_tokens, token_secret};
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::Api;
use kube::api::{ListParams, PostParams};

const TOKEN: &str = "vmboot.0123456789abcdef";
const POD_OUTPUT: &str = "hello from the flashed VM";

/// The static aarch64 agent the image gets (`EDGE_TEST_AGENT_AARCH64`, built by test.sh).
fn aarch64_agent() -> PathBuf {
    let agent = PathBuf::from(std::env::var_os("EDGE_TEST_AGENT_AARCH64").expect(
        "EDGE_TEST_AGENT_AARCH64 is not set: cargo build --release -p edge-agent --target \
         aarch64-unknown-linux-musl (scripts/test.sh does)",
    ));
    assert!(agent.is_file(), "no aarch64 agent at {}", agent.display());
    agent
}

/// A MAC address of QEMU's range, different per run (and so a new device id).
fn mac_for_run() -> String {
    let pid = std::process::id();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "52:54:00:{:02x}:{:02x}:{:02x}",
        (pid >> 8) & 0xff,
        pid & 0xff,
        nanos & 0xff
    )
}

/// `edge-gateway bootstrap-file` for the fleet: the VM's agent enrolls on the embedded
/// broker, which the guest reaches at 10.0.2.2.
fn bootstrap_dir(store: &Path, out_dir: &Path, guest_broker: &str) -> PathBuf {
    let out = Command::new(binary("edge-gateway").unwrap())
        .arg("bootstrap-file")
        .arg("--store-dir")
        .arg(store)
        .arg("--out-dir")
        .arg(out_dir)
        .args(["--token", TOKEN])
        .args(["--bootstrap-broker-url", guest_broker])
        .args(["--device-id-template", "vm-{mac}"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "edge-gateway bootstrap-file failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out_dir.to_owned()
}

/// `deploy/flash/flash-image.sh --bootstrap`, as for a fleet of Raspberry Pis.
fn flash(image: &VmImage, bootstrap: &Path, agent: &Path, output: &Path) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/flash/flash-image.sh");
    let out = Command::new("bash")
        .arg(script)
        .arg("--image")
        .arg(&image.disk)
        .arg("--bootstrap")
        .arg(bootstrap)
        .arg("--output")
        .arg(output)
        .arg("--agent-aarch64")
        .arg(agent)
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "flash-image.sh failed:\n{log}");
    log
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flashed_image_boots_enrolls_and_runs_a_pod() {
    let started = Instant::now();
    // Fails (does not skip) without the image: the check is the point of this test.
    let image = VmImage::from_env().unwrap_or_else(|e| panic!("{e}"));
    let agent = aarch64_agent();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();

    let (cluster, client, kubectl) = cluster_with_tokens(
        ClusterBackend::ControlPlane,
        dir,
        &token_secret(TOKEN, "2099-01-01T00:00:00Z"),
    )
    .await;

    let store = dir.join("store");
    let gateway = Gateway::start(
        GatewayOptions {
            device_timeout: Duration::from_secs(30),
            node_lease_renew: Duration::from_secs(2),
            extra_args: vec![
                "--enrollment".into(),
                "--enrollment-auto-approve".into(),
                "vmboot=vm-*".into(),
            ],
            ..GatewayOptions::for_cluster(&cluster, store.clone())
        },
        dir,
    )
    .unwrap();
    let port = gateway
        .ready()
        .mqtt_port
        .expect("the embedded broker's port");

    // One image for the fleet: the bootstrap directory and the static aarch64 agent.
    let mac = mac_for_run();
    let device = format!("vm-{}", mac.replace(':', ""));
    let bootstrap = bootstrap_dir(
        &store,
        &dir.join("fleet-bootstrap"),
        &format!("mqtt://10.0.2.2:{port}"),
    );
    let disk = dir.join("vm.img");
    let flash_log = flash(&image, &bootstrap, &agent, &disk);
    assert!(flash_log.contains("architecture aarch64"), "{flash_log}");
    let flashed = started.elapsed();

    let mut vm = QemuVm::boot(
        "qemu",
        &VmOptions {
            disk,
            kernel: image.kernel.clone(),
            initrd: image.initrd.clone(),
            cmdline: image.cmdline.clone(),
            mac,
            memory_mib: 1024,
            cpus: 2,
        },
        dir,
    )
    .unwrap();
    let booted_at = Instant::now();
    // On failure: the tails, and the whole console kept where the temporary directory
    // is not removed.
    let kept_console =
        std::env::temp_dir().join(format!("edge-vm-boot-{}.console.log", std::process::id()));
    let logs = |vm: &QemuVm| {
        let _ = std::fs::write(&kept_console, strip_ansi(&vm.console()));
        format!(
            "gateway log (tail):\n{}\n\nVM serial console (all of it: {}), tail:\n{}",
            tail(&gateway.log(), 40),
            kept_console.display(),
            strip_ansi(&vm.console_tail(80))
        )
    };

    // Enrolled zero-touch: the Node appears under the id the board took from its MAC.
    let nodes: Api<Node> = Api::all(client.clone());
    wait_ready_or_vm_died(&nodes, &device, &mut vm, &logs).await;
    let ready = booted_at.elapsed();
    eprintln!(
        "vm_boot: Node {device} Ready {:.1} s after the boot",
        ready.as_secs_f64()
    );
    let csrs: Api<CertificateSigningRequest> = Api::all(client.clone());
    let requests = csrs
        .list(&ListParams::default().labels(&format!("edge-kube.io/device-id={device}")))
        .await
        .unwrap()
        .items;
    assert!(
        requests.iter().any(|csr| {
            csr.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Approved"))
        }),
        "no approved CertificateSigningRequest for {device}: {requests:?}"
    );

    // A pod in the VM's Podman (the test image was imported there offline).
    let namespace = "vm-boot";
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({"metadata": {"name": namespace}})).unwrap(),
        )
        .await
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let pod = pod_manifest(
        "hello",
        &[("kubernetes.io/hostname", &device)],
        true,
        "Always",
        &format!("echo '{POD_OUTPUT}'; sleep 3600"),
    );
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let pod_created = Instant::now();
    eventually(
        "the pod running in the VM's Podman",
        Duration::from_secs(180),
        || {
            let pods = pods.clone();
            async move {
                match pods.get_opt("hello").await {
                    Ok(Some(p)) if phase(&p) == "Running" && container_id(&p).is_some() => {
                        Ok(Some(()))
                    }
                    Ok(other) => Err(format!("{:?}", other.map(|p| p.status))),
                    Err(e) => Err(e.to_string()),
                }
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", logs(&vm)));
    let running = pod_created.elapsed();

    // `kubectl logs`: kube-apiserver -> the gateway's kubelet API -> MQTT -> the VM.
    let output = eventually(
        "kubectl logs of the pod in the VM",
        Duration::from_secs(60),
        || {
            let out = kubectl.output(&["-n", namespace, "logs", "hello"]);
            async move {
                let out = out.map_err(|e| e.to_string())?;
                let text = String::from_utf8_lossy(&out.stdout).into_owned();
                if out.status.success() && text.contains(POD_OUTPUT) {
                    Ok(Some(text))
                } else {
                    Err(format!(
                        "{}: {text}{}",
                        out.status,
                        String::from_utf8_lossy(&out.stderr)
                    ))
                }
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", logs(&vm)));
    assert_eq!(output.trim(), POD_OUTPUT);

    // systemd ran the unit the flash tool installed: its ExecStart (the update supervisor
    // running the installed binary) logged through the journal, which the image's drop-in
    // copies to the console as `edge-agent[<pid>]: ...`; and the agent enrolled there.
    let console = strip_ansi(&vm.console());
    let agent_lines: Vec<&str> = console
        .lines()
        .filter(|l| l.contains("edge-agent["))
        .collect();
    for expected in [
        "starting the agent slot=Installed path=/usr/local/bin/edge-agent",
        "no identity yet: enrolling with the bootstrap token",
        "enrolled: certificate stored in /var/lib/edge-agent/identity",
    ] {
        assert!(
            agent_lines.iter().any(|l| l.contains(expected)),
            "the agent's journal on the VM's console has no {expected:?}\n{}",
            logs(&vm)
        );
    }

    // the agent's journal, with the guest's clock (seconds since the kernel started)
    eprintln!("vm_boot: the agent in the VM:\n{}", agent_lines.join("\n"));
    eprintln!(
        "vm_boot: flashed in {:.1} s; boot to Ready Node {:.1} s; pod Running {:.1} s after \
         creation; whole test {:.1} s",
        flashed.as_secs_f64(),
        ready.as_secs_f64(),
        running.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}

/// Waits for the Node to be Ready; fails at once with the console when QEMU exits (a kernel
/// panic or a power-off). The boot under TCG takes about a minute on an idle 2-core machine
/// and two or more at a load of 10 to 15 (the other test lanes), hence 7 minutes.
async fn wait_ready_or_vm_died(
    nodes: &Api<Node>,
    device: &str,
    vm: &mut QemuVm,
    logs: &impl Fn(&QemuVm) -> String,
) {
    let deadline = Instant::now() + Duration::from_secs(420);
    let mut last = String::from("no Node yet");
    loop {
        if !vm.is_running() {
            panic!("the VM stopped before its Node was Ready\n{}", logs(vm));
        }
        match nodes.get_opt(device).await {
            Ok(Some(node)) => match node_ready(&node) {
                Some(ready) if ready == "True" => return,
                other => last = format!("Ready={other:?}"),
            },
            Ok(None) => {}
            Err(e) => last = e.to_string(),
        }
        if Instant::now() > deadline {
            panic!(
                "the VM's Node {device} was not Ready within 420 s of the boot; last: {last}\n{}",
                logs(vm)
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The console without its colours (ANSI escape sequences).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // ESC [ parameters final-byte
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
