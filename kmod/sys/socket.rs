//! Kernel TCP sockets for replication connections: listen/accept/connect, blocking full-length
//! send and receive, and shutdown to wake a blocked reader from another thread.

use super::ffi;
use kernel::bindings;
use kernel::error::to_result;
use kernel::prelude::*;

/// Most pieces [`Socket::send_parts`] sends at once (a packet's header and payload parts).
pub(crate) const MAX_PARTS: usize = 4;

/// An IPv4 endpoint (DRBD also sends `sockaddr_in6`; IPv6 paths are not supported yet).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Ipv4Addr {
    /// Address bytes in network order.
    pub(crate) ip: [u8; 4],
    /// Port.
    pub(crate) port: u16,
}

/// `struct sockaddr_in` (stable uapi layout, not in the 6.12 bindings).
#[repr(C)]
struct SockaddrIn {
    family: u16,
    port_be: u16,
    addr: [u8; 4],
    zero: [u8; 8],
}

impl Ipv4Addr {
    /// Decodes the raw `sockaddr_in` bytes DRBD's netlink attributes carry.
    pub(crate) fn from_sockaddr(raw: &[u8]) -> Option<Self> {
        if raw.len() < 8 || u16::from_ne_bytes([raw[0], raw[1]]) != bindings::AF_INET as u16 {
            return None;
        }
        Some(Self {
            port: u16::from_be_bytes([raw[2], raw[3]]),
            ip: [raw[4], raw[5], raw[6], raw[7]],
        })
    }

    /// The raw `sockaddr_in` bytes for netlink attributes.
    pub(crate) fn to_sockaddr_bytes(self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[..2].copy_from_slice(&(bindings::AF_INET as u16).to_ne_bytes());
        b[2..4].copy_from_slice(&self.port.to_be_bytes());
        b[4..8].copy_from_slice(&self.ip);
        b
    }

    fn to_c(self) -> SockaddrIn {
        SockaddrIn {
            family: bindings::AF_INET as u16,
            port_be: self.port.to_be(),
            addr: self.ip,
            zero: [0; 8],
        }
    }
}

impl core::fmt::Display for Ipv4Addr {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let [a, b, c, d] = self.ip;
        write!(f, "{}.{}.{}.{}:{}", a, b, c, d, self.port)
    }
}

/// An owned kernel socket.
///
/// # Invariants
/// `sock` is a valid socket from `sock_create_kern`/`kernel_accept`, released once in `Drop`.
///
/// Locking: `send_all` and `recv_exact` may run concurrently with each other (TCP is full
/// duplex) but each direction must have a single user at a time (callers serialise senders);
/// `shutdown` may be called from any thread at any time.
pub(crate) struct Socket {
    sock: *mut bindings::socket,
}

// SAFETY: kernel sockets are used from any thread; see the locking rules above.
unsafe impl Send for Socket {}
// SAFETY: concurrent use follows the locking rules above (the socket layer locks internally).
unsafe impl Sync for Socket {}

fn create() -> Result<Socket> {
    let mut sock = core::ptr::null_mut();
    // SAFETY: `sock` is a valid out pointer.
    to_result(unsafe { ffi::shim_sock_create_tcp(&mut sock) })?;
    // INVARIANT: creation succeeded.
    Ok(Socket { sock })
}

fn ms_to_jiffies(ms: u32) -> core::ffi::c_long {
    // SAFETY: pure conversion.
    unsafe { ffi::shim_msecs_to_jiffies(ms) }
}

impl Socket {
    /// A listening socket on `addr` (address reuse enabled).
    pub(crate) fn listen(addr: Ipv4Addr) -> Result<Socket> {
        let s = create()?;
        let mut sa = addr.to_c();
        // SAFETY: `s.sock` is valid; `sa` is a properly laid out sockaddr_in on our stack.
        unsafe {
            ffi::shim_sock_tune(s.sock, true);
            to_result(bindings::kernel_bind(
                s.sock,
                (&mut sa as *mut SockaddrIn).cast(),
                core::mem::size_of::<SockaddrIn>() as i32,
            ))?;
            to_result(bindings::kernel_listen(s.sock, 5))?;
        }
        Ok(s)
    }

