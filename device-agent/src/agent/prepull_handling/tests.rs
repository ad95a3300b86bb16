use super::*;

fn key(c: &str) -> ContainerKey {
    ("pod-1".to_owned(), c.to_owned())
}

#[test]
fn the_worker_is_told_while_any_pod_pull_runs() {
    let (sets, _) = mpsc::unbounded_channel();
    let (tx, rx) = watch::channel(false);
    let mut p = Prepull::new(sets, None, tx);
    let done = |o: Outcome| Input::Done(o);
    p.observe(&done(Outcome::PullStarted { key: key("a") }));
    assert!(*rx.borrow());
    p.observe(&done(Outcome::PullStarted { key: key("b") }));
    p.observe(&done(Outcome::ImageReady {
        key: key("a"),
        pulled: true,
    }));
    assert!(*rx.borrow(), "b still pulls");
    p.observe(&Input::Tick { now: 1 });
    assert!(*rx.borrow());
    p.observe(&done(Outcome::ImageFailed {
        key: key("b"),
        message: "unauthorized".into(),
    }));
    assert!(!*rx.borrow(), "none left");
    // an image found present without a pull never held anything
    p.observe(&done(Outcome::ImageReady {
        key: key("c"),
        pulled: false,
    }));
    assert!(!*rx.borrow());
}
