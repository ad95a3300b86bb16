//! A real registry for pull tests: Debian's docker-registry with TLS (a test CA the
//! runtime trusts through `/etc/containers/certs.d`) and htpasswd auth, holding the test
//! image under a unique tag.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{free_port, require_tool, test_image, unique_uid, wait_port};

/// A running registry; removes the CA trust and the pulled image when dropped.
pub struct Registry {
    child: Child,
    certs_dir: PathBuf,
    /// The test image pushed to it: `127.0.0.1:<port>/edge/busybox:<unique>` (not
    /// in the runtime's store when the registry is handed out).
    pub image: String,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.certs_dir);
        let _ = Command::new("podman")
            .args(["rmi", "-f", &self.image])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn run(cmd: &mut Command, what: &str) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Starts a registry on a free port with `user`/`password`, trusted by the runtime
/// (needs root), and pushes the test image to [`Registry::image`].
pub fn start_registry(dir: &std::path::Path, user: &str, password: &str) -> Registry {
    require_tool("/usr/bin/docker-registry", "docker-registry");
    require_tool("htpasswd", "apache2-utils");
    require_tool("openssl", "openssl (a dependency of ca-certificates)");
    let port = free_port();
    let htpasswd = run(
        Command::new("htpasswd").args(["-Bbn", user, password]),
        "htpasswd",
    );
    std::fs::write(dir.join("htpasswd"), htpasswd).unwrap();
    run(
        Command::new("openssl").args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            dir.join("key.pem").to_str().unwrap(),
            "-out",
            dir.join("cert.pem").to_str().unwrap(),
        ]),
        "openssl req",
    );
    let config = format!(
        "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {data}\nhttp:\n  addr: 127.0.0.1:{port}\n  tls:\n    certificate: {cert}\n    key: {key}\nauth:\n  htpasswd:\n    realm: edge-test\n    path: {pw}\n",
        data = dir.join("data").display(),
        cert = dir.join("cert.pem").display(),
        key = dir.join("key.pem").display(),
        pw = dir.join("htpasswd").display(),
    );
    std::fs::write(dir.join("config.yml"), config).unwrap();
    let log = std::fs::File::create(dir.join("registry.log")).unwrap();
    let child = Command::new("/usr/bin/docker-registry")
        .arg("serve")
        .arg(dir.join("config.yml"))
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    // The runtime trusts the registry through containers' certs.d (read at every pull).
    let certs_dir = PathBuf::from(format!("/etc/containers/certs.d/127.0.0.1:{port}"));
    std::fs::create_dir_all(&certs_dir).unwrap_or_else(|e| {
        panic!(
            "cannot create {}: {e} (the registry test needs root)",
            certs_dir.display()
        )
    });
    std::fs::copy(dir.join("cert.pem"), certs_dir.join("ca.crt")).unwrap();
    let image = format!("127.0.0.1:{port}/edge/busybox:{}", unique_uid("t"));
    let registry = Registry {
        child,
        certs_dir,
        image: image.clone(),
    };
    wait_port(port, Duration::from_secs(20));
    run(
        Command::new("podman").args([
            "push",
            "--tls-verify=false",
            "--creds",
            &format!("{user}:{password}"),
            &test_image(),
            &image,
        ]),
        "podman push to the test registry",
    );
    // Make sure the pulls below really go to the registry.
    let _ = Command::new("podman")
        .args(["rmi", "-f", &image])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    registry
}

impl Registry {
    /// `127.0.0.1:<port>`: what a registry credential names.
    pub fn host(&self) -> String {
        self.image.split('/').next().unwrap_or_default().to_owned()
    }
}
