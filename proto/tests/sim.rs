//! Deterministic simulation of two `proto::replica` nodes.
//!
//! Each node has an in-memory disk (4 KiB blocks) and completes its local
//! writes whenever the scheduler says so (application writes reach the disk
//! only at completion, replicated and resync writes at once, in order). The
//! network has one FIFO per stream and direction; a seeded scheduler picks
//! which frame to deliver next, and cutting the link drops everything in
//! flight. Frames are real payload bytes, encoded and decoded with
//! `Packet::encode`/`Packet::decode`.
//!
//! Replay one seed of the random test with `SIM_SEED=<n> cargo test -p proto
//! --test sim random_`; `SIM_SEEDS=<count>` runs more seeds than the default
//! 1000.

#[path = "support/rng.rs"]
mod rng;
use proto::replica::{
    Action, Config, DropReason, Io, Packet, Payload, Protocol, Replica, Sink, Stream, BLOCK_SIZE,
};
use proto::state::{ConnState, DiskState, ReplState, Role};
use proto::uuid::{Generations, Outcome};
use proto::wire;
use rng::Rng;
use std::collections::{HashMap, HashSet, VecDeque};

/// Blocks per volume (1 MiB).
const BLOCKS: usize = 256;
/// Write slots per node.
const SLOTS: usize = 16;
type Block = [u8; BLOCK_SIZE as usize];
type Node = Replica<Vec<u64>, SLOTS>;

/// Collects the actions of one call.
struct Out(Vec<Action>);

impl Sink for Out {
    fn emit(&mut self, action: Action) {
        self.0.push(action);
    }
}

struct Frame {
    cmd: u16,
    bytes: Vec<u8>,
}

struct PendingIo {
    io: Io,
    /// Application write: the data reaches the disk at completion.
    apply: Option<(usize, Vec<u8>)>,
    /// Report a failure.
    fail: bool,
    /// Replicated or resync write applied on receipt: the blocks it
    /// overwrote, restored if the node crashes before completion.
    undo: Option<Undo>,
}

struct Undo {
    /// Sequence number of this write.
    seq: u64,
    first: usize,
    /// Previous contents and their writers.
    blocks: Vec<(Block, u64)>,
}

struct Host {
    r: Node,
    disk: Vec<Block>,
    persisted: (Generations, DiskState),
    ios: Vec<PendingIo>,
    /// Application writes in flight: tag -> (first block, data).
    writes: HashMap<u64, (usize, Vec<u8>)>,
    drops: Vec<DropReason>,
    outcomes: Vec<Outcome>,
    resyncs_done: u32,
    /// Replicated writes from the peer fail (and leave the disk alone).
    fail_peer_writes: bool,
    /// StandAlone because of a split brain (until the next connect).
    split_brain: bool,
    /// Per block: sequence number of the last write applied on receipt.
    last_writer: Vec<u64>,
    write_seq: u64,
}

#[derive(Default, Clone, Copy, Debug)]
struct Stats {
    rs_packets: u64,
    rs_bytes: u64,
    data_packets: u64,
    writes: u64,
    cuts: u64,
    cuts_while_syncing: u64,
    failovers: u64,
    resyncs: u64,
    split_brains: u64,
    restarts: u64,
}

impl Stats {
    fn add(&mut self, o: &Stats) {
        self.rs_packets += o.rs_packets;
        self.rs_bytes += o.rs_bytes;
        self.data_packets += o.data_packets;
        self.writes += o.writes;
        self.cuts += o.cuts;
        self.cuts_while_syncing += o.cuts_while_syncing;
        self.failovers += o.failovers;
        self.resyncs += o.resyncs;
        self.split_brains += o.split_brains;
        self.restarts += o.restarts;
    }
}

struct Sim {
    h: [Host; 2],
    /// `q[from][stream]`.
    q: [[VecDeque<Frame>; 2]; 2],
    physical: bool,
    logical: bool,
    rng: Rng,
    protocol: Protocol,
    next_tag: u64,
    /// Last completed application write per block (its data).
    model: HashMap<usize, Vec<u8>>,
    /// Blocks with an application write in flight (either node).
    busy: HashSet<usize>,
    stats: Stats,
    trace: VecDeque<String>,
    /// Tests that provoke protocol errors set this.
    allow_protocol_errors: bool,
}

fn pattern(tag: u64, block: usize) -> Vec<u8> {
    let mut b = vec![(tag as u8) ^ 0x5a; BLOCK_SIZE as usize];
    b[..8].copy_from_slice(&tag.to_le_bytes());
    b[8..16].copy_from_slice(&(block as u64).to_le_bytes());
    b
}

fn stream_index(s: Stream) -> usize {
    match s {
        Stream::Data => 0,
        Stream::Meta => 1,
    }
}

