use super::*;

#[test]
fn options_follow_the_kubelet_query_rules() {
    let options = ExecOptions::from_query("command=sh&stdin=1&stdout=1&stderr=1&tty=1").unwrap();
    assert_eq!(
        options,
        ExecOptions {
            stdin: true,
            stdout: true,
            stderr: false,
            tty: true
        },
        "tty drops stderr"
    );
    assert_eq!(
        ExecOptions::from_query("stdout=true"),
        Err(RemoteCommandError::NoStreams)
    );
    assert_eq!(
        ExecOptions::from_query("command=ls"),
        Err(RemoteCommandError::NoStreams)
    );
}

#[test]
fn expected_streams_count_error_plus_requested_plus_resize_with_tty() {
    let all = ExecOptions {
        stdin: true,
        stdout: true,
        stderr: true,
        tty: false,
    };
    assert_eq!(
        all.expected_streams(),
        [
            StreamType::Error,
            StreamType::Stdin,
            StreamType::Stdout,
            StreamType::Stderr
        ]
    );
    let tty = ExecOptions {
        stdin: true,
        stdout: true,
        stderr: false,
        tty: true,
    };
    assert_eq!(
        tty.expected_streams(),
        [
            StreamType::Error,
            StreamType::Stdin,
            StreamType::Stdout,
            StreamType::Resize
        ]
    );
}

fn typed(kind: &str) -> HeaderBlock {
    HeaderBlock::new().with(HEADER_STREAM_TYPE, kind)
}

#[test]
fn stream_set_completes_when_every_expected_stream_arrived() {
    let options = ExecOptions::from_query("stdout=1&stderr=1").unwrap();
    let mut set = ExecStreamSet::new(&options);
    assert_eq!(set.accept(1, &typed("error")), Ok(None));
    assert_eq!(set.accept(3, &typed("stdout")), Ok(None));
    assert_eq!(
        set.accept(5, &typed("stderr")),
        Ok(Some(ExecStreams {
            error: 1,
            stdin: None,
            stdout: Some(3),
            stderr: Some(5),
            resize: None
        }))
    );
}

#[test]
fn stream_set_rejects_unknown_unrequested_and_duplicate_streams() {
    let options = ExecOptions::from_query("stdout=1").unwrap();
    let mut set = ExecStreamSet::new(&options);
    assert_eq!(
        set.accept(1, &typed("video")),
        Err(RemoteCommandError::UnknownStreamType(Some("video".into())))
    );
    assert_eq!(
        set.accept(1, &HeaderBlock::new()),
        Err(RemoteCommandError::UnknownStreamType(None))
    );
    assert_eq!(
        set.accept(1, &typed("stdin")),
        Err(RemoteCommandError::UnexpectedStream("stdin"))
    );
    assert_eq!(set.accept(1, &typed("error")), Ok(None));
    assert_eq!(
        set.accept(3, &typed("error")),
        Err(RemoteCommandError::DuplicateStream("error"))
    );
}

#[test]
fn exit_status_json_is_what_client_go_decodes() {
    let success: serde_json::Value =
        serde_json::from_slice(&status_json(&ExitStatus::Exited(0))).unwrap();
    assert_eq!(
        success,
        serde_json::json!({"metadata": {}, "status": "Success"})
    );
    let failure: serde_json::Value =
        serde_json::from_slice(&status_json(&ExitStatus::Exited(3))).unwrap();
    assert_eq!(failure["status"], "Failure");
    assert_eq!(failure["reason"], "NonZeroExitCode");
    assert_eq!(
        failure["details"]["causes"][0],
        serde_json::json!({"reason": "ExitCode", "message": "3"})
    );
    let internal: serde_json::Value = serde_json::from_slice(&status_json(&ExitStatus::Failed(
        "no such container".into(),
    )))
    .unwrap();
    assert_eq!(internal["reason"], "InternalError");
    assert_eq!(internal["code"], 500);
    assert!(
        internal["message"]
            .as_str()
            .unwrap()
            .contains("no such container")
    );
}

#[test]
fn resize_messages_are_decoded_across_arbitrary_splits() {
    let mut decoder = ResizeDecoder::default();
    let stream = b"{\"Width\":80,\"Height\":24}\n{\"Width\":120,\"Height\":40}\n";
    let (a, b) = stream.split_at(30);
    assert_eq!(
        decoder.push(a).unwrap(),
        [TerminalSize {
            width: 80,
            height: 24
        }]
    );
    assert_eq!(
        decoder.push(b).unwrap(),
        [TerminalSize {
            width: 120,
            height: 40
        }]
    );
    assert_eq!(decoder.push(b"").unwrap(), []);
}

#[test]
fn resize_garbage_and_endless_messages_are_errors() {
    assert!(matches!(
        ResizeDecoder::default().push(b"{\"Width\":-1,\"Height\":2}"),
        Err(RemoteCommandError::InvalidResize(_))
    ));
    let endless = format!("{{\"Width\":1,\"pad\":\"{}", "x".repeat(MAX_RESIZE_BUFFER));
    assert_eq!(
        ResizeDecoder::default().push(endless.as_bytes()),
        Err(RemoteCommandError::ResizeTooLarge(MAX_RESIZE_BUFFER))
    );
}

#[test]
fn the_api_servers_parameter_names_are_understood() {
    // what kube-apiserver sends a kubelet for `kubectl exec -i` (no tty)
    let options =
        ExecOptions::from_query("command=cat&container=app&input=1&output=1&error=1").unwrap();
    assert_eq!(
        options,
        ExecOptions {
            stdin: true,
            stdout: true,
            stderr: true,
            tty: false
        }
    );
    assert_eq!(
        ExecOptions::from_query("output=true"),
        Err(RemoteCommandError::NoStreams)
    );
}
