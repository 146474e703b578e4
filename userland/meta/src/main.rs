//! drbdmeta: create, inspect and repair DRBD 9 (v09) meta-data.
//!
//! Command line, messages, prompts and exit codes follow drbd-utils'
//! drbdmeta; all layout and codec logic lives in the `proto` crate.
//!
//! Exit codes: 0 ok, 1 failed/cancelled, 5 device inconsistent (outdate),
//! 10 bad input or IO error, 20 usage error or unusable device, 30 not
//! implemented, 40 refused because existing data would be destroyed.

mod detect;
mod device;
mod dump;

use std::io::Write;

use proto::al::{self, ReplayPlan, ReplayScan, AL_EXTENTS_MAX, AL_FREE, BM_BYTES_PER_AL_EXT};
use proto::meta::{
    self, MdIndex, MdLayout, MetaError, Superblock, MDF_AL_CLEAN, MDF_AL_DISABLED, MDF_CONSISTENT,
    MDF_CRASHED_PRIMARY, MDF_PEER_CONNECTED, MDF_PEER_DEVICE_SEEN, MDF_PEER_FENCING,
    MDF_PEER_FULL_SYNC, MDF_PEER_OUTDATED, MDF_PEER_OUT_DATED, MDF_PRIMARY_IND,
    MDF_PRIMARY_LOST_QUORUM, MDF_WAS_UP_TO_DATE, MD_BLOCK_SIZE,
};

use device::{Device, Found};

/// Largest number of peers create-md accepts (drbd-utils 9.22).
const CREATE_MAX_PEERS: u32 = 31;
/// drbdmeta's buffer limits the AL to 32 MiB (8192 blocks).
const AL_MAX_4K_TOOL: u64 = 8192;

/// Global options and the command being run.
pub struct Ctx {
    pub force: bool,
    pub verbose: u32,
    pub ignore_sanity: bool,
    pub command: String,
    pub node_id: Option<u32>,
    pub al_stripes: Option<u32>,
    pub al_stripe_size_4k: Option<u32>,
    pub peer_max_bio_size: Option<u32>,
    pub max_peers: Option<u32>,
    pub minor: Option<u32>,
    /// The command line as drbdmeta echoes it in dump headers.
    pub echo: String,
}

impl Ctx {
    fn stripes(&self) -> u32 {
        self.al_stripes.unwrap_or(meta::AL_STRIPES_DEFAULT)
    }
    fn stripe_size_4k(&self) -> u32 {
        self.al_stripe_size_4k
            .unwrap_or(meta::AL_STRIPE_SIZE_4K_DEFAULT)
    }
    fn al_options_used(&self) -> bool {
        self.al_stripes.is_some() || self.al_stripe_size_4k.is_some()
    }
}

/// Flush and exit.
pub fn die(code: i32) -> ! {
    device::flush();
    let _ = std::io::stderr().flush();
    std::process::exit(code)
}

/// drbdmeta's confirmation: `--force` answers for the user, otherwise the
/// user must type exactly "yes".
pub fn confirmed(ctx: &Ctx, text: &str) -> bool {
    device::flush();
    eprintln!("\n{text}");
    if ctx.force {
        eprintln!("*** confirmation forced via --force option ***");
        return true;
    }
    eprint!("[need to type 'yes' to confirm] ");
    let answer = device::read_line().unwrap_or_default();
    eprintln!();
    answer == "yes\n"
}

fn usage_and_exit() -> ! {
    println!("\nUSAGE: drbdmeta [--force] DEVICE FORMAT [FORMAT ARGS...] COMMAND [CMD ARGS...]");
    println!("\nFORMATS:\n  v09 device index");
    println!("\nCOMMANDS:");
    for (name, args) in [
        ("get-gi --node-id {val}", ""),
        ("show-gi --node-id {val}", ""),
        ("dump-md", ""),
        ("restore-md", "file"),
        ("verify-dump", "file"),
        ("apply-al", ""),
        ("wipe-md", ""),
        ("outdate", ""),
        ("invalidate", ""),
        ("dstate", ""),
        ("check-resize", ""),
        (
            "create-md",
            "[--peer-max-bio-size {val}] [--al-stripes {val}] [--al-stripe-size-kB {val}] {max_peers}",
        ),
        ("forget-peer --node-id {val}", ""),
    ] {
        println!("  {name} {args}");
    }
    die(20)
}

/// Parse a number with an optional unit suffix (s, k, M, G, T), returning
/// it in units of `def_unit` bytes (1 = bytes, 1024 = KiB), like m_strtoll.
fn parse_size(s: &str, def_unit: u64) -> u64 {
    let t = s.trim();
    let (digits, suffix) = match t.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => t.split_at(i),
        None => (t, ""),
    };
    let n: u64 = match (digits.parse::<u64>(), digits.is_empty()) {
        (Ok(n), false) => n,
        _ => {
            eprintln!("{s} is not a valid number");
            die(20)
        }
    };
    let unit: u64 = match suffix {
        "" => def_unit,
        "s" | "S" => 512,
        "k" | "K" => 1 << 10,
        "m" | "M" => 1 << 20,
        "g" | "G" => 1 << 30,
        "t" | "T" => 1 << 40,
        _ => {
            eprintln!("{s} is not a valid number");
            die(20)
        }
    };
    match n.checked_mul(unit) {
        Some(b) => b / def_unit.max(1),
        None => {
            eprintln!("{s} is out of range");
            die(20)
        }
    }
}

