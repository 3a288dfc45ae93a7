//! The demo's embedded MQTT broker (rumqttd) on a free loopback port. rumqttd has no shutdown
//! call, so it runs on its own thread until the process ends: fine for the demo, not for
//! deployments (use mosquitto or a broker cluster there).

use anyhow::Context as _;

/// Starts rumqttd on `127.0.0.1:{port}` in a background thread.
pub fn start(port: u16) -> anyhow::Result<()> {
    let config_text = format!(
        r#"
id = 0
[router]
id = 0
max_connections = 100
max_outgoing_packet_count = 200
max_segment_size = 104857600
max_segment_count = 10

[v4.1]
name = "demo"
listen = "127.0.0.1:{port}"
next_connection_delay_ms = 1
    [v4.1.connections]
    connection_timeout_ms = 60000
    max_payload_size = 1048576
    max_inflight_count = 100
    dynamic_filters = true
"#
    );
    let config: rumqttd::Config =
        toml::from_str(&config_text).context("building the embedded broker's config")?;
    std::thread::Builder::new()
        .name("demo-broker".into())
        .spawn(move || {
            let mut broker = rumqttd::Broker::new(config);
            if let Err(e) = broker.start() {
                eprintln!("embedded broker stopped: {e}");
            }
        })
        .context("starting the embedded broker thread")?;
    Ok(())
}

/// A free TCP port on loopback (bound, then released).
pub fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr().context("reading the port")?.port())
}

/// Waits until something accepts TCP connections on the port.
pub async fn wait_listening(port: u16) -> anyhow::Result<()> {
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    anyhow::bail!("embedded broker did not start listening on port {port}")
}
