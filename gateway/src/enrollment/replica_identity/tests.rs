use edge_protocol::DeviceId;

use super::{acl_lines, common_name, ensure, parse_replica};
use crate::enrollment::fleet_ca::FleetCa;
use crate::enrollment::layout::EnrollmentLayout;

#[test]
fn a_replica_name_can_never_be_a_device_id() {
    for replica in ["edge-gateway-0", "a", "shard-7"] {
        let cn = common_name(replica);
        assert!(DeviceId::new(cn.clone()).is_err(), "{cn} is a device id");
        assert!(cn.ends_with(replica));
    }
    assert!(parse_replica("edge-gateway-1").is_ok());
    for bad in ["", "Edge", "a_b", "-a", "a.b"] {
        assert!(parse_replica(bad).is_err(), "{bad:?} accepted");
    }
}

#[test]
fn each_replica_gets_the_gateways_rights_under_its_own_name() {
    let acl = acl_lines(&["edge-gateway-0".to_owned(), "edge-gateway-1".to_owned()]);
    assert!(acl.contains("user edge_gateway.edge-gateway-0\ntopic readwrite #\n"));
    assert!(acl.contains("user edge_gateway.edge-gateway-1\ntopic readwrite #\n"));
    assert_eq!(acl_lines(&[]), "");
}

#[test]
fn a_replica_certificate_is_issued_once_with_its_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let layout = EnrollmentLayout::new(dir.path());
    let (ca, _) = FleetCa::load_or_create(&layout).expect("ca");
    let first = ensure(&ca, &layout, "edge-gateway-2").expect("issued");
    assert!(first.created);
    let pem = std::fs::read_to_string(&first.cert).expect("cert");
    let (_, der) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).expect("pem");
    let cert = der.parse_x509().expect("x509");
    let cn: Vec<&str> = cert
        .subject()
        .iter_common_name()
        .filter_map(|a| a.as_str().ok())
        .collect();
    assert_eq!(cn, ["edge_gateway.edge-gateway-2"]);
    let again = ensure(&ca, &layout, "edge-gateway-2").expect("kept");
    assert!(!again.created);
    assert_eq!(std::fs::read_to_string(&again.cert).expect("cert"), pem);
}

#[derive(clap::Parser)]
struct BrokerConfigCli {
    #[command(flatten)]
    args: crate::enrollment::cli::BrokerConfigArgs,
}

fn broker_config_args(
    kind: &str,
    store: &std::path::Path,
) -> crate::enrollment::cli::BrokerConfigArgs {
    use clap::Parser;
    let store = store.display().to_string();
    BrokerConfigCli::try_parse_from([
        "broker-config",
        kind,
        "--store-dir",
        &store,
        "--gateway-replica",
        "edge-gateway-0",
        "--gateway-replica",
        "edge-gateway-1",
    ])
    .expect("arguments")
    .args
}

#[test]
fn broker_config_issues_each_replica_and_grants_it_the_gateways_rights() {
    let dir = tempfile::tempdir().expect("tempdir");
    let args = broker_config_args("mosquitto", dir.path());
    let mut out = Vec::new();
    let conf = crate::enrollment::cli::broker_config(&args, &mut out).expect("configured");
    let acl = std::fs::read_to_string(conf.with_file_name("acl")).expect("acl");
    for n in 0..2 {
        assert!(
            acl.contains(&format!(
                "user edge_gateway.edge-gateway-{n}\ntopic readwrite #\n"
            )),
            "{acl}"
        );
        let cert = dir
            .path()
            .join(format!("enrollment/gateway/replica-edge-gateway-{n}.pem"));
        assert!(cert.is_file(), "{}", cert.display());
    }
    let said = String::from_utf8(out).expect("utf-8");
    assert!(
        said.contains("--replica-id edge-gateway-1 --broker-cert"),
        "{said}"
    );
}

#[test]
fn broker_config_for_nats_refuses_replica_identities() {
    let dir = tempfile::tempdir().expect("tempdir");
    let args = broker_config_args("nats", dir.path());
    let err = crate::enrollment::cli::broker_config(&args, &mut Vec::new()).expect_err("refused");
    assert!(err.to_string().contains("mosquitto only"), "{err}");
}