const LONG_OPTS: &[(&str, bool)] = &[
    ("ignore-sanity-checks", false),
    ("dry-run", false),
    ("force", false),
    ("verbose", false),
    ("peer-max-bio-size", true),
    ("node-id", true),
    ("al-stripes", true),
    ("al-stripe-size-kB", true),
    ("max-peers", true),
];

fn set_opt(ctx: &mut Ctx, name: &str, val: Option<String>) {
    let v = val.unwrap_or_default();
    match name {
        "force" => ctx.force = true,
        "verbose" => ctx.verbose += 1,
        "ignore-sanity-checks" => ctx.ignore_sanity = true,
        "dry-run" => {
            eprintln!("--dry-run is not supported by this drbdmeta");
            die(20)
        }
        "peer-max-bio-size" => {
            let n = parse_size(&v, 1);
            if n > 1024 * 1024 {
                eprintln!("peer-max-bio-size out of range (0...1M)");
                die(10);
            }
            ctx.peer_max_bio_size = Some(n as u32);
        }
        "node-id" => {
            let n = parse_size(&v, 1);
            if n > 31 {
                eprintln!("node-id out of range (0...31)");
                die(10);
            }
            ctx.node_id = Some(n as u32);
        }
        "al-stripes" => ctx.al_stripes = Some(parse_size(&v, 1).min(u64::from(u32::MAX)) as u32),
        "al-stripe-size-kB" => {
            ctx.al_stripe_size_4k = Some((parse_size(&v, 1024) / 4).min(u64::from(u32::MAX)) as u32)
        }
        "max-peers" => ctx.max_peers = Some(parse_size(&v, 1).min(u64::from(u32::MAX)) as u32),
        _ => usage_and_exit(),
    }
}

/// GNU getopt_long style: options anywhere, `--opt=val` or `--opt val`,
/// unambiguous prefixes, `-f`/`-v`, `--` ends options.
fn parse_args(args: Vec<String>) -> (Ctx, Vec<String>) {
    let mut ctx = Ctx {
        force: false,
        verbose: 0,
        ignore_sanity: false,
        command: String::new(),
        node_id: None,
        al_stripes: None,
        al_stripe_size_4k: None,
        peer_max_bio_size: None,
        max_peers: None,
        minor: None,
        echo: String::new(),
    };
    let mut pos = Vec::new();
    let mut opts_echo = Vec::new();
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        if a == "--" {
            pos.extend(it.by_ref());
            break;
        }
        if let Some(body) = a.strip_prefix("--") {
            let (name, inline) = match body.split_once('=') {
                Some((n, v)) => (n.to_string(), Some(v.to_string())),
                None => (body.to_string(), None),
            };
            let exact = LONG_OPTS.iter().find(|(n, _)| *n == name);
            let cands: Vec<_> = LONG_OPTS
                .iter()
                .filter(|(n, _)| n.starts_with(&name))
                .collect();
            let (full, takes) = match (exact, cands.as_slice()) {
                (Some(o), _) => *o,
                (None, [o]) => **o,
                _ => {
                    eprintln!("drbdmeta: unrecognized or ambiguous option '--{name}'");
                    usage_and_exit()
                }
            };
            opts_echo.push(a.clone());
            let val = if takes {
                match inline {
                    Some(v) => Some(v),
                    None => match it.next() {
                        Some(v) => {
                            opts_echo.push(v.clone());
                            Some(v)
                        }
                        None => {
                            eprintln!("drbdmeta: option '--{full}' requires an argument");
                            usage_and_exit()
                        }
                    },
                }
            } else {
                None
            };
            set_opt(&mut ctx, full, val);
        } else if a.len() > 1
            && a.starts_with('-')
            && a != "-"
            && !a[1..].starts_with(|c: char| c.is_ascii_digit())
        {
            opts_echo.push(a.clone());
            for c in a[1..].chars() {
                match c {
                    'f' => ctx.force = true,
                    'v' => ctx.verbose += 1,
                    _ => usage_and_exit(),
                }
            }
        } else {
            pos.push(a);
        }
    }
    let mut echo = vec!["drbdmeta".to_string()];
    echo.extend(opts_echo);
    echo.extend(pos.iter().cloned());
    ctx.echo = echo.join(" ");
    (ctx, pos)
}

/// Minor number of `dev`: a number, or a /dev/drbdN-style name.
fn minor_of(dev: &str) -> Option<u32> {
    if let Ok(n) = dev.parse::<u32>() {
        return Some(n);
    }
    let base = dev.rsplit('/').next().unwrap_or(dev);
    base.strip_prefix("drbd").and_then(|n| n.parse().ok())
}

/// Ask drbdsetup whether the minor has a disk attached.
fn is_attached(minor: u32) -> bool {
    let out = std::process::Command::new("drbdsetup")
        .arg(minor.to_string())
        .arg("dstate")
        .stderr(std::process::Stdio::null())
        .output();
    match out {
        Ok(o) if o.status.success() => {
            let s = String::from_utf8_lossy(&o.stdout);
            let first = s.split('/').next().unwrap_or("").trim();
            !(first.is_empty() || first == "Diskless" || first == "Unconfigured")
        }
        _ => false,
    }
}

fn lk_path(minor: u32) -> String {
    format!("/var/lib/drbd/drbd-minor-{minor}.lkbd")
}

