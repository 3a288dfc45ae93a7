//! The simulated colo site of the demo: two zones of racks with APC rPDU2 temperature probes
//! and rack power metering (SNMP) and one APC InRow cooler (Modbus TCP), whose readings the
//! scenario changes.

use anyhow::Context as _;
use coldaisle_core::registers::{encode, RegisterType, WordOrder};
use coldaisle_testkit::modbus_sim::ModbusSim;
use coldaisle_testkit::snmp_sim::{SimValue, SnmpSim};

/// rPDU2 probe 1 temperature (tenths °C) and humidity.
const PROBE_TEMP_OID: &str = "1.3.6.1.4.1.318.1.1.26.10.2.2.1.8.1";
const PROBE_HUMIDITY_OID: &str = "1.3.6.1.4.1.318.1.1.26.10.2.2.1.10.1";

/// One rack PDU with a probe at the rack's inlet.
pub struct RackPdu {
    /// Zone.
    pub zone: &'static str,
    /// Rack name.
    pub rack: &'static str,
    /// The simulated SNMP agent.
    pub sim: SnmpSim,
}

/// The site.
pub struct Site {
    /// Rack PDUs.
    pub pdus: Vec<RackPdu>,
    /// The InRow cooler of zone Z1.
    pub inrow: ModbusSim,
}

/// A rack's power draw before the story changes it (kW).
const NORMAL_RACK_KW: f64 = 4.0;

/// Zone Z1 has three racks cooled by an InRow unit; zone Z2 has two racks.
const RACKS: &[(&str, &str)] = &[
    ("Z1", "R01"),
    ("Z1", "R02"),
    ("Z1", "R03"),
    ("Z2", "R11"),
    ("Z2", "R12"),
];

impl Site {
    /// Starts every simulated device with normal readings.
    pub async fn start() -> anyhow::Result<Site> {
        let mut pdus = Vec::new();
        for (zone, rack) in RACKS {
            let sim = SnmpSim::start("public")
                .await
                .context("starting a simulated PDU")?;
            pdus.push(RackPdu { zone, rack, sim });
        }
        let inrow = ModbusSim::start()
            .await
            .context("starting the simulated InRow")?;
        let site = Site { pdus, inrow };
        for pdu in &site.pdus {
            site.set_inlet(pdu.rack, 22.0)?;
            site.set_power(pdu.rack, NORMAL_RACK_KW)?;
            pdu.sim
                .set(PROBE_HUMIDITY_OID, SimValue::Integer(45))
                .map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        site.set_cooler(18.0, 30.0);
        Ok(site)
    }

    /// Sets a rack's inlet temperature (°C) as its PDU probe reports it.
    pub fn set_inlet(&self, rack: &str, celsius: f64) -> anyhow::Result<()> {
        let pdu = self
            .pdus
            .iter()
            .find(|p| p.rack == rack)
            .with_context(|| format!("no rack {rack}"))?;
        pdu.sim
            .set(
                PROBE_TEMP_OID,
                SimValue::Integer((celsius * 10.0).round() as i64),
            )
            .map_err(|e| anyhow::anyhow!("{e}"))
    }

    /// Sets a rack's power draw (kW) as its rPDU2 reports it (device and phase 1, single
    /// phase at 230 V, so the phase current follows).
    pub fn set_power(&self, rack: &str, kw: f64) -> anyhow::Result<()> {
        let pdu = self
            .pdus
            .iter()
            .find(|p| p.rack == rack)
            .with_context(|| format!("no rack {rack}"))?;
        pdu.sim
            .set_rpdu2_power(kw, kw * 1000.0 / 230.0)
            .map_err(|e| anyhow::anyhow!("{e}"))
    }

    /// Sets the InRow's supply and return air (°C); the unit reports tenths of °F, INT32 ABCD.
    pub fn set_cooler(&self, supply_c: f64, return_c: f64) {
        let tenths_f = |c: f64| (c * 9.0 / 5.0 + 32.0) * 10.0;
        let regs = |c: f64| encode(tenths_f(c), RegisterType::Int32, WordOrder::Abcd);
        // InRow SC map: 92 rack inlet, 94 supply air, 96 return air.
        self.inrow.set_holding(1, 92, &regs(supply_c + 1.0));
        self.inrow.set_holding(1, 94, &regs(supply_c));
        self.inrow.set_holding(1, 96, &regs(return_c));
    }

    /// The agent config for this site.
    pub fn agent_config(&self, state_dir: &std::path::Path, broker_port: u16) -> String {
        let mut text = format!(
            r#"agent_id = "demo-agent"
site = "ams1"
state_dir = "{state}"
summary_interval = "2s"
resend_after = "5s"

[mqtt]
host = "127.0.0.1"
port = {broker_port}

[correlation]
window = "30s"
min_sensors = 2

# The story is time-compressed (overheats 16 s apart): flaps are raises within 2 s of a clear.
[detection]
flap_window = "2s"

# Rack power: a level shift held 4 s (against the 8 s before it) is a density change.
[detection.rack_power]
step_min_duration = "4s"
step_reference = "8s"
"#,
            state = state_dir.display()
        );
        for pdu in &self.pdus {
            text.push_str(&format!(
                r#"
[[devices]]
id = "pdu-{rack}"
protocol = "snmp"
address = "{addr}"
zone = "{zone}"
rack = "{rack}"
profile = "apc-rpdu2"
poll_interval = "500ms"
timeout = "400ms"

[[devices.points]]
sensor = "{rack}-inlet"
profile_point = "probe1_temp"
[devices.points.threshold]
high = 27.0
hysteresis = 1.0
min_duration = "1s"

[[devices.points]]
sensor = "{rack}-humidity"
profile_point = "probe1_humidity"

[[devices.points]]
sensor = "{rack}-power"
profile_point = "device_power"
"#,
                rack = pdu.rack,
                zone = pdu.zone,
                addr = pdu.sim.addr()
            ));
        }
        text.push_str(&format!(
            r#"
[[devices]]
id = "inrow-z1"
protocol = "modbus"
address = "{addr}"
zone = "Z1"
profile = "apc-inrow-modbus"
unit_id = 1
poll_interval = "500ms"
timeout = "400ms"

[[devices.points]]
sensor = "inrow-z1-supply"
profile_point = "supply_air"

[[devices.points]]
sensor = "inrow-z1-return"
profile_point = "return_air"
"#,
            addr = self.inrow.addr()
        ));
        text
    }
}

/// The collector config for the demo: incidents resolve after 3 quiet seconds; problems use
/// the product's default rule (3 incidents of one zone and category within 30 days).
pub fn collector_config(state_dir: &std::path::Path, broker_port: u16) -> String {
    format!(
        r#"collector_id = "demo-collector"
state_dir = "{state}"

[mqtt]
host = "127.0.0.1"
port = {broker_port}

[http]
listen = "127.0.0.1:0"

[incidents]
quiet_period = "3s"

[problems]
min_incidents = 3
window = "30d"
"#,
        state = state_dir.display()
    )
}
