use super::*;

fn load(text: &str) -> Result<BootstrapFile, BootstrapFileError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bootstrap.toml");
    std::fs::write(&path, text).unwrap();
    BootstrapFile::load(&path).map(|mut f| {
        // paths relative to the file were resolved against its directory
        if let Some(ca) = &f.ca_file {
            assert!(ca.starts_with(dir.path()) || ca.is_absolute());
        }
        f.ca_file = f.ca_file.map(|p| PathBuf::from(p.file_name().unwrap()));
        f
    })
}

#[test]
fn a_full_file_is_read_and_the_token_is_redacted() {
    let f = load(
        r#"
bootstrap_broker_url = "mqtts://gw.example:8884"
broker_urls = ["mqtts://gw.example:8883"]
ca_file = "ca.pem"
bootstrap_cert_file = "bootstrap.pem"
bootstrap_key_file = "bootstrap.key"
token = "abcdef.0123456789abcdef"
device_id_template = "pi-{serial}"
identity_dir = "/var/lib/edge-agent/identity"
"#,
    )
    .unwrap();
    assert_eq!(f.bootstrap_broker.port, 8884);
    assert_eq!(f.broker_urls, vec!["mqtts://gw.example:8883".to_owned()]);
    assert_eq!(f.device_id_template, "pi-{serial}");
    assert!(f.bootstrap_client.is_some());
    assert!(!format!("{f:?}").contains("0123456789abcdef"));
}

#[test]
fn defaults_and_refusals() {
    let f = load(
        "bootstrap_broker_url = \"mqtt://127.0.0.1:1883\"\ntoken = \"abcdef.0123456789abcdef\"\n",
    )
    .unwrap();
    assert_eq!(f.broker_urls, vec!["mqtt://127.0.0.1:1883".to_owned()]);
    assert_eq!(f.device_id_template, DEFAULT_ID_TEMPLATE);
    assert_eq!(f.identity_dir, PathBuf::from(DEFAULT_IDENTITY_DIR));

    for bad in [
        "bootstrap_broker_url = \"mqtts://gw:8884\"\ntoken = \"abcdef.0123456789abcdef\"\n",
        "bootstrap_broker_url = \"mqtt://gw:1883\"\ntoken = \"ABCDEF.0123456789abcdef\"\n",
        "bootstrap_broker_url = \"mqtt://gw:1883\"\ntoken = \"abcdef.0123\"\n",
        "bootstrap_broker_url = \"mqtt://gw:1883\"\ntoken = \"abcdef.0123456789abcdef\"\nbootstrap_cert_file = \"x\"\n",
        "bootstrap_broker_url = \"http://gw\"\ntoken = \"abcdef.0123456789abcdef\"\n",
        "bootstrap_broker_url = \"mqtt://gw:1883\"\ntoken = \"abcdef.0123456789abcdef\"\nsurprise = 1\n",
    ] {
        assert!(load(bad).is_err(), "{bad}");
    }
}
