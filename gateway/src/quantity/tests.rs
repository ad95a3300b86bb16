use super::*;

fn q(s: &str) -> Quantity {
    Quantity::parse(s).unwrap()
}

#[test]
fn parses_decimal_binary_and_exponent_forms() {
    assert_eq!(q("250m").ceil_millis(), 250);
    assert_eq!(q("1.5").ceil_millis(), 1500);
    assert_eq!(q("2").ceil_units(), 2);
    assert_eq!(q("512Mi").ceil_units(), 512 * 1024 * 1024);
    assert_eq!(q("1Gi").ceil_units(), 1 << 30);
    assert_eq!(q("1k").ceil_units(), 1000);
    assert_eq!(q("1e3").ceil_units(), 1000);
    assert_eq!(q("100n").ceil_millis(), 1);
    assert_eq!(q("1.5Ki").ceil_units(), 1536);
    assert_eq!(q("-1").ceil_units(), -1);
}

#[test]
fn rejects_garbage() {
    // mantissa at the edge of i128 with rounding: an error, never an overflow panic
    let edge = "170141183460469231731687303715884105700e-12";
    for bad in ["", "m", "1.2.3", "1Xi", "abc", "1e99", ".", "1 Gi", edge] {
        assert!(Quantity::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn ceil_division_matches_the_downward_api() {
    // 250m cpu with divisor 1 → 1 core; with divisor 1m → 250
    assert_eq!(q("250m").ceil_div(q("1")), Some(1));
    assert_eq!(q("250m").ceil_div(q("1m")), Some(250));
    assert_eq!(q("128Mi").ceil_div(q("1Mi")), Some(128));
    assert_eq!(q("1").ceil_div(q("0")), None);
}

proptest::proptest! {
    #[test]
    fn parsing_never_panics(s in "\\PC{0,40}") {
        let _ = Quantity::parse(&s);
    }

    #[test]
    fn number_like_input_never_panics(s in "[-+]?[0-9]{0,45}(\\.[0-9]{0,45})?(e-?[0-9]{1,3}|[numkMGTPE]|[KMGTPE]i)?") {
        if let Ok(q) = Quantity::parse(&s) {
            let _ = (q.ceil_units(), q.ceil_millis(), q.units_u64(), q.millis_u64());
            let _ = q.ceil_div(Quantity::from_millis(1));
        }
    }
}

#[test]
fn formats_like_the_kubelet() {
    assert_eq!(cpu_quantity(4000), "4");
    assert_eq!(cpu_quantity(1500), "1500m");
    assert_eq!(bytes_quantity(2048), "2Ki");
    assert_eq!(bytes_quantity(1000), "1000");
}