impl Sim {
    fn new(seed: u64, protocol: Protocol) -> Sim {
        let host = |id: u8, peer: u8| {
            let mut cfg = Config::new(id, peer, (BLOCKS as u64) * 8);
            cfg.protocol = protocol;
            let words = cfg.bitmap_words();
            let g = Generations::just_created();
            Host {
                r: Replica::new(cfg, g, DiskState::Inconsistent, vec![0u64; words])
                    .expect("valid config"),
                disk: vec![[0u8; BLOCK_SIZE as usize]; BLOCKS],
                persisted: (g, DiskState::Inconsistent),
                ios: Vec::new(),
                writes: HashMap::new(),
                drops: Vec::new(),
                outcomes: Vec::new(),
                resyncs_done: 0,
                fail_peer_writes: false,
                split_brain: false,
                last_writer: vec![0; BLOCKS],
                write_seq: 0,
            }
        };
        Sim {
            h: [host(0, 1), host(1, 0)],
            q: Default::default(),
            physical: true,
            logical: false,
            rng: Rng::new(seed),
            protocol,
            next_tag: 1,
            model: HashMap::new(),
            busy: HashSet::new(),
            stats: Stats::default(),
            trace: VecDeque::new(),
            allow_protocol_errors: false,
        }
    }

    fn note(&mut self, s: String) {
        if self.trace.len() >= 60 {
            self.trace.pop_front();
        }
        self.trace.push_back(s);
    }

    fn dump(&self) -> String {
        let mut s = String::new();
        for (i, h) in self.h.iter().enumerate() {
            s += &format!(
                "node {i}: role {} disk {} conn {} repl {} peer {}/{} oos {} writes {} uuid {:016X} bm {:016X} drops {:?}\n",
                h.r.role(),
                h.r.disk(),
                h.r.conn(),
                h.r.repl(),
                h.r.peer_role(),
                h.r.peer_disk(),
                h.r.out_of_sync(),
                h.r.writes_in_flight(),
                h.r.uuids().current,
                h.r.uuids().bitmap[1 - i],
                &h.drops[h.drops.len().saturating_sub(4)..]
            );
        }
        s += &format!(
            "physical {} logical {} queues {:?}\nlast events:\n",
            self.physical,
            self.logical,
            self.q
                .iter()
                .map(|d| d.iter().map(|x| x.len()).collect::<Vec<_>>())
                .collect::<Vec<_>>()
        );
        for t in &self.trace {
            s += "  ";
            s += t;
            s += "\n";
        }
        s
    }

    /// Run `f` on node `n` and carry out the actions it emits; `received`
    /// is the data of the packet being handled.
    fn call<T>(
        &mut self,
        n: usize,
        received: &[u8],
        f: impl FnOnce(&mut Node, &mut Out) -> T,
    ) -> T {
        let mut acts = Out(Vec::new());
        let r = f(&mut self.h[n].r, &mut acts);
        self.apply(n, acts.0, received);
        r
    }

    fn apply(&mut self, n: usize, acts: Vec<Action>, received: &[u8]) {
        for a in acts {
            match a {
                Action::Send { packet, payload } => {
                    assert!(self.logical, "node {n} sends without a link: {packet:?}");
                    let mut buf = vec![0u8; 1024];
                    let len = packet.encode(&mut buf).expect("encode");
                    buf.truncate(len);
                    match payload {
                        Payload::None => {}
                        Payload::Upper(tag) => buf.extend_from_slice(&self.h[n].writes[&tag].1),
                        Payload::Received => buf.extend_from_slice(received),
                        Payload::ReadLocal { sector, bytes } => {
                            let first = (sector / 8) as usize;
                            let count = (bytes / BLOCK_SIZE) as usize;
                            for b in &self.h[n].disk[first..first + count] {
                                buf.extend_from_slice(b);
                            }
                        }
                    }
                    if let Packet::RsData(_) = packet {
                        self.stats.rs_packets += 1;
                        self.stats.rs_bytes += (buf.len() - wire::DataHeader::SIZE) as u64;
                    }
                    if let Packet::Data(_) = packet {
                        self.stats.data_packets += 1;
                    }
                    let s = stream_index(packet.stream());
                    self.q[n][s].push_back(Frame {
                        cmd: packet.cmd(),
                        bytes: buf,
                    });
                }
                Action::WriteLocal {
                    io,
                    sector,
                    bytes,
                    payload,
                } => {
                    let first = (sector / 8) as usize;
                    assert_eq!(bytes % BLOCK_SIZE, 0);
                    match payload {
                        Payload::Upper(tag) => {
                            let data = self.h[n].writes[&tag].1.clone();
                            self.h[n].ios.push(PendingIo {
                                io,
                                apply: Some((first, data)),
                                fail: false,
                                undo: None,
                            });
                        }
                        Payload::Received => {
                            assert_eq!(received.len(), bytes as usize);
                            let fail = self.h[n].fail_peer_writes && matches!(io, Io::Peer { .. });
                            let h = &mut self.h[n];
                            let count = bytes as usize / BLOCK_SIZE as usize;
                            h.write_seq += 1;
                            let seq = h.write_seq;
                            let undo = (!fail).then(|| Undo {
                                seq,
                                first,
                                blocks: (first..first + count)
                                    .map(|b| (h.disk[b], h.last_writer[b]))
                                    .collect(),
                            });
                            if !fail {
                                for (i, chunk) in received.chunks(BLOCK_SIZE as usize).enumerate() {
                                    h.disk[first + i].copy_from_slice(chunk);
                                    h.last_writer[first + i] = seq;
                                }
                            }
                            self.h[n].ios.push(PendingIo {
                                io,
                                apply: None,
                                fail,
                                undo,
                            });
                        }
                        other => panic!("unexpected write payload {other:?}"),
                    }
                }
                Action::CompleteWrite {
                    tag,
                    ok,
                    replicated,
                } => {
                    assert!(ok);
                    let (block, data) = self.h[n].writes.remove(&tag).expect("known write");
                    self.busy.remove(&block);
                    let on_peer = self.h[1 - n].disk[block][..] == data[..];
                    let faulty = self.h[1 - n].fail_peer_writes;
                    if replicated && (self.protocol == Protocol::C || !faulty) {
                        assert!(
                            on_peer,
                            "write {tag} to block {block} confirmed but not on the peer"
                        );
                    }
                    if self.protocol == Protocol::C && !on_peer {
                        // Protocol C: completed means on the peer's disk,
                        // or known to the Primary as out of sync.
                        let bit = self.h[n].r.bitmap()[block / 64] >> (block % 64) & 1;
                        assert_eq!(
                            bit, 1,
                            "protocol C write {tag} to block {block} completed, not on the peer and not marked\n{}",
                            self.dump()
                        );
                    }
                    self.model.insert(block, data);
                }
                Action::BitmapSet { .. } | Action::BitmapCleared { .. } => {}
                Action::Persist { uuids, disk } => self.h[n].persisted = (uuids, disk),
                Action::DropLink(reason) => {
                    self.note(format!("node {n} drops link: {reason:?}"));
                    self.h[n].drops.push(reason);
                    if reason == DropReason::SplitBrain {
                        self.h[n].split_brain = true;
                    }
                    if matches!(
                        reason,
                        DropReason::SplitBrain | DropReason::UnrelatedData | DropReason::Refused
                    ) {
                        // A graceful close: what was sent before still arrives,
                        // so the peer decides the same way.
                        while self.logical && !self.q[n][0].is_empty() {
                            self.deliver(n, 0);
                        }
                    }
                    self.teardown();
                }
                Action::Handshake(o) => {
                    self.note(format!("node {n} handshake: {o:?}"));
                    self.h[n].outcomes.push(o);
                }
                Action::ResyncDone => {
                    self.h[n].resyncs_done += 1;
                    self.stats.resyncs += 1;
                }
            }
        }
    }

