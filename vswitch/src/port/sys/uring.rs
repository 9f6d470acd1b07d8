//! io_uring for a tap's file descriptor: many reads, or many two-part
//! writes, per `io_uring_enter`.
//!
//! Synchronous batching: each call pushes one submission per buffer or
//! frame, submits them all and waits for all their completions in the same
//! `io_uring_enter`, then returns. So the buffers are only borrowed for the
//! call, as with read(2), and nothing is ever in flight between calls. Reads
//! carry RWF_NOWAIT, so an empty queue completes a read at once with
//! -EAGAIN (io_uring does not go by the fd's O_NONBLOCK: it would wait).
//! No SQPOLL (a kernel thread spinning a core is too dear on a small host).
//! The tap's fd is registered with the ring (a fixed file), which spares
//! the kernel a file-table lookup and reference per operation.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};

use io_uring::{opcode, types, IoUring};

/// Most operations one call submits: a batch's worth.
pub const MAX_OPS: usize = 32;
/// Longest `head` (the virtio-net header) a write carries.
pub const MAX_HEAD: usize = 16;

/// Failed `io_uring_enter`s in a row before giving up on the process (see
/// `wait_all`).
const MAX_ENTER_FAILURES: u32 = 10_000;

/// An io_uring bound to one file descriptor, with the per-operation
/// storage a write needs (its iovecs and header copies) preallocated.
pub struct FdRing {
    ring: IoUring,
    fd: RawFd,
    /// The fd is the ring's fixed file 0.
    fixed: bool,
    iovs: Box<[[libc::iovec; 2]; MAX_OPS]>,
    heads: Box<[[u8; MAX_HEAD]; MAX_OPS]>,
}

// SAFETY: the iovecs hold raw pointers only while a `writev_all` call runs
// (they point into that call's borrowed frames and into `heads`, which
// moves with the value); between calls they are dead data. `IoUring` is
// Send. So moving an `FdRing` to another thread is sound.
unsafe impl Send for FdRing {}

