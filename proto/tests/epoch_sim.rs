//! Deterministic simulation of `proto::epoch`: a Primary's [`Sender`] and a peer's
//! [`Receiver`] over in-order data and meta streams, a peer disk that completes writes in any
//! order and flushes on request, and a seeded scheduler that interleaves everything.
//!
//! Checked for protocols A and C over many schedules:
//! - every barrier ack the peer sends is accepted (numbers and write counts match);
//! - a write reaches the peer's disk only after every write that was completed upward before
//!   it was issued (what a file system on top may depend on) is on that disk;
//! - an fsync (empty flush) completes only when every write completed upward before it is
//!   stable (flushed) on the peer;
//! - once idle, every epoch is acknowledged.

#[path = "support/rng.rs"]
mod rng;
use proto::epoch::{Receiver, ReceiverAction, Sender};
use rng::Rng;
use std::collections::{BTreeSet, VecDeque};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    A,
    C,
}

enum Data {
    Write(usize),
    Barrier(u32),
}

enum Meta {
    WriteAck(usize),
    BarrierAck(u32, u32),
}

/// Unacknowledged epochs kept on each side (small, so "full" happens).
const N: usize = 4;
const WRITES: usize = 60;
const QUEUE_DEPTH: usize = 6;

struct World {
    protocol: Protocol,
    rng: Rng,
    sender: Sender<N>,
    /// Newest epoch with an upward completion.
    clock: Option<u32>,
    next_write: usize,
    /// Epoch of each sent write.
    epoch_of: Vec<Option<u32>>,
    /// Writes sent and not completed upward.
    in_flight: BTreeSet<usize>,
    completed: BTreeSet<usize>,
    /// Writes completed upward before each write was issued.
    deps: Vec<BTreeSet<usize>>,
    /// Outstanding fsyncs: (epoch whose ack completes it, writes it must find stable).
    fsyncs: Vec<(Option<u32>, BTreeSet<usize>)>,
    data: VecDeque<Data>,
    meta: VecDeque<Meta>,
    receiver: Receiver<N>,
    /// Writes submitted to the peer's disk: (write, local epoch).
    disk: Vec<(usize, u64)>,
    written: BTreeSet<usize>,
    stable: BTreeSet<usize>,
    /// The running flush and the writes it covers.
    flush: Option<BTreeSet<usize>>,
}

impl World {
    fn new(protocol: Protocol, seed: u64) -> World {
        World {
            protocol,
            rng: Rng::new(seed),
            sender: Sender::new(u32::MAX - 3),
            clock: None,
            next_write: 0,
            epoch_of: vec![None; WRITES],
            in_flight: BTreeSet::new(),
            completed: BTreeSet::new(),
            deps: vec![BTreeSet::new(); WRITES],
            fsyncs: Vec::new(),
            data: VecDeque::new(),
            meta: VecDeque::new(),
            receiver: Receiver::new(),
            disk: Vec::new(),
            written: BTreeSet::new(),
            stable: BTreeSet::new(),
            flush: None,
        }
    }

    fn complete_upward(&mut self, w: usize) {
        assert!(self.in_flight.remove(&w));
        self.completed.insert(w);
        let e = self.epoch_of[w].expect("sent");
        if self.clock.is_none_or(|c| proto::epoch::not_before(e, c)) {
            self.clock = Some(e);
        }
    }

