use super::*;

fn ids(serial: Option<&str>, machine_id: Option<&str>, mac: Option<&str>) -> HardwareIds {
    HardwareIds {
        serial: serial.map(str::to_owned),
        machine_id: machine_id.map(str::to_owned),
        mac: mac.map(str::to_owned),
    }
}

fn render(template: &str, ids: &HardwareIds) -> Result<(String, IdSource), HardwareIdError> {
    render_template(template, ids, Path::new("/")).map(|(id, s)| (id.into_string(), s))
}

#[test]
fn serial_wins_then_machine_id_then_mac() {
    let all = ids(
        Some("10000000abcdef01"),
        Some("0123456789abcdef0123456789abcdef"),
        Some("b827eb000001"),
    );
    assert_eq!(
        render("pi-{serial}", &all).unwrap(),
        ("pi-10000000abcdef01".to_owned(), IdSource::Serial)
    );
    let no_serial = ids(
        None,
        Some("0123456789abcdef0123456789abcdef"),
        Some("b827eb000001"),
    );
    assert_eq!(
        render("pi-{serial}", &no_serial).unwrap(),
        (
            "pi-0123456789abcdef0123456789abcdef".to_owned(),
            IdSource::MachineId
        )
    );
    let mac_only = ids(None, None, Some("b827eb000001"));
    assert_eq!(
        render("board-{serial}", &mac_only).unwrap(),
        ("board-b827eb000001".to_owned(), IdSource::Mac)
    );
    assert_eq!(
        render("m-{mac}", &all).unwrap(),
        ("m-b827eb000001".to_owned(), IdSource::Mac)
    );
    assert_eq!(
        render("fixed-name", &all).unwrap(),
        ("fixed-name".to_owned(), IdSource::Template)
    );
}

#[test]
fn missing_identifiers_bad_templates_and_invalid_ids_are_errors() {
    assert!(matches!(
        render("pi-{serial}", &HardwareIds::default()),
        Err(HardwareIdError::Missing {
            placeholder: "serial",
            ..
        })
    ));
    assert!(matches!(
        render("pi-{mac}", &ids(Some("ab"), None, None)),
        Err(HardwareIdError::Missing {
            placeholder: "mac",
            ..
        })
    ));
    assert!(matches!(
        render("pi-{cpu}", &ids(Some("ab"), None, None)),
        Err(HardwareIdError::BadTemplate { .. })
    ));
    assert!(matches!(
        render("pi-{serial", &ids(Some("ab"), None, None)),
        Err(HardwareIdError::BadTemplate { .. })
    ));
    assert!(matches!(
        render("Pi_{serial}", &ids(Some("ab"), None, None)),
        Err(HardwareIdError::InvalidId { .. })
    ));
}

#[test]
fn normalize_trims_nul_and_colons_and_refuses_non_hex() {
    assert_eq!(
        normalize_hex(b"10000000ABCDEF01\0").as_deref(),
        Some("10000000abcdef01")
    );
    assert_eq!(
        normalize_hex(b"b8:27:eb:00:00:01\n").as_deref(),
        Some("b827eb000001")
    );
    assert_eq!(normalize_hex(b"\0\n"), None);
    assert_eq!(normalize_hex(b"not hex"), None);
}

#[test]
fn reads_the_device_tree_serial_machine_id_and_first_physical_mac_under_a_root() {
    let root = tempfile::tempdir().unwrap();
    let write = |rel: &str, data: &[u8]| {
        let path = root.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, data).unwrap();
    };
    let sources = HardwareSources::new(root.path());
    assert_eq!(sources.read(), HardwareIds::default());

    write("sys/class/net/lo/address", b"00:00:00:00:00:00\n");
    write("sys/class/net/docker0/address", b"02:42:00:00:00:01\n");
    write("sys/class/net/eth0/address", b"b8:27:eb:00:00:02\n");
    std::fs::create_dir_all(root.path().join("sys/class/net/eth0/device")).unwrap();
    write("sys/class/net/wlan0/address", b"b8:27:eb:00:00:03\n");
    std::fs::create_dir_all(root.path().join("sys/class/net/wlan0/device")).unwrap();
    assert_eq!(sources.read().mac.as_deref(), Some("b827eb000002"));

    write("etc/machine-id", b"0123456789abcdef0123456789abcdef\n");
    write(
        "sys/firmware/devicetree/base/serial-number",
        b"100000001234abcd\0",
    );
    let read = sources.read();
    assert_eq!(read.serial.as_deref(), Some("100000001234abcd"));
    assert_eq!(
        read.machine_id.as_deref(),
        Some("0123456789abcdef0123456789abcdef")
    );
    // /proc/device-tree is preferred when both exist
    write("proc/device-tree/serial-number", b"10000000ffffffff\0");
    assert_eq!(sources.read().serial.as_deref(), Some("10000000ffffffff"));
}