impl FdRing {
    /// A ring for `fd` (which the caller keeps open for the ring's life).
    /// Fails when the kernel has no io_uring or refuses it
    /// (`kernel.io_uring_disabled`, seccomp): the caller falls back to
    /// plain syscalls.
    pub fn new(fd: BorrowedFd<'_>) -> io::Result<FdRing> {
        let entries = (2 * MAX_OPS) as u32;
        // COOP_TASKRUN (5.19) spares the interrupts task work would send;
        // older kernels refuse the flag, so try without it.
        let ring = IoUring::builder()
            .setup_coop_taskrun()
            .build(entries)
            .or_else(|_| IoUring::new(entries))?;
        let raw = fd.as_raw_fd();
        let fixed = ring.submitter().register_files(&[raw]).is_ok();
        let iov = libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        };
        Ok(FdRing {
            ring,
            fd: raw,
            fixed,
            iovs: Box::new([[iov; 2]; MAX_OPS]),
            heads: Box::new([[0; MAX_HEAD]; MAX_OPS]),
        })
    }

    /// Whether the fd is registered with the ring.
    pub fn fixed_file(&self) -> bool {
        self.fixed
    }

    /// One read per buffer (at most `MAX_OPS` and `results.len()`), all
    /// submitted and completed in one `io_uring_enter`. `results[i]` is the
    /// i-th buffer's outcome: bytes read, or minus the errno (ECANCELED
    /// for a buffer not tried). Returns how
    /// many buffers were read into (or tried).
    pub fn read_all<'a>(
        &mut self,
        bufs: impl Iterator<Item = &'a mut [u8]>,
        results: &mut [i32],
    ) -> usize {
        results.fill(-libc::ECANCELED);
        let max = results.len().min(MAX_OPS);
        let mut n = 0;
        {
            let mut sq = self.ring.submission();
            for buf in bufs.take(max) {
                let len = buf.len().min(u32::MAX as usize) as u32;
                let ptr = buf.as_mut_ptr();
                // RWF_NOWAIT: an empty tap completes the read with EAGAIN.
                // Without it io_uring ignores the fd's O_NONBLOCK and
                // waits for a frame (it arms a poll), and so would we.
                let entry = if self.fixed {
                    opcode::Read::new(types::Fixed(0), ptr, len)
                        .rw_flags(libc::RWF_NOWAIT)
                        .build()
                } else {
                    opcode::Read::new(types::Fd(self.fd), ptr, len)
                        .rw_flags(libc::RWF_NOWAIT)
                        .build()
                };
                // SAFETY: the entry's buffer is a live `&mut [u8]` borrowed
                // for this whole call, and `wait_all` below reaps every
                // completion before the call returns, so the kernel never
                // writes into it after the borrow ends.
                if unsafe { sq.push(&entry.user_data(n as u64)) }.is_err() {
                    break;
                }
                n += 1;
            }
        }
        self.wait_all(n, &mut results[..n]);
        n
    }

    /// One `writev` of `head` then `body` per frame (at most `MAX_OPS` and
    /// `results.len()`; heads longer than `MAX_HEAD` are cut), all submitted
    /// and completed in one `io_uring_enter`. `results[i]` is the i-th
    /// frame's outcome: bytes written, or minus the errno (ECANCELED
    /// for a frame not tried). Returns how many
    /// frames were tried.
    pub fn writev_all<'a>(
        &mut self,
        frames: impl Iterator<Item = (&'a [u8], &'a [u8])>,
        results: &mut [i32],
    ) -> usize {
        results.fill(-libc::ECANCELED);
        let max = results.len().min(MAX_OPS);
        let mut n = 0;
        {
            let mut sq = self.ring.submission();
            for (head, body) in frames.take(max) {
                let hlen = head.len().min(MAX_HEAD);
                self.heads[n][..hlen].copy_from_slice(&head[..hlen]);
                self.iovs[n] = [
                    libc::iovec {
                        iov_base: self.heads[n].as_mut_ptr().cast(),
                        iov_len: hlen,
                    },
                    libc::iovec {
                        iov_base: body.as_ptr() as *mut libc::c_void,
                        iov_len: body.len(),
                    },
                ];
                let iov = self.iovs[n].as_ptr();
                let entry = if self.fixed {
                    opcode::Writev::new(types::Fixed(0), iov, 2).build()
                } else {
                    opcode::Writev::new(types::Fd(self.fd), iov, 2).build()
                };
                // SAFETY: the iovecs live in `self.iovs` and point into
                // `self.heads` and the borrowed `body`, all of which stay
                // put and alive for this call; `wait_all` reaps every
                // completion before it returns. The kernel only reads them.
                if unsafe { sq.push(&entry.user_data(n as u64)) }.is_err() {
                    break;
                }
                n += 1;
            }
        }
        self.wait_all(n, &mut results[..n]);
        n
    }

    /// Submits what was pushed and reaps exactly `n` completions into
    /// `results` by their user data. Never returns with an operation in
    /// flight: the buffers the operations use are borrowed only until the
    /// caller returns. Signals (EINTR) and a busy kernel (EAGAIN, EBUSY)
    /// are retried. An io_uring that keeps failing on a valid ring would be
    /// a kernel bug; the process aborts then rather than return and let the
    /// kernel write into buffers that are reused.
    fn wait_all(&mut self, n: usize, results: &mut [i32]) {
        let mut reaped = 0;
        let mut failures = 0;
        while reaped < n {
            if let Err(e) = self.ring.submit_and_wait(n - reaped) {
                let transient = matches!(
                    e.raw_os_error(),
                    Some(libc::EINTR | libc::EAGAIN | libc::EBUSY)
                );
                failures += 1;
                if !transient && failures >= MAX_ENTER_FAILURES {
                    tracing::error!(error = %e, "io_uring_enter keeps failing with operations in flight; aborting");
                    std::process::abort();
                }
            }
            for cqe in self.ring.completion() {
                if let Some(r) = results.get_mut(cqe.user_data() as usize) {
                    *r = cqe.result();
                }
                reaped += 1;
            }
        }
    }
}

impl Drop for FdRing {
    fn drop(&mut self) {
        // Drop the ring's reference to the fd now: the ring's own teardown
        // runs later in a kernel worker, and a tap the switch created only
        // vanishes when its last reference goes.
        if self.fixed {
            let _ = self.ring.submitter().unregister_files();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::{AsFd, FromRawFd, OwnedFd};

    fn pipe() -> (OwnedFd, OwnedFd) {
        let mut fds = [0; 2];
        // SAFETY: pipe2 writes two fds into the array it is given.
        let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) };
        assert_eq!(rc, 0);
        // SAFETY: both fds were just created and are owned by nobody else.
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
    }

    #[test]
    fn writes_then_reads_in_order_and_an_empty_fd_says_eagain() {
        let (r, w) = pipe();
        let Ok(mut wring) = FdRing::new(w.as_fd()) else {
            eprintln!("no io_uring here: skipped");
            return;
        };
        let mut rring = FdRing::new(r.as_fd()).expect("second ring");
        let bodies: Vec<[u8; 3]> = (0..3u8).map(|i| [i; 3]).collect();
        let mut res = [0; MAX_OPS];
        let n = wring.writev_all(bodies.iter().map(|b| (&b"h"[..], &b[..])), &mut res);
        assert_eq!((n, &res[..3]), (3, &[4, 4, 4][..]));

        let mut bufs = [[0u8; 12]; 2];
        let n = rring.read_all(bufs.iter_mut().map(|b| &mut b[..]), &mut res);
        assert_eq!((n, &res[..2]), (2, &[12, -libc::EAGAIN][..]));
        assert_eq!(&bufs[0], b"h\0\0\0h\x01\x01\x01h\x02\x02\x02");
    }
}
