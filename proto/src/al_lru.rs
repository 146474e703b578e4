//! Activity-log extent cache: which 4 MiB extents are "hot".
//!
//! A write may only be submitted once every AL extent it touches is hot,
//! i.e. listed in the on-disk activity log, so that after a crash the
//! region is resynced. [`AlCache`] keeps the `al-extents` slots in memory,
//! counts references (writes in flight) per extent, picks the least recently
//! used unreferenced extent to evict, and turns the resulting slot changes
//! into [`Transaction`]s with the rolling 919-entry context.
//!
//! Storage is provided by the caller (`&mut [AlSlot]`, one per slot, and a
//! power-of-two `&mut [u32]` of hash buckets), nothing allocates.
//!
//! Protocol for one write covering extents `first..=last`:
//! 1. [`AlCache::begin_io`]: `Hit` → submit; `NeedsTransaction` → the
//!    references are taken but some extent is not on disk yet: make sure a
//!    transaction is written ([`AlCache::prepare_transaction`], write the
//!    block, [`AlCache::transaction_written`]) and submit once
//!    [`AlCache::is_committed`] says so; `MustWait` → nothing was taken,
//!    retry after an [`AlCache::end_io`] or a written transaction.
//! 2. When the write is done towards every peer: [`AlCache::end_io`].
//!
//! Before writing a prepared transaction, the bitmap pages covering the
//! extents it evicts ([`AlCache::in_flight_evictions`]) must be on disk.
//!
//! Crash safety: only committed slots are ever evicted, and only when
//! unreferenced, and every transaction's context reflects the in-memory
//! table at preparation time, in which every pending change is included.
//! So replaying the ring always yields a superset of the extents with
//! submitted writes, provided the ring keeps `ceil(al-extents / 919)`
//! transactions besides the newest ([`max_extents`]).

use super::al::{
    Transaction, AL_CONTEXT_PER_TRANSACTION, AL_EXTENTS_MAX, AL_FREE, AL_UPDATES_PER_TRANSACTION,
};
use super::meta::AL_TR_UPDATE;

const NIL: u32 = u32::MAX;
const ST_FREE: u8 = 0;
const ST_COMMITTED: u8 = 1;
const ST_PENDING: u8 = 2;
const ST_IN_FLIGHT: u8 = 3;
const MAX_CHANGES: usize = AL_UPDATES_PER_TRANSACTION;

/// Largest `al-extents` a ring of `al_size_4k` transaction blocks supports.
pub fn max_extents(al_size_4k: u32) -> u32 {
    (al_size_4k.saturating_sub(1))
        .saturating_mul(AL_CONTEXT_PER_TRANSACTION as u32)
        .min(AL_EXTENTS_MAX)
}

/// One slot of the cache. Create the storage with [`AlSlot::EMPTY`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlSlot {
    extent: u32,
    old_extent: u32,
    refs: u32,
    prev: u32,
    next: u32,
    hnext: u32,
    state: u8,
}

impl AlSlot {
    /// An unused slot.
    pub const EMPTY: AlSlot = AlSlot {
        extent: AL_FREE,
        old_extent: AL_FREE,
        refs: 0,
        prev: NIL,
        next: NIL,
        hnext: NIL,
        state: ST_FREE,
    };

    /// The extent in this slot, if any.
    pub fn extent(&self) -> Option<u32> {
        (self.state != ST_FREE).then_some(self.extent)
    }

    /// Writes in flight on this slot's extent.
    pub fn refs(&self) -> u32 {
        self.refs
    }

    /// The slot's extent is on disk (not waiting for a transaction).
    pub fn is_committed(&self) -> bool {
        self.state == ST_COMMITTED
    }
}

/// Why the cache cannot be built over the given storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlCacheError {
    /// No slots, or more than [`AL_EXTENTS_MAX`].
    BadSlotCount,
    /// Bucket count is zero or not a power of two.
    BadBucketCount,
}

/// What a write has to do before it may be submitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BeginIo {
    /// All extents are hot and on disk: submit now.
    Hit,
    /// References taken; submit once [`AlCache::is_committed`] (after the
    /// next written transaction).
    NeedsTransaction,
    /// Nothing taken; retry later.
    MustWait(WaitFor),
    /// The range can never fit (reversed, contains [`AL_FREE`], or spans
    /// more extents than a transaction or the cache holds).
    TooLarge,
}