/// Remember where internal meta-data was, so check-resize can find it
/// after the backing device grows.
fn lk_save(ctx: &Ctx, dev: &Device) {
    if let Some(m) = ctx.minor {
        if dev.index == MdIndex::Internal {
            let _ = std::fs::create_dir_all("/var/lib/drbd");
            let _ = std::fs::write(lk_path(m), format!("{}\t{}\n", dev.size, dev.name));
        } else {
            let _ = std::fs::remove_file(lk_path(m));
        }
    }
}

fn lk_load(ctx: &Ctx) -> Option<u64> {
    let m = ctx.minor?;
    let s = std::fs::read_to_string(lk_path(m)).ok()?;
    s.split_whitespace().next()?.parse().ok()
}

/// Open the device and find valid meta-data; prints drbdmeta's clipping note.
fn open_md(ctx: &Ctx, dev: &Device) -> Result<Found, MetaError> {
    let f = dev.find();
    if let Ok(found) = &f {
        if found.sb.effective_size > found.effective_size {
            println!(
                "# la-size-sect was too big ({}), truncated ({})!",
                found.sb.effective_size, found.effective_size
            );
        }
    } else if let Err(e) = &f {
        if ctx.verbose > 0 {
            eprintln!("v09 {}", e.message());
        }
    }
    f
}

fn hweight(words: &[u8]) -> u64 {
    words.iter().map(|b| u64::from(b.count_ones())).sum()
}

/// Human-readable size of `kb` KiB, like drbd-utils' ppsize().
fn ppsize(mut kb: u64) -> String {
    let units = ['K', 'M', 'G', 'T', 'P', 'E'];
    let mut base = 0;
    while kb >= 10000 && base < units.len() - 1 {
        kb = (kb >> 10) + u64::from(kb & (1 << 9) != 0);
        base += 1;
    }
    format!("{} {}B", kb as u32, units[base])
}

fn bytes_to_words(b: &[u8]) -> Vec<u32> {
    b.chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Look at the first 68 KiB of the device; refuse (exit 40) or ask when
/// something is there, like drbdmeta's check_for_existing_data().
fn check_for_existing_data(ctx: &Ctx, dev: &Device, layout: &MdLayout) {
    let mut buf = vec![0u8; device::SO_MUCH as usize];
    dev.read_at(&mut buf, 0);
    let Some(found) = detect::detect(&buf) else {
        return;
    };
    println!("md_offset {}", layout.md_offset * 512);
    println!("al_offset {}", layout.al_start_sector() * 512);
    println!("bm_offset {}", layout.bm_start_sector() * 512);
    println!("\nFound {}", found.kind);
    let max_usable_kb = layout.data_sectors.min(meta::MAX_DATA_SECTORS) / 2;
    let refuse_text = "If you want me to do this, you need to zero out the first part\nof the device (destroy the content).\nYou should be very sure that you mean it.\nOperation refused.\n";
    match found.size {
        detect::Size::Unknown => println!("\n ==> This might destroy existing data! <=="),
        size => {
            if dev.index.is_external() {
                println!("\nThis would corrupt existing data.");
                if ctx.ignore_sanity {
                    println!("\nIgnoring sanity check on user request.\n");
                    return;
                }
                println!("{refuse_text}");
                die(40);
            }
            if let detect::Size::Bytes(b) = size {
                println!("{:>12} kB data area apparently used", b.div_ceil(1024));
            }
            println!("{max_usable_kb:>12} kB left usable by current configuration");
            match size {
                detect::Size::Undetermined | detect::Size::Refuse => {
                    if matches!(size, detect::Size::Undetermined) {
                        println!("Could not determine the size of the actually used data area.\n");
                    }
                    println!("Device size would be truncated, which\nwould corrupt data and result in\n'access beyond end of device' errors.");
                    if ctx.ignore_sanity {
                        println!("\nIgnoring sanity check on user request.\n");
                        return;
                    }
                    println!("{refuse_text}");
                    die(40);
                }
                detect::Size::Bytes(b) if b.div_ceil(1024) > max_usable_kb => {
                    println!("\nDevice size would be truncated, which\nwould corrupt data and result in\n'access beyond end of device' errors.\nYou need to either\n   * use external meta data (recommended)\n   * shrink that filesystem first\n   * zero out the device (destroy the filesystem)\nOperation refused.\n");
                    die(40);
                }
                _ => println!("\nEven though it looks like this would place the new meta data into\nunused space, you still need to confirm, as this is only a guess."),
            }
        }
    }
    if !confirmed(ctx, "Do you want to proceed?") {
        println!("Operation canceled.");
        die(1);
    }
}

/// Write every AL block as an initialized transaction.
fn initialize_al(dev: &Device, layout: &MdLayout) {
    let mut blk = [0u8; MD_BLOCK_SIZE];
    meta::al_init_block(0, &mut blk);
    let n = layout.al_size_4k as usize;
    let mut buf = Vec::with_capacity(n * MD_BLOCK_SIZE);
    for _ in 0..n {
        buf.extend_from_slice(&blk);
    }
    dev.write_at(&buf, dev.al_byte_offset(layout));
}

fn layout_or_die(
    dev: &Device,
    max_peers: u32,
    stripes: u32,
    stripe_size_4k: u32,
    bpb: u32,
) -> MdLayout {
    match meta::md_layout(
        dev.index,
        dev.backing_sectors(),
        dev.sectors(),
        max_peers,
        stripes,
        stripe_size_4k,
        bpb,
    ) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{}", e.message());
            die(10)
        }
    }
}