    fn teardown(&mut self) {
        if !self.logical {
            return;
        }
        self.logical = false;
        for d in self.q.iter_mut() {
            for s in d.iter_mut() {
                s.clear();
            }
        }
        for n in 0..2 {
            let r = self.rng.next();
            self.call(n, &[], |m, a| m.link_down(r, a));
        }
    }

    /// Node `n` (a Secondary) crashes and restarts from its persisted
    /// meta-data; the in-memory bitmap is lost, so a node that tracked
    /// changes towards the peer marks everything. It connects again.
    fn restart(&mut self, n: usize) {
        assert_eq!(self.h[n].r.role(), Role::Secondary);
        assert!(self.h[n].writes.is_empty());
        self.note(format!("node {n} restarts"));
        self.stats.restarts += 1;
        if self.logical {
            self.logical = false;
            for d in self.q.iter_mut() {
                for s in d.iter_mut() {
                    s.clear();
                }
            }
            let r = self.rng.next();
            self.call(1 - n, &[], |m, a| m.link_down(r, a));
        }
        let h = &mut self.h[n];
        // Writes not completed did not reach the disk, unless a later
        // write covered them anyway (newest first).
        let mut pending: Vec<PendingIo> = h.ios.drain(..).collect();
        pending.sort_by_key(|p| std::cmp::Reverse(p.undo.as_ref().map_or(0, |u| u.seq)));
        for p in pending {
            let Some(u) = p.undo else { continue };
            for (i, (old, writer)) in u.blocks.into_iter().enumerate() {
                let b = u.first + i;
                if h.last_writer[b] == u.seq {
                    h.disk[b] = old;
                    h.last_writer[b] = writer;
                }
            }
        }
        let cfg = *h.r.config();
        let (uuids, disk) = h.persisted;
        let fill = if uuids.bitmap[1 - n] != 0 { !0u64 } else { 0 };
        h.r = Replica::new(cfg, uuids, disk, vec![fill; cfg.bitmap_words()]).expect("restart");
        h.split_brain = false;
        assert!(h.r.connect(false));
    }

    fn cut(&mut self) {
        self.note("link cut".into());
        self.stats.cuts += 1;
        if self.h.iter().any(|h| {
            matches!(
                h.r.repl(),
                ReplState::WFBitMapS
                    | ReplState::WFBitMapT
                    | ReplState::SyncSource
                    | ReplState::SyncTarget
            )
        }) {
            self.stats.cuts_while_syncing += 1;
        }
        self.physical = false;
        self.teardown();
    }

    fn restore(&mut self) {
        self.note("link restored".into());
        self.physical = true;
    }

    fn maybe_connect(&mut self) {
        if self.physical
            && !self.logical
            && self.h.iter().all(|h| h.r.conn() == ConnState::Unconnected)
        {
            self.note("link up".into());
            self.logical = true;
            self.call(0, &[], |m, a| m.link_up(a));
            self.call(1, &[], |m, a| m.link_up(a));
        }
    }