/// What a [`BeginIo::MustWait`] write waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitFor {
    /// Every slot is referenced or not yet committed: wait for an `end_io`
    /// or a written transaction.
    FreeSlot,
    /// The next transaction is full (64 changes): write it first.
    Transaction,
}

/// The activity-log extent cache over caller-provided storage.
#[derive(Debug)]
pub struct AlCache<'a> {
    slots: &'a mut [AlSlot],
    buckets: &'a mut [u32],
    lru_head: u32,
    lru_tail: u32,
    lru_len: u32,
    free_head: u32,
    free_len: u32,
    /// Changes not in a transaction yet; up to 64 new ones, plus up to 64
    /// put back by a failed transaction.
    pending: [u16; 2 * MAX_CHANGES],
    n_pending: usize,
    in_flight: [u16; MAX_CHANGES],
    n_in_flight: usize,
    tx_active: bool,
    next_tr: u32,
    context_start: u32,
    in_flight_context_start: u32,
}

/// An [`AlCache`]'s bookkeeping without its storage, for owners that keep the slot and bucket
/// storage themselves between calls (a kernel device): [`AlCache::suspend`] gives it back,
/// [`AlCache::resume`] rebuilds the cache over the same storage.
#[derive(Debug, Clone, Copy)]
pub struct AlCacheState {
    slot_count: usize,
    bucket_count: usize,
    lru_head: u32,
    lru_tail: u32,
    lru_len: u32,
    free_head: u32,
    free_len: u32,
    pending: [u16; 2 * MAX_CHANGES],
    n_pending: usize,
    in_flight: [u16; MAX_CHANGES],
    n_in_flight: usize,
    tx_active: bool,
    next_tr: u32,
    context_start: u32,
    in_flight_context_start: u32,
}

impl<'a> AlCache<'a> {
    /// Ends this borrow of the storage, keeping the bookkeeping.
    pub fn suspend(self) -> AlCacheState {
        AlCacheState {
            slot_count: self.slots.len(),
            bucket_count: self.buckets.len(),
            lru_head: self.lru_head,
            lru_tail: self.lru_tail,
            lru_len: self.lru_len,
            free_head: self.free_head,
            free_len: self.free_len,
            pending: self.pending,
            n_pending: self.n_pending,
            in_flight: self.in_flight,
            n_in_flight: self.n_in_flight,
            tx_active: self.tx_active,
            next_tr: self.next_tr,
            context_start: self.context_start,
            in_flight_context_start: self.in_flight_context_start,
        }
    }

