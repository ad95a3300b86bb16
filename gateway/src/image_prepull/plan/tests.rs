use super::*;
use crate::device_nodes::selector::LabelSelector;
use edge_protocol::PrepullImageStatus;

fn prepull(name: &str, images: &[&str], selector: &str) -> Prepull {
    Prepull {
        name: name.into(),
        spec: Ok(PrepullSpec {
            images: images.iter().map(|i| i.to_string()).collect(),
            selector: LabelSelector::parse(selector).unwrap(),
            pull_secrets: Vec::new(),
        }),
        credentials: Ok(Vec::new()),
    }
}

fn device(node: &str, ring: &str) -> DeviceView {
    DeviceView {
        node: node.into(),
        labels: [("ring".to_string(), ring.to_string())].into(),
        ours: true,
        capable: true,
        status: None,
    }
}

fn image(image: &str, phase: PrepullPhase) -> PrepullImageStatus {
    PrepullImageStatus {
        image: image.into(),
        phase,
        bytes_done: 10,
        bytes_total: 40,
        message: if phase == PrepullPhase::Failed {
            "manifest unknown".into()
        } else {
            String::new()
        },
        since: 1,
    }
}

fn reported(images: Vec<PrepullImageStatus>) -> Option<ImagePrepullStatus> {
    Some(ImagePrepullStatus {
        revision: "old".into(),
        images,
    })
}

#[test]
fn a_device_holds_the_union_of_the_prepulls_selecting_it() {
    let prepulls = [
        prepull("a", &["app:2", "redis:7"], "ring=canary"),
        prepull("b", &["redis:7", "mqtt:1"], ""),
        prepull("c", &["never:1"], "ring=none"),
    ];
    let devices = [device("pi-1", "canary"), device("pi-2", "stable")];
    let d = plan(&prepulls, &devices);
    assert_eq!(d.sets["pi-1"].images, ["app:2", "redis:7", "mqtt:1"]);
    assert_eq!(d.sets["pi-2"].images, ["redis:7", "mqtt:1"]);
    assert_ne!(d.sets["pi-1"].revision, d.sets["pi-2"].revision);
    assert_eq!(d.sets["pi-1"].revision.len(), 16);
    assert_eq!(d.statuses["c"].nodes, 0);
    assert_eq!(d.statuses["a"].nodes, 1);
    assert_eq!(d.statuses["b"].nodes, 2);
}

#[test]
fn a_device_selected_by_none_gets_the_empty_set_and_no_annotation() {
    let d = plan(
        &[prepull("a", &["app:2"], "ring=canary")],
        &[device("pi-2", "stable")],
    );
    assert_eq!(d.sets["pi-2"].images, Vec::<String>::new());
    assert_eq!(d.sets["pi-2"].revision, "");
    assert_eq!(d.nodes["pi-2"], None);
}

#[test]
fn a_changed_login_is_a_new_revision() {
    let login = |password: &str| RegistryCredential {
        registry: "ghcr.io".into(),
        username: "bot".into(),
        password: password.into(),
    };
    let images = vec!["ghcr.io/acme/app:2".to_string()];
    assert_ne!(
        revision(&images, &[login("one")]),
        revision(&images, &[login("two")])
    );
    assert_eq!(
        revision(&images, &[login("one")]),
        revision(&images, &[login("one")])
    );
}

