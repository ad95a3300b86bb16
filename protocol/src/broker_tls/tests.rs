use super::*;

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn errors_name_the_file_and_what_is_wrong() {
    let dir = std::env::temp_dir().join(format!("broker-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let missing = dir.join("missing.pem");
    let err = client_config(&BrokerTlsFiles {
        ca: Some(&missing),
        client: None,
    })
    .unwrap_err();
    assert!(
        matches!(
            err,
            BrokerTlsError::Read {
                what: "CA file",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("missing.pem"), "{err}");

    let garbage = write(
        &dir,
        "garbage.pem",
        "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
    );
    let err = client_config(&BrokerTlsFiles {
        ca: Some(&garbage),
        client: None,
    })
    .unwrap_err();
    assert!(matches!(err, BrokerTlsError::Pem { .. }), "{err}");

    let empty = write(&dir, "empty.pem", "");
    let err = client_config(&BrokerTlsFiles {
        ca: None,
        client: Some((&empty, &empty)),
    })
    .unwrap_err();
    assert!(matches!(err, BrokerTlsError::NoPrivateKey(_)), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn no_files_give_a_configuration_that_trusts_no_broker() {
    let config = client_config(&BrokerTlsFiles::default()).unwrap();
    assert!(!config.client_auth_cert_resolver.has_certs());
}
