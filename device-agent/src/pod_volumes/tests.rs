#![allow(clippy::unwrap_used)]
use super::*;
use edge_protocol::{FileItem, Volume, VolumeMount};

fn pod(volumes: Vec<Volume>) -> PodSpec {
    PodSpec {
        uid: "u-1".into(),
        volumes,
        ..Default::default()
    }
}

#[test]
fn files_are_written_with_modes_and_refreshed() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = pod(vec![Volume {
        name: "secret".into(),
        source: VolumeSource::Files {
            files: vec![
                FileItem {
                    path: "a/key".into(),
                    content: "k1".into(),
                    mode: 0o644,
                },
                FileItem {
                    path: "b".into(),
                    content: "b".into(),
                    mode: 0,
                },
            ],
            sensitive: true,
        },
    }]);
    prepare(dir.path(), &p).unwrap();
    let v = volume_dir(dir.path(), "u-1", "secret");
    let key = v.join("a/key");
    assert_eq!(fs::read(&key).unwrap(), b"k1");
    assert_eq!(
        fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    if let VolumeSource::Files { files, .. } = &mut p.volumes[0].source {
        files.truncate(1);
        files[0].content = "k2".into();
    }
    prepare(dir.path(), &p).unwrap();
    assert_eq!(fs::read(&key).unwrap(), b"k2");
    assert!(!v.join("b").exists());
    cleanup(dir.path(), "u-1").unwrap();
    assert!(!v.exists());
}

#[test]
fn rejects_escapes_and_missing_sources() {
    let dir = tempfile::tempdir().unwrap();
    let p = pod(vec![Volume {
        name: "x".into(),
        source: VolumeSource::Files {
            files: vec![FileItem {
                path: "../etc/passwd".into(),
                ..Default::default()
            }],
            sensitive: false,
        },
    }]);
    assert!(matches!(
        prepare(dir.path(), &p),
        Err(VolumeError::UnsafePath { .. })
    ));
    let p = pod(vec![Volume {
        name: "h".into(),
        source: VolumeSource::HostPath {
            path: "/nonexistent/edge".into(),
            kind: Some("Directory".into()),
        },
    }]);
    assert!(matches!(
        prepare(dir.path(), &p),
        Err(VolumeError::HostPath { .. })
    ));
    let c = ContainerSpec {
        volume_mounts: vec![VolumeMount {
            name: "nope".into(),
            mount_path: "/x".into(),
            ..Default::default()
        }],
        ..Default::default()
    };
    assert!(matches!(
        container_mounts(dir.path(), &p, &c),
        Err(VolumeError::UnknownVolume { .. })
    ));
}

#[test]
fn mounts_for_each_kind() {
    let dir = tempfile::tempdir().unwrap();
    let p = pod(vec![
        Volume {
            name: "cfg".into(),
            source: VolumeSource::Files {
                files: vec![],
                sensitive: false,
            },
        },
        Volume {
            name: "scratch".into(),
            source: VolumeSource::EmptyDir {
                in_memory: false,
                size_limit_bytes: None,
            },
        },
        Volume {
            name: "mem".into(),
            source: VolumeSource::EmptyDir {
                in_memory: true,
                size_limit_bytes: Some(1024),
            },
        },
    ]);
    let mount = |name: &str, path: &str| VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        ..Default::default()
    };
    let c = ContainerSpec {
        volume_mounts: vec![
            mount("cfg", "/etc/cfg"),
            mount("scratch", "/data"),
            mount("mem", "/run/m"),
        ],
        ..Default::default()
    };
    let m = container_mounts(dir.path(), &p, &c).unwrap();
    assert_eq!(m.binds.len(), 2);
    assert!(m.binds[0].read_only, "files are read-only");
    assert!(!m.binds[1].read_only);
    assert_eq!(
        m.tmpfs,
        vec![("/run/m".into(), "rw,mode=1777,size=1024".into())]
    );
}

#[test]
fn a_sub_path_mount_keeps_its_version_while_the_volume_mount_follows() {
    let dir = tempfile::tempdir().unwrap();
    let files = |v: &str| VolumeSource::Files {
        files: vec![FileItem {
            path: "app.conf".into(),
            content: v.as_bytes().to_vec().into(),
            mode: 0,
        }],
        sensitive: false,
    };
    let mut p = pod(vec![Volume {
        name: "cfg".into(),
        source: files("v1"),
    }]);
    prepare(dir.path(), &p).unwrap();
    let c = ContainerSpec {
        volume_mounts: vec![
            VolumeMount {
                name: "cfg".into(),
                mount_path: "/etc/cfg".into(),
                ..Default::default()
            },
            VolumeMount {
                name: "cfg".into(),
                mount_path: "/etc/app.conf".into(),
                sub_path: Some("app.conf".into()),
                ..Default::default()
            },
        ],
        ..Default::default()
    };
    let m = container_mounts(dir.path(), &p, &c).unwrap();
    let whole = PathBuf::from(&m.binds[0].host_path);
    let sub = PathBuf::from(&m.binds[1].host_path);
    assert!(
        sub.parent()
            .and_then(|d| d.file_name())
            .is_some_and(|n| n.to_string_lossy().starts_with("..")),
        "subPath binds the file of the current version: {sub:?}"
    );
    // a bind mount holds what its source was when the container was created
    let mut mounted = fs::File::open(&sub).unwrap();
    p.volumes[0].source = files("v2");
    prepare(dir.path(), &p).unwrap();
    assert_eq!(fs::read(whole.join("app.conf")).unwrap(), b"v2");
    let mut seen = String::new();
    std::io::Read::read_to_string(&mut mounted, &mut seen).unwrap();
    assert_eq!(seen, "v1", "the subPath mount is not updated");
    // a container created now gets the new version
    let m = container_mounts(dir.path(), &p, &c).unwrap();
    assert_eq!(fs::read(&m.binds[1].host_path).unwrap(), b"v2");
}
