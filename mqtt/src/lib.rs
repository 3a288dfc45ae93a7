//! One MQTT connection, shared by the agent and the collector: builds the client from
//! [`MqttConfig`], drives rumqttc's event loop in its own task (reconnecting with exponential
//! backoff and jitter), and hands the owner a stream of [`LinkEvent`]s.
//!
//! The protocol logic (what to publish, when to ack) stays with the owner; this crate only
//! keeps the connection alive. rumqttc's `publish` enqueues into a bounded channel that this
//! driver drains, so the owner never blocks on the socket.

use coldaisle_config::{MqttConfig, Secret, TlsMaterial};
use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event, LastWill, MqttOptions, Packet, QoS,
    TlsConfiguration, Transport,
};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

pub use rumqttc::{AsyncClient as Client, QoS as Qos};

/// Largest packet either side accepts (batches are kept well below it).
pub const MAX_PACKET_BYTES: usize = 1024 * 1024;

/// What happened on the connection.
#[derive(Debug, Clone, PartialEq)]
pub enum LinkEvent {
    /// The broker accepted the connection (again): (re)subscribe and resend now.
    Connected,
    /// A message arrived on a subscribed topic.
    Message {
        /// Its topic.
        topic: String,
        /// Its payload.
        payload: Vec<u8>,
    },
    /// The connection failed or dropped; the driver is backing off and will reconnect.
    Disconnected(String),
}

/// How to open a link.
#[derive(Debug, Clone)]
pub struct LinkOptions {
    /// MQTT client id (unique per process: a second client with the same id kicks the first).
    pub client_id: String,
    /// Broker settings.
    pub config: MqttConfig,
    /// Password (already read from its file).
    pub password: Option<Secret>,
    /// Retained message the broker publishes if we vanish: `(topic, payload)`.
    pub will: Option<(String, Vec<u8>)>,
    /// TLS material; `None` for plain TCP.
    pub tls: Option<TlsMaterial>,
}

/// A live connection: publish with `client`, read `events`.
#[derive(Debug)]
pub struct MqttLink {
    /// Client handle for publish/subscribe.
    pub client: AsyncClient,
    /// Connection events, in order.
    pub events: mpsc::Receiver<LinkEvent>,
    /// Set by [`MqttLink::close`] so the driver does not report our own disconnect as a loss.
    closing: Arc<AtomicBool>,
    driver: JoinHandle<()>,
}

impl MqttLink {
    /// Starts the connection driver. Connecting happens in the background; wait for
    /// [`LinkEvent::Connected`].
    pub fn open(options: LinkOptions) -> MqttLink {
        let config = &options.config;
        let mut mqtt =
            MqttOptions::new(options.client_id.clone(), config.host.clone(), config.port);
        mqtt.set_keep_alive(config.keep_alive.max(Duration::from_secs(5)));
        mqtt.set_max_packet_size(MAX_PACKET_BYTES, MAX_PACKET_BYTES);
        mqtt.set_clean_session(true);
        if let Some(user) = &config.username {
            let password = options.password.as_ref().map(Secret::expose).unwrap_or("");
            mqtt.set_credentials(user.clone(), password);
        }
        if let Some(tls) = options.tls {
            mqtt.set_transport(Transport::tls_with_config(TlsConfiguration::Simple {
                ca: tls.ca,
                alpn: None,
                client_auth: tls.client,
            }));
        }
        if let Some((topic, payload)) = options.will {
            mqtt.set_last_will(LastWill::new(topic, payload, QoS::AtLeastOnce, true));
        }
        let (client, eventloop) = AsyncClient::new(mqtt, 256);
        let (tx, events) = mpsc::channel(1024);
        let endpoint = format!("{}:{}", config.host, config.port);
        let closing = Arc::new(AtomicBool::new(false));
        let driver = tokio::spawn(drive(eventloop, tx, endpoint, closing.clone()));
        MqttLink {
            client,
            events,
            closing,
            driver,
        }
    }