    fn deliver(&mut self, from: usize, stream: usize) {
        let Some(f) = self.q[from][stream].pop_front() else {
            return;
        };
        let to = 1 - from;
        let (pkt, data) = Packet::decode(f.cmd, &f.bytes).expect("decodable frame");
        if !matches!(pkt, Packet::Data(_) | Packet::RsData(_) | Packet::Ack(..)) {
            self.note(format!("{from}->{to} {}", wire::cmd_name(f.cmd)));
        }
        let data = data.to_vec();
        let r = self.call(to, &data, |m, a| m.on_packet(&pkt, data.len(), a));
        if let Err(e) = r {
            self.note(format!("protocol error at node {to}: {e:?}"));
            if self.allow_protocol_errors {
                return;
            }
            panic!("protocol error at node {to}: {e:?}\n{}", self.dump());
        }
    }

    fn complete_io(&mut self, n: usize, index: usize) {
        let p = self.h[n].ios.swap_remove(index);
        if let Some((first, data)) = p.apply {
            for (i, chunk) in data.chunks(BLOCK_SIZE as usize).enumerate() {
                self.h[n].disk[first + i].copy_from_slice(chunk);
            }
        }
        self.call(n, &[], |m, a| m.local_write_done(p.io, !p.fail, a));
    }

    /// Submit a write of one block on node `n`; returns false if refused.
    fn write(&mut self, n: usize, block: usize) -> bool {
        if self.busy.contains(&block) {
            return false;
        }
        let tag = self.next_tag;
        self.next_tag += 1;
        let data = pattern(tag, block);
        self.h[n].writes.insert(tag, (block, data));
        let r = self.call(n, &[], |m, a| {
            m.submit_write(tag, block as u64 * 8, BLOCK_SIZE, a)
        });
        if r.is_err() {
            self.h[n].writes.remove(&tag);
            return false;
        }
        self.busy.insert(block);
        self.stats.writes += 1;
        true
    }

    fn idle(&self) -> bool {
        self.q.iter().all(|d| d.iter().all(|s| s.is_empty()))
            && self.h.iter().all(|h| h.ios.is_empty())
    }

    /// One random delivery or completion; false if there is nothing to do.
    fn step_io(&mut self) -> bool {
        let mut choices = Vec::with_capacity(6);
        for from in 0..2 {
            for s in 0..2 {
                if !self.q[from][s].is_empty() {
                    choices.push((0, from, s));
                }
            }
            if !self.h[from].ios.is_empty() {
                choices.push((1, from, 0));
            }
        }
        if choices.is_empty() {
            return false;
        }
        let (kind, n, s) = choices[self.rng.below(choices.len())];
        if kind == 0 {
            self.deliver(n, s);
        } else {
            let i = self.rng.below(self.h[n].ios.len());
            self.complete_io(n, i);
        }
        true
    }

    /// Run deliveries and completions until nothing is left.
    fn quiesce(&mut self) {
        for _ in 0..2_000_000 {
            self.maybe_connect();
            if !self.step_io() {
                self.maybe_connect();
                if self.idle() {
                    return;
                }
            }
        }
        panic!("no quiescence\n{}", self.dump());
    }

    fn primary(&self) -> Option<usize> {
        (0..2).find(|&n| self.h[n].r.role() == Role::Primary)
    }

    fn promote(&mut self, n: usize, force: bool) {
        let r = self.rng.next();
        let res = self.call(n, &[], |m, a| m.promote(force, r, a));
        res.unwrap_or_else(|e| panic!("promote {n}: {e:?}\n{}", self.dump()));
        self.note(format!("node {n} promoted"));
    }

    fn demote(&mut self, n: usize) {
        let res = self.call(n, &[], |m, a| m.demote(a));
        res.unwrap_or_else(|e| panic!("demote {n}: {e:?}\n{}", self.dump()));
        self.note(format!("node {n} demoted"));
    }

    fn connect(&mut self, n: usize, discard_my_data: bool) {
        assert!(self.h[n].r.connect(discard_my_data));
        self.h[n].split_brain = false;
    }

    fn disks_identical(&self) -> bool {
        self.h[0].disk == self.h[1].disk
    }

    /// Both connected, in sync, UpToDate, identical, holding every
    /// completed write.
    fn assert_converged(&self) {
        let ctx = self.dump();
        for h in &self.h {
            assert_eq!(h.r.conn(), ConnState::Connected, "{ctx}");
            assert_eq!(h.r.repl(), ReplState::Established, "{ctx}");
            assert_eq!(h.r.disk(), DiskState::UpToDate, "{ctx}");
            assert_eq!(h.r.writes_in_flight(), 0, "{ctx}");
            assert_eq!(h.persisted.1, DiskState::UpToDate, "{ctx}");
        }
        for n in 0..2 {
            for (&block, data) in &self.model {
                let have = &self.h[n].disk[block];
                assert!(
                    have[..] == data[..],
                    "node {n} block {block} holds write {} instead of {}\n{ctx}",
                    u64::from_le_bytes(have[..8].try_into().unwrap()),
                    u64::from_le_bytes(data[..8].try_into().unwrap()),
                );
            }
        }
        assert!(self.disks_identical(), "disks differ\n{ctx}");
        assert_eq!(
            proto::uuid::masked(self.h[0].r.uuids().current),
            proto::uuid::masked(self.h[1].r.uuids().current),
            "{ctx}"
        );
    }

