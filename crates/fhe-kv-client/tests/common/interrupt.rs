//! Interrupting a running statement the two ways a user does: a query cancel (psql's
//! Ctrl-C, `pg_cancel_backend`, a driver's cancel token) and `statement_timeout`; used
//! by tests/cancel.rs and the cancel-latency benchmark (examples/bench_cancel).

#![allow(dead_code)] // each user needs a different part

use postgres::types::ToSql;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interrupt {
    /// A cancel request on another connection, `after` the statement was sent.
    Cancel,
    /// `SET statement_timeout` to `after` for the statement.
    Timeout,
}

impl Interrupt {
    pub fn label(self) -> &'static str {
        match self {
            Interrupt::Cancel => "cancel",
            Interrupt::Timeout => "statement_timeout",
        }
    }
}

/// How an interrupted statement ended.
pub struct Stopped {
    /// From the interrupt (the cancel request sent, or the timeout's expiry) to the error.
    pub latency: Duration,
    /// The whole statement, from sending it to its error.
    pub elapsed: Duration,
}

/// Run `sql` on `db` and interrupt it `after` it started. Returns how it stopped, or
/// `Err(elapsed)` if it finished first (the interrupt came too late to matter). Panics
/// if it failed with anything but SQLSTATE 57014 (query_canceled).
pub fn interrupt_at(
    db: &mut postgres::Client,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
    how: Interrupt,
    after: Duration,
) -> Result<Stopped, Duration> {
    if how == Interrupt::Timeout {
        db.batch_execute(&format!(
            "SET statement_timeout = {}",
            after.as_millis().max(1)
        ))
        .unwrap();
    }
    let token = db.cancel_token();
    let done = std::sync::atomic::AtomicBool::new(false);
    let started = Instant::now();
    let (outcome, requested) = std::thread::scope(|s| {
        let canceller = s.spawn(|| {
            if how != Interrupt::Cancel {
                return None;
            }
            while started.elapsed() < after {
                if done.load(std::sync::atomic::Ordering::Relaxed) {
                    return None;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            let at = Instant::now();
            token.cancel_query(postgres::NoTls).unwrap();
            Some(at)
        });
        let outcome = db.query(sql, params);
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        (outcome, canceller.join().unwrap())
    });
    let ended = Instant::now();
    if how == Interrupt::Timeout {
        db.batch_execute("RESET statement_timeout").unwrap();
    }
    let elapsed = ended - started;
    match outcome {
        Ok(_) => Err(elapsed),
        Err(e) => {
            let code = e.code().map(|c| c.code().to_string());
            assert_eq!(
                code.as_deref(),
                Some("57014"),
                "{sql}: expected query_canceled, got {e:?}"
            );
            let from = requested.unwrap_or(started + after);
            Ok(Stopped {
                latency: ended.saturating_duration_since(from),
                elapsed,
            })
        }
    }
}