    /// The cache `state` was suspended from, over the same storage (unchanged since). Storage
    /// of other sizes is refused.
    pub fn resume(
        slots: &'a mut [AlSlot],
        buckets: &'a mut [u32],
        state: AlCacheState,
    ) -> Result<AlCache<'a>, AlCacheError> {
        if slots.len() != state.slot_count {
            return Err(AlCacheError::BadSlotCount);
        }
        if buckets.len() != state.bucket_count {
            return Err(AlCacheError::BadBucketCount);
        }
        Ok(AlCache {
            slots,
            buckets,
            lru_head: state.lru_head,
            lru_tail: state.lru_tail,
            lru_len: state.lru_len,
            free_head: state.free_head,
            free_len: state.free_len,
            pending: state.pending,
            n_pending: state.n_pending,
            in_flight: state.in_flight,
            n_in_flight: state.n_in_flight,
            tx_active: state.tx_active,
            next_tr: state.next_tr,
            context_start: state.context_start,
            in_flight_context_start: state.in_flight_context_start,
        })
    }

    /// Build an empty cache with `slots.len()` = al-extents slots and a
    /// power-of-two number of hash buckets (about as many as slots is
    /// good). `first_tr` is the number of the first transaction to write.
    pub fn new(
        slots: &'a mut [AlSlot],
        buckets: &'a mut [u32],
        first_tr: u32,
    ) -> Result<AlCache<'a>, AlCacheError> {
        if slots.is_empty() || slots.len() > AL_EXTENTS_MAX as usize {
            return Err(AlCacheError::BadSlotCount);
        }
        if !buckets.len().is_power_of_two() {
            return Err(AlCacheError::BadBucketCount);
        }
        buckets.fill(NIL);
        let n = slots.len() as u32;
        for (i, s) in slots.iter_mut().enumerate() {
            *s = AlSlot::EMPTY;
            s.next = if i as u32 + 1 < n { i as u32 + 1 } else { NIL };
        }
        Ok(AlCache {
            slots,
            buckets,
            lru_head: NIL,
            lru_tail: NIL,
            lru_len: 0,
            free_head: 0,
            free_len: n,
            pending: [0; 2 * MAX_CHANGES],
            n_pending: 0,
            in_flight: [0; MAX_CHANGES],
            n_in_flight: 0,
            tx_active: false,
            next_tr: first_tr,
            context_start: 0,
            in_flight_context_start: 0,
        })
    }

    /// Number of slots (al-extents).
    pub fn capacity(&self) -> u32 {
        self.slots.len() as u32
    }

    /// Slots holding an extent.
    pub fn used(&self) -> u32 {
        self.capacity() - self.free_len
    }

    /// Read-only view of the slots.
    pub fn slots(&self) -> &[AlSlot] {
        self.slots
    }

    /// Slot changes not yet in a transaction.
    pub fn pending_changes(&self) -> usize {
        self.n_pending
    }

    /// A prepared transaction is being written.
    pub fn transaction_in_flight(&self) -> bool {
        self.tx_active
    }

    /// Number the next prepared transaction gets.
    pub fn next_tr_number(&self) -> u32 {
        self.next_tr
    }

    /// Is `extent` in the cache (hot, possibly not committed yet)?
    pub fn contains(&self, extent: u32) -> bool {
        self.lookup(extent).is_some()
    }

    /// References on `extent` (0 if not cached).
    pub fn refs(&self, extent: u32) -> u32 {
        self.lookup(extent)
            .and_then(|s| self.slots.get(s as usize))
            .map_or(0, |s| s.refs)
    }

    /// All extents of `first..=last` are cached and on disk.
    pub fn is_committed(&self, first: u32, last: u32) -> bool {
        (first..=last).all(|e| {
            self.lookup(e)
                .and_then(|s| self.slots.get(s as usize))
                .is_some_and(|s| s.state == ST_COMMITTED)
        })
    }

    fn bucket_of(&self, extent: u32) -> usize {
        let h = extent.wrapping_mul(0x9e37_79b1);
        (h ^ (h >> 16)) as usize & (self.buckets.len() - 1)
    }

    fn lookup(&self, extent: u32) -> Option<u32> {
        if extent == AL_FREE {
            return None;
        }
        let mut i = self.buckets.get(self.bucket_of(extent)).copied()?;
        let mut guard = self.slots.len();
        while i != NIL && guard > 0 {
            let s = self.slots.get(i as usize)?;
            if s.extent == extent && s.state != ST_FREE {
                return Some(i);
            }
            i = s.hnext;
            guard -= 1;
        }
        None
    }

    fn hash_insert(&mut self, slot: u32) {
        let Some(extent) = self.slots.get(slot as usize).map(|s| s.extent) else {
            return;
        };
        let b = self.bucket_of(extent);
        let Some(head) = self.buckets.get_mut(b) else {
            return;
        };
        let old = *head;
        *head = slot;
        if let Some(s) = self.slots.get_mut(slot as usize) {
            s.hnext = old;
        }
    }

    fn hash_remove(&mut self, slot: u32) {
        let Some((extent, hnext)) = self.slots.get(slot as usize).map(|s| (s.extent, s.hnext))
        else {
            return;
        };
        let b = self.bucket_of(extent);
        let Some(&head) = self.buckets.get(b) else {
            return;
        };
        if head == slot {
            if let Some(h) = self.buckets.get_mut(b) {
                *h = hnext;
            }
            return;
        }
        let mut i = head;
        let mut guard = self.slots.len();
        while i != NIL && guard > 0 {
            let Some(next) = self.slots.get(i as usize).map(|s| s.hnext) else {
                return;
            };
            if next == slot {
                if let Some(s) = self.slots.get_mut(i as usize) {
                    s.hnext = hnext;
                }
                return;
            }
            i = next;
            guard -= 1;
        }
    }

    fn lru_unlink(&mut self, slot: u32) {
        let Some((prev, next)) = self.slots.get(slot as usize).map(|s| (s.prev, s.next)) else {
            return;
        };
        match self.slots.get_mut(prev as usize) {
            Some(p) => p.next = next,
            None => self.lru_head = next,
        }
        match self.slots.get_mut(next as usize) {
            Some(n) => n.prev = prev,
            None => self.lru_tail = prev,
        }
        if let Some(s) = self.slots.get_mut(slot as usize) {
            s.prev = NIL;
            s.next = NIL;
        }
        self.lru_len = self.lru_len.saturating_sub(1);
    }

    fn lru_push_tail(&mut self, slot: u32) {
        let tail = self.lru_tail;
        if let Some(s) = self.slots.get_mut(slot as usize) {
            s.prev = tail;
            s.next = NIL;
        } else {
            return;
        }
        match self.slots.get_mut(tail as usize) {
            Some(t) => t.next = slot,
            None => self.lru_head = slot,
        }
        self.lru_tail = slot;
        self.lru_len += 1;
    }

    /// A slot for a new extent: a free one, else the least recently used
    /// unreferenced committed one (its extent is evicted).
    fn take_slot(&mut self) -> Option<u32> {
        if self.free_head != NIL {
            let s = self.free_head;
            self.free_head = self.slots.get(s as usize)?.next;
            self.free_len -= 1;
            let slot = self.slots.get_mut(s as usize)?;
            slot.next = NIL;
            slot.old_extent = AL_FREE;
            return Some(s);
        }
        let s = self.lru_head;
        if s == NIL {
            return None;
        }
        self.lru_unlink(s);
        self.hash_remove(s);
        let slot = self.slots.get_mut(s as usize)?;
        slot.old_extent = slot.extent;
        Some(s)
    }

    /// Take references on extents `first..=last` for one write.
    pub fn begin_io(&mut self, first: u32, last: u32) -> BeginIo {
        if last < first || last == AL_FREE {
            return BeginIo::TooLarge;
        }
        let span = u64::from(last - first) + 1;
        if span > MAX_CHANGES as u64 || span > u64::from(self.capacity()) {
            return BeginIo::TooLarge;
        }
        let mut missing = 0u32;
        let mut idle = 0u32;
        for e in first..=last {
            match self.lookup(e).and_then(|s| self.slots.get(s as usize)) {
                None => missing += 1,
                Some(s) if s.state == ST_COMMITTED && s.refs == 0 => idle += 1,
                Some(_) => {}
            }
        }
        if missing > 0 {
            if self.n_pending + missing as usize > MAX_CHANGES {
                return BeginIo::MustWait(WaitFor::Transaction);
            }
            if missing > self.free_len + self.lru_len - idle {
                return BeginIo::MustWait(WaitFor::FreeSlot);
            }
        }
        let mut need_tx = false;
        for e in first..=last {
            let s = match self.lookup(e) {
                Some(s) => s,
                None => {
                    let Some(s) = self.take_slot() else {
                        // Cannot happen after the checks above.
                        return BeginIo::MustWait(WaitFor::FreeSlot);
                    };
                    if let Some(slot) = self.slots.get_mut(s as usize) {
                        slot.extent = e;
                        slot.state = ST_PENDING;
                        slot.refs = 0;
                    }
                    self.hash_insert(s);
                    if let Some(p) = self.pending.get_mut(self.n_pending) {
                        *p = s as u16;
                        self.n_pending += 1;
                    }
                    s
                }
            };
            let (state, refs) = match self.slots.get(s as usize) {
                Some(slot) => (slot.state, slot.refs),
                None => continue,
            };
            if state == ST_COMMITTED && refs == 0 {
                self.lru_unlink(s);
            }
            if let Some(slot) = self.slots.get_mut(s as usize) {
                slot.refs += 1;
            }
            if state != ST_COMMITTED {
                need_tx = true;
            }
        }
        if need_tx {
            BeginIo::NeedsTransaction
        } else {
            BeginIo::Hit
        }
    }

    /// Drop the references of one write on `first..=last`. Returns false if
    /// some extent held no reference (a caller bug; nothing else changes).
    pub fn end_io(&mut self, first: u32, last: u32) -> bool {
        if last < first {
            return false;
        }
        let mut ok = true;
        for e in first..=last {
            let Some(s) = self.lookup(e) else {
                ok = false;
                continue;
            };
            let Some(slot) = self.slots.get_mut(s as usize) else {
                ok = false;
                continue;
            };
            if slot.refs == 0 {
                ok = false;
                continue;
            }
            slot.refs -= 1;
            if slot.refs == 0 && slot.state == ST_COMMITTED {
                self.lru_push_tail(s);
            }
        }
        ok
    }

    /// Fill `tr` with the pending slot changes (up to 64) and the next
    /// context window, and mark them in flight. Returns false (and leaves
    /// `tr` alone) if nothing is pending or a transaction is in flight.
    ///
    /// The context shows what will be on disk once `tr` is written: slots
    /// whose change is still queued for a later transaction show their old
    /// extent, whose bitmap may not have been written out yet.
    pub fn prepare_transaction(&mut self, tr: &mut Transaction) -> bool {
        if self.tx_active || self.n_pending == 0 {
            return false;
        }
        let n = self.capacity();
        let k = self.n_pending.min(MAX_CHANGES);
        tr.tr_number = self.next_tr;
        tr.transaction_type = AL_TR_UPDATE;
        tr.n_updates = k as u16;
        tr.context_size = n as u16;
        tr.context_start_slot_nr = self.context_start as u16;
        tr.update_slot_nr.fill(u16::MAX);
        tr.update_extent_nr.fill(AL_FREE);
        for i in 0..k {
            let Some(&s) = self.pending.get(i) else {
                continue;
            };
            let ext = self.slots.get(usize::from(s)).map_or(AL_FREE, |x| x.extent);
            if let (Some(us), Some(ue)) =
                (tr.update_slot_nr.get_mut(i), tr.update_extent_nr.get_mut(i))
            {
                *us = s;
                *ue = ext;
            }
            if let Some(x) = self.slots.get_mut(usize::from(s)) {
                x.state = ST_IN_FLIGHT;
            }
            if let Some(f) = self.in_flight.get_mut(i) {
                *f = s;
            }
        }
        self.pending.copy_within(k.., 0);
        self.n_pending -= k;
        self.n_in_flight = k;
        for (i, c) in tr.context.iter_mut().enumerate() {
            let slot = self.context_start as usize + i;
            *c = match self.slots.get(slot) {
                Some(x) if x.state == ST_PENDING => x.old_extent,
                Some(x) if x.state != ST_FREE => x.extent,
                _ => AL_FREE,
            };
        }
        self.in_flight_context_start = self.context_start;
        self.context_start += AL_CONTEXT_PER_TRANSACTION as u32;
        if self.context_start >= n {
            self.context_start = 0;
        }
        self.tx_active = true;
        true
    }

    /// Extents the in-flight transaction evicts: their bitmap pages must be
    /// written before the transaction.
    pub fn in_flight_evictions(&self) -> impl Iterator<Item = u32> + '_ {
        self.in_flight
            .iter()
            .take(if self.tx_active { self.n_in_flight } else { 0 })
            .filter_map(|&s| self.slots.get(usize::from(s)))
            .map(|s| s.old_extent)
            .filter(|&e| e != AL_FREE)
    }

    /// The in-flight transaction is on disk: its extents are committed.
    pub fn transaction_written(&mut self) {
        if !self.tx_active {
            return;
        }
        for i in 0..self.n_in_flight {
            let Some(&s) = self.in_flight.get(i) else {
                continue;
            };
            let s = u32::from(s);
            let refs = match self.slots.get_mut(s as usize) {
                Some(x) => {
                    x.state = ST_COMMITTED;
                    x.old_extent = AL_FREE;
                    x.refs
                }
                None => continue,
            };
            if refs == 0 {
                self.lru_push_tail(s);
            }
        }
        self.n_in_flight = 0;
        self.tx_active = false;
        self.next_tr = self.next_tr.wrapping_add(1);
    }

    /// Writing the in-flight transaction failed: its changes become pending
    /// again, ahead of newer ones, for the next attempt, which reuses the
    /// transaction number and the context window.
    pub fn transaction_failed(&mut self) {
        if !self.tx_active {
            return;
        }
        let k = self.n_in_flight.min(MAX_CHANGES);
        let rest = self.n_pending.min(MAX_CHANGES);
        self.pending.copy_within(..rest, k);
        for i in 0..k {
            let Some(&s) = self.in_flight.get(i) else {
                continue;
            };
            if let Some(p) = self.pending.get_mut(i) {
                *p = s;
            }
            if let Some(x) = self.slots.get_mut(usize::from(s)) {
                x.state = ST_PENDING;
            }
        }
        self.n_pending = k + rest;
        self.n_in_flight = 0;
        self.tx_active = false;
        // Consecutive transactions on disk must carry consecutive windows.
        self.context_start = self.in_flight_context_start;
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::super::al::{replay, ReplayPlan};
    use super::super::meta::{al_init_block, MD_BLOCK_SIZE};
    use super::*;
    use proptest::prelude::*;
    use std::boxed::Box;
    use std::collections::BTreeMap;
    use std::vec;
    use std::vec::Vec;

    #[test]
    fn suspend_and_resume_keep_the_cache() {
        let (mut slots, mut buckets) = storage(8);
        let mut c = AlCache::new(&mut slots, &mut buckets, 5).unwrap();
        assert_eq!(c.begin_io(3, 3), BeginIo::NeedsTransaction);
        let st = c.suspend();
        let mut c = AlCache::resume(&mut slots, &mut buckets, st).unwrap();
        let mut tr = Transaction::default();
        assert!(c.prepare_transaction(&mut tr));
        assert_eq!(tr.tr_number, 5);
        c.transaction_written();
        assert!(c.is_committed(3, 3));
        let st = c.suspend();
        let (mut other, mut b2) = storage(4);
        assert_eq!(
            AlCache::resume(&mut other, &mut b2, st).err(),
            Some(AlCacheError::BadSlotCount)
        );
        let c = AlCache::resume(&mut slots, &mut buckets, st).unwrap();
        assert_eq!(c.refs(3), 1);
    }

    fn storage(n: usize) -> (Vec<AlSlot>, Vec<u32>) {
        (
            vec![AlSlot::EMPTY; n],
            vec![0; n.next_power_of_two().max(1)],
        )
    }

    #[test]
    fn construction() {
        let (mut s, mut b) = storage(4);
        assert!(AlCache::new(&mut s, &mut b[..3], 0).is_err());
        assert_eq!(
            AlCache::new(&mut [], &mut b, 0).err(),
            Some(AlCacheError::BadSlotCount)
        );
        let c = AlCache::new(&mut s, &mut b, 7).unwrap();
        assert_eq!((c.capacity(), c.used(), c.next_tr_number()), (4, 0, 7));
        assert_eq!(max_extents(8), 6433);
    }

    #[test]
    fn hit_miss_and_lru_eviction() {
        let (mut s, mut b) = storage(2);
        let mut c = AlCache::new(&mut s, &mut b, 0).unwrap();
        let mut tr = Box::<Transaction>::default();
        assert_eq!(c.begin_io(10, 10), BeginIo::NeedsTransaction);
        assert_eq!(c.begin_io(10, 10), BeginIo::NeedsTransaction);
        assert!(!c.is_committed(10, 10));
        assert!(c.prepare_transaction(&mut tr));
        assert!(!c.prepare_transaction(&mut tr), "one at a time");
        assert_eq!((tr.tr_number, tr.n_updates, tr.context_size), (0, 1, 2));
        assert_eq!((tr.update_slot_nr[0], tr.update_extent_nr[0]), (0, 10));
        assert_eq!(&tr.context[..3], &[10, AL_FREE, AL_FREE]);
        c.transaction_written();
        assert!(c.is_committed(10, 10));
        assert_eq!(c.refs(10), 2);
        assert_eq!(c.begin_io(10, 10), BeginIo::Hit);
        // second extent into the free slot
        assert_eq!(c.begin_io(11, 11), BeginIo::NeedsTransaction);
        assert!(c.prepare_transaction(&mut tr));
        c.transaction_written();
        // both referenced: a third must wait
        assert_eq!(c.begin_io(12, 12), BeginIo::MustWait(WaitFor::FreeSlot));
        assert!(c.end_io(11, 11));
        // 11 is idle now and gets evicted, 10 (3 refs) stays
        assert_eq!(c.begin_io(12, 12), BeginIo::NeedsTransaction);
        assert!(!c.contains(11));
        assert!(c.contains(10));
        assert!(c.prepare_transaction(&mut tr));
        assert_eq!(c.in_flight_evictions().collect::<Vec<_>>(), vec![11]);
        assert_eq!(tr.tr_number, 2);
        c.transaction_written();
        assert_eq!(c.in_flight_evictions().count(), 0);
        // end_io without a reference is reported
        assert!(!c.end_io(11, 11));
        assert!(!c.end_io(99, 98));
        assert_eq!(c.begin_io(5, 4), BeginIo::TooLarge);
        assert_eq!(c.begin_io(0, 2), BeginIo::TooLarge);
    }

    #[test]
    fn least_recently_used_goes_first() {
        let (mut s, mut b) = storage(3);
        let mut c = AlCache::new(&mut s, &mut b, 0).unwrap();
        let mut tr = Box::<Transaction>::default();
        for e in [1, 2, 3] {
            c.begin_io(e, e);
        }
        assert!(c.prepare_transaction(&mut tr));
        assert_eq!(tr.n_updates, 3);
        c.transaction_written();
        for e in [2, 1, 3] {
            c.end_io(e, e);
        }
        // touch 2 again: LRU order is now 1, 3, 2
        assert_eq!(c.begin_io(2, 2), BeginIo::Hit);
        c.end_io(2, 2);
        c.begin_io(7, 8);
        assert!(!c.contains(1) && !c.contains(3) && c.contains(2));
    }

    #[test]
    fn transaction_limit_and_failure() {
        let (mut s, mut b) = storage(200);
        let mut c = AlCache::new(&mut s, &mut b, 0).unwrap();
        let mut tr = Box::<Transaction>::default();
        for e in 0..64 {
            assert_eq!(c.begin_io(e, e), BeginIo::NeedsTransaction);
        }
        assert_eq!(c.begin_io(64, 64), BeginIo::MustWait(WaitFor::Transaction));
        assert!(c.prepare_transaction(&mut tr));
        assert_eq!(tr.n_updates, 64);
        // more changes may queue for the next transaction meanwhile
        assert_eq!(c.begin_io(64, 64), BeginIo::NeedsTransaction);
        c.transaction_failed();
        assert_eq!(c.pending_changes(), 65);
        assert_eq!(c.begin_io(65, 65), BeginIo::MustWait(WaitFor::Transaction));
        assert!(c.prepare_transaction(&mut tr));
        assert_eq!((tr.tr_number, tr.n_updates), (0, 64));
        // slot 64's change waits for the next transaction: its context
        // entry shows what is on disk (nothing)
        assert_eq!(tr.context[64], AL_FREE);
        assert_eq!(tr.context[63], 63);
        c.transaction_written();
        assert!(c.is_committed(0, 63));
        assert!(!c.is_committed(64, 64));
        assert!(c.prepare_transaction(&mut tr));
        assert_eq!((tr.tr_number, tr.n_updates), (1, 1));
        c.transaction_written();
        assert!(c.is_committed(64, 64));
    }

    #[test]
    fn rolling_context() {
        let n = 2000usize;
        let (mut s, mut b) = storage(n);
        let mut c = AlCache::new(&mut s, &mut b, 0).unwrap();
        let mut tr = Box::<Transaction>::default();
        let mut starts = Vec::new();
        for e in 0..4u32 {
            c.begin_io(e, e);
            assert!(c.prepare_transaction(&mut tr));
            starts.push(tr.context_start_slot_nr);
            assert_eq!(tr.context_size as usize, n);
            c.transaction_written();
        }
        assert_eq!(starts, vec![0, 919, 1838, 0]);
        // the window past the end is padded with AL_FREE
        c.begin_io(9, 9);
        c.prepare_transaction(&mut tr);
        assert_eq!(tr.context_start_slot_nr, 919);
        assert!(tr.context.iter().all(|&e| e == AL_FREE));
    }

    /// A simulated AL ring on "disk".
    struct Ring {
        blocks: Vec<[u8; MD_BLOCK_SIZE]>,
    }

    impl Ring {
        fn new(size: u32) -> Ring {
            let mut blocks = vec![[0u8; MD_BLOCK_SIZE]; size as usize];
            for (i, blk) in blocks.iter_mut().enumerate() {
                al_init_block(i as u32, blk);
            }
            Ring { blocks }
        }
        fn write(&mut self, tr: &Transaction) {
            let n = self.blocks.len();
            tr.encode(&mut self.blocks[tr.tr_number as usize % n]);
        }
        fn hot(&self, slots: usize) -> Vec<u32> {
            let mut hot = vec![AL_FREE; slots];
            let mut buf = [0u8; MD_BLOCK_SIZE];
            let mut tr = Box::<Transaction>::default();
            let plan = replay(
                self.blocks.len() as u32,
                |i, b| {
                    b.copy_from_slice(&self.blocks[i as usize]);
                    true
                },
                &mut buf,
                &mut tr,
                &mut hot,
            )
            .unwrap();
            if plan == ReplayPlan::Clean {
                assert!(hot.iter().all(|&e| e == AL_FREE));
            }
            hot
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Begin(u32, u32),
        End(usize),
        Commit,
        PrepareOnly,
        Fail,
    }

    fn op(extents: u32) -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0..extents, 0..2u32).prop_map(|(e, l)| Op::Begin(e, e + l)),
            3 => any::<usize>().prop_map(Op::End),
            2 => Just(Op::Commit),
            1 => Just(Op::PrepareOnly),
            1 => Just(Op::Fail),
        ]
    }

    #[derive(Debug, Clone, Copy)]
    enum Crash {
        /// The in-flight transaction never reached the disk.
        Lost,
        /// It did.
        Written,
        /// Its block is garbage.
        Torn,
    }

    fn run(
        slots: usize,
        ring_size: u32,
        prefill: u32,
        ops: &[Op],
        crash: Crash,
    ) -> Result<(), TestCaseError> {
        let (mut s, mut b) = storage(slots);
        let mut c = AlCache::new(&mut s, &mut b, 0).unwrap();
        let mut ring = Ring::new(ring_size);
        let mut tr = Box::<Transaction>::default();
        // Warm up: `prefill` extents hot, committed and idle.
        for e in 0..prefill {
            prop_assert_eq!(c.begin_io(e, e), BeginIo::NeedsTransaction);
            if c.pending_changes() == 64 || e + 1 == prefill {
                prop_assert!(c.prepare_transaction(&mut tr));
                ring.write(&tr);
                c.transaction_written();
            }
        }
        for e in 0..prefill {
            prop_assert!(c.end_io(e, e));
        }
        let mut in_flight_tr: Option<Box<Transaction>> = None;
        // requests holding references: (first, last, submitted)
        let mut reqs: Vec<(u32, u32, bool)> = Vec::new();
        for op in ops {
            match *op {
                Op::Begin(f, l) => match c.begin_io(f, l) {
                    BeginIo::Hit => reqs.push((f, l, true)),
                    BeginIo::NeedsTransaction => reqs.push((f, l, false)),
                    BeginIo::MustWait(_) | BeginIo::TooLarge => {}
                },
                Op::End(i) => {
                    // only submitted writes complete
                    let submitted: Vec<usize> = (0..reqs.len()).filter(|&j| reqs[j].2).collect();
                    if !submitted.is_empty() {
                        let (f, l, _) = reqs.remove(submitted[i % submitted.len()]);
                        prop_assert!(c.end_io(f, l));
                    }
                }
                Op::Commit | Op::PrepareOnly => {
                    if !c.transaction_in_flight() && c.prepare_transaction(&mut tr) {
                        in_flight_tr = Some(tr.clone());
                    }
                    if matches!(op, Op::Commit) {
                        if let Some(t) = in_flight_tr.take() {
                            ring.write(&t);
                            c.transaction_written();
                            for r in reqs.iter_mut() {
                                if !r.2 && c.is_committed(r.0, r.1) {
                                    r.2 = true;
                                }
                            }
                        }
                    }
                }
                Op::Fail => {
                    if in_flight_tr.take().is_some() {
                        c.transaction_failed();
                    }
                }
            }
            // LRU invariant: referenced extents are never evicted, and the
            // reference counts match the requests.
            let mut want: BTreeMap<u32, u32> = BTreeMap::new();
            for &(f, l, _) in &reqs {
                for e in f..=l {
                    *want.entry(e).or_default() += 1;
                }
            }
            for (&e, &n) in &want {
                prop_assert_eq!(c.refs(e), n, "extent {}", e);
            }
            let mut seen: Vec<u32> = c.slots().iter().filter_map(|s| s.extent()).collect();
            let used = seen.len();
            seen.sort_unstable();
            seen.dedup();
            prop_assert_eq!(seen.len(), used, "extent cached twice");
            prop_assert_eq!(used as u32, c.used());
        }
        // crash now
        if let Some(t) = in_flight_tr {
            match crash {
                Crash::Lost => {}
                Crash::Written => ring.write(&t),
                Crash::Torn => {
                    let n = ring.blocks.len();
                    ring.blocks[t.tr_number as usize % n] = [0x5a; MD_BLOCK_SIZE];
                }
            }
        }
        let hot = ring.hot(slots);
        for &(f, l, submitted) in &reqs {
            if submitted {
                for e in f..=l {
                    prop_assert!(hot.contains(&e), "extent {} with I/O lost by replay", e);
                }
            }
        }
        Ok(())
    }

    fn crash() -> impl Strategy<Value = Crash> {
        prop_oneof![Just(Crash::Lost), Just(Crash::Written), Just(Crash::Torn)]
    }

    proptest! {
        #[test]
        fn small_cache_crash_safe(
            slots in 1usize..6,
            ring in 2u32..5,
            ops in proptest::collection::vec(op(12), 0..120),
            c in crash(),
        ) {
            run(slots, ring, 0, &ops, c)?;
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn rolling_context_crash_safe(
            prefill in prop_oneof![Just(0u32), Just(1000u32)],
            ops in proptest::collection::vec(op(1300), 0..200),
            c in crash(),
        ) {
            // 1000 slots need 2 context windows: a ring of 3 is the minimum.
            // Prefilled, every new extent evicts one.
            run(1000, 3, prefill, &ops, c)?;
        }
    }
}