    /// Waits up to `timeout_ms` for an incoming connection.
    pub(crate) fn accept(&self, timeout_ms: u32) -> Result<Socket> {
        let mut new = core::ptr::null_mut();
        // SAFETY: `self.sock` is a valid listening socket; `new` is a valid out pointer.
        unsafe {
            ffi::shim_sock_set_rcvtimeo(self.sock, ms_to_jiffies(timeout_ms));
            to_result(bindings::kernel_accept(self.sock, &mut new, 0))?;
            ffi::shim_sock_tune(new, false);
        }
        // INVARIANT: accept succeeded and returned a new socket.
        Ok(Socket { sock: new })
    }

    /// Connects to `addr` from `local` (port 0 = any).
    pub(crate) fn connect(local: Ipv4Addr, addr: Ipv4Addr) -> Result<Socket> {
        let s = create()?;
        let mut src = Ipv4Addr { port: 0, ..local }.to_c();
        let mut dst = addr.to_c();
        // SAFETY: `s.sock` is valid; both addresses live on our stack during the calls.
        unsafe {
            ffi::shim_sock_tune(s.sock, false);
            to_result(bindings::kernel_bind(
                s.sock,
                (&mut src as *mut SockaddrIn).cast(),
                core::mem::size_of::<SockaddrIn>() as i32,
            ))?;
            to_result(bindings::kernel_connect(
                s.sock,
                (&mut dst as *mut SockaddrIn).cast(),
                core::mem::size_of::<SockaddrIn>() as i32,
                0,
            ))?;
        }
        Ok(s)
    }

    /// Sets the receive timeout (0 = none); a timed-out receive fails with `EAGAIN`.
    pub(crate) fn set_recv_timeout(&self, ms: u32) {
        // SAFETY: `self.sock` is valid (invariant).
        unsafe { ffi::shim_sock_set_rcvtimeo(self.sock, ms_to_jiffies(ms)) }
    }

    /// Sets the send timeout (0 = none).
    pub(crate) fn set_send_timeout(&self, ms: u32) {
        // SAFETY: `self.sock` is valid (invariant).
        unsafe { ffi::shim_sock_set_sndtimeo(self.sock, ms_to_jiffies(ms)) }
    }

    /// Sends all of `parts` (at most [`MAX_PARTS`]) in order in one `sendmsg`, so one packet
    /// travels in as few TCP segments as possible (the sockets are `TCP_NODELAY`);
    /// `more_follows` keeps it corked (`MSG_MORE`) for a payload sent right after.
    pub(crate) fn send_parts(&self, parts: &[&[u8]], more_follows: bool) -> Result {
        if parts.len() > MAX_PARTS {
            return Err(EINVAL);
        }
        let empty = bindings::kvec {
            iov_base: core::ptr::null_mut(),
            iov_len: 0,
        };
        let mut vecs = [empty; MAX_PARTS];
        for (v, part) in vecs.iter_mut().zip(parts) {
            *v = bindings::kvec {
                iov_base: part.as_ptr() as *mut _,
                iov_len: part.len(),
            };
        }
        let mut first = 0;
        let mut left: usize = parts.iter().map(|p| p.len()).sum();
        let flags = bindings::MSG_NOSIGNAL | if more_follows { bindings::MSG_MORE } else { 0 };
        while left > 0 {
            // Skip the parts sent completely.
            while vecs.get(first).is_some_and(|v| v.iov_len == 0) {
                first += 1;
            }
            let Some(rest) = vecs.get_mut(first..parts.len()) else {
                return Err(EINVAL);
            };
            // SAFETY: zeroed msghdr is valid for kernel_sendmsg; the vectors point into
            // `parts`, which outlive the call, and `left` is the sum of their lengths.
            let sent = unsafe {
                let mut msg: bindings::msghdr = core::mem::zeroed();
                msg.msg_flags = flags as _;
                bindings::kernel_sendmsg(self.sock, &mut msg, rest.as_mut_ptr(), rest.len(), left)
            };
            if sent <= 0 {
                return Err(if sent < 0 {
                    Error::from_errno(sent)
                } else {
                    EPIPE
                });
            }
            // Advance past what was sent (a short send leaves a part half done).
            let mut n = sent as usize;
            left = left.saturating_sub(n);
            for v in rest.iter_mut() {
                let take = n.min(v.iov_len);
                // SAFETY: `take <= iov_len`, so the pointer stays within the part.
                v.iov_base = unsafe { v.iov_base.cast::<u8>().add(take).cast() };
                v.iov_len -= take;
                n -= take;
                if n == 0 {
                    break;
                }
            }
        }
        Ok(())
    }

    /// Fills `buf` completely; fails on end of stream, error or timeout.
    pub(crate) fn recv_exact(&self, buf: &mut [u8]) -> Result {
        let mut done = 0;
        while done < buf.len() {
            done += self.recv_into(&mut buf[done..], bindings::MSG_WAITALL)?;
        }
        Ok(())
    }

