//! Keeping the pool's threads awake through a run of short parallel kernels.
//!
//! One sequence through an encoder, or one generated token, is dozens of kernels of tens to hundreds of
//! microseconds, each split over the threads. Between two of them a rayon worker finds no work, spins for a few
//! dozen rounds and goes to sleep; the next kernel then waits for it to be woken. On the 2-core VM this was about
//! 47 sleeps per MiniLM forward of one sequence, and its time went from 25 to over 40 ms whenever the host was busy.
//! [`with_pool_awake`] has the other threads look for work without sleeping until the run is over, as OpenMP's
//! threads do by default.

use std::sync::atomic::{AtomicBool, Ordering};

/// Runs `f` on this thread while the pool's other threads keep looking for its parallel work instead of sleeping
/// between kernels. They spin only until `f` returns (or panics). Results are those of `f` alone.
pub fn with_pool_awake<R>(f: impl FnOnce() -> R) -> R {
    let helpers = rayon::current_num_threads().saturating_sub(1);
    if helpers == 0 {
        return f();
    }
    let done = AtomicBool::new(false);
    // `in_place_scope` runs `f` on this thread, in the pool or not; the helpers are jobs on the pool
    let owner = rayon::current_thread_index();
    rayon::in_place_scope(|s| {
        let done = &done;
        for _ in 0..helpers {
            s.spawn(move |_| {
                // the owner may pop a helper job itself while it waits inside `f`: it must not spin there
                if rayon::current_thread_index() == owner {
                    return;
                }
                while !done.load(Ordering::Acquire) {
                    if let Some(rayon::Yield::Idle) | None = rayon::yield_now() {
                        std::hint::spin_loop();
                    }
                }
            });
        }
        // set even if `f` panics, or the scope would wait for the helpers forever
        struct Done<'a>(&'a AtomicBool);
        impl Drop for Done<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Release);
            }
        }
        let _done = Done(done);
        f()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rayon::prelude::*;

    fn pool(n: usize) -> rayon::ThreadPool {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .unwrap()
    }

    fn work() -> u64 {
        // many short parallel regions, as in a forward pass
        (0..200u64)
            .map(|i| (0..1000u64).into_par_iter().map(|j| i * j % 7).sum::<u64>())
            .sum()
    }

    #[test]
    fn same_result_on_any_pool_and_from_outside_one() {
        let want = work();
        for n in [1, 2, 3, 4] {
            assert_eq!(
                pool(n).install(|| with_pool_awake(work)),
                want,
                "{n} threads"
            );
        }
        assert_eq!(with_pool_awake(work), want);
        // nested, and called again right after: helpers of the first run have all stopped
        let p = pool(2);
        let nested =
            p.install(|| with_pool_awake(|| with_pool_awake(work) + with_pool_awake(work)));
        assert_eq!(nested, 2 * want);
    }

    #[test]
    fn the_caller_never_spins_as_a_helper() {
        // The other thread is held busy, so the helper job stays in the caller's queue; the caller runs it itself
        // when it yields (as it may while it waits for stolen work). Spinning there would never end.
        let p = pool(2);
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        p.spawn(move || {
            started_tx.send(()).unwrap();
            let _ = release_rx.recv();
        });
        started_rx.recv().unwrap();
        // on its own thread, so that a deadlock fails the test instead of hanging it
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let got = p.install(|| {
                with_pool_awake(|| {
                    let ran = rayon::yield_local();
                    (ran, work())
                })
            });
            done_tx.send(got)
        });
        let got = done_rx.recv_timeout(std::time::Duration::from_secs(60));
        release_tx.send(()).unwrap();
        let (ran, sum) = got.expect("with_pool_awake never returned");
        assert_eq!(
            ran,
            Some(rayon::Yield::Executed),
            "the caller ran no helper job"
        );
        assert_eq!(sum, work());
    }

    #[test]
    fn a_panic_in_f_reaches_the_caller_and_stops_the_helpers() {
        let p = pool(2);
        let r = p.install(|| {
            std::panic::catch_unwind(|| {
                with_pool_awake(|| {
                    work();
                    panic!("boom")
                })
            })
        });
        assert!(r.is_err());
        // the pool is still usable: no helper is left spinning on it
        assert_eq!(p.install(|| with_pool_awake(work)), work());
    }
}