    /// Both fresh, connected, A forced Primary, full sync done.
    fn synced_pair(seed: u64, protocol: Protocol) -> Sim {
        let mut s = Sim::new(seed, protocol);
        // A's disk holds data from before (e.g. a restored backup).
        for (i, b) in s.h[0].disk.iter_mut().enumerate() {
            b.copy_from_slice(&pattern(1_000_000 + i as u64, i));
        }
        s.connect(0, false);
        s.connect(1, false);
        s.quiesce();
        s.promote(0, true);
        s.quiesce();
        s
    }
}

// ---- scenarios -------------------------------------------------------------------------------

#[test]
fn scenario1_fresh_full_sync() {
    for protocol in [Protocol::A, Protocol::B, Protocol::C] {
        let mut s = Sim::new(1, protocol);
        for (i, b) in s.h[0].disk.iter_mut().enumerate() {
            b.copy_from_slice(&pattern(1_000_000 + i as u64, i));
        }
        s.connect(0, false);
        s.connect(1, false);
        s.quiesce();
        // Both just created: connected, nothing to sync, both Inconsistent.
        for h in &s.h {
            assert_eq!(h.r.repl(), ReplState::Established);
            assert_eq!(h.r.disk(), DiskState::Inconsistent);
        }
        assert_eq!(s.h[0].outcomes, [Outcome::NoSync]);
        s.promote(0, true);
        s.quiesce();
        assert_eq!(s.h[0].r.role(), Role::Primary);
        s.assert_converged();
        assert_eq!(
            s.h[0].outcomes.last(),
            Some(&Outcome::Source { full: true })
        );
        assert_eq!(
            s.h[1].outcomes.last(),
            Some(&Outcome::Target { full: true })
        );
        assert_eq!(s.stats.rs_packets, BLOCKS as u64 / 64, "256 KiB runs");
        assert_eq!(s.stats.rs_bytes, BLOCKS as u64 * 4096);
        assert_eq!(s.h[1].r.resynced_blocks(), BLOCKS as u64);
        assert_eq!(s.h[0].r.uuids().bitmap[1], 0);
        assert_eq!((s.h[0].resyncs_done, s.h[1].resyncs_done), (1, 1));
        // Writes are now mirrored.
        let before = s.stats;
        assert!(s.write(0, 5));
        s.quiesce();
        assert_eq!(s.stats.data_packets, before.data_packets + 1);
        assert_eq!(s.stats.rs_packets, before.rs_packets);
        s.assert_converged();
    }
}

#[test]
fn scenario1_promote_before_connect() {
    let mut s = Sim::new(2, Protocol::C);
    s.promote(0, true);
    s.connect(0, false);
    s.connect(1, false);
    s.quiesce();
    s.assert_converged();
    assert_eq!(s.stats.rs_packets, BLOCKS as u64 / 64);
}

#[test]
fn scenario3_bitmap_resync_after_cut() {
    for protocol in [Protocol::A, Protocol::B, Protocol::C] {
        let mut s = Sim::synced_pair(3, protocol);
        for b in [1, 2, 3] {
            assert!(s.write(0, b));
        }
        s.quiesce();
        s.assert_converged();
        s.cut();
        // N separate blocks, none adjacent: one resync run each.
        let blocks = [4usize, 9, 30, 31 + 33, 200, 255];
        for &b in &blocks {
            assert!(s.write(0, b));
        }
        s.quiesce();
        assert_eq!(s.h[0].r.out_of_sync(), blocks.len() as u64);
        assert_eq!(s.h[0].r.conn(), ConnState::Unconnected);
        assert_ne!(
            s.h[0].r.uuids().bitmap[1],
            0,
            "new generation, bitmap UUID kept"
        );
        let before = s.stats;
        s.restore();
        s.quiesce();
        s.assert_converged();
        assert_eq!(s.stats.rs_packets - before.rs_packets, blocks.len() as u64);
        assert_eq!(
            s.stats.rs_bytes - before.rs_bytes,
            blocks.len() as u64 * 4096
        );
        assert_eq!(
            s.h[0].outcomes.last(),
            Some(&Outcome::Source { full: false })
        );
        assert_eq!(
            s.h[1].outcomes.last(),
            Some(&Outcome::Target { full: false })
        );
        assert_eq!(s.h[0].r.out_of_sync(), 0);
    }
}

#[test]
fn scenario3_writes_in_flight_when_the_link_drops_are_resynced() {
    for protocol in [Protocol::A, Protocol::B, Protocol::C] {
        let mut s = Sim::synced_pair(4, protocol);
        for b in [10, 20, 30] {
            assert!(s.write(0, b));
        }
        // Nothing delivered or completed: the peer never confirmed them.
        s.cut();
        s.quiesce();
        assert_eq!(s.h[0].r.out_of_sync(), 3);
        let before = s.stats;
        s.restore();
        s.quiesce();
        s.assert_converged();
        assert_eq!(s.stats.rs_packets - before.rs_packets, 3);
    }
}

