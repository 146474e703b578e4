//! Compatibility against the reference drbdmeta from drbd-utils (9.22).
//!
//! Metadata written by ours must read identically with the reference tool
//! and vice versa (`dump-md`, `show-gi`, `get-gi`, `dstate`), and both tools
//! must write the same bytes. These tests FAIL (not skip) when the reference
//! binary is missing: install drbd-utils, or point DRBDMETA_REF at it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

const OURS: &str = env!("CARGO_BIN_EXE_drbdmeta");

fn reference() -> PathBuf {
    if let Ok(p) = std::env::var("DRBDMETA_REF") {
        return PathBuf::from(p);
    }
    for p in ["/usr/sbin/drbdmeta", "/sbin/drbdmeta"] {
        if Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    panic!(
        "reference drbdmeta not found (looked at /usr/sbin/drbdmeta, /sbin/drbdmeta, $DRBDMETA_REF): \
         install drbd-utils (apt-get install -y drbd-utils) to run the compatibility tests"
    );
}

static SEQ: AtomicU32 = AtomicU32::new(0);

struct TempDir(PathBuf);
impl TempDir {
    fn new() -> TempDir {
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        let p = std::env::temp_dir().join(format!("drbdmeta-compat-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    fn file(&self, name: &str, bytes: u64) -> PathBuf {
        let p = self.0.join(name);
        let f = std::fs::File::create(&p).unwrap();
        f.set_len(bytes).unwrap();
        p
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn run(bin: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    use std::io::Write;
    let mut c = Command::new(bin);
    c.args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = c
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));
    if let Some(s) = stdin {
        let _ = child.stdin.take().unwrap().write_all(s.as_bytes());
    } else {
        drop(child.stdin.take());
    }
    child.wait_with_output().unwrap()
}

fn md_args<'a>(img: &'a str, index: &'a str, cmd: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["--force", "-", "v09", img, index];
    v.extend_from_slice(cmd);
    v
}

fn both(img: &Path, index: &str, cmd: &[&str]) -> (Output, Output) {
    let img = img.to_str().unwrap();
    let a = md_args(img, index, cmd);
    (run(&reference(), &a, None), run(Path::new(OURS), &a, None))
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Dump without the 3 header lines (date, host and command differ).
fn dump_body(o: &Output) -> String {
    assert!(
        o.status.success(),
        "dump-md failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    stdout(o).lines().skip(4).collect::<Vec<_>>().join("\n")
}

fn create(bin: &Path, img: &Path, index: &str, extra: &[&str]) {
    let mut cmd = vec!["create-md"];
    cmd.extend_from_slice(extra);
    let o = run(bin, &md_args(img.to_str().unwrap(), index, &cmd), None);
    assert!(
        o.status.success(),
        "{} create-md {extra:?} failed: {}{}",
        bin.display(),
        stdout(&o),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Compare everything both tools report about an image.
fn assert_same_view(img: &Path, index: &str, peers: u32) {
    let (r, o) = both(img, index, &["dump-md"]);
    assert_eq!(
        dump_body(&r),
        dump_body(&o),
        "dump-md differs for {}",
        img.display()
    );
    for node in ["0", &(peers.min(31)).to_string()] {
        for cmd in ["show-gi", "get-gi"] {
            let (r, o) = both(img, index, &[cmd, "--node-id", node]);
            assert_eq!(r.status.code(), o.status.code(), "{cmd} exit code");
            assert_eq!(stdout(&r), stdout(&o), "{cmd} --node-id {node} differs");
        }
    }
    let (r, o) = both(img, index, &["dstate"]);
    assert_eq!(stdout(&r), stdout(&o), "dstate differs");
}

fn read_all(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap()
}

#[test]
fn create_internal_same_bytes_and_views() {
    let t = TempDir::new();
    for (bytes, peers, extra) in [
        (100u64 << 20, 1u32, vec![]),
        (100 << 20, 2, vec![]),
        (1 << 30, 31, vec![]),
        ((1_000_003u64) * 512, 7, vec![]),
        (
            300 << 20,
            3,
            vec!["--al-stripes", "4", "--al-stripe-size-kB", "64"],
        ),
    ] {
        let peers_s = peers.to_string();
        let mut args: Vec<&str> = extra.clone();
        args.push(&peers_s);
        let a = t.file("a.img", bytes);
        let b = t.file("b.img", bytes);
        create(&reference(), &a, "internal", &args);
        create(Path::new(OURS), &b, "internal", &args);
        assert!(
            read_all(&a) == read_all(&b),
            "images differ: {bytes} bytes, {peers} peers, {extra:?}"
        );
        assert_same_view(&a, "internal", peers);
        assert_same_view(&b, "internal", peers);
    }
}

#[test]
fn create_external_same_bytes_and_views() {
    let t = TempDir::new();
    for (index, bytes, peers) in [
        ("flex-external", 50u64 << 20, 2u32),
        ("1", 300 << 20, 3),
        ("0", 130 << 20, 1),
    ] {
        let a = t.file("a.img", bytes);
        let b = t.file("b.img", bytes);
        let p = peers.to_string();
        create(&reference(), &a, index, &[&p]);
        create(Path::new(OURS), &b, index, &[&p]);
        assert!(read_all(&a) == read_all(&b), "images differ for {index}");
        assert_same_view(&a, index, peers);
        assert_same_view(&b, index, peers);
    }
}

/// A dump with UUIDs, flags, peer slots and bitmap content.
fn rich_dump(t: &TempDir, img: &Path) -> PathBuf {
    let (r, _) = both(img, "internal", &["dump-md"]);
    let mut s = stdout(&r);
    s = s.replacen("flags 0x00000080;", "flags 0x00000293;", 1);
    s = s.replace(
        "current-uuid 0x0000000000000004;",
        "current-uuid 0xAAAABBBBCCCCDDDD;",
    );
    s = s.replace("la-size-sect 0;", "la-size-sect 204000;");
    s = s.replace("node-id -1;", "node-id 1;");
    s = s.replacen(
        "peer[0] {\n    bitmap-index -1;\n    bitmap-uuid 0x0000000000000000;\n    bitmap-dagtag 0x0000000000000000;\n    flags 0x00000000;",
        "peer[0] {\n    bitmap-index 1;\n    bitmap-uuid 0x1234567890ABCDEF;\n    bitmap-dagtag 0x0000000000000042;\n    flags 0x00010015;",
        1,
    );
    s = s.replacen(
        "peer[2] {\n    bitmap-index -1;\n    bitmap-uuid 0x0000000000000000;\n    bitmap-dagtag 0x0000000000000000;\n    flags 0x00000000;",
        "peer[2] {\n    bitmap-index 0;\n    bitmap-uuid 0x0000000000000000;\n    bitmap-dagtag 0x0000000000000000;\n    flags 0x0000001A;",
        1,
    );
    s = s.replacen(
        "        0x0000000000000000; 0x0000000000000000;",
        "        0x1111111111111111; 0x2222222222222222;",
        1,
    );
    let start = s.find("bitmap[0] {").unwrap();
    let end = s.find("# bits-set").unwrap();
    let bitmaps = "bitmap[0] {\n    0x00000001FFFFFFFF; 0x0000000000000000; 0x8000000000000000; 0x0000000000000001;\n    20 times 0xFFFFFFFFFFFFFFFF;\n    0x00000000DEADBEEF;\n}\nbitmap[1] {\n    3 times 0x0000000000000000;\n    0x0000000080000000;\n    100 times 0xF0F0F0F0F0F0F0F0;\n}\n";
    s.replace_range(start..end, bitmaps);
    let p = t.0.join("rich.txt");
    std::fs::write(&p, s).unwrap();
    p
}

#[test]
fn restore_both_ways() {
    let t = TempDir::new();
    let a = t.file("a.img", 100 << 20);
    let b = t.file("b.img", 100 << 20);
    create(&reference(), &a, "internal", &["2"]);
    create(&reference(), &b, "internal", &["2"]);
    let dump = rich_dump(&t, &a);
    let d = dump.to_str().unwrap();
    let r = run(
        &reference(),
        &md_args(a.to_str().unwrap(), "internal", &["restore-md", d]),
        None,
    );
    assert!(
        r.status.success(),
        "reference restore-md: {}",
        String::from_utf8_lossy(&r.stderr)
    );
    let o = run(
        Path::new(OURS),
        &md_args(b.to_str().unwrap(), "internal", &["restore-md", d]),
        None,
    );
    assert!(
        o.status.success(),
        "our restore-md: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(stdout(&r), stdout(&o));
    assert!(
        read_all(&a) == read_all(&b),
        "restore-md wrote different bytes"
    );
    assert_same_view(&a, "internal", 2);
    // verify-dump: same verdict. (The reference does not open the device in
    // this mode and then claims the size was "truncated (0)"; ours does not.)
    let (r, o) = both(&a, "internal", &["verify-dump", d]);
    assert_eq!(r.status.code(), o.status.code());
    assert!(stdout(&o).ends_with("input file parsed ok\n"));
}

#[test]
fn modifying_commands_agree() {
    let t = TempDir::new();
    let a = t.file("a.img", 100 << 20);
    create(&reference(), &a, "internal", &["2"]);
    let dump = rich_dump(&t, &a);
    let r = run(
        &reference(),
        &md_args(
            a.to_str().unwrap(),
            "internal",
            &["restore-md", dump.to_str().unwrap()],
        ),
        None,
    );
    assert!(r.status.success());
    for cmd in [
        vec!["outdate"],
        vec!["invalidate"],
        vec!["forget-peer", "--node-id", "0"],
        vec!["write-dev-uuid", "0123456789ABCDEF"],
        vec!["outdate"],
        vec!["wipe-md"],
        vec!["wipe-md"],
        vec!["dump-md"],
        vec!["outdate"],
    ] {
        let b = t.0.join("b.img");
        std::fs::copy(&a, &b).unwrap();
        let (r, o) = (
            run(
                &reference(),
                &md_args(a.to_str().unwrap(), "internal", &cmd),
                None,
            ),
            run(
                Path::new(OURS),
                &md_args(b.to_str().unwrap(), "internal", &cmd),
                None,
            ),
        );
        assert_eq!(r.status.code(), o.status.code(), "exit code of {cmd:?}");
        if cmd[0] != "dump-md" {
            assert_eq!(stdout(&r), stdout(&o), "output of {cmd:?}");
        }
        assert!(
            read_all(&a) == read_all(&b),
            "{cmd:?} wrote different bytes"
        );
    }
}

/// Write AL transactions (with proto) into an image that claims a Primary
/// crash, then let both tools apply the AL.
#[test]
fn apply_al_agrees() {
    use proto::al::Transaction;
    use proto::meta::{self, MdIndex, MD_BLOCK_SIZE};
    use std::os::unix::fs::FileExt;
    let t = TempDir::new();
    for (peers, primary) in [(2u32, true), (1, false), (3, true)] {
        let a = t.file("a.img", 100 << 20);
        create(&reference(), &a, "internal", &[&peers.to_string()]);
        let l = meta::md_layout(MdIndex::Internal, 204_800, 204_800, peers, 1, 8, 4096).unwrap();
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&a)
            .unwrap();
        let mut sbb = [0u8; MD_BLOCK_SIZE];
        f.read_exact_at(&mut sbb, l.md_offset * 512).unwrap();
        let mut sb = meta::Superblock::decode(&sbb).unwrap();
        sb.flags = meta::MDF_CONSISTENT | if primary { meta::MDF_PRIMARY_IND } else { 0 };
        sb.effective_size = l.data_sectors;
        sb.encode(&mut sbb);
        f.write_all_at(&sbb, l.md_offset * 512).unwrap();
        // transactions 10..=13 in a ring of 8 (index = tr % 8)
        for (tr, updates) in [
            (10u32, vec![(0u16, 3u32), (1, 7)]),
            (11, vec![(2, 20)]),
            (12, vec![(1, u32::MAX), (3, 9)]),
            (13, vec![(4, 1000)]),
        ] {
            let mut tx = Transaction {
                tr_number: tr,
                n_updates: updates.len() as u16,
                context_size: 61,
                context_start_slot_nr: 0,
                ..Transaction::default()
            };
            for (i, (s, e)) in updates.iter().enumerate() {
                tx.update_slot_nr[i] = *s;
                tx.update_extent_nr[i] = *e;
            }
            let mut blk = [0u8; MD_BLOCK_SIZE];
            tx.encode(&mut blk);
            f.write_all_at(&blk, l.al_tr_sector(tr) * 512).unwrap();
        }
        drop(f);
        let b = t.0.join("b.img");
        std::fs::copy(&a, &b).unwrap();
        let r = run(
            &reference(),
            &md_args(a.to_str().unwrap(), "internal", &["apply-al"]),
            None,
        );
        let o = run(
            Path::new(OURS),
            &md_args(b.to_str().unwrap(), "internal", &["apply-al"]),
            None,
        );
        assert_eq!(r.status.code(), o.status.code(), "apply-al exit code");
        assert!(
            read_all(&a) == read_all(&b),
            "apply-al results differ ({peers} peers, primary {primary})"
        );
        assert_same_view(&a, "internal", peers);
    }
}

#[test]
fn refuses_existing_data_like_reference() {
    let t = TempDir::new();
    // An ext4-like superblock claiming the whole 100 MiB device.
    let mut sbk = vec![0u8; 2048];
    sbk[0x438] = 0x53;
    sbk[0x439] = 0xEF;
    sbk[0x404..0x408].copy_from_slice(&25600u32.to_le_bytes());
    sbk[0x418] = 2;
    sbk[0x45c] = 4;
    for (claim, index) in [
        (25600u32, "internal"),
        (12800, "internal"),
        (25600, "flex-external"),
    ] {
        sbk[0x404..0x408].copy_from_slice(&claim.to_le_bytes());
        let a = t.file("a.img", 100 << 20);
        std::fs::write(&a, &sbk).unwrap();
        std::fs::File::options()
            .write(true)
            .open(&a)
            .unwrap()
            .set_len(100 << 20)
            .unwrap();
        let b = t.0.join("b.img");
        std::fs::copy(&a, &b).unwrap();
        let r = run(
            &reference(),
            &md_args(a.to_str().unwrap(), index, &["create-md", "1"]),
            None,
        );
        let o = run(
            Path::new(OURS),
            &md_args(b.to_str().unwrap(), index, &["create-md", "1"]),
            None,
        );
        assert_eq!(
            r.status.code(),
            o.status.code(),
            "create-md on fs ({claim} blocks, {index})"
        );
        assert_eq!(
            stdout(&r),
            stdout(&o),
            "create-md on fs output ({claim}, {index})"
        );
        assert!(read_all(&a) == read_all(&b));
    }
}

#[test]
fn errors_and_exit_codes_agree() {
    let t = TempDir::new();
    let e = t.file("e.img", 10 << 20);
    for cmd in [
        vec!["dump-md"],
        vec!["show-gi", "--node-id", "0"],
        vec!["get-gi"],
        vec!["dstate"],
        vec!["wipe-md"],
        vec!["apply-al"],
        vec!["outdate"],
        vec!["create-md"],
        vec!["create-md", "0"],
        vec!["create-md", "32"],
        vec!["frobnicate"],
        vec!["dump-md", "--node-id", "1"],
        vec!["dump-md", "--al-stripes", "2"],
    ] {
        let (r, o) = both(&e, "internal", &cmd);
        assert_eq!(r.status.code(), o.status.code(), "exit code of {cmd:?}");
        assert_eq!(stdout(&r), stdout(&o), "stdout of {cmd:?}");
    }
    let small = t.file("s.img", 60 << 10);
    let (r, o) = both(&small, "internal", &["dump-md"]);
    assert_eq!(r.status.code(), o.status.code(), "tiny device");
}