    /// Disconnects politely (no will is published) and stops the driver.
    pub async fn close(self) {
        self.closing.store(true, Ordering::Relaxed);
        let _ = tokio::time::timeout(Duration::from_secs(2), self.client.disconnect()).await;
        // Give the driver a moment to send DISCONNECT before stopping it.
        tokio::time::sleep(Duration::from_millis(50)).await;
        self.driver.abort();
    }
}

impl Drop for MqttLink {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// Backoff between reconnect attempts: doubles from 250 ms to 10 s, with ±25 % jitter so a
/// fleet of agents does not reconnect in lockstep after a broker restart.
#[derive(Debug)]
struct Backoff {
    next: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(250);
    const MAX: Duration = Duration::from_secs(10);

    fn new() -> Self {
        Backoff { next: Self::FIRST }
    }

    fn reset(&mut self) {
        self.next = Self::FIRST;
    }

    /// The delay to wait now; `entropy` is any varying number (jitter source).
    fn delay(&mut self, entropy: u32) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        let jitter_permille = 750 + u64::from(entropy % 501); // 0.75 ..= 1.25
        Duration::from_millis(
            u64::try_from(base.as_millis()).unwrap_or(u64::MAX) * jitter_permille / 1000,
        )
    }
}

/// How often a continuing outage is logged again at warning level.
pub const OUTAGE_REMINDER: Duration = Duration::from_secs(60);

/// An outage of the broker link as the driver sees it (pure: instants passed in): when it
/// began, how many attempts failed, when it was last reported.
#[derive(Debug, Default, Clone, Copy)]
pub struct Outage {
    since: Option<std::time::Instant>,
    attempts: u32,
    reported: Option<std::time::Instant>,
}

impl Outage {
    /// Counts a failed attempt at `now`; returns how long the link has been down and the
    /// attempts so far when a reminder is due (every [`OUTAGE_REMINDER`], not at once: the
    /// first failure has its own warning).
    pub fn failed(&mut self, now: std::time::Instant) -> Option<(Duration, u32)> {
        let since = *self.since.get_or_insert(now);
        self.attempts += 1;
        let last = *self.reported.get_or_insert(since);
        (now.duration_since(last) >= OUTAGE_REMINDER).then(|| {
            self.reported = Some(now);
            (now.duration_since(since), self.attempts)
        })
    }

    /// Ends the outage at `now`: how long it lasted and the failed attempts, if there was one.
    pub fn end(&mut self, now: std::time::Instant) -> Option<(Duration, u32)> {
        let ended = self
            .since
            .map(|since| (now.duration_since(since), self.attempts));
        *self = Outage::default();
        ended
    }
}

async fn drive(
    mut eventloop: rumqttc::EventLoop,
    tx: mpsc::Sender<LinkEvent>,
    endpoint: String,
    closing: Arc<AtomicBool>,
) {
    let mut backoff = Backoff::new();
    let mut connected = false;
    let mut last_failure: Option<String> = None;
    let mut outage = Outage::default();
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                backoff.reset();
                connected = true;
                last_failure = None;
                match outage.end(std::time::Instant::now()) {
                    Some((down, attempts)) => tracing::info!(
                        broker = %endpoint,
                        down_for_s = down.as_secs(),
                        attempts,
                        "mqtt connected"
                    ),
                    None => tracing::info!(broker = %endpoint, "mqtt connected"),
                }
                if tx.send(LinkEvent::Connected).await.is_err() {
                    return;
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let event = LinkEvent::Message {
                    topic: p.topic.clone(),
                    payload: p.payload.to_vec(),
                };
                if tx.send(event).await.is_err() {
                    return;
                }
            }
            Ok(_) => {}
            Err(_) if closing.load(Ordering::Relaxed) => return,
            Err(e) => {
                let reason = explain(&e);
                if connected {
                    tracing::warn!(broker = %endpoint, error = %reason, "mqtt connection lost");
                } else if last_failure.as_deref() != Some(reason.as_str()) {
                    tracing::warn!(broker = %endpoint, error = %reason, "mqtt connect failed; retrying with backoff");
                } else {
                    tracing::debug!(broker = %endpoint, error = %reason, "mqtt connect failed again");
                }
                if let Some((down, attempts)) = outage.failed(std::time::Instant::now()) {
                    tracing::warn!(
                        broker = %endpoint,
                        error = %reason,
                        down_for_s = down.as_secs(),
                        attempts,
                        "mqtt broker still unreachable; retrying"
                    );
                }
                last_failure = Some(reason.clone());
                connected = false;
                if tx.send(LinkEvent::Disconnected(reason)).await.is_err() {
                    return;
                }
                let entropy = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.subsec_nanos())
                    .unwrap_or(0);
                tokio::time::sleep(backoff.delay(entropy)).await;
            }
        }
    }
}

