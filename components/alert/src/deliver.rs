//! The per-client send loop, the same for Socket.IO and the plain WebSocket.
//!
//! It reads the client's [`Subscription`], skips what the client's [`Filter`] rejects, and
//! feeds the rest to the client's outlet, a `Sink<Outbound>`. The outlet is where a transport's
//! bounded queue lives:
//! - the plain WebSocket's sink waits while the client reads slowly; meanwhile the hub's
//!   broadcast buffer (`ERROR_STREAM_CLIENT_QUEUE` events) fills, and a client that falls
//!   further behind receives `Lagged(n)`;
//! - Socket.IO's sink never waits: socketioxide's per-socket buffer (also
//!   `ERROR_STREAM_CLIENT_QUEUE` messages) refuses a message when full ([`Refusal::Full`]).
//!
//! Either way the event is dropped for that client only, counted, and before its next event
//! the client receives `Missed(n)`: how many events it did not get. Then delivery resumes. A
//! lag counts every event the client fell behind on, so behind a filter `n` is an upper bound.
//!
//! Messages are fed without flushing while more events wait, and flushed when none does, so
//! a burst costs one write per client rather than one per event.

use std::sync::Arc;
use std::time::Duration;

use futures::{Sink, SinkExt as _};
use prometheus_client::metrics::counter::Counter;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

use crate::event::ErrorEvent;
use crate::filter::Filter;
use crate::hub::Subscription;

/// What a client is sent.
#[derive(Debug, Clone)]
pub enum Outbound {
    Event(Arc<ErrorEvent>),
    /// The client did not receive this many events.
    Missed(u64),
    /// Nothing was sent for a while: proves the connection is alive (a WebSocket ping).
    Keepalive,
}

/// Why an outlet did not take a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The client's queue is full: this message is dropped, later ones may pass.
    Full,
    /// The client is gone.
    Closed,
}

/// Where a transport counts what its clients got.
#[derive(Debug, Clone, Default)]
pub struct DeliveryCounters {
    pub delivered: Counter,
    pub dropped: Counter,
}

/// Counts kept locally and added to the shared counters now and then: thousands of clients
/// incrementing one atomic per event would contend on it.
#[derive(Default)]
struct Tally {
    delivered: u64,
    dropped: u64,
}

impl Tally {
    const PUBLISH_EVERY: u64 = 256;

    fn publish(&mut self, counters: &DeliveryCounters) {
        if self.delivered > 0 {
            counters.delivered.inc_by(self.delivered);
        }
        if self.dropped > 0 {
            counters.dropped.inc_by(self.dropped);
        }
        *self = Self::default();
    }
}

/// Sends the subscription to the client until the client or the hub goes away.
/// `keepalive`: after this long without sending, send [`Outbound::Keepalive`].
pub async fn forward<S>(
    subscription: Subscription,
    filter: &Filter,
    mut outlet: S,
    counters: &DeliveryCounters,
    keepalive: Option<Duration>,
) where
    S: Sink<Outbound> + Unpin,
    S::Error: Into<Refusal>,
{
    let Subscription { replay, mut live } = subscription;
    let mut client = Client {
        missed: 0,
        tally: Tally::default(),
    };
    for event in replay {
        if client.offer(&mut outlet, event).await.is_err() {
            return client.tally.publish(counters);
        }
    }
    loop {
        let next = match live.try_recv() {
            Ok(event) => Ok(event),
            Err(TryRecvError::Lagged(n)) => Err(n),
            Err(TryRecvError::Closed) => break,
            Err(TryRecvError::Empty) => {
                // Nothing waiting: push out what is queued and publish the counts, then wait.
                if outlet.flush().await.is_err() {
                    break;
                }
                client.tally.publish(counters);
                let received = match keepalive {
                    None => live.recv().await,
                    Some(every) => match tokio::time::timeout(every, live.recv()).await {
                        Ok(received) => received,
                        Err(_idle) => {
                            if outlet.send(Outbound::Keepalive).await.is_err() {
                                break;
                            }
                            continue;
                        }
                    },
                };
                match received {
                    Ok(event) => Ok(event),
                    Err(RecvError::Lagged(n)) => Err(n),
                    Err(RecvError::Closed) => break,
                }
            }
        };
        match next {
            Ok(event) if filter.matches(&event) => {
                if client.offer(&mut outlet, event).await.is_err() {
                    break;
                }
                if client.tally.delivered >= Tally::PUBLISH_EVERY {
                    client.tally.publish(counters);
                }
            }
            Ok(_) => {}
            Err(lagged) => {
                client.missed += lagged;
                client.tally.dropped += lagged;
            }
        }
    }
    client.tally.publish(counters);
}

