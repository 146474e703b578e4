//! `drbdsetup`: see the library documentation.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    std::process::exit(drbdsetup::run::main_with_args(&args));
}
