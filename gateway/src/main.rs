fn main() {
    eprintln!("edge-gateway: not built yet");
    std::process::exit(2);
}