    /// Receives what is queued into `buf` (at least one byte; blocks up to the receive
    /// timeout for it): the byte count, or an error on end of stream, error or timeout.
    pub(crate) fn recv_some(&self, buf: &mut [u8]) -> Result<usize> {
        self.recv_into(buf, 0)
    }

    /// One `recvmsg` into `buf` with `flags` (and `MSG_NOSIGNAL`): the byte count (> 0).
    fn recv_into(&self, buf: &mut [u8], flags: u32) -> Result<usize> {
        let mut vec = bindings::kvec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // SAFETY: zeroed msghdr is valid for kernel_recvmsg; `vec` points into `buf`.
        let got = unsafe {
            let mut msg: bindings::msghdr = core::mem::zeroed();
            bindings::kernel_recvmsg(
                self.sock,
                &mut msg,
                &mut vec,
                1,
                buf.len(),
                (flags | bindings::MSG_NOSIGNAL) as i32,
            )
        };
        match got {
            n if n > 0 => Ok(n as usize),
            0 => Err(ECONNRESET_COMPAT),
            e => Err(Error::from_errno(e)),
        }
    }

    /// Receives exactly `len` bytes into the buffers `msg.msg_iter` describes (the iterator
    /// advances with every partial receive); fails on end of stream, error or timeout.
    ///
    /// # Safety
    /// `msg` is a zeroed `msghdr` whose `msg_iter` covers `len` bytes of memory that stays
    /// valid for writes and unaliased during the call.
    pub(super) unsafe fn recv_msg(&self, msg: &mut bindings::msghdr, len: usize) -> Result {
        let mut done = 0;
        while done < len {
            msg.msg_flags = 0;
            // SAFETY: `self.sock` is valid (invariant); `msg` as the caller guarantees.
            let got = unsafe {
                bindings::sock_recvmsg(
                    self.sock,
                    msg,
                    (bindings::MSG_WAITALL | bindings::MSG_NOSIGNAL) as i32,
                )
            };
            if got <= 0 {
                return Err(if got < 0 {
                    Error::from_errno(got)
                } else {
                    ECONNRESET_COMPAT
                });
            }
            done += got as usize;
        }
        Ok(())
    }

    /// Sends the `len` bytes `msg.msg_iter` describes (the iterator advances with every
    /// partial send), the last of them with `MSG_MORE` if `more`. `extra` adds send flags
    /// (`MSG_SPLICE_PAGES`).
    ///
    /// # Safety
    /// `msg` is a zeroed `msghdr` whose `msg_iter` covers `len` bytes of memory that stays
    /// valid for reads during the call; with `MSG_SPLICE_PAGES` the pages must also stay
    /// allocated until the network stack drops its references (it takes its own).
    pub(super) unsafe fn send_msg(
        &self,
        msg: &mut bindings::msghdr,
        len: usize,
        more: bool,
        extra: u32,
    ) -> Result {
        let mut done = 0;
        while done < len {
            let flags = bindings::MSG_NOSIGNAL | extra | if more { bindings::MSG_MORE } else { 0 };
            msg.msg_flags = flags as _;
            // SAFETY: `self.sock` is valid (invariant); `msg` as the caller guarantees.
            let sent = unsafe { bindings::sock_sendmsg(self.sock, msg) };
            if sent <= 0 {
                return Err(if sent < 0 {
                    Error::from_errno(sent)
                } else {
                    EPIPE
                });
            }
            done += sent as usize;
        }
        Ok(())
    }

    /// Runs `f` on the segments of `bio`'s remaining payload and their total length; small
    /// bios (the usual 4 KiB writes) need no allocation.
    ///
    /// # Safety
    /// `bio` is live during the call.
    unsafe fn with_bio_segments<R>(
        bio: *mut bindings::bio,
        f: impl FnOnce(&[bindings::bio_vec], usize) -> Result<R>,
    ) -> Result<R> {
        /// Segments a small bio fits in without an allocation.
        const ON_STACK: usize = 8;
        // SAFETY: the caller guarantees `bio` is live.
        let count = unsafe { ffi::shim_bio_segment_count(bio) } as usize;
        // SAFETY: an all-zero `bio_vec` is valid (a null page, never used).
        let zero: bindings::bio_vec = unsafe { core::mem::zeroed() };
        let mut small = [zero; ON_STACK];
        let mut large;
        let segments: &mut [bindings::bio_vec] = if count <= ON_STACK {
            &mut small[..count]
        } else {
            let _noio = super::misc::NoIoScope::enter();
            large = KVec::from_elem(zero, count, GFP_KERNEL)?;
            &mut large[..]
        };
        let room = segments.len() as u32;
        // SAFETY: `bio` is live; `segments` has room for `room` entries.
        let n = unsafe { ffi::shim_bio_segments(bio, segments.as_mut_ptr(), room) };
        let n = usize::try_from(n).map_err(|_| Error::from_errno(n))?;
        let segments = &segments[..n];
        f(segments, segments.iter().map(|s| s.bv_len as usize).sum())
    }

