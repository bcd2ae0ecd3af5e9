//! A keyed work queue and its runner, for a controller whose objects are cheap to name:
//! each key queued once however often it is triggered, at most one run per key at a
//! time (a trigger during a run runs it again after), at most `concurrency` runs at
//! once, and a run may ask to run again after a delay.
//!
//! Why not kube's `Controller`: its scheduler keeps an `ObjectRef` (four strings and
//! the kind) per queued object in a hash map and a delay queue, and keeps their capacity
//! after a burst; every policy is queued at once when the operator starts, which left
//! about 0.8 MB of heap per thousand policies behind (`docs/reference/benchmarks.md`).
//! This queue keeps a key in a set and a list while it waits, and a delay only for the
//! keys that asked for one.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::hash::Hash;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, Stream, StreamExt};
use tokio::time::Instant;

/// What a run asks for next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rerun {
    /// Nothing: the next trigger runs the key again.
    OnChange,
    /// Run again after this long, unless a trigger runs it before.
    After(Duration),
}

/// The queue's state, apart from the runs in flight.
struct Queue<T> {
    /// Keys waiting to run, oldest first; each once (see `queued`).
    order: VecDeque<T>,
    queued: HashSet<T>,
    /// Keys running now; those in `rerun` were triggered meanwhile.
    running: HashSet<T>,
    rerun: HashSet<T>,
    /// When each key that asked for a delayed run is due: a due time replaced or
    /// cleared by a trigger makes its timer's firing a no-op.
    due: HashMap<T, Instant>,
}

impl<T: Eq + Hash + Clone> Queue<T> {
    fn new() -> Self {
        Self {
            order: VecDeque::new(),
            queued: HashSet::new(),
            running: HashSet::new(),
            rerun: HashSet::new(),
            due: HashMap::new(),
        }
    }

    fn trigger(&mut self, key: T) {
        self.due.remove(&key);
        if self.running.contains(&key) {
            self.rerun.insert(key);
        } else if self.queued.insert(key.clone()) {
            self.order.push_back(key);
        }
    }

    /// The next key to run, now counted as running.
    fn start(&mut self) -> Option<T> {
        let key = self.order.pop_front()?;
        self.queued.remove(&key);
        self.running.insert(key.clone());
        Some(key)
    }

    /// `key`'s run ended asking for `next`; returns when its timer is due, if it needs
    /// one.
    fn finished(&mut self, key: T, next: Rerun) -> Option<Instant> {
        self.running.remove(&key);
        if self.rerun.remove(&key) {
            self.trigger(key);
            return None;
        }
        match next {
            Rerun::OnChange => None,
            Rerun::After(delay) => {
                let at = Instant::now() + delay;
                self.due.insert(key, at);
                Some(at)
            }
        }
    }

    /// A timer of `key` for `at` fired: it runs if that is still its due time.
    fn timer_fired(&mut self, key: T, at: Instant) {
        if self.due.get(&key) == Some(&at) {
            self.trigger(key);
        }
    }

    fn is_idle(&self) -> bool {
        self.running.is_empty()
    }
}