#[test]
fn scenario5_split_brain_then_discard_my_data() {
    let mut s = Sim::synced_pair(5, Protocol::C);
    s.cut();
    s.promote(1, false);
    let a_blocks = [3usize, 40, 100];
    let b_blocks = [7usize, 60, 100 + 2, 250];
    for &b in &a_blocks {
        assert!(s.write(0, b));
    }
    for &b in &b_blocks {
        assert!(s.write(1, b));
    }
    s.quiesce();
    s.restore();
    s.quiesce();
    for h in &s.h {
        assert_eq!(h.r.conn(), ConnState::StandAlone);
        assert_eq!(h.drops.last(), Some(&DropReason::SplitBrain));
        assert!(matches!(
            h.outcomes.last(),
            Some(Outcome::SplitBrain { .. })
        ));
    }
    // B gives up its changes.
    s.demote(1);
    s.connect(1, true);
    s.connect(0, false);
    let before = s.stats;
    s.quiesce();
    // B's disk now equals A's: A's changes and B's own dirty blocks came from A.
    s.model.clear();
    s.assert_converged();
    let n = (a_blocks.len() + b_blocks.len()) as u64;
    assert_eq!(s.stats.rs_packets - before.rs_packets, n);
    assert_eq!(s.stats.rs_bytes - before.rs_bytes, n * 4096);
    for &b in &b_blocks {
        let want = pattern(1_000_000 + b as u64, b);
        assert_eq!(
            &s.h[1].disk[b][..],
            &want[..],
            "B's block {b} reverted to A's"
        );
    }
    assert!(!s.h[1].r.discard_my_data());
    assert_eq!(s.h[0].r.role(), Role::Primary);
}

#[test]
fn split_brain_discard_survives_an_interrupted_resync() {
    let mut s = Sim::synced_pair(6, Protocol::C);
    s.cut();
    s.promote(1, false);
    for b in 0..64 {
        assert!(s.write(0, b * 2));
        assert!(s.write(1, b * 2 + 1));
        s.quiesce();
    }
    s.restore();
    s.quiesce();
    s.demote(1);
    s.connect(1, true);
    s.connect(0, false);
    // Run the resync part way, then cut.
    for _ in 0..40 {
        s.maybe_connect();
        s.step_io();
    }
    s.cut();
    s.quiesce();
    s.restore();
    s.quiesce();
    s.model.clear();
    s.assert_converged();
}

#[test]
fn failover_then_cut_resyncs_from_the_new_primary() {
    let mut s = Sim::synced_pair(7, Protocol::C);
    s.demote(0);
    s.quiesce();
    s.promote(1, false);
    s.quiesce();
    s.cut();
    for b in [11, 12, 100] {
        assert!(s.write(1, b));
    }
    s.quiesce();
    let before = s.stats;
    s.restore();
    s.quiesce();
    s.assert_converged();
    assert_eq!(
        s.stats.rs_packets - before.rs_packets,
        2,
        "blocks 11-12 are one run"
    );
    assert_eq!(
        s.h[1].outcomes.last(),
        Some(&Outcome::Source { full: false })
    );
}

#[test]
fn refusals() {
    let mut s = Sim::synced_pair(8, Protocol::C);
    // Two primaries are refused.
    let r = s.rng.next();
    let e = s.call(1, &[], |m, a| m.promote(false, r, a));
    assert_eq!(e, Err(proto::replica::RoleError::PeerPrimary));
    // Writes only on the Primary, inside the device, in 512-byte units.
    use proto::replica::WriteError;
    let e = s.call(1, &[], |m, a| m.submit_write(1, 0, 4096, a));
    assert_eq!(e, Err(WriteError::NotPrimary));
    let e = s.call(0, &[], |m, a| m.submit_write(1, BLOCKS as u64 * 8, 4096, a));
    assert_eq!(e, Err(WriteError::OutOfRange));
    let e = s.call(0, &[], |m, a| m.submit_write(1, 0, 100, a));
    assert_eq!(e, Err(WriteError::BadLength));
    // The write table is bounded.
    for b in 0..SLOTS {
        assert!(s.write(0, b));
    }
    assert!(!s.write(0, SLOTS + 1));
    let e = s.call(0, &[], |m, a| m.demote(a));
    assert_eq!(e, Err(proto::replica::RoleError::InUse));
    s.quiesce();
    s.assert_converged();
    // A fresh Inconsistent node cannot promote without force.
    let mut t = Sim::new(9, Protocol::C);
    let r = t.rng.next();
    let e = t.call(1, &[], |m, a| m.promote(false, r, a));
    assert_eq!(e, Err(proto::replica::RoleError::NoUpToDateDisk));
}

