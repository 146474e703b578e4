fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut out = std::io::stdout().lock();
    let code = drbdadm::cli::main_with_args(&args, &mut out);
    drop(out);
    std::process::exit(code);
}
