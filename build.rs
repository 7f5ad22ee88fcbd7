//! Links the flite speech synthesiser (Debian `flite1-dev`) used by the
//! offline TTS engine: the core library, the US English front end, the CMU
//! lexicon and the compiled-in `cmu_us_slt` voice.

fn main() {
    for lib in [
        "flite_cmu_us_slt",
        "flite_usenglish",
        "flite_cmulex",
        "flite",
    ] {
        println!("cargo:rustc-link-lib={lib}");
    }
    println!("cargo:rerun-if-changed=build.rs");
    // The store embeds its migrations at compile time.
    println!("cargo:rerun-if-changed=migrations");
}