#[test]
fn hostile_packets_drop_the_link_without_panicking() {
    let mut s = Sim::synced_pair(10, Protocol::C);
    // A replicated write to a Primary, a write beyond the end, resync data
    // while not SyncTarget, a state word with a bad disk state.
    let h = wire::DataHeader {
        sector: 0,
        block_id: 1,
        seq_num: 1,
        dp_flags: 0,
    };
    let cases: [(usize, Packet, usize); 4] = [
        (0, Packet::Data(h), 4096),
        (
            1,
            Packet::Data(wire::DataHeader {
                sector: BLOCKS as u64 * 8 - 1,
                ..h
            }),
            4096,
        ),
        (1, Packet::RsData(h), 4096),
        (1, Packet::State(wire::DrbdState(0xf << 9)), 0),
    ];
    for (n, pkt, len) in cases {
        let e = s.call(n, &[], |m, a| m.on_packet(&pkt, len, a));
        assert!(e.is_err(), "{pkt:?}");
        assert!(!s.logical);
        s.quiesce();
        s.assert_converged();
    }
    // Undecodable payloads are typed errors.
    use proto::replica::DecodeError;
    assert_eq!(
        Packet::decode(wire::P_DATA, &[0u8; 24]).unwrap_err(),
        DecodeError::BadDataLength
    );
    assert_eq!(
        Packet::decode(wire::P_DATA, &[0u8; 24 + 100]).unwrap_err(),
        DecodeError::BadDataLength
    );
    assert!(matches!(
        Packet::decode(wire::P_STATE, &[0u8; 3]).unwrap_err(),
        DecodeError::Wire(_)
    ));
    assert_eq!(
        Packet::decode(wire::P_STATE, &[0u8; 5]).unwrap_err(),
        DecodeError::TrailingBytes
    );
    assert_eq!(
        Packet::decode(wire::P_BARRIER, &[0u8; 8]).unwrap_err(),
        DecodeError::Unsupported(wire::P_BARRIER)
    );
    assert!(Packet::decode(wire::P_UUIDS110, &[0u8; 41]).is_err());
}

#[test]
fn failed_peer_writes_are_marked_and_resynced_later() {
    for protocol in [Protocol::A, Protocol::B, Protocol::C] {
        let mut s = Sim::synced_pair(11, protocol);
        s.h[1].fail_peer_writes = true;
        for b in [5, 6, 90] {
            assert!(s.write(0, b));
        }
        s.quiesce();
        assert_eq!(s.h[0].r.out_of_sync(), 3, "{protocol:?}");
        assert_eq!(s.h[0].r.repl(), ReplState::Established);
        s.h[1].fail_peer_writes = false;
        // The next new generation brings them over.
        s.cut();
        s.restore();
        let before = s.stats;
        s.quiesce();
        s.assert_converged();
        assert_eq!(s.stats.rs_packets - before.rs_packets, 2, "5-6 and 90");
    }
}

#[test]
fn promotion_during_the_handshake_retries_the_connection() {
    let mut s = Sim::synced_pair(12, Protocol::C);
    s.demote(0);
    s.quiesce();
    s.cut();
    s.restore();
    s.maybe_connect();
    assert!(s.logical);
    // B's UUIDs are already on the wire when it starts a new generation.
    s.promote(1, false);
    s.quiesce();
    assert!(s.h[1].drops.contains(&DropReason::Retry), "{}", s.dump());
    s.assert_converged();
    assert_eq!(s.h[1].r.role(), Role::Primary);
    assert!(s.write(1, 3));
    s.quiesce();
    s.assert_converged();
}

#[test]
fn concurrent_promotions_end_in_split_brain() {
    let mut s = Sim::synced_pair(13, Protocol::C);
    s.allow_protocol_errors = true;
    s.demote(0);
    s.quiesce();
    // Both promote before either hears of the other.
    s.promote(0, false);
    s.promote(1, false);
    s.quiesce();
    for h in &s.h {
        assert_eq!(h.r.conn(), ConnState::StandAlone, "{}", s.dump());
        assert_eq!(h.drops.last(), Some(&DropReason::SplitBrain));
    }
    assert!(s.h.iter().any(|h| h.drops.contains(&DropReason::Protocol(
        proto::replica::ProtocolError::TwoPrimaries
    ))));
}

#[test]
fn admin_disconnect_and_reconnect() {
    let mut s = Sim::synced_pair(14, Protocol::B);
    s.call(0, &[], |m, a| m.disconnect(a));
    assert!(!s.logical);
    assert_eq!(s.h[0].r.conn(), ConnState::StandAlone);
    assert_eq!(s.h[1].r.conn(), ConnState::Unconnected);
    for b in [1, 3, 5, 7] {
        assert!(s.write(0, b));
    }
    s.quiesce();
    assert!(!s.logical, "StandAlone does not connect");
    let before = s.stats;
    s.connect(0, false);
    s.quiesce();
    s.assert_converged();
    assert_eq!(s.stats.rs_packets - before.rs_packets, 4);
}

#[test]
fn writes_not_yet_on_a_crashed_peer_disk_are_resynced() {
    for protocol in [Protocol::A, Protocol::B, Protocol::C] {
        let mut s = Sim::synced_pair(15, protocol);
        assert!(s.write(0, 7));
        // P_DATA reaches B, whose disk write is still in flight; any
        // P_RECV_ACK reaches A, and A's own write completes.
        while !s.q[0][0].is_empty() {
            s.deliver(0, 0);
        }
        while !s.q[1][1].is_empty() {
            s.deliver(1, 1);
        }
        while !s.h[0].ios.is_empty() {
            s.complete_io(0, 0);
        }
        let completed = s.h[0].writes.is_empty();
        assert_eq!(completed, protocol != Protocol::C, "{protocol:?}");
        // B crashes before its write completes: the block is lost there.
        s.restart(1);
        assert_eq!(
            s.h[0].r.out_of_sync(),
            1,
            "{protocol:?}: A knows B lacks it"
        );
        let before = s.stats;
        s.quiesce();
        s.assert_converged();
        assert_eq!(s.stats.rs_packets - before.rs_packets, 1);
    }
}

// ---- random schedules ------------------------------------------------------------------------