    /// One scheduled step; `false` if nothing could run.
    fn step(&mut self, choice: usize) -> bool {
        match choice {
            // The application issues a write.
            0 if self.next_write < WRITES && self.in_flight.len() < QUEUE_DEPTH => {
                let w = self.next_write;
                let Ok(plan) = self.sender.before_write(self.clock, 5) else {
                    return false;
                };
                self.next_write += 1;
                self.deps[w] = self.completed.clone();
                if let Some(b) = plan.barrier {
                    self.data.push_back(Data::Barrier(b));
                }
                self.data.push_back(Data::Write(w));
                self.epoch_of[w] = Some(plan.epoch);
                self.in_flight.insert(w);
                if self.protocol == Protocol::A {
                    self.complete_upward(w);
                }
                true
            }
            // The idle closer, or an fsync.
            1 | 2 => {
                let Ok(barrier) = self.sender.close() else {
                    return false;
                };
                if let Some(b) = barrier {
                    self.data.push_back(Data::Barrier(b));
                }
                if choice == 2 {
                    let target = self.sender.newest_unacked();
                    self.fsyncs.push((target, self.completed.clone()));
                    self.check_fsyncs(None);
                }
                barrier.is_some() || choice == 2
            }
            // The peer's receiver takes the next packet of the data stream.
            3 => match self.data.front() {
                Some(Data::Write(w)) => {
                    let w = *w;
                    if self.protocol == Protocol::A && !self.receiver.all_acked() {
                        return false;
                    }
                    for d in &self.deps[w] {
                        assert!(
                            self.written.contains(d),
                            "write {w} reached the disk before write {d}, which it may depend on"
                        );
                    }
                    self.data.pop_front();
                    let id = self.receiver.on_write();
                    self.disk.push((w, id));
                    true
                }
                Some(Data::Barrier(b)) => {
                    let b = *b;
                    if !self.receiver.has_room() {
                        return false;
                    }
                    self.data.pop_front();
                    self.receiver.on_barrier(b).expect("room");
                    true
                }
                None => false,
            },
            // The peer's disk finishes one write.
            4 if !self.disk.is_empty() => {
                let i = self.rng.below(self.disk.len());
                let (w, id) = self.disk.swap_remove(i);
                self.written.insert(w);
                self.receiver.write_done(id);
                if self.protocol == Protocol::C {
                    self.meta.push_back(Meta::WriteAck(w));
                }
                true
            }
            // The peer's ack thread.
            5 => match self.receiver.next(true) {
                Some(ReceiverAction::Flush) => {
                    assert!(self.flush.is_none(), "two flushes at once");
                    self.flush = Some(self.written.clone());
                    true
                }
                Some(ReceiverAction::Ack { barrier, set_size }) => {
                    self.meta.push_back(Meta::BarrierAck(barrier, set_size));
                    true
                }
                None => false,
            },
            // The peer's flush finishes.
            6 => match self.flush.take() {
                Some(covered) => {
                    self.stable.extend(covered);
                    self.receiver.flush_done();
                    true
                }
                None => false,
            },
            // The Primary reads the meta stream.
            7 => match self.meta.pop_front() {
                Some(Meta::WriteAck(w)) => {
                    self.complete_upward(w);
                    true
                }
                Some(Meta::BarrierAck(b, n)) => {
                    self.sender
                        .acked(b, n)
                        .unwrap_or_else(|e| panic!("barrier ack refused: {e:?}"));
                    self.check_fsyncs(Some(b));
                    true
                }
                None => false,
            },
            _ => false,
        }
    }

    /// Completes the fsyncs that waited for epoch `acked` (or for nothing).
    fn check_fsyncs(&mut self, acked: Option<u32>) {
        let stable = &self.stable;
        self.fsyncs.retain(|(target, needed)| {
            let done = target.is_none() || *target == acked;
            if done {
                for w in needed {
                    assert!(
                        stable.contains(w),
                        "fsync completed before write {w} was stable"
                    );
                }
            }
            !done
        });
    }

    fn idle(&self) -> bool {
        self.next_write == WRITES
            && self.in_flight.is_empty()
            && self.data.is_empty()
            && self.meta.is_empty()
            && self.disk.is_empty()
            && self.flush.is_none()
            && self.sender.unacked() == 0
            && self.sender.open_writes() == 0
            && self.fsyncs.is_empty()
    }
}

fn run(protocol: Protocol, seed: u64) {
    let mut w = World::new(protocol, seed);
    let mut steps = 0;
    while !w.idle() {
        steps += 1;
        assert!(steps < 100_000, "seed {seed}: no progress");
        let choice = w.rng.below(8);
        w.step(choice);
    }
    assert!(w.written.len() == WRITES, "seed {seed}: writes lost");
}

#[test]
fn protocol_c_schedules() {
    for seed in 0..300 {
        run(Protocol::C, seed);
    }
}

#[test]
fn protocol_a_schedules() {
    for seed in 0..300 {
        run(Protocol::A, seed);
    }
}