/// Runs `work` for each key `triggers` yields (see the module's text) until `stop`, then
/// lets the runs in flight finish. `concurrency` 0 means no limit. `triggers` is polled
/// throughout, whatever is running: it may drive a watch.
pub(crate) async fn run<T, F, Fut>(
    triggers: impl Stream<Item = T> + Send,
    concurrency: usize,
    stop: impl Future<Output = ()> + Send,
    work: F,
) where
    T: Eq + Hash + Clone + Send + 'static,
    F: Fn(T) -> Fut,
    Fut: Future<Output = Rerun> + Send + 'static,
{
    let limit = if concurrency == 0 {
        usize::MAX
    } else {
        concurrency
    };
    let mut queue: Queue<T> = Queue::new();
    let mut runs: FuturesUnordered<BoxFuture<'static, (T, Rerun)>> = FuturesUnordered::new();
    let mut timers: FuturesUnordered<BoxFuture<'static, (T, Instant)>> = FuturesUnordered::new();
    let mut triggers = std::pin::pin!(triggers.fuse());
    let mut stop = std::pin::pin!(stop.fuse());
    let mut stopping = false;
    loop {
        while !stopping && runs.len() < limit {
            let Some(key) = queue.start() else { break };
            let run = work(key.clone());
            runs.push(async move { (key, run.await) }.boxed());
        }
        if stopping && queue.is_idle() {
            return;
        }
        tokio::select! {
            () = &mut stop, if !stopping => stopping = true,
            Some((key, next)) = runs.next(), if !runs.is_empty() => {
                if let Some(at) = queue.finished(key.clone(), next) {
                    timers.push(async move {
                        tokio::time::sleep_until(at).await;
                        (key, at)
                    }.boxed());
                }
            }
            Some((key, at)) = timers.next(), if !timers.is_empty() => queue.timer_fired(key, at),
            key = triggers.next(), if !stopping => match key {
                Some(key) => queue.trigger(key),
                // Its sources are gone: the operator is stopping.
                None => stopping = true,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    use futures::channel::mpsc::unbounded;

    #[tokio::test(start_paused = true)]
    async fn a_key_triggered_often_runs_once_and_again_if_triggered_while_running() {
        let (send, triggers) = unbounded::<&'static str>();
        let runs = Arc::new(Mutex::new(Vec::new()));
        let (release, released) = tokio::sync::watch::channel(false);
        let (stop_send, stop) = tokio::sync::oneshot::channel::<()>();
        let recorded = runs.clone();
        let runner = tokio::spawn(run(triggers, 2, stop.map(|_| ()), move |key| {
            let (recorded, mut released) = (recorded.clone(), released.clone());
            async move {
                recorded.lock().unwrap().push(key);
                let _ = released.wait_for(|go| *go).await;
                Rerun::OnChange
            }
        }));
        for key in ["a", "a", "b", "a", "c"] {
            send.unbounded_send(key).unwrap();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        // Two at once: `c` waits; `a` queued once.
        assert_eq!(*runs.lock().unwrap(), vec!["a", "b"]);
        // Triggered while running: runs again after.
        send.unbounded_send("a").unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
        release.send(true).unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(*runs.lock().unwrap(), vec!["a", "b", "c", "a"]);
        stop_send.send(()).unwrap();
        runner.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_delayed_rerun_comes_after_its_delay_and_a_trigger_replaces_it() {
        let (send, triggers) = unbounded::<&'static str>();
        let runs = Arc::new(Mutex::new(Vec::new()));
        let recorded = runs.clone();
        let (stop_send, stop) = tokio::sync::oneshot::channel::<()>();
        let started = Instant::now();
        let runner = tokio::spawn(run(triggers, 0, stop.map(|_| ()), move |key| {
            let recorded = recorded.clone();
            async move {
                let mut runs = recorded.lock().unwrap();
                runs.push((key, started.elapsed().as_secs()));
                // The first run of each key asks to run again in 60 s.
                if runs.iter().filter(|(k, _)| *k == key).count() == 1 {
                    Rerun::After(Duration::from_secs(60))
                } else {
                    Rerun::OnChange
                }
            }
        }));
        send.unbounded_send("slow").unwrap();
        send.unbounded_send("early").unwrap();
        tokio::time::sleep(Duration::from_secs(10)).await;
        send.unbounded_send("early").unwrap();
        tokio::time::sleep(Duration::from_secs(100)).await;
        assert_eq!(
            *runs.lock().unwrap(),
            vec![("slow", 0), ("early", 0), ("early", 10), ("slow", 60)],
            "`early`'s trigger at 10 s replaced its run at 60 s"
        );
        stop_send.send(()).unwrap();
        runner.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn stopping_lets_running_work_finish_and_starts_nothing_new() {
        let (send, triggers) = unbounded::<u32>();
        let finished = Arc::new(Mutex::new(Vec::new()));
        let recorded = finished.clone();
        let (stop_send, stop) = tokio::sync::oneshot::channel::<()>();
        let runner = tokio::spawn(run(triggers, 1, stop.map(|_| ()), move |key| {
            let recorded = recorded.clone();
            async move {
                tokio::time::sleep(Duration::from_secs(1)).await;
                recorded.lock().unwrap().push(key);
                Rerun::OnChange
            }
        }));
        send.unbounded_send(1).unwrap();
        send.unbounded_send(2).unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        stop_send.send(()).unwrap();
        runner.await.unwrap();
        assert_eq!(*finished.lock().unwrap(), vec![1]);
    }
}