fn cmd_create_md(ctx: &Ctx, md_dev: &str, index: MdIndex, args: &[String]) -> i32 {
    let max_peers = match (args.first(), ctx.max_peers) {
        (Some(a), _) => {
            if args.len() > 1 {
                eprintln!("Ignoring additional arguments");
            }
            parse_size(a, 1).min(u64::from(u32::MAX)) as u32
        }
        (None, Some(m)) => m,
        (None, None) => {
            eprintln!(
                "USAGE: drbdmeta MINOR v09 ... create-md MAX_PEERS\n\n  MAX_PEERS argument missing"
            );
            die(20)
        }
    };
    if !(1..=CREATE_MAX_PEERS).contains(&max_peers) {
        eprintln!("MAX_PEERS argument not in allowed range 1 .. {CREATE_MAX_PEERS}.");
        die(20);
    }
    let dev = Device::open(ctx, md_dev, index, true);
    match open_md(ctx, &dev) {
        Ok(found) => {
            if dev.index == MdIndex::Internal {
                eprintln!(
                    "You want me to create a v09 style flexible-size internal meta data block."
                );
                eprintln!(
                    "There appears to be a v09 flexible-size internal meta data block\nalready in place on {} at byte offset {}",
                    dev.name, dev.md_offset
                );
                if (found.sb.al_stripes != ctx.stripes()
                    || found.sb.al_stripe_size_4k != ctx.stripe_size_4k())
                    && confirmed(
                        ctx,
                        "Do you want to change the activity log stripe settings *only*?",
                    )
                {
                    eprintln!("Sorry, not yet fully implemented\nTry dump-md > dump.txt; restore-md -s x -z y dump.txt");
                    die(30);
                }
                if !confirmed(
                    ctx,
                    "Do you really want to overwrite the existing meta-data?",
                ) {
                    println!("Operation cancelled.");
                    die(1);
                }
            } else if !confirmed(
                ctx,
                "Valid meta data seems to be in place.\nDo you really want to overwrite?",
            ) {
                println!("Operation cancelled.");
                die(1);
            }
        }
        Err(MetaError::OldFormat) => {
            eprintln!(
                "There appears to be meta data of an older DRBD version (v06/v07/v08) on {} at byte offset {}.\nThis drbdmeta cannot convert it.",
                dev.name, dev.md_offset
            );
            if !confirmed(ctx, "So you want me to replace the old meta-data\nwith newly initialized v09 meta-data?") {
                println!("Operation cancelled.");
                die(1);
            }
        }
        Err(_) => {}
    }
    let layout = layout_or_die(
        &dev,
        max_peers,
        ctx.stripes(),
        ctx.stripe_size_4k(),
        meta::BM_BYTES_PER_BIT_DEFAULT,
    );
    check_for_existing_data(ctx, &dev, &layout);
    println!("initializing activity log");
    initialize_al(&dev, &layout);
    // Zero as much bitmap as the meta-data device itself would need, like
    // drbdmeta, bounded by the bitmap area.
    let area = layout.bm_area_sectors() * 512;
    let zero = meta::bm_bytes(
        dev.sectors().min(meta::MAX_DATA_SECTORS),
        max_peers,
        meta::BM_BYTES_PER_BIT_DEFAULT,
    )
    .unwrap_or(area)
    .min(area);
    device::flush();
    eprintln!("initializing bitmap ({} KB) to all zero", zero >> 10);
    dev.zero_at(dev.bm_byte_offset(&layout), zero);
    let mut sb = Superblock::new_created(&layout, max_peers);
    sb.la_peer_max_bio_size = ctx.peer_max_bio_size.unwrap_or(0);
    println!("Writing meta data...");
    dev.write_superblock(&sb);
    dev.sync();
    lk_save(ctx, &dev);
    println!("New drbd meta data block successfully created.");
    0
}

fn read_bitmap(dev: &Device, found: &Found) -> Vec<u32> {
    let mut buf = vec![0u8; found.bm_bytes as usize];
    dev.read_at(&mut buf, dev.bm_byte_offset(&found.layout));
    bytes_to_words(&buf)
}

fn cmd_dump_md(ctx: &Ctx, dev: &Device) -> i32 {
    let found = match open_md(ctx, dev) {
        Ok(f) => f,
        Err(_) => {
            eprintln!("No valid meta data found");
            return 1;
        }
    };
    let clean = found.sb.flags & MDF_AL_CLEAN != 0;
    if !clean {
        eprintln!("Found meta data is \"unclean\", please apply-al first");
        if !ctx.force {
            return 1;
        }
    }
    let bitmap = read_bitmap(dev, &found);
    let l = &found.layout;
    let body = dump::render(&dump::DumpInput {
        sb: &found.sb,
        effective_size: found.effective_size,
        md_size_sect: found.sb.md_size_sect,
        md_offset: dev.md_offset,
        al_offset: l.al_start_sector() * 512,
        bm_offset: l.bm_start_sector() * 512,
        bm_bytes: found.bm_bytes,
        bitmap: &bitmap,
        unclean: !clean,
    });
    print!("{}", dump_header(ctx));
    print!("{body}");
    0
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

/// "# DRBD meta data dump / date / host> command" header (UTC).
fn dump_header(ctx: &Ctx) -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86400) as i64;
    let rem = secs % 86400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "# DRBD meta data dump\n# {y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} +0000 [{secs}]\n# {}> {}\n#\n\n",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        hostname(),
        ctx.echo
    )
}

