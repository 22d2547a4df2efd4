//! The backend's FHE worker pool, and how a query cancel reaches it.
//!
//! TFHE-rs work runs on rayon worker threads that block every signal, so Postgres' signal
//! handlers only ever run on the backend thread, and that never call a Postgres API.
//! While the workers compute, the backend thread does not block in rayon: it waits in
//! short slices and looks at Postgres' interrupt flags between them. On a query cancel,
//! `statement_timeout` or `pg_terminate_backend` it raises fhe_kv-core's cancel flag
//! ([`fhe_kv_core::runtime::request_cancel`]); the kernels check it before every
//! bootstrap, external product and key-switch chunk, so the job unwinds within one such
//! step (tens of milliseconds) whatever the table's width, batch size or layout. The
//! backend thread then runs `CHECK_FOR_INTERRUPTS`, which raises the usual
//! `canceling statement …` error. Nothing has been written by then (writes follow the
//! computation in the statement's transaction), and the pool and the cached keys stay
//! usable for the next statement.

use crate::guc;
use fhe_kv_core::runtime::{self, Cancelled, Runner};
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;
use std::cell::RefCell;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How often the waiting backend thread looks at its interrupt flags.
const POLL: Duration = Duration::from_millis(20);

thread_local! {
    static POOL: RefCell<Option<(usize, Arc<WorkerPool>)>> = const { RefCell::new(None) };
}

/// The worker threads, as a [`Runner`] that a query cancel interrupts.
pub(crate) struct WorkerPool {
    pool: rayon::ThreadPool,
}

impl Runner for WorkerPool {
    fn run(&self, job: &mut (dyn FnMut() + Send)) {
        // A job started from a worker (nested parallelism) belongs to the job that the
        // backend thread is already watching.
        if !on_backend_thread() {
            return self.pool.install(job);
        }
        runtime::clear_cancel();
        let done = AtomicBool::new(false);
        let backend = std::thread::current();
        let mut outcome = None;
        self.pool.in_place_scope(|scope| {
            scope.spawn(|_| {
                outcome = Some(catch_unwind(AssertUnwindSafe(&mut *job)));
                done.store(true, Ordering::Release);
                backend.unpark();
            });
            while !done.load(Ordering::Acquire) {
                std::thread::park_timeout(POLL);
                if cancel_pending() {
                    runtime::request_cancel();
                }
            }
        });
        runtime::clear_cancel();
        match outcome.expect("the job ran") {
            Ok(()) => {
                pgrx::check_for_interrupts!();
            }
            Err(payload) if payload.is::<Cancelled>() => {
                // Raises `canceling statement due to …` (or ends the backend).
                pgrx::check_for_interrupts!();
                // Postgres chose not to act on the interrupt after all; the job is gone.
                ereport!(
                    PgLogLevel::ERROR,
                    PgSqlErrorCode::ERRCODE_QUERY_CANCELED,
                    "fhe_kv: the operation was interrupted"
                );
            }
            Err(payload) => resume_unwind(payload),
        }
    }
}

/// Whether this is the backend's own thread (the process's main thread), the only one
/// that may look at Postgres state or raise an error.
fn on_backend_thread() -> bool {
    // SAFETY: plain syscalls.
    unsafe { libc::gettid() == libc::getpid() }
}

/// Whether `CHECK_FOR_INTERRUPTS` would now cancel the statement or end the backend.
fn cancel_pending() -> bool {
    // SAFETY: reads of Postgres' interrupt globals, on the backend thread that owns them
    // (volatile: a signal handler on this thread sets them).
    unsafe {
        let read = |flag: *const pg_sys::sig_atomic_t| std::ptr::read_volatile(flag) != 0;
        let held = |count: *const u32| std::ptr::read_volatile(count) != 0;
        if held(&raw const pg_sys::InterruptHoldoffCount)
            || held(&raw const pg_sys::CritSectionCount)
        {
            return false;
        }
        read(&raw const pg_sys::ProcDiePending)
            || (read(&raw const pg_sys::QueryCancelPending)
                && !held(&raw const pg_sys::QueryCancelHoldoffCount))
    }
}

fn wanted_threads() -> usize {
    match guc::THREADS.get() {
        n if n > 0 => n as usize,
        _ => std::thread::available_parallelism().map_or(1, |n| n.get()),
    }
}

/// Spawn a thread with every signal blocked: the new thread inherits the mask we set
/// around the spawn, and the backend thread's own mask is restored right after.
fn spawn_signal_free(thread: rayon::ThreadBuilder) -> std::io::Result<()> {
    let mut builder = std::thread::Builder::new();
    if let Some(name) = thread.name() {
        builder = builder.name(name.to_owned());
    }
    if let Some(size) = thread.stack_size() {
        builder = builder.stack_size(size);
    }
    // SAFETY: plain libc calls on stack-allocated sigset_t values.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut previous: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut previous);
        let spawned = builder.spawn(move || thread.run());
        libc::pthread_sigmask(libc::SIG_SETMASK, &previous, std::ptr::null_mut());
        spawned.map(|_| ())
    }
}

/// This backend's pool (`fhe_kv.threads` workers; rebuilt when the setting changes).
pub(crate) fn pool() -> Arc<WorkerPool> {
    let threads = wanted_threads();
    POOL.with_borrow_mut(|slot| {
        if let Some((n, pool)) = slot.as_ref() {
            if *n == threads {
                return pool.clone();
            }
        }
        // A stray rayon call outside our pool must not spawn signal-receiving threads
        // either: make the global pool signal-free too (it stays idle otherwise).
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .spawn_handler(spawn_signal_free)
            .build_global();
        let pool = Arc::new(WorkerPool {
            pool: rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .thread_name(|i| format!("fhe_kv-worker-{i}"))
                .spawn_handler(spawn_signal_free)
                .build()
                .expect("building the fhe_kv worker pool"),
        });
        *slot = Some((threads, pool.clone()));
        pool
    })
}

/// Run TFHE work on the worker pool; a query cancel interrupts it.
pub(crate) fn on_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    let pool = pool();
    runtime::install(Some(&*pool), f)
}
