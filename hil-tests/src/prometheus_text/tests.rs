use super::*;

const KUBELET: &str = r#"# HELP container_cpu_usage_seconds_total [STABLE] Cumulative cpu time
# TYPE container_cpu_usage_seconds_total counter
container_cpu_usage_seconds_total{container="spin",namespace="default",pod="top-busy"} 12.5 1733467200123
node_memory_working_set_bytes 1.048576e+06 1733467200123
scrape_error 0
"#;

#[test]
fn reads_names_labels_values_and_timestamps() {
    let samples = parse(KUBELET).unwrap();
    assert_eq!(samples.len(), 3);
    assert_eq!(samples[0].name, "container_cpu_usage_seconds_total");
    assert_eq!(samples[0].label("pod"), "top-busy");
    assert_eq!(samples[0].label("container"), "spin");
    assert_eq!(samples[0].value, 12.5);
    assert_eq!(samples[0].timestamp_ms, Some(1_733_467_200_123));
    assert_eq!(samples[1].value, 1_048_576.0);
    assert!(samples[1].labels.is_empty());
    assert_eq!(samples[2].timestamp_ms, None);
}

#[test]
fn label_values_keep_escapes_commas_and_braces() {
    let samples = parse(r#"m{a="x,}y",b="q\"uote\\",c="l\nf"} 1"#).unwrap();
    assert_eq!(samples[0].label("a"), "x,}y");
    assert_eq!(samples[0].label("b"), "q\"uote\\");
    assert_eq!(samples[0].label("c"), "l\nf");
}

#[test]
fn sums_a_family_over_its_label_sets() {
    let samples = parse("g{d=\"1\"} 2\ng{d=\"2\"} 3\ngx 100\n").unwrap();
    assert_eq!(sum(&samples, "g"), 5.0);
    assert_eq!(sum(&samples, "none"), 0.0);
}

#[test]
fn a_line_that_is_not_a_sample_is_an_error_naming_it() {
    for bad in ["novalue", "m{a=\"x\" 1", "m abc", "m 1 2 3", "m 1 notatime"] {
        let err = parse(&format!("ok 1\n{bad}\n")).unwrap_err();
        assert_eq!(err.line, 2, "{bad}: {err}");
    }
}