    /// Sends the remaining payload of `bio` in one `sendmsg` (the caller keeps the bio alive
    /// during the call). With `zero_copy` the stack references the bio's pages instead of
    /// copying them: only for writes that complete after the peer received them (protocols
    /// B and C), so a page that changes later is never sent again; slab pages are copied.
    /// `more`: another packet follows at once (kept corked for it).
    pub(super) fn send_bio(&self, bio: *mut bindings::bio, zero_copy: bool, more: bool) -> Result {
        let send = |segments: &[bindings::bio_vec], len| {
            let splice = zero_copy
                && segments.iter().all(|s| {
                    // SAFETY: every page comes from the live bio.
                    unsafe { ffi::shim_sendpage_ok(s.bv_page) }
                });
            let extra = if splice {
                bindings::MSG_SPLICE_PAGES
            } else {
                0
            };
            // SAFETY: the bio's pages stay alive during the call and, with splicing, are
            // referenced by the stack until sent (protocol B/C writes complete only after the
            // peer has them).
            unsafe { self.send_bvecs(segments, len, more, extra) }
        };
        // SAFETY: the caller guarantees `bio` is live.
        unsafe { Self::with_bio_segments(bio, send) }
    }

    /// Receives exactly the remaining payload of `bio` into its pages.
    ///
    /// # Safety
    /// `bio` is live, and nobody else reads or writes its pages during the call.
    pub(super) unsafe fn recv_bio(&self, bio: *mut bindings::bio) -> Result {
        let recv = |segments: &[bindings::bio_vec], len| {
            // SAFETY: a zeroed msghdr is valid; the iterator covers the bio's pages, which the
            // caller keeps valid and unshared.
            unsafe {
                let mut msg: bindings::msghdr = core::mem::zeroed();
                bindings::iov_iter_bvec(
                    &mut msg.msg_iter,
                    bindings::ITER_DEST,
                    segments.as_ptr(),
                    segments.len() as _,
                    len,
                );
                self.recv_msg(&mut msg, len)
            }
        };
        // SAFETY: the caller guarantees `bio` is live.
        unsafe { Self::with_bio_segments(bio, recv) }
    }

    /// Sends the first `len` bytes of the pages `segments` describe, the last of them with
    /// `MSG_MORE` if `more`; `extra` as for [`Socket::send_msg`].
    ///
    /// # Safety
    /// Every segment's page is valid for reads of its range during the call; with
    /// `MSG_SPLICE_PAGES` it must also be a refcounted page the stack may keep referencing.
    pub(super) unsafe fn send_bvecs(
        &self,
        segments: &[bindings::bio_vec],
        len: usize,
        more: bool,
        extra: u32,
    ) -> Result {
        // SAFETY: a zeroed msghdr is valid; the iterator covers `segments`, which the caller
        // keeps valid as required for `send_msg`.
        unsafe {
            let mut msg: bindings::msghdr = core::mem::zeroed();
            bindings::iov_iter_bvec(
                &mut msg.msg_iter,
                bindings::ITER_SOURCE,
                segments.as_ptr(),
                segments.len() as _,
                len,
            );
            self.send_msg(&mut msg, len, more, extra)
        }
    }

    /// Shuts both directions down; wakes threads blocked in `recv_exact`/`accept`.
    pub(crate) fn shutdown(&self) {
        // SAFETY: `self.sock` is valid; shutdown is safe concurrently with other socket calls.
        unsafe { bindings::kernel_sock_shutdown(self.sock, bindings::sock_shutdown_cmd_SHUT_RDWR) };
    }
}

/// The peer closed the stream.
const ECONNRESET_COMPAT: Error = EPIPE;

impl Drop for Socket {
    fn drop(&mut self) {
        // SAFETY: `sock` is valid and released exactly once (invariant).
        unsafe { bindings::sock_release(self.sock) };
    }
}
