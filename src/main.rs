//! The `switchboard` command line.

fn main() {
    println!("switchboard: not wired yet");
}
