use super::*;

fn body(r: Response) -> (StatusCode, String) {
    let status = r.status();
    let bytes =
        futures::executor::block_on(axum::body::to_bytes(r.into_body(), usize::MAX)).unwrap();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

fn finished(stdout: &str, stderr: &str, status: Option<ExitStatus>) -> RunResult {
    RunResult {
        stdout: stdout.into(),
        stderr: stderr.into(),
        status,
        truncated: false,
    }
}

#[test]
fn the_command_is_cmd_split_on_whitespace_like_the_kubelets() {
    assert_eq!(command_of("cmd=ls%20-l%20%20/tmp"), ["ls", "-l", "/tmp"]);
    assert_eq!(command_of("cmd=echo+hi"), ["echo", "hi"]);
    assert!(command_of("cmd=").is_empty());
    assert!(command_of("command=ls").is_empty());
}

#[test]
fn success_answers_stdout_then_stderr_and_failures_are_500_with_the_reason() {
    let (status, text) = body(answer(finished(
        "out\n",
        "err\n",
        Some(ExitStatus::Exited(0)),
    )));
    assert_eq!((status, text.as_str()), (StatusCode::OK, "out\nerr\n"));
    let (status, text) = body(answer(finished("", "no\n", Some(ExitStatus::Exited(3)))));
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        text.contains("exit code 3") && text.contains("no"),
        "{text}"
    );
    let (status, text) = body(answer(finished(
        "",
        "",
        Some(ExitStatus::Failed("container not running".into())),
    )));
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(text.contains("container not running"), "{text}");
    let (status, _) = body(answer(finished("", "", None)));
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
}

#[test]
fn output_beyond_the_limit_is_refused_not_cut_silently() {
    let (done, _rx) = oneshot::channel();
    let mut collector = OutputCollector {
        ready_sent: true,
        result: Arc::default(),
        done: Some(done),
    };
    let chunk = vec![b'x'; 1024 * 1024];
    for _ in 0..16 {
        collector.output(StreamChannel::Stdout, &chunk, false);
    }
    assert!(!collector.result().truncated, "exactly the limit fits");
    collector.output(StreamChannel::Stderr, b"one more", false);
    collector.finish(&ExitStatus::Exited(0));
    let result = std::mem::take(&mut *collector.result());
    assert_eq!(result.stdout.len(), MAX_RUN_OUTPUT_BYTES);
    let (status, text) = body(answer(result));
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(text.contains("more than"), "{text}");
}