/// The client's side of the state machine: events owed a `Missed` notice.
struct Client {
    /// Events dropped since the last notice the client accepted.
    missed: u64,
    tally: Tally,
}

/// The client is gone.
struct Gone;

impl Client {
    async fn offer<S>(&mut self, outlet: &mut S, event: Arc<ErrorEvent>) -> Result<(), Gone>
    where
        S: Sink<Outbound> + Unpin,
        S::Error: Into<Refusal>,
    {
        if self.missed > 0 {
            match outlet.feed(Outbound::Missed(self.missed)).await {
                Ok(()) => self.missed = 0,
                Err(e) => return self.refused(e.into()),
            }
        }
        match outlet.feed(Outbound::Event(event)).await {
            Ok(()) => {
                self.tally.delivered += 1;
                Ok(())
            }
            Err(e) => self.refused(e.into()),
        }
    }

    /// The message (an event, or a notice and the event after it) is dropped.
    fn refused(&mut self, refusal: Refusal) -> Result<(), Gone> {
        match refusal {
            Refusal::Full => {
                self.missed += 1;
                self.tally.dropped += 1;
                Ok(())
            }
            Refusal::Closed => Err(Gone),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use futures::StreamExt as _;
    use futures::channel::mpsc;

    use super::*;
    use crate::hub::Hub;
    use crate::hub::tests::error;

    impl From<mpsc::SendError> for Refusal {
        fn from(e: mpsc::SendError) -> Self {
            if e.is_full() {
                Refusal::Full
            } else {
                Refusal::Closed
            }
        }
    }

    /// Renders what a client saw: `a1` for an event of service a, number 1; `missed:3`.
    fn seen(messages: &[Outbound]) -> Vec<String> {
        messages
            .iter()
            .map(|m| match m {
                Outbound::Event(e) => {
                    let v: serde_json::Value = serde_json::from_str(e.payload.get()).unwrap();
                    format!("{}{}", v["service_name"].as_str().unwrap(), v["n"])
                }
                Outbound::Missed(n) => format!("missed:{n}"),
                Outbound::Keepalive => "keepalive".to_owned(),
            })
            .collect()
    }

    #[tokio::test]
    async fn a_client_gets_its_replay_then_matching_live_events() {
        let hub = Hub::new(10, 16);
        hub.publish(error("a", 1));
        hub.publish(error("b", 2));
        let filter = Filter {
            services: vec!["a".to_owned()],
            ..Filter::default()
        };
        let subscription = hub.subscribe(&filter, 5);
        let (tx, rx) = mpsc::channel(64);
        let counters = DeliveryCounters::default();
        let task = tokio::spawn({
            let counters = counters.clone();
            async move { forward(subscription, &filter, tx, &counters, None).await }
        });
        hub.publish(error("b", 3));
        hub.publish(error("a", 4));
        drop(hub); // closes the feed: the loop ends
        task.await.unwrap();
        let got: Vec<Outbound> = rx.collect().await;
        assert_eq!(seen(&got), ["a1", "a4"]);
        assert_eq!(counters.delivered.get(), 2);
    }

    #[tokio::test]
    async fn a_stalled_client_is_told_what_it_missed_and_resumes() {
        // The client's socket takes 2 messages and then stalls; the hub holds 4 per client.
        let hub = Hub::new(0, 4);
        let subscription = hub.subscribe(&Filter::default(), 0);
        let (tx, rx) = mpsc::channel(0);
        let counters = DeliveryCounters::default();
        let task = tokio::spawn({
            let counters = counters.clone();
            async move { forward(subscription, &Filter::default(), tx, &counters, None).await }
        });
        for n in 0..20 {
            hub.publish(error("a", n));
            tokio::task::yield_now().await;
        }
        // The publisher never waited. Now the client reads everything.
        hub.publish(error("a", 20));
        drop(hub);
        let got: Vec<Outbound> = rx.collect().await;
        task.await.unwrap();
        let seen = seen(&got);
        let missed: u64 = seen
            .iter()
            .filter_map(|s| s.strip_prefix("missed:"))
            .map(|n| n.parse::<u64>().unwrap())
            .sum();
        let events = seen.iter().filter(|s| !s.starts_with("missed")).count() as u64;
        assert!(missed > 0, "{seen:?}");
        assert_eq!(seen.last().unwrap(), "a20", "delivery resumed: {seen:?}");
        assert_eq!(
            events + missed,
            21,
            "every event delivered or counted: {seen:?}"
        );
        assert_eq!(counters.dropped.get(), missed);
    }

    /// Socket.IO's outlet: refuses when its queue is full instead of waiting.
    struct TryOutlet {
        queue: Vec<Outbound>,
        capacity: usize,
    }

    impl Sink<Outbound> for TryOutlet {
        type Error = Refusal;
        fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Refusal>> {
            Poll::Ready(Ok(()))
        }
        fn start_send(mut self: Pin<&mut Self>, item: Outbound) -> Result<(), Refusal> {
            if self.queue.len() == self.capacity {
                return Err(Refusal::Full);
            }
            self.queue.push(item);
            Ok(())
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Refusal>> {
            Poll::Ready(Ok(()))
        }
        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Refusal>> {
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn a_full_queue_drops_and_the_next_accepted_message_is_the_notice() {
        let hub = Hub::new(10, 64);
        for n in 0..5 {
            hub.publish(error("a", n));
        }
        let subscription = hub.subscribe(&Filter::default(), 5);
        drop(hub);
        let mut outlet = TryOutlet {
            queue: Vec::new(),
            capacity: 2,
        };
        let counters = DeliveryCounters::default();
        forward(
            subscription,
            &Filter::default(),
            &mut outlet,
            &counters,
            None,
        )
        .await;
        assert_eq!(seen(&outlet.queue), ["a0", "a1"]);
        assert_eq!((counters.delivered.get(), counters.dropped.get()), (2, 3));

        // Room again: the notice goes first, then the event.
        let hub = Hub::new(10, 64);
        let mut client = Client {
            missed: 3,
            tally: Tally::default(),
        };
        outlet.capacity = 4;
        assert!(client.offer(&mut outlet, error("a", 9)).await.is_ok());
        assert_eq!(seen(&outlet.queue[2..]), ["missed:3", "a9"]);
        assert_eq!(client.missed, 0);
        drop(hub);
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_connection_gets_keepalives() {
        let hub = Hub::new(0, 4);
        let subscription = hub.subscribe(&Filter::default(), 0);
        let (tx, mut rx) = mpsc::channel(8);
        let task = tokio::spawn(async move {
            let counters = DeliveryCounters::default();
            forward(
                subscription,
                &Filter::default(),
                tx,
                &counters,
                Some(Duration::from_secs(30)),
            )
            .await;
        });
        tokio::time::sleep(Duration::from_secs(61)).await;
        drop(hub);
        task.await.unwrap();
        let got: Vec<Outbound> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
        assert_eq!(seen(&got), ["keepalive", "keepalive"]);
    }
}
