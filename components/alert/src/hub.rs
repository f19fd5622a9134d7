//! The hub between the one Kafka consumer and every connected client.
//!
//! The consumer [`publish`](Hub::publish)es each error into a `broadcast` channel, which never
//! waits for a receiver: a slow client cannot slow the consumer or anyone else. Each client
//! holds its own receiver; one that falls more than the channel's capacity behind gets
//! `Lagged(n)` and is told it missed `n` events (see [`crate::deliver`]).
//!
//! The hub also keeps the most recent errors for replay. [`subscribe`](Hub::subscribe) takes
//! the replay and the receiver under the same lock `publish` holds, so a new client gets every
//! error exactly once: either in its replay or from its receiver, never both, never neither.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::broadcast;

use crate::event::ErrorEvent;
use crate::filter::Filter;

pub struct Hub {
    recent: Mutex<VecDeque<Arc<ErrorEvent>>>,
    replay_size: usize,
    sender: broadcast::Sender<Arc<ErrorEvent>>,
}

/// What a new client starts from.
pub struct Subscription {
    /// The most recent matching errors it asked for, oldest first.
    pub replay: Vec<Arc<ErrorEvent>>,
    /// Every error published after the replay was taken.
    pub live: broadcast::Receiver<Arc<ErrorEvent>>,
}

impl Hub {
    /// `replay_size` errors are kept for replay; a client may fall `capacity` events behind
    /// before it misses some.
    pub fn new(replay_size: usize, capacity: usize) -> Self {
        Self {
            recent: Mutex::new(VecDeque::with_capacity(replay_size)),
            replay_size,
            sender: broadcast::channel(capacity.max(1)).0,
        }
    }

    /// Sends an error to every client and keeps it for replay.
    pub fn publish(&self, event: Arc<ErrorEvent>) {
        let mut recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        self.keep(&mut recent, event.clone());
        // An error means nobody is connected: nothing to do.
        if self.sender.send(event).is_err() {}
    }

    /// Keeps an error for replay without sending it: the history read at start.
    pub fn remember(&self, event: Arc<ErrorEvent>) {
        let mut recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        self.keep(&mut recent, event);
    }

    /// Keeps `event` in record-timestamp order: partitions are fetched in batches, one after
    /// another, so read order is not time order, and "most recent" must mean newest.
    fn keep(&self, recent: &mut VecDeque<Arc<ErrorEvent>>, event: Arc<ErrorEvent>) {
        if self.replay_size == 0 {
            return;
        }
        let mut at = recent
            .iter()
            .rposition(|e| e.produced_at_ms <= event.produced_at_ms)
            .map_or(0, |i| i + 1);
        if recent.len() == self.replay_size {
            if at == 0 {
                // Older than everything kept.
                return;
            }
            recent.pop_front();
            at -= 1;
        }
        recent.insert(at, event);
    }

    /// A new client: up to `replay` of the most recent errors `filter` matches, and the live feed.
    pub fn subscribe(&self, filter: &Filter, replay: usize) -> Subscription {
        let recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        let live = self.sender.subscribe();
        let mut replayed: Vec<Arc<ErrorEvent>> = recent
            .iter()
            .rev()
            .filter(|e| filter.matches(e))
            .take(replay)
            .cloned()
            .collect();
        drop(recent);
        replayed.reverse();
        Subscription {
            replay: replayed,
            live,
        }
    }

    /// Errors currently kept for replay.
    pub fn recent_len(&self) -> usize {
        self.recent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use panopticon_model::Level;
    use serde_json::value::RawValue;

    pub(crate) fn error(service: &str, n: u32) -> Arc<ErrorEvent> {
        Arc::new(ErrorEvent {
            service: service.to_owned(),
            environment: "production".to_owned(),
            level: Level::Error,
            payload: RawValue::from_string(format!(r#"{{"service_name":"{service}","n":{n}}}"#))
                .unwrap(),
            produced_at_ms: None,
        })
    }

    fn ns(events: &[Arc<ErrorEvent>]) -> Vec<String> {
        events.iter().map(|e| e.payload.get().to_owned()).collect()
    }

    #[test]
    fn replay_is_the_most_recent_matching_errors_oldest_first() {
        let hub = Hub::new(4, 16);
        for n in 0..6 {
            hub.publish(error(if n % 2 == 0 { "a" } else { "b" }, n));
        }
        assert_eq!(hub.recent_len(), 4, "bounded by the replay size");
        let all = hub.subscribe(&Filter::default(), 10);
        assert_eq!(
            ns(&all.replay),
            ns(&[error("a", 2), error("b", 3), error("a", 4), error("b", 5)])
        );
        let only_a = Filter {
            services: vec!["a".to_owned()],
            ..Filter::default()
        };
        assert_eq!(ns(&hub.subscribe(&only_a, 1).replay), ns(&[error("a", 4)]));
        assert!(hub.subscribe(&Filter::default(), 0).replay.is_empty());
    }

    #[test]
    fn a_subscriber_gets_each_error_once_across_replay_and_live() {
        let hub = Hub::new(10, 16);
        hub.publish(error("a", 1));
        let mut sub = hub.subscribe(&Filter::default(), 10);
        hub.publish(error("a", 2));
        hub.remember(error("a", 3));
        assert_eq!(ns(&sub.replay), ns(&[error("a", 1)]));
        assert_eq!(
            sub.live.try_recv().unwrap().payload.get(),
            error("a", 2).payload.get()
        );
        assert!(
            sub.live.try_recv().is_err(),
            "remembered history is not sent live"
        );
    }

    #[test]
    fn history_read_partition_by_partition_replays_the_newest() {
        let hub = Hub::new(3, 16);
        let at = |n: u32| {
            let e = error("a", n);
            Arc::new(ErrorEvent {
                service: e.service.clone(),
                environment: e.environment.clone(),
                level: e.level,
                payload: e.payload.clone(),
                produced_at_ms: Some(i64::from(n)),
            })
        };
        // Partition 0 holds 0, 2, 4 and partition 1 holds 1, 3, 5 (times = n).
        for n in [0, 2, 4, 1, 3, 5] {
            hub.remember(at(n));
        }
        let sub = hub.subscribe(&Filter::default(), 3);
        let newest: Vec<String> = [3, 4, 5].map(|n| at(n).payload.get().to_owned()).to_vec();
        assert_eq!(ns(&sub.replay), newest);
    }

    #[test]
    fn replay_off_keeps_nothing() {
        let hub = Hub::new(0, 4);
        hub.publish(error("a", 1));
        assert_eq!(hub.recent_len(), 0);
    }
}
