//! Alert's Prometheus metrics, under the `panopticon_alert` prefix.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::deliver::DeliveryCounters;

/// The two ways to connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    SocketIo,
    WebSocket,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::SocketIo => "socketio",
            Transport::WebSocket => "websocket",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TransportLabel {
    /// `socketio` or `websocket`.
    pub transport: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RejectLabel {
    /// `origin`, `auth`, `parameter` or `capacity`.
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InvalidLabel {
    /// [`panopticon_model::Reason::code`]: `invalid_json`, `missing`, …
    pub reason: &'static str,
}

/// Every metric of alert. Cheap to clone (handles).
#[derive(Clone)]
pub struct Metrics {
    pub clients: Family<TransportLabel, Gauge>,
    pub rejected: Family<RejectLabel, Counter>,
    pub events_received: Counter,
    pub events_invalid: Family<InvalidLabel, Counter>,
    pub socketio: DeliveryCounters,
    pub websocket: DeliveryCounters,
    pub event_delay_seconds: Histogram,
    pub partitions: Gauge,
}

impl Metrics {
    pub fn register(registry: &mut Registry) -> Self {
        let delivered = Family::<TransportLabel, Counter>::default();
        let dropped = Family::<TransportLabel, Counter>::default();
        let clients = Family::<TransportLabel, Gauge>::default();
        // Handles on the families' children (clones share the value), so a client counts
        // without a family lookup per event.
        let counters = |transport: Transport| {
            let label = TransportLabel {
                transport: transport.as_str(),
            };
            // Present (at 0) before the first client connects.
            drop(clients.get_or_create(&label));
            DeliveryCounters {
                delivered: delivered.get_or_create(&label).clone(),
                dropped: dropped.get_or_create(&label).clone(),
            }
        };
        let m = Self {
            socketio: counters(Transport::SocketIo),
            websocket: counters(Transport::WebSocket),
            clients,
            rejected: Family::default(),
            events_received: Counter::default(),
            events_invalid: Family::default(),
            event_delay_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            partitions: Gauge::default(),
        };
        let r = registry.sub_registry_with_prefix("panopticon_alert");
        r.register(
            "clients",
            "Clients connected now, by transport",
            m.clients.clone(),
        );
        r.register(
            "connections_rejected",
            "Connection attempts refused, by reason",
            m.rejected.clone(),
        );
        r.register(
            "events_received",
            "Valid errors read from the error topic",
            m.events_received.clone(),
        );
        r.register(
            "events_invalid",
            "Error-topic events that failed validation and were skipped, by reason",
            m.events_invalid.clone(),
        );
        r.register(
            "events_delivered",
            "Errors handed to clients' connections, by transport (one per client)",
            delivered,
        );
        r.register(
            "events_dropped",
            "Errors a slow client did not receive (it is told how many), by transport",
            dropped,
        );
        r.register(
            "event_delay_seconds",
            "From the error-topic record's timestamp to its publication to clients",
            m.event_delay_seconds.clone(),
        );
        r.register(
            "error_topic_partitions",
            "Partitions of the error topic this replica reads",
            m.partitions.clone(),
        );
        m
    }

    pub fn counters(&self, transport: Transport) -> &DeliveryCounters {
        match transport {
            Transport::SocketIo => &self.socketio,
            Transport::WebSocket => &self.websocket,
        }
    }

    pub fn clients(&self, transport: Transport) -> Gauge {
        self.clients
            .get_or_create(&TransportLabel {
                transport: transport.as_str(),
            })
            .clone()
    }

    pub fn reject(&self, reason: &'static str) {
        self.rejected.get_or_create(&RejectLabel { reason }).inc();
    }
}