fn gi_line(sb: &Superblock, node: usize) -> String {
    let p = sb.peers.get(node).copied().unwrap_or_default();
    let b = |f: u32, m: u32| u32::from(f & m != 0);
    format!(
        "{:016X}:{:016X}:{:016X}:{:016X}:{}:{}:{}:{}:{}:{}:{}:{}:{}:{}:{}:{}",
        sb.current_uuid,
        p.bitmap_uuid,
        sb.history_uuids[0],
        sb.history_uuids[1],
        b(sb.flags, MDF_CONSISTENT),
        b(sb.flags, MDF_WAS_UP_TO_DATE),
        b(sb.flags, MDF_PRIMARY_IND),
        b(sb.flags, MDF_CRASHED_PRIMARY),
        b(sb.flags, MDF_AL_CLEAN),
        b(sb.flags, MDF_AL_DISABLED),
        b(sb.flags, MDF_PRIMARY_LOST_QUORUM),
        b(p.flags, MDF_PEER_CONNECTED),
        b(p.flags, MDF_PEER_OUTDATED),
        b(p.flags, MDF_PEER_FENCING),
        b(p.flags, MDF_PEER_FULL_SYNC),
        b(p.flags, MDF_PEER_DEVICE_SEEN),
    )
}

const GI_HEAD: &str = "
       +--<  Current data generation UUID  >-
       |               +--<  Bitmap's base data generation UUID  >-
       |               |                 +--<  younger history UUID  >-
       |               |                 |         +-<  older history  >-
       V               V                 V         V
";

const GI_LEGEND: &str =
    "                                                                    ^ ^ ^ ^ ^ ^ ^ ^ ^ ^ ^ ^
                                      -<  Data consistency flag  >--+ | | | | | | | | | | |
                             -<  Data was/is currently up-to-date  >--+ | | | | | | | | | |
                                  -<  Node was/is currently primary  >--+ | | | | | | | | |
 -<  This node was a crashed primary, and has not seen its peer since  >--+ | | | | | | | |
             -<  The activity-log was applied, the disk can be attached  >--+ | | | | | | |
        -<  The activity-log was disabled, peer is completely out of sync  >--+ | | | | | |
                              -<  This node was primary when it lost quorum  >--+ | | | | |
                                          -<  Node was/is currently connected  >--+ | | | |
                              -<  The peer's disk was out-dated or inconsistent  >--+ | | |
                                 -<   A fence policy other the dont-care was used  >--+ | |
                  -<  Node was in the progress of marking all blocks as out of sync  >--+ |
                     -<  At least once we saw this node with a backing device attached >--+

";

fn cmd_gi(ctx: &Ctx, dev: &Device, pretty: bool) -> i32 {
    let Ok(found) = open_md(ctx, dev) else {
        return 1;
    };
    let node = ctx.node_id.unwrap_or(0) as usize;
    if pretty {
        print!("{GI_HEAD}");
    }
    println!("{}", gi_line(&found.sb, node));
    if pretty {
        print!("{GI_LEGEND}");
        let es = found.sb.effective_size;
        if es != 0 {
            println!("last agreed size: {} ({} sectors)", ppsize(es >> 1), es);
            println!(
                "last agreed max bio size: {} Byte",
                found.sb.la_peer_max_bio_size
            );
        } else {
            println!("zero size device -- never seen peer yet?");
        }
    }
    0
}

fn cmd_dstate(ctx: &Ctx, dev: &Device) -> i32 {
    let Ok(found) = open_md(ctx, dev) else {
        eprintln!("No valid meta data found");
        return 1;
    };
    let f = found.sb.flags;
    let s = if f & MDF_CONSISTENT == 0 {
        "Inconsistent"
    } else if f & MDF_WAS_UP_TO_DATE == 0 {
        "Outdated"
    } else if f & MDF_PEER_OUT_DATED != 0 {
        // drbd-utils keeps this v08 quirk: UpToDate only with the old bit.
        "UpToDate"
    } else {
        "Consistent"
    };
    println!("{s}");
    0
}

fn cmd_outdate(ctx: &Ctx, dev: &Device) -> i32 {
    let Ok(found) = open_md(ctx, dev) else {
        return 1;
    };
    let mut sb = found.sb;
    if sb.flags & MDF_CONSISTENT == 0 {
        eprintln!("Device is inconsistent.");
        die(5);
    }
    sb.flags &= !MDF_WAS_UP_TO_DATE;
    dev.write_superblock(&sb);
    dev.sync();
    0
}

fn cmd_invalidate(ctx: &Ctx, dev: &Device) -> i32 {
    let Ok(found) = open_md(ctx, dev) else {
        return 1;
    };
    let mut sb = found.sb;
    sb.flags &= !(MDF_CONSISTENT | MDF_WAS_UP_TO_DATE);
    for p in sb.peers.iter_mut() {
        p.flags |= MDF_PEER_FULL_SYNC;
    }
    dev.write_superblock(&sb);
    dev.sync();
    0
}

fn cmd_forget_peer(ctx: &Ctx, dev: &Device) -> i32 {
    let Ok(found) = open_md(ctx, dev) else {
        return 1;
    };
    let mut sb = found.sb;
    let n = ctx.node_id.unwrap_or(0) as usize;
    if let Some(p) = sb.peers.get_mut(n) {
        p.bitmap_index = -1;
        p.bitmap_uuid = 0;
        p.bitmap_dagtag = 0;
        p.flags = 0;
    }
    dev.write_superblock(&sb);
    dev.sync();
    0
}

