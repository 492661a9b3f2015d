//! Reconciliation permits handed out by priority: an app already under way (its sync ran,
//! its live state changed, a user asked) goes before an app's first comparison.
//!
//! With a first-come queue, a burst of 10,000 new apps compared them all before any
//! second pass: the reconcile that reports an app Synced after its sync waited behind
//! every other app's first comparison, and no app of the burst was Synced until all had
//! a status (40 s at 10,000 apps). Served by priority, apps flow through to Synced while
//! the burst is still being compared.

use std::collections::BinaryHeap;
use std::sync::Mutex;

use tokio::sync::oneshot;

/// Which queue a reconciliation waits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Priority {
    /// An app's first comparison since this worker took it.
    First,
    /// An app compared before: its operation ended, its live state or spec changed, a
    /// user asked for a sync.
    FollowUp,
}

pub struct Permits {
    state: Mutex<State>,
}

struct State {
    available: usize,
    waiting: BinaryHeap<Waiter>,
    /// Orders waiters of one priority first come, first served.
    next: u64,
}

struct Waiter {
    priority: Priority,
    seq: u64,
    wake: oneshot::Sender<()>,
}

impl PartialEq for Waiter {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == std::cmp::Ordering::Equal
    }
}
impl Eq for Waiter {}
impl PartialOrd for Waiter {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Waiter {
    /// The heap's top is the highest priority, then the earliest.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.priority
            .cmp(&other.priority)
            .then_with(|| other.seq.cmp(&self.seq))
    }
}

/// Held while a reconciliation runs; handed to the next waiter when dropped.
pub struct Permit<'a> {
    permits: &'a Permits,
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.permits.release();
    }
}

/// A waiter's side while it waits: a permit handed to it after it stopped waiting (its
/// reconciliation was cancelled) goes back.
struct Waiting<'a> {
    permits: &'a Permits,
    wake: Option<oneshot::Receiver<()>>,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if let Some(mut wake) = self.wake.take() {
            wake.close();
            if wake.try_recv().is_ok() {
                self.permits.release();
            }
        }
    }
}

impl Permits {
    pub fn new(permits: usize) -> Permits {
        Permits {
            state: Mutex::new(State {
                available: permits.max(1),
                waiting: BinaryHeap::new(),
                next: 0,
            }),
        }
    }

    pub async fn acquire(&self, priority: Priority) -> Permit<'_> {
        let wake = {
            let mut state = self.lock();
            if state.available > 0 && state.waiting.is_empty() {
                state.available -= 1;
                return Permit { permits: self };
            }
            let (tx, rx) = oneshot::channel();
            let seq = state.next;
            state.next += 1;
            state.waiting.push(Waiter {
                priority,
                seq,
                wake: tx,
            });
            rx
        };
        let mut waiting = Waiting {
            permits: self,
            wake: Some(wake),
        };
        let woken = waiting.wake.as_mut().expect("set above").await;
        waiting.wake = None;
        match woken {
            Ok(()) => Permit { permits: self },
            // Senders are only dropped after a send; unreachable, but a permit it is not.
            Err(_) => Box::pin(self.acquire(priority)).await,
        }
    }

    /// Hands the permit to the first waiter still waiting, or puts it back.
    fn release(&self) {
        let mut state = self.lock();
        while let Some(waiter) = state.waiting.pop() {
            if waiter.wake.send(()).is_ok() {
                return;
            }
        }
        state.available += 1;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use tokio::sync::mpsc;

    use super::*;

    #[tokio::test]
    async fn follow_ups_go_before_first_comparisons_and_each_queue_in_order() {
        let permits = Arc::new(Permits::new(1));
        let held = permits.acquire(Priority::First).await;
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut tasks = Vec::new();
        for (name, priority) in [
            ("first-a", Priority::First),
            ("first-b", Priority::First),
            ("follow-a", Priority::FollowUp),
            ("follow-b", Priority::FollowUp),
        ] {
            let (shared, tx) = (permits.clone(), tx.clone());
            tasks.push(tokio::spawn(async move {
                let _permit = shared.acquire(priority).await;
                tx.send(name).unwrap();
            }));
            // Queued in this order.
            while permits.lock().waiting.len() < tasks.len() {
                tokio::task::yield_now().await;
            }
        }
        drop(held);
        let mut order = Vec::new();
        for _ in 0..4 {
            order.push(rx.recv().await.unwrap());
        }
        assert_eq!(order, ["follow-a", "follow-b", "first-a", "first-b"]);
        assert_eq!(permits.lock().available, 1);
    }

    #[tokio::test]
    async fn a_cancelled_waiter_gives_its_permit_back() {
        let permits = Arc::new(Permits::new(1));
        let held = permits.acquire(Priority::First).await;
        let waiter = {
            let permits = permits.clone();
            tokio::spawn(async move {
                let _permit = permits.acquire(Priority::FollowUp).await;
                std::future::pending::<()>().await;
            })
        };
        while permits.lock().waiting.is_empty() {
            tokio::task::yield_now().await;
        }
        waiter.abort();
        let _ = waiter.await;
        drop(held);
        let again = tokio::time::timeout(Duration::from_secs(5), permits.acquire(Priority::First))
            .await
            .expect("the permit came back");
        drop(again);
        assert_eq!(permits.lock().available, 1);
    }
}
