fn main() {
    eprintln!("edge-agent: not built yet");
    std::process::exit(2);
}
