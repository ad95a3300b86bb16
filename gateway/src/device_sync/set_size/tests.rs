use super::*;

fn spec(uid: &str, filler: usize) -> PodSpec {
    PodSpec {
        uid: uid.into(),
        name: "x".repeat(filler),
        ..Default::default()
    }
}

#[test]
fn total_matches_the_encoded_message_or_overestimates_by_the_generation_digits() {
    let pods = vec![spec("a", 10), spec("b", 2000), spec("c", 0)];
    let size = SetSize::of(pods.iter().take(2));
    let total = size.total_with("c", pod_bytes(&pods[2]));
    let set = DesiredSet {
        generation: 7,
        pods: pods.clone(),
    };
    let real = Message::DesiredSet(set).encode().unwrap().len();
    assert!(total >= real && total - real <= 20, "{total} vs {real}");
    // replacing a pod counts it once
    let replaced = size.total_with("b", pod_bytes(&pods[1]));
    let two = DesiredSet {
        generation: 7,
        pods: pods[..2].to_vec(),
    };
    let real = Message::DesiredSet(two).encode().unwrap().len();
    assert!(replaced >= real && replaced - real <= 20);
}