fn cmd_wipe_md(ctx: &Ctx, dev: &Device) -> i32 {
    if open_md(ctx, dev).is_err() {
        eprintln!("There appears to be no drbd meta data to wipe out?");
        return 0;
    }
    if !confirmed(ctx, "Do you really want to wipe out the DRBD meta data?") {
        println!("Operation cancelled.");
        die(1);
    }
    println!("Wiping meta data...");
    dev.write_at(&[0u8; MD_BLOCK_SIZE], dev.md_offset);
    dev.sync();
    println!("DRBD meta data block successfully wiped out.");
    if let Some(m) = ctx.minor {
        let _ = std::fs::remove_file(lk_path(m));
    }
    0
}

fn cmd_read_dev_uuid(ctx: &Ctx, dev: &Device) -> i32 {
    let Ok(found) = open_md(ctx, dev) else {
        return 1;
    };
    println!("{:016X}", found.sb.device_uuid);
    0
}

fn cmd_write_dev_uuid(ctx: &Ctx, dev: &Device, args: &[String]) -> i32 {
    let Some(v) = args.first() else {
        eprintln!("Required Argument missing");
        die(10);
    };
    let Ok(found) = open_md(ctx, dev) else {
        return 1;
    };
    let t = v.trim_start_matches("0x").trim_start_matches("0X");
    let Ok(u) = u64::from_str_radix(t, 16) else {
        eprintln!("'{v}' is not a number.");
        die(10);
    };
    let mut sb = found.sb;
    sb.device_uuid = u;
    dev.write_superblock(&sb);
    dev.sync();
    0
}

/// Replay the activity log into the bitmap (only after a Primary crash),
/// re-initialize it and mark the meta-data clean.
fn cmd_apply_al(ctx: &Ctx, dev: &Device) -> i32 {
    let found = match open_md(ctx, dev) {
        Ok(f) => f,
        Err(_) => {
            eprintln!("No valid meta data found");
            return 1;
        }
    };
    let layout = found.layout;
    let size = layout.al_size_4k;
    let mut al_buf = vec![0u8; size as usize * MD_BLOCK_SIZE];
    dev.read_at(&mut al_buf, dev.al_byte_offset(&layout));
    let block = |i: u32| -> &[u8] {
        let b = meta::al_tr_block(i, layout.al_stripes, layout.al_stripe_size_4k) as usize;
        &al_buf[b * MD_BLOCK_SIZE..(b + 1) * MD_BLOCK_SIZE]
    };
    let mut scan = ReplayScan::new(size);
    for i in 0..size {
        scan.feed(i, block(i));
    }
    let need_apply = found.sb.flags & MDF_PRIMARY_IND != 0;
    let mut reinit = false;
    let mut applied = false;
    let mut updates = 0u32;
    let plan = scan.finish();
    if scan.valid_blocks() > 0 && scan.corrupt_blocks() > 0 {
        eprintln!("{} corrupt AL transactions found", scan.corrupt_blocks());
    }
    match plan {
        Err(e) => {
            eprintln!("{}", e.message());
            if need_apply {
                return if e == al::AlError::NoValidBlock { 1 } else { 2 };
            }
            eprintln!("Error ignored, no need to apply the AL");
            reinit = true;
        }
        Ok(ReplayPlan::Clean) => {}
        Ok(ReplayPlan::Apply { first, last }) => {
            updates = scan.valid_updates();
            if need_apply {
                let mut hot = vec![AL_FREE; AL_EXTENTS_MAX as usize];
                for i in first..=last {
                    if let Ok(t) = al::Transaction::decode(block(i % size)) {
                        al::apply_transaction(&t, &mut hot);
                    }
                }
                hot.sort_unstable();
                apply_to_bitmap(dev, &found, &hot);
                applied = true;
            }
        }
    }
    if reinit || updates > 0 {
        initialize_al(dev, &layout);
    }
    let mut sb = found.sb;
    if applied || sb.flags & MDF_AL_CLEAN == 0 {
        sb.flags |= MDF_AL_CLEAN;
        dev.write_superblock(&sb);
    }
    dev.sync();
    0
}

/// Set all bits of every hot extent in every slot.
fn apply_to_bitmap(dev: &Device, found: &Found, hot: &[u32]) {
    let ext_bytes = BM_BYTES_PER_AL_EXT * u64::from(found.sb.bm_max_peers);
    let bm_bytes = found.bm_bytes;
    let mut bm = vec![0u8; bm_bytes as usize];
    let off = dev.bm_byte_offset(&found.layout);
    dev.read_at(&mut bm, off);
    let mut added = 0u64;
    let mut any = false;
    for &e in hot.iter().take_while(|&&e| e != AL_FREE) {
        any = true;
        let pos = u64::from(e) * ext_bytes;
        if pos >= bm_bytes {
            eprintln!("extent {e} beyond end of bitmap!");
            continue;
        }
        let end = (pos + ext_bytes).min(bm_bytes) as usize;
        let range = &mut bm[pos as usize..end];
        added += ext_bytes * 8 - hweight(range);
        range.fill(0xff);
    }
    if any {
        dev.write_at(&bm, off);
        eprintln!(
            "Marked additional {} as out-of-sync based on AL.",
            ppsize(added * 4)
        );
    } else {
        eprintln!("Nothing to do.");
    }
}

