use super::*;

fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn only_the_version_is_required_and_the_defaults_are_cautious() {
    let spec = RolloutSpec::parse(&data(&[("version", "0.4.0")])).unwrap();
    assert_eq!(spec.version, "0.4.0");
    assert_eq!(spec.max_unavailable, MaxUnavailable::Count(1));
    assert_eq!(spec.max_failures, 0);
    assert_eq!(spec.health_deadline, Duration::from_secs(120));
    assert_eq!(spec.progress_deadline, Duration::from_secs(900));
    assert!(!spec.paused);
    assert!(spec.selector.matches(&BTreeMap::new()));
}

#[test]
fn every_field_is_read() {
    let spec = RolloutSpec::parse(&data(&[
        ("version", " 0.5.0-rc.1 "),
        ("nodeSelector", "ring=canary"),
        ("maxUnavailable", "25%"),
        ("maxFailures", "2"),
        ("healthDeadline", "45s"),
        ("progressDeadline", "1h"),
        ("paused", "true"),
    ]))
    .unwrap();
    assert_eq!(spec.version, "0.5.0-rc.1");
    assert_eq!(spec.max_unavailable, MaxUnavailable::Percent(25));
    assert_eq!(spec.max_failures, 2);
    assert_eq!(spec.health_deadline, Duration::from_secs(45));
    assert_eq!(spec.progress_deadline, Duration::from_secs(3600));
    assert!(spec.paused);
    assert!(!spec.selector.matches(&BTreeMap::new()));
}

#[test]
fn a_percentage_rounds_down_but_never_to_zero() {
    assert_eq!(MaxUnavailable::Percent(25).of(10), 2);
    assert_eq!(MaxUnavailable::Percent(10).of(3), 1);
    assert_eq!(MaxUnavailable::Percent(100).of(7), 7);
    assert_eq!(MaxUnavailable::Count(3).of(1), 3);
}

#[test]
fn bad_values_say_what_to_write() {
    assert_eq!(
        RolloutSpec::parse(&data(&[])).unwrap_err(),
        SpecError::MissingVersion
    );
    for (key, value) in [
        ("version", "../../etc"),
        ("version", "1.0 beta"),
        ("version", "1.0+build"),
        ("healthDeadline", "500ms"),
        ("healthDeadline", "2h"),
        ("maxUnavailable", "0"),
        ("maxUnavailable", "150%"),
        ("maxUnavailable", "-1"),
        ("maxFailures", "many"),
        ("healthDeadline", "soon"),
        ("progressDeadline", "0s"),
        ("paused", "yes"),
        ("nodeSelector", "ring in canary"),
    ] {
        let mut d = data(&[("version", "0.4.0")]);
        d.insert(key.to_owned(), value.to_owned());
        let err = RolloutSpec::parse(&d).unwrap_err().to_string();
        assert!(
            err.contains(key) || key == "version",
            "{key}={value}: {err}"
        );
    }
}
