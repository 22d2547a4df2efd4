//! Where the kernels' work runs, and how it stops early.
//!
//! Every parallel step of a kernel goes through a [`Runner`]: rayon's pool by default,
//! and in the extension a runner that keeps the backend thread free to notice a query
//! cancel or `statement_timeout` while the pool computes. When it does, it raises
//! [`request_cancel`]; the kernels call [`checkpoint`] before every bootstrap, external
//! product and packing key switch, so the workers stop within one such step (tens of
//! milliseconds) whatever the table's width, batch size or layout, and the job unwinds
//! with a [`Cancelled`] panic payload that the runner turns back into the cancel error.
//! Nothing has been written by then: writes happen after the computation, in the
//! statement's transaction.

use std::sync::atomic::{AtomicBool, Ordering};
use tfhe::shortint::server_key::{
    BivariateLookupTableOwned, LookupTableOwned, ManyLookupTableOwned,
};
use tfhe::shortint::{Ciphertext, ServerKey};

/// Runs a job to completion on a pool of worker threads.
pub trait Runner: Sync {
    fn run(&self, job: &mut (dyn FnMut() + Send));
}

impl Runner for rayon::ThreadPool {
    fn run(&self, job: &mut (dyn FnMut() + Send)) {
        self.install(job)
    }
}

/// Run `f` on `runner` (on the calling thread's rayon context when `None`) and return its
/// result.
pub fn install<R: Send>(runner: Option<&dyn Runner>, f: impl FnOnce() -> R + Send) -> R {
    let Some(runner) = runner else {
        return f();
    };
    let mut f = Some(f);
    let mut out = None;
    runner.run(&mut || out = Some((f.take().expect("a job runs once"))()));
    out.expect("the runner ran the job to completion")
}

/// Set when the running statement must stop; cleared when the next one starts. One flag
/// per process: a Postgres backend runs one statement at a time.
static CANCEL: AtomicBool = AtomicBool::new(false);

/// The panic payload of a kernel stopped at a [`checkpoint`].
#[derive(Debug)]
pub struct Cancelled;

/// Ask every kernel of this process to stop at its next checkpoint.
pub fn request_cancel() {
    CANCEL.store(true, Ordering::Relaxed);
}

/// Clear a cancel request (before a new statement's work starts).
pub fn clear_cancel() {
    CANCEL.store(false, Ordering::Relaxed);
}

pub fn cancel_requested() -> bool {
    CANCEL.load(Ordering::Relaxed)
}

/// Stop here if a cancel was requested: unwinds with [`Cancelled`] (no panic message; the
/// runner that started the job catches it).
pub fn checkpoint() {
    if cancel_requested() {
        std::panic::resume_unwind(Box::new(Cancelled));
    }
}

/// `sks.apply_lookup_table`, after a [`checkpoint`].
pub fn pbs(sks: &ServerKey, ct: &Ciphertext, lut: &LookupTableOwned) -> Ciphertext {
    checkpoint();
    sks.apply_lookup_table(ct, lut)
}

/// `sks.apply_many_lookup_table`, after a [`checkpoint`].
pub fn pbs_many(sks: &ServerKey, ct: &Ciphertext, lut: &ManyLookupTableOwned) -> Vec<Ciphertext> {
    checkpoint();
    sks.apply_many_lookup_table(ct, lut)
}

/// `sks.unchecked_apply_lookup_table_bivariate`, after a [`checkpoint`].
pub fn pbs_bivariate(
    sks: &ServerKey,
    left: &Ciphertext,
    right: &Ciphertext,
    lut: &BivariateLookupTableOwned,
) -> Ciphertext {
    checkpoint();
    sks.unchecked_apply_lookup_table_bivariate(left, right, lut)
}

#[cfg(test)]
mod tests {
    use super::*;

    // The cancel flag is process-wide, so requesting a cancel is tested in its own test
    // binary (tests/cancel.rs), not next to the kernel tests that run in parallel here.
    #[test]
    fn install_runs_on_a_pool_or_in_place() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        assert_eq!(install(Some(&pool), || 6 * 7), 42);
        assert_eq!(install(None, || 1), 1);
        assert!(!cancel_requested());
        checkpoint();
    }
}