fn cmd_restore(ctx: &Ctx, dev: &Device, args: &[String], verify_only: bool) -> i32 {
    let text = match args.first() {
        Some(f) => match std::fs::read_to_string(f) {
            Ok(t) => t,
            Err(_) => {
                eprintln!("open of '{f}' failed.");
                die(20);
            }
        },
        None => {
            let mut s = String::new();
            let _ = std::io::Read::read_to_string(&mut std::io::stdin(), &mut s);
            s
        }
    };
    let mut old_max_peers: i64 = -1;
    if !verify_only {
        if let Ok(f) = open_md(ctx, dev) {
            old_max_peers = i64::from(f.sb.bm_max_peers);
            if !confirmed(ctx, "Valid meta-data in place, overwrite?") {
                return 1;
            }
        }
    }
    let d = match dump::parse(&text) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("{e}");
            die(10);
        }
    };
    let mut sb = d.sb;
    if ctx.al_options_used()
        && (ctx.stripes() != sb.al_stripes || ctx.stripe_size_4k() != sb.al_stripe_size_4k)
    {
        eprintln!("override activity log striping from commandline");
        sb.al_stripes = ctx.stripes();
        sb.al_stripe_size_4k = ctx.stripe_size_4k();
    }
    let layout = layout_or_die(
        dev,
        d.max_peers,
        sb.al_stripes,
        sb.al_stripe_size_4k,
        sb.bm_bytes_per_bit,
    );
    if !verify_only {
        eprintln!("reinitializing");
        if old_max_peers < i64::from(d.max_peers) && dev.index != MdIndex::Internal {
            println!(
                "Meta data needs more space now, since max_peers\nis bigger than in existing meta_data. ({old_max_peers} -> {})",
                d.max_peers
            );
        }
        check_for_existing_data(ctx, dev, &layout);
    }
    sb.magic = meta::MD_MAGIC_09;
    // Not part of the dump; drbdmeta re-initializes it.
    sb.al_nr_extents = meta::AL_NR_EXTENTS_CREATED;
    sb.adopt_layout(&layout);
    if sb.effective_size > layout.data_sectors {
        println!(
            "# la-size-sect was too big ({}), truncated ({})!",
            sb.effective_size, layout.data_sectors
        );
        sb.effective_size = layout.data_sectors;
    }
    let bm_bytes = meta::bm_bytes(sb.effective_size, d.max_peers, sb.bm_bytes_per_bit).unwrap_or(0);
    if verify_only {
        println!("input file parsed ok");
        return 0;
    }
    if let Err(e) = sb.check(&layout) {
        eprintln!("{}", e.message());
        die(10);
    }
    let mut bytes: Vec<u8> = d.bitmap.iter().flat_map(|w| w.to_le_bytes()).collect();
    let limit = bm_bytes.next_multiple_of(4096) as usize;
    if !bytes.is_empty() {
        let aligned = bytes.len().next_multiple_of(512);
        bytes.resize(aligned, 0);
        if bytes.len() > limit {
            eprintln!("Bitmap info too large, truncated!");
            bytes.truncate(limit);
        }
        dev.write_at(&bytes, dev.bm_byte_offset(&layout));
    }
    dev.write_superblock(&sb);
    dev.sync();
    lk_save(ctx, dev);
    println!("Successfully restored meta data");
    0
}

