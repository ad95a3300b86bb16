//! A real image registry for pull tests: Debian's `docker-registry` (distribution 2.8)
//! on a loopback port with TLS (a throwaway self-signed certificate the container
//! runtime trusts through `/etc/containers/certs.d`) and htpasswd logins, holding the
//! test image under a unique name. Dropping it stops the registry, removes the trust and
//! the image from the local Podman.
//!
//! Test-only: a failure to set the registry up is a test failure, so it panics.
#![allow(clippy::unwrap_used)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The local test image pushed to the registry.
pub const SOURCE_IMAGE: &str = "localhost/busybox:test";

#[derive(Debug)]
pub struct TestRegistry {
    child: Child,
    certs_dir: PathBuf,
    /// `127.0.0.1:<port>`, the registry as image references and logins name it.
    pub host: String,
    /// The test image in the registry (not in the local runtime: pulls really fetch it).
    pub image: String,
    pub dir: PathBuf,
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.certs_dir);
        self.forget_image();
    }
}

fn run(cmd: &mut Command, what: &str) -> String {
    let out = cmd.output().unwrap_or_else(|e| {
        panic!("{what}: cannot run it ({e}); scripts/install-test-deps.sh installs it")
    });
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn require(path: &str, package: &str) {
    let found = Path::new(path).exists()
        || Command::new("sh")
            .args(["-c", &format!("command -v {path}")])
            .output()
            .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "{path} is missing: install the Debian package {package} (scripts/install-test-deps.sh)"
    );
}

impl TestRegistry {
    /// Starts a registry in `dir` that accepts `user`/`password`, and pushes the test
    /// image to it as `<tag>`.
    pub fn start(dir: &Path, user: &str, password: &str, tag: &str) -> TestRegistry {
        require("/usr/bin/docker-registry", "docker-registry");
        require("htpasswd", "apache2-utils");
        require("openssl", "openssl");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or_else(|e| panic!("no free loopback port: {e}"));
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
        // the runtime trusts the registry through containers' certs.d (read at every pull)
        let host = format!("127.0.0.1:{port}");
        let certs_dir = PathBuf::from(format!("/etc/containers/certs.d/{host}"));
        std::fs::create_dir_all(&certs_dir).unwrap_or_else(|e| {
            panic!(
                "cannot create {}: {e} (the registry tests need root)",
                certs_dir.display()
            )
        });
        std::fs::copy(dir.join("cert.pem"), certs_dir.join("ca.crt")).unwrap();
        let registry = TestRegistry {
            child,
            certs_dir,
            image: format!("{host}/edge/busybox:{tag}"),
            host,
            dir: dir.to_owned(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "the registry did not listen on {port}: {}",
                std::fs::read_to_string(dir.join("registry.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let source = std::env::var("EDGE_TEST_IMAGE").unwrap_or_else(|_| SOURCE_IMAGE.to_owned());
        run(
            Command::new("podman").args([
                "push",
                "--tls-verify=false",
                "--creds",
                &format!("{user}:{password}"),
                &source,
                &registry.image,
            ]),
            "podman push to the test registry",
        );
        // make sure pulls really go to the registry
        registry.forget_image();
        registry
    }

    /// Removes the registry's image from the local Podman (a pull must fetch it again).
    pub fn forget_image(&self) {
        let _ = Command::new("podman")
            .args(["rmi", "-f", &self.image])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
