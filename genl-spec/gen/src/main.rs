//! `genl-gen [--check]`: regenerates `genl-spec/src/generated.rs` from
//! `genl-spec/drbd.yaml`; with `--check`, only reports whether the committed
//! file is up to date (exit 1 if not).

use std::process::ExitCode;

fn main() -> ExitCode {
    let check = std::env::args().skip(1).any(|a| a == "--check");
    let (spec_path, out_path) = genl_gen::default_paths();
    let yaml = match std::fs::read_to_string(&spec_path) {
        Ok(y) => y,
        Err(e) => {
            eprintln!("genl-gen: {}: {e}", spec_path.display());
            return ExitCode::from(2);
        }
    };
    let code = match genl_gen::generate(&yaml) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("genl-gen: {e}");
            return ExitCode::from(2);
        }
    };
    let current = std::fs::read_to_string(&out_path).unwrap_or_default();
    if check {
        if current == code {
            println!("{} is up to date", out_path.display());
            return ExitCode::SUCCESS;
        }
        eprintln!(
            "{} is stale: run `cargo run -p genl-gen`",
            out_path.display()
        );
        return ExitCode::from(1);
    }
    if current != code {
        if let Err(e) = std::fs::write(&out_path, code) {
            eprintln!("genl-gen: {}: {e}", out_path.display());
            return ExitCode::from(2);
        }
        println!("wrote {}", out_path.display());
    } else {
        println!("{} unchanged", out_path.display());
    }
    ExitCode::SUCCESS
}