/// One seed: fresh pair, full sync, then rounds of random writes, link
/// cuts and restores, each followed by quiescence and the invariants, and
/// sometimes a failover.
fn random_run(seed: u64) -> Stats {
    let protocol = [Protocol::A, Protocol::B, Protocol::C][(seed % 3) as usize];
    let mut s = Sim::synced_pair(seed, protocol);
    s.assert_converged();
    // Some seeds also promote the other node while the link is down (split
    // brain) and take the connection down by hand.
    let split_brains = seed % 4 == 3;
    let rounds = 3 + s.rng.below(3);
    for round in 0..rounds {
        s.note(format!("round {round}"));
        let steps = 100 + s.rng.below(400);
        for _ in 0..steps {
            s.maybe_connect();
            match s.rng.below(100) {
                0..=29 => {
                    let primaries: Vec<usize> = (0..2)
                        .filter(|&n| s.h[n].r.role() == Role::Primary)
                        .collect();
                    if !primaries.is_empty() {
                        let p = primaries[s.rng.below(primaries.len())];
                        if s.h[p].r.writes_in_flight() < SLOTS {
                            // Hot spots and runs: mostly a small region.
                            let b = if s.rng.chance(70) {
                                s.rng.below(24)
                            } else {
                                s.rng.below(BLOCKS)
                            };
                            s.write(p, b);
                        }
                    }
                }
                30..=32 => {
                    if s.physical {
                        s.cut();
                    }
                }
                33..=37 => {
                    if !s.physical {
                        s.restore();
                    }
                }
                40 => {
                    let n = s.rng.below(2);
                    if s.h[n].r.role() == Role::Secondary {
                        s.restart(n);
                    }
                }
                38 if split_brains && !s.physical => {
                    // The other node takes over without the peer.
                    let n = s.rng.below(2);
                    let r = s.rng.next();
                    if s.call(n, &[], |m, a| m.promote(false, r, a)).is_ok() {
                        s.note(format!("node {n} promoted while cut off"));
                    }
                }
                39 if split_brains => {
                    let n = s.rng.below(2);
                    if s.h[n].r.conn() == ConnState::StandAlone {
                        s.connect(n, false);
                    } else if s.rng.chance(50) {
                        s.call(n, &[], |m, a| m.disconnect(a));
                    }
                }
                _ => {
                    s.step_io();
                }
            }
        }
        s.restore();
        for n in 0..2 {
            if s.h[n].r.conn() == ConnState::StandAlone && !s.h[n].split_brain {
                s.connect(n, false);
            }
        }
        s.quiesce();
        if s.h.iter().any(|h| h.split_brain) {
            // Split brain: one side gives up its changes.
            let candidates: Vec<usize> = (0..2)
                .filter(|&n| s.h[n].r.disk() == DiskState::UpToDate)
                .collect();
            assert_eq!(candidates.len(), 2, "{}", s.dump());
            let survivor = s.rng.below(2);
            let loser = 1 - survivor;
            if s.h[loser].r.role() == Role::Primary {
                s.demote(loser);
            }
            if s.h[loser].r.conn() != ConnState::StandAlone {
                s.call(loser, &[], |m, a| m.disconnect(a));
            }
            let snapshot = s.h[survivor].disk.clone();
            s.connect(loser, true);
            if s.h[survivor].r.conn() == ConnState::StandAlone {
                s.connect(survivor, false);
            }
            s.quiesce();
            assert!(
                s.h[survivor].disk == snapshot,
                "the survivor's data changed\n{}",
                s.dump()
            );
            for (&b, data) in s.model.iter_mut() {
                *data = snapshot[b].to_vec();
            }
            s.stats.split_brains += 1;
        }
        s.assert_converged();
        if s.primary().is_none() {
            let n = s.rng.below(2);
            s.promote(n, false);
            s.quiesce();
        } else if s.rng.chance(30) {
            let p = s.primary().expect("a primary");
            s.demote(p);
            s.quiesce();
            s.promote(1 - p, false);
            s.quiesce();
            s.assert_converged();
            s.stats.failovers += 1;
        }
    }
    s.stats
}

#[test]
fn random_schedules() {
    let seeds: Vec<u64> = match std::env::var("SIM_SEED") {
        Ok(v) => vec![v.parse().expect("SIM_SEED is a number")],
        Err(_) => {
            let n = std::env::var("SIM_SEEDS")
                .map_or(1000, |v| v.parse().expect("SIM_SEEDS is a number"));
            (0..n).collect()
        }
    };
    let all = seeds.len() > 1;
    let mut total = Stats::default();
    for seed in seeds {
        match std::panic::catch_unwind(|| random_run(seed)) {
            Ok(st) => total.add(&st),
            Err(e) => {
                let msg = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                panic!("seed {seed} failed (replay: SIM_SEED={seed} cargo test -p proto --test sim random_): {msg}");
            }
        }
    }
    println!("random schedules: {total:?}");
    if all {
        // The schedules must reach the interesting cases.
        assert!(total.cuts_while_syncing > 50, "{total:?}");
        assert!(total.failovers > 100, "{total:?}");
        assert!(total.resyncs > 500, "{total:?}");
        assert!(total.split_brains > 20, "{total:?}");
        assert!(total.restarts > 200, "{total:?}");
    }
}
