//! Online verify of a device in use (issue 5): while the Primary writes, a verify run from
//! either side reports exactly the blocks damaged behind DRBD's back, never a block only
//! because it was being written while the two sides hashed it, and a reconnect then repairs
//! the damage. A read load does not hold a verify up: it waits for writes only.

mod common;

use common::*;
use tests_qemu::{Cluster, ClusterSpec, Node};

/// 4 KiB blocks damaged on the Secondary's backing disk: outside the writer's area.
const DAMAGED: [u64; 3] = [2500, 3001, 3777];

/// Random 4 KiB writes over the first 8 MiB (blocks 0..2048) until killed.
const WRITER: &str = "fio --name=w --filename=/dev/drbd1 --rw=randwrite --bs=4k --iodepth=16 \
     --numjobs=1 --direct=1 --ioengine=libaio --size=8m --time_based --runtime=900 \
     --randrepeat=0 >/tmp/fio.log 2>&1";

/// Runs `cmd` (a verify started on `src`) while `writer` writes, and checks that both sides
/// found exactly the damaged blocks.
fn verify_while_writing(writer: &Node, src: &Node, cmd: &str, nodes: [&Node; 2]) {
    let seen: Vec<usize> = nodes.iter().map(|n| done_lines(n)).collect();
    let written_before = written_kib(writer);
    let mut fio = writer.spawn(WRITER);
    // The writer runs before the verify starts and after it ended.
    std::thread::sleep(std::time::Duration::from_secs(2));
    verify_cmd_and_wait(src, cmd, nodes);
    let written = written_kib(writer) - written_before;
    // fio's workers are its children: stop them all before anyone hashes the disks.
    writer
        .run_ok("kill -9 $(pidof fio) 2>/dev/null; while pidof fio >/dev/null; do sleep 0.2; done");
    drop(fio.kill());
    for (n, seen) in nodes.iter().zip(seen) {
        let reported = n.run_ok("dmesg | grep 'Out of sync: start=' || true");
        assert_eq!(
            found_since(n, seen),
            DAMAGED.len() as u64,
            "{}: verify during writes found a different number of blocks\n{reported}",
            n.name,
        );
        for blk in DAMAGED {
            assert!(
                reported.contains(&format!("start={}, size=8 (sectors)", blk * 8)),
                "{}: damaged block {blk} not reported:\n{reported}",
                n.name
            );
        }
    }
    // The writes did race comparisons, which were repeated rather than reported.
    let log = src.run_ok("dmesg");
    assert!(
        log.contains("Online verify asked ") && log.contains("blocks written while compared"),
        "{}: no comparison was raced by a write; the test proves nothing",
        src.name
    );
    assert!(
        written > 1024,
        "the writer wrote too little to race the verify: {written} KiB"
    );
}

/// KiB written through `/dev/drbd1` on `n` (`written:` of `status --statistics`).
fn written_kib(n: &Node) -> u64 {
    let st = n.run_ok("drbdsetup status --statistics r0");
    st.split_whitespace()
        .find_map(|w| w.strip_prefix("written:"))
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("no written: in the status:\n{st}"))
}

/// Resyncs what the last verify marked (the Primary reconnects) and checks equal data.
fn repair(a: &Node, b: &Node) {
    a.run_ok("drbdsetup disconnect r0 1");
    a.run_ok("drbdsetup connect r0 1");
    up_to_date_both(a, b);
    assert_eq!(data_hash(a), data_hash(b), "the resync did not repair");
    for n in [a, b] {
        n.run_ok("dmesg -c >/dev/null");
    }
}

#[test]
fn verify_during_writes_finds_only_the_damaged_blocks() {
    let c = Cluster::start(ClusterSpec::new(2).disks(&[16]));
    let (a, b) = (c.node(0), c.node(1));
    let (ip_a, ip_b) = (c.addr(0, 1), c.addr(1, 0));
    for n in [a, b] {
        n.run_ok("modprobe drbd");
        create_md_ok(n, 1, "/dev/vdb", 1);
    }
    let opts = "--protocol=C --verify-alg=sha1";
    bring_up_with(a, 0, 1, &ip_a, &ip_b, opts);
    bring_up_with(b, 1, 0, &ip_b, &ip_a, opts);
    a.run_ok("drbdsetup primary --force r0");
    up_to_date_both(a, b);

    // The Primary is the verify source: its own writes race the requests it sends.
    damage_blocks(b, &DAMAGED);
    verify_while_writing(a, a, "drbdsetup verify r0 1 0", [a, b]);
    repair(a, b);

    // The Secondary is the source: the Primary's writes race the replies it sends.
    damage_blocks(b, &DAMAGED);
    verify_while_writing(a, b, "drbdsetup verify r0 0 0", [b, a]);
    repair(a, b);

    // Reads never stop: the verify waits only for writes, so it still runs at its pace.
    damage_blocks(b, &DAMAGED);
    let mut reader = a.spawn(
        "fio --name=r --filename=/dev/drbd1 --rw=randread --bs=4k --iodepth=32 --numjobs=4 --direct=1 \
         --ioengine=libaio --time_based --runtime=900 >/dev/null 2>&1",
    );
    let t = std::time::Instant::now();
    let seen = done_lines(a);
    verify_cmd_and_wait(a, "drbdsetup verify r0 1 0", [a, b]);
    let took = t.elapsed();
    a.run_ok("kill -9 $(pidof fio) 2>/dev/null; while pidof fio >/dev/null; do sleep 0.2; done");
    drop(reader.kill());
    assert_eq!(found_since(a, seen), DAMAGED.len() as u64);
    assert!(
        took < std::time::Duration::from_secs(90),
        "verify under a read load took {took:?}"
    );
    repair(a, b);
    for n in [a, b] {
        n.run_ok("drbdsetup down r0 && rmmod drbd");
    }
}
