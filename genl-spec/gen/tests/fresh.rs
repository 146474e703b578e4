//! The committed `generated.rs` must equal a fresh generation from `drbd.yaml`.

#[test]
fn committed_generated_rs_is_fresh() {
    let (spec, out) = genl_gen::default_paths();
    let yaml = std::fs::read_to_string(&spec).expect("read drbd.yaml");
    let fresh = genl_gen::generate(&yaml).expect("generate");
    let committed = std::fs::read_to_string(&out).expect("read generated.rs");
    assert!(
        committed == fresh,
        "genl-spec/src/generated.rs is stale: run `cargo run -p genl-gen`"
    );
}

#[test]
fn spec_rejects_duplicate_tla() {
    let (spec, _) = genl_gen::default_paths();
    let yaml = std::fs::read_to_string(&spec).expect("read drbd.yaml");
    let broken = yaml.replacen(
        "tla: { nr: 2, name: CFG_CONTEXT }",
        "tla: { nr: 1, name: CFG_CONTEXT }",
        1,
    );
    assert!(genl_gen::parse(&broken).is_err());
}