/// Turns a connection error into a sentence that says what to fix.
pub fn explain(error: &ConnectionError) -> String {
    let raw = error.to_string();
    let hint = match error {
        // mosquitto answers "not authorised" (code 5) for a wrong password too.
        ConnectionError::ConnectionRefused(
            ConnectReturnCode::BadUserNamePassword | ConnectReturnCode::NotAuthorized,
        ) => Some(
            "the broker refused the username or password (check mqtt.username and mqtt.password / mqtt.password_file against the broker's users)",
        ),
        ConnectionError::ConnectionRefused(ConnectReturnCode::BadClientId) => {
            Some("the broker rejected the client id")
        }
        _ if raw.contains("UnknownIssuer") => {
            Some("the broker's certificate is not signed by the CA in mqtt.tls.ca_file")
        }
        _ if raw.contains("Expired") => Some("the broker's certificate has expired"),
        _ if raw.contains("NotValidForName") => {
            Some("the broker's certificate does not name mqtt.host (DNS name or IP address)")
        }
        _ if raw.contains("CertificateRequired") || raw.contains("certificate required") => {
            Some("the broker requires a client certificate (set mqtt.tls.client_cert and client_key)")
        }
        _ if raw.contains("Connection refused") => Some("nothing accepts connections at mqtt.host:mqtt.port"),
        _ => None,
    };
    match hint {
        Some(hint) => format!("{hint} ({raw})"),
        None => raw,
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn an_outage_is_reported_again_every_minute_and_summed_up_at_the_end() {
        let t0 = std::time::Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut outage = Outage::default();
        assert_eq!(
            outage.failed(at(0)),
            None,
            "the first failure has its own warning"
        );
        assert_eq!(outage.failed(at(10)), None);
        assert_eq!(outage.failed(at(60)), Some((Duration::from_secs(60), 3)));
        assert_eq!(outage.failed(at(100)), None);
        assert_eq!(outage.failed(at(125)), Some((Duration::from_secs(125), 5)));
        assert_eq!(outage.end(at(130)), Some((Duration::from_secs(130), 5)));
        // A connect without an outage before it reports none; a new outage starts afresh.
        assert_eq!(outage.end(at(140)), None);
        assert_eq!(outage.failed(at(200)), None);
        assert_eq!(outage.end(at(201)), Some((Duration::from_secs(1), 1)));
    }

    use super::*;

    #[test]
    fn backoff_grows_caps_and_resets() {
        let mut b = Backoff::new();
        let first = b.delay(250); // middle of the jitter range: exactly the base
        assert_eq!(first, Duration::from_millis(250));
        let mut last = first;
        for _ in 0..10 {
            last = b.delay(250);
        }
        assert_eq!(last, Backoff::MAX);
        assert!(b.delay(500) <= Backoff::MAX * 5 / 4);
        b.reset();
        assert_eq!(b.delay(0), Duration::from_millis(187));
    }
}
