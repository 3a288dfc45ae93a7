//! Delivery benchmark: durable outbox appends per second (one flush per record vs. group
//! commit), and end-to-end records per second from the outbox through a real mosquitto into the
//! collector's store and back as acks, next to mosquitto's own QoS 1 ceiling measured with
//! `mosquitto_pub`/`mosquitto_sub` in the same run.
//!
//! Run: `cargo run --release -p coldaisle-benches --bin delivery [-- --records N]`

use anyhow::{bail, Context, Result};
use coldaisle_agent::outbox::Outbox;
use coldaisle_agent::publisher::{self, PublisherSettings};
use coldaisle_benches::outbox_event::event;
use coldaisle_collector::RunningCollector;
use coldaisle_config::CollectorConfig;
use coldaisle_core::wire::{Payload, Topics};
use coldaisle_mqtt::{LinkOptions, MqttLink};
use coldaisle_store::{KvStore, SledStore};
use coldaisle_testkit::peers::Mosquitto;
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn appends(records: u64, per_append: u64) -> Result<f64> {
    let dir = tempfile::tempdir()?;
    let store: Arc<dyn KvStore> = Arc::new(SledStore::open(dir.path())?);
    let mut outbox = Outbox::open(store, "bench", "bench")?;
    let start = Instant::now();
    let mut n = 0;
    while n < records {
        let batch: Vec<Payload> = (n..(n + per_append).min(records)).map(event).collect();
        n += batch.len() as u64;
        outbox.append(batch)?;
    }
    Ok(records as f64 / start.elapsed().as_secs_f64())
}

async fn end_to_end(records: u64) -> Result<f64> {
    let dir = tempfile::tempdir()?;
    let broker = Mosquitto::start(&[("bench", "bench")])?;
    let config = CollectorConfig::from_str(
        &format!(
            "collector_id = \"bench\"\nstate_dir = \"{}\"\n[mqtt]\nhost = \"127.0.0.1\"\nport = {}\nusername = \"bench\"\npassword = \"bench\"\n[http]\nlisten = \"127.0.0.1:0\"\n",
            dir.path().join("collector").display(),
            broker.port()
        ),
        std::path::Path::new("bench-collector.toml"),
    )?;
    let collector = RunningCollector::start(config.clone()).await?;
    let store: Arc<dyn KvStore> = Arc::new(SledStore::open(&dir.path().join("agent"))?);
    let mut outbox = Outbox::open(store, "bench-agent", "bench")?;
    let mut n = 0;
    while n < records {
        let batch: Vec<Payload> = (n..(n + 500).min(records)).map(event).collect();
        n += batch.len() as u64;
        outbox.append(batch)?;
    }
    let outbox = Arc::new(Mutex::new(outbox));
    let notify = Arc::new(tokio::sync::Notify::new());
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let settings = PublisherSettings {
        agent: "bench-agent".into(),
        site: "bench".into(),
        topics: Topics::new("coldaisle/v1"),
        resend_after: Duration::from_secs(30),
        config_hash: "bench".into(),
    };
    let link = MqttLink::open(LinkOptions {
        client_id: "bench-agent".into(),
        config: config.raw.mqtt.clone(),
        password: Some("bench".into()),
        will: None,
        tls: None,
    });
    let start = Instant::now();
    let task = tokio::spawn(publisher::run(
        settings,
        link,
        outbox.clone(),
        notify,
        stop_rx,
    ));
    loop {
        let acked = outbox.lock().map(|o| o.acked()).unwrap_or(0);
        if acked >= records {
            break;
        }
        if start.elapsed() > Duration::from_secs(300) {
            bail!("end-to-end run did not finish: acked {acked} of {records}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let rate = records as f64 / start.elapsed().as_secs_f64();
    let _ = stop.send(true);
    let _ = task.await;
    collector.shutdown().await;
    Ok(rate)
}

/// mosquitto's own QoS 1 throughput for messages of `size` bytes: one `mosquitto_pub -l`
/// publishing `count` lines, one `mosquitto_sub -C count` receiving them.
fn mosquitto_ceiling(count: u64, size: usize) -> Result<f64> {
    let broker = Mosquitto::start(&[("bench", "bench")])?;
    let port = broker.port().to_string();
    let mut sub = Command::new("mosquitto_sub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-u",
            "bench",
            "-P",
            "bench",
            "-q",
            "1",
            "-t",
            "ceiling",
        ])
        .args(["-C", &count.to_string()])
        .stdout(Stdio::null())
        .spawn()
        .context("mosquitto_sub (apt-get install mosquitto-clients)")?;
    std::thread::sleep(Duration::from_millis(300));
    let start = Instant::now();
    let mut publisher = Command::new("mosquitto_pub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-u",
            "bench",
            "-P",
            "bench",
            "-q",
            "1",
            "-t",
            "ceiling",
            "-l",
        ])
        .stdin(Stdio::piped())
        .spawn()
        .context("mosquitto_pub")?;
    {
        let mut stdin = publisher.stdin.take().context("stdin")?;
        let line = "x".repeat(size);
        for _ in 0..count {
            writeln!(stdin, "{line}")?;
        }
    }
    publisher.wait()?;
    sub.wait()?;
    Ok(count as f64 / start.elapsed().as_secs_f64())
}

fn main() -> Result<()> {
    let mut records = 20_000u64;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--records" => records = args.next().context("--records N")?.parse()?,
            other => bail!("unknown flag {other}"),
        }
    }
    let record_bytes = serde_json::to_vec(&event(1))?.len();
    println!("record payload ≈ {record_bytes} bytes of JSON");
    println!(
        "durable appends, 1 record per flush:    {:>10.0} records/s",
        appends(2_000.min(records), 1)?
    );
    println!(
        "durable appends, 100 records per flush: {:>10.0} records/s",
        appends(records, 100)?
    );
    let runtime = tokio::runtime::Runtime::new()?;
    let e2e = runtime.block_on(end_to_end(records))?;
    println!("end to end (outbox → mosquitto → collector store → ack): {e2e:>10.0} records/s");
    let ceiling = mosquitto_ceiling(records, record_bytes)?;
    println!(
        "mosquitto_pub → mosquitto_sub, QoS 1, one message per record: {ceiling:>10.0} messages/s"
    );
    Ok(())
}