/// After the backing device grew, move internal meta-data from where it
/// was (last known size) to the new end of the device.
fn cmd_check_resize(ctx: &Ctx, dev: &Device) -> i32 {
    if open_md(ctx, dev).is_ok() {
        lk_save(ctx, dev);
        return 0;
    }
    if dev.index != MdIndex::Internal {
        eprintln!("Operation only supported for >= v8 internal meta data");
        return 1;
    }
    let Some(old_size) = lk_load(ctx).filter(|&s| s != dev.size && s < dev.size) else {
        eprintln!("no suitable meta data found :(");
        return 1;
    };
    let old_sect = old_size / 512;
    let Ok(old_md) = meta::md_offset(MdIndex::Internal, old_sect) else {
        eprintln!("no suitable meta data found :(");
        return 1;
    };
    let block = dev.read_block(old_md * 512);
    let old = Superblock::decode(&block).and_then(|sb| {
        let l = sb.layout(MdIndex::Internal, old_sect, old_sect)?;
        sb.check(&l).or_else(|e| match e {
            MetaError::BitmapTooSmall => Ok(()),
            e => Err(e),
        })?;
        Ok((sb, l))
    });
    let Ok((mut sb, old_l)) = old else {
        eprintln!("no suitable meta data found :(");
        return 1;
    };
    let new_l = match sb.layout(MdIndex::Internal, dev.sectors(), dev.sectors()) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{}", e.message());
            return 1;
        }
    };
    eprintln!("Moving the internal meta data to its proper location");
    // Activity log: read whole, write whole.
    let al_len = u64::from(old_l.al_size_4k) * MD_BLOCK_SIZE as u64;
    let mut al_buf = vec![0u8; al_len as usize];
    dev.read_at(&mut al_buf, old_l.al_start_sector() * 512);
    dev.write_at(&al_buf, new_l.al_start_sector() * 512);
    // Bitmap: destination is further out, copy back to front in chunks.
    let bm_len = old_l.bm_area_sectors() * 512;
    let src = old_l.bm_start_sector() * 512;
    let dst = new_l.bm_start_sector() * 512;
    let chunk = 1u64 << 20;
    let mut end = bm_len;
    let mut buf = vec![0u8; chunk as usize];
    while end > 0 {
        let start = end.saturating_sub(chunk);
        let n = (end - start) as usize;
        dev.read_at(&mut buf[..n], src + start);
        dev.write_at(&buf[..n], dst + start);
        end = start;
    }
    sb.adopt_layout(&new_l);
    dev.write_superblock(&sb);
    println!("Internal drbd meta data successfully moved.");
    if old_md * 512 < dst {
        dev.write_at(&[0u8; MD_BLOCK_SIZE], old_md * 512);
    }
    dev.sync();
    lk_save(ctx, dev);
    0
}

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.len() < 3 {
        usage_and_exit();
    }
    let (mut ctx, pos) = parse_args(argv);
    let mut pos = pos.into_iter();
    let Some(drbd_dev) = pos.next() else {
        usage_and_exit()
    };
    match pos.next().as_deref() {
        Some("v09") => {}
        Some(f @ ("v06" | "v07" | "v08")) => {
            eprintln!("Format '{f}' is not supported by this drbdmeta (only v09).");
            die(20);
        }
        Some(f) => {
            eprintln!("Unknown format '{f}'.");
            die(20);
        }
        None => {
            eprintln!("Format identifier missing");
            die(20);
        }
    }
    let (Some(md_dev), Some(idx)) = (pos.next(), pos.next()) else {
        eprintln!("Too few arguments for format");
        die(20);
    };
    let index = match idx.as_str() {
        "internal" | "flex-internal" => MdIndex::Internal,
        "flex-external" => MdIndex::FlexExternal,
        s => match s.parse::<i64>() {
            Ok(n) if (0..=255).contains(&n) => MdIndex::Indexed(n as u32),
            _ => {
                eprintln!("'{s}' is not a valid index number.");
                die(20);
            }
        },
    };
    let Some(command) = pos.next() else {
        eprintln!("command missing");
        die(20);
    };
    let args: Vec<String> = pos.collect();
    const CMDS: &[(&str, bool, bool)] = &[
        // name, node_id_required, modifies_md
        ("get-gi", true, false),
        ("show-gi", true, false),
        ("dump-md", false, false),
        ("restore-md", false, true),
        ("verify-dump", false, false),
        ("apply-al", false, true),
        ("wipe-md", false, true),
        ("outdate", false, true),
        ("invalidate", false, true),
        ("dstate", false, false),
        ("read-dev-uuid", false, false),
        ("write-dev-uuid", false, true),
        ("check-resize", false, true),
        ("create-md", false, true),
        ("forget-peer", true, true),
    ];
    let Some(&(_, needs_node, modifies)) = CMDS.iter().find(|c| c.0 == command) else {
        eprintln!("Unknown command '{command}'.");
        die(20);
    };
    ctx.command = command.clone();
    let mut attached = false;
    if drbd_dev != "-" {
        match minor_of(&drbd_dev) {
            Some(m) => ctx.minor = Some(m),
            None => {
                eprintln!("Cannot determine minor device number of drbd device '{drbd_dev}'");
                die(20);
            }
        }
        attached = ctx.minor.is_some_and(is_attached);
        if attached && modifies {
            eprintln!("Device '{drbd_dev}' is configured!");
            die(20);
        }
    }
    if ctx.peer_max_bio_size.is_some() && command != "create-md" {
        eprintln!("The --peer-max-bio-size option is only allowed with create-md");
        die(10);
    }
    if ctx.al_options_used() && command != "create-md" && command != "restore-md" {
        eprintln!("The --al-stripe* options are only allowed with create-md and restore-md");
        die(10);
    }
    let al_total = u64::from(ctx.stripes()) * u64::from(ctx.stripe_size_4k());
    if al_total > AL_MAX_4K_TOOL {
        eprintln!("invalid (too large) al-stripe* settings");
        die(10);
    }
    if al_total < 8 {
        eprintln!("invalid (too small) al-stripe* settings");
        die(10);
    }
    if ctx.node_id.is_some() && !needs_node {
        eprintln!("The {command} command does not accept the --node-id option");
        die(10);
    }
    if ctx.node_id.is_none() && needs_node {
        eprintln!("The {command} command requires the --node-id option");
        die(10);
    }
    let rv = if command == "create-md" {
        cmd_create_md(&ctx, &md_dev, index, &args)
    } else {
        if !args.is_empty()
            && !matches!(
                command.as_str(),
                "restore-md" | "verify-dump" | "write-dev-uuid"
            )
        {
            eprintln!("Ignoring additional arguments");
        }
        let dev = Device::open(&ctx, &md_dev, index, modifies);
        match command.as_str() {
            "get-gi" => cmd_gi(&ctx, &dev, false),
            "show-gi" => cmd_gi(&ctx, &dev, true),
            "dump-md" => cmd_dump_md(&ctx, &dev),
            "restore-md" => cmd_restore(&ctx, &dev, &args, false),
            "verify-dump" => cmd_restore(&ctx, &dev, &args, true),
            "apply-al" => cmd_apply_al(&ctx, &dev),
            "wipe-md" => cmd_wipe_md(&ctx, &dev),
            "outdate" => cmd_outdate(&ctx, &dev),
            "invalidate" => cmd_invalidate(&ctx, &dev),
            "dstate" => cmd_dstate(&ctx, &dev),
            "read-dev-uuid" => cmd_read_dev_uuid(&ctx, &dev),
            "write-dev-uuid" => cmd_write_dev_uuid(&ctx, &dev, &args),
            "check-resize" => cmd_check_resize(&ctx, &dev),
            "forget-peer" => cmd_forget_peer(&ctx, &dev),
            _ => 20,
        }
    };
    if attached {
        eprintln!(
            "# Output might be stale, since minor {} is attached",
            ctx.minor.unwrap_or(0)
        );
    }
    die(rv)
}