#[test]
fn progress_per_node_and_per_prepull() {
    let prepulls = [
        prepull("app", &["app:2", "redis:7"], ""),
        prepull("tools", &["redis:7"], ""),
    ];
    let mut done = device("pi-1", "x");
    done.status = reported(vec![
        image("app:2", PrepullPhase::Present),
        image("redis:7", PrepullPhase::Present),
    ]);
    let mut pulling = device("pi-2", "x");
    pulling.status = reported(vec![
        image("app:2", PrepullPhase::Pulling),
        image("redis:7", PrepullPhase::Present),
    ]);
    let mut failing = device("pi-3", "x");
    failing.status = reported(vec![
        image("app:2", PrepullPhase::Failed),
        image("redis:7", PrepullPhase::Pending),
    ]);
    let mut old = device("pi-4", "x");
    old.capable = false;
    let waiting = device("pi-5", "x");
    let mut theirs = device("pi-6", "x");
    theirs.ours = false;
    let d = plan(&prepulls, &[done, pulling, failing, old, waiting, theirs]);

    let node = |n: &str| d.nodes[n].clone().unwrap();
    assert_eq!(node("pi-1").phase, NodePrepullPhase::Complete);
    assert_eq!(node("pi-1").present, 2);
    assert_eq!(node("pi-2").phase, NodePrepullPhase::Pulling);
    assert_eq!(
        (node("pi-2").bytes_done, node("pi-2").bytes_total),
        (10, 40)
    );
    assert_eq!(node("pi-3").phase, NodePrepullPhase::Failed);
    assert_eq!(node("pi-3").message, "app:2: manifest unknown");
    assert_eq!(node("pi-4").phase, NodePrepullPhase::Unsupported);
    assert_eq!(node("pi-5").phase, NodePrepullPhase::Pending);
    assert!(!d.nodes.contains_key("pi-6"), "another replica's device");
    assert!(
        !d.sets.contains_key("pi-4"),
        "no set for an agent without pre-pull"
    );
    assert!(!d.sets.contains_key("pi-6"));

    let app = &d.statuses["app"];
    assert_eq!(
        (
            app.nodes,
            app.complete,
            app.pulling,
            app.failed,
            app.waiting,
            app.unsupported
        ),
        (5, 1, 1, 1, 1, 1)
    );
    assert_eq!(app.phase, PrepullStatusPhase::Progressing);
    assert_eq!(app.failures, ["pi-3: app:2: manifest unknown"]);
    // "tools" only needs redis: pi-1 and pi-2 hold it, pi-3 has not pulled it yet
    let tools = &d.statuses["tools"];
    assert_eq!(
        (tools.complete, tools.pulling, tools.failed, tools.waiting),
        (2, 0, 0, 2)
    );
}

#[test]
fn complete_when_every_selected_capable_node_holds_the_images() {
    let mut a = device("pi-1", "x");
    a.status = reported(vec![image("app:2", PrepullPhase::Present)]);
    let mut old = device("pi-2", "x");
    old.capable = false;
    let d = plan(&[prepull("app", &["app:2"], "")], &[a, old]);
    let status = &d.statuses["app"];
    assert_eq!(status.phase, PrepullStatusPhase::Complete);
    assert!(
        status.message.contains("1 Node(s) skipped"),
        "{}",
        status.message
    );
}

#[test]
fn an_invalid_prepull_orders_nothing_and_says_why() {
    let mut bad = prepull("bad", &["app:2"], "");
    bad.credentials = Err("Secret regcred: not found".into());
    let d = plan(&[bad], &[device("pi-1", "x")]);
    assert_eq!(d.sets["pi-1"].images, Vec::<String>::new());
    assert_eq!(d.statuses["bad"].phase, PrepullStatusPhase::Invalid);
    assert_eq!(d.statuses["bad"].message, "Secret regcred: not found");
}

#[test]
fn at_most_the_protocol_limit_of_images_per_device() {
    let many: Vec<String> = (0..MAX_PREPULL_IMAGES + 3)
        .map(|i| format!("i{i}:1"))
        .collect();
    let half = MAX_PREPULL_IMAGES / 2 + 2;
    let first: Vec<&str> = many[..half].iter().map(String::as_str).collect();
    let second: Vec<&str> = many[half..].iter().map(String::as_str).collect();
    let d = plan(
        &[prepull("a", &first, ""), prepull("b", &second, "")],
        &[device("pi-1", "x")],
    );
    assert_eq!(d.sets["pi-1"].images.len(), MAX_PREPULL_IMAGES);
    assert_eq!(
        d.nodes["pi-1"].clone().unwrap().message,
        format!("3 image(s) left out: more than {MAX_PREPULL_IMAGES} selected")
    );
}

#[test]
fn the_node_annotation_round_trips() {
    let node = NodePrepull {
        phase: NodePrepullPhase::Pulling,
        images: 2,
        present: 1,
        bytes_done: 5,
        bytes_total: 9,
        message: String::new(),
    };
    assert_eq!(
        node.encode(),
        r#"{"phase":"pulling","images":2,"present":1,"bytesDone":5,"bytesTotal":9}"#
    );
    assert_eq!(NodePrepull::parse(&node.encode()), Some(node));
}
