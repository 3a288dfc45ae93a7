//! A simulated site on loopback and the agent config that polls it.
//!
//! Four in five devices are SNMP devices, each its own [`SnmpSim`] (its own UDP port, four
//! inlet temperatures, one GET per poll at the default `max_oids_per_request`); the rest are
//! Modbus TCP devices, [`UNITS_PER_GATEWAY`] unit ids behind each [`ModbusSim`] (an RS-485
//! gateway: the agent takes turns on it), four input registers each. A fault plan makes some
//! SNMP devices dead (no answer) or slow (answer after a delay).

use anyhow::{anyhow, Context, Result};
use coldaisle_testkit::modbus_sim::ModbusSim;
use coldaisle_testkit::snmp_sim::{SimValue, SnmpSim};
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

/// Column of the simulated inlet temperatures (APC rPDU2 probe temperature, tenths of °C).
const TEMP_OID: &str = "1.3.6.1.4.1.318.1.1.26.10.2.2.1.8";
/// Points per device.
const POINTS: usize = 4;
/// Modbus unit ids behind one simulated gateway.
pub const UNITS_PER_GATEWAY: usize = 16;

/// What the SNMP devices of the site do.
#[derive(Debug, Clone, Copy)]
pub struct Faults {
    /// Every `dead_every`-th SNMP device never answers (0: none).
    pub dead_every: usize,
    /// Every `slow_every`-th SNMP device (counted from the middle of each period, so dead
    /// and slow never coincide) answers after `slow_delay` (0: none).
    pub slow_every: usize,
    /// Answer delay of a slow device.
    pub slow_delay: Duration,
}

impl Faults {
    /// Every device healthy.
    pub const NONE: Faults = Faults {
        dead_every: 0,
        slow_every: 0,
        slow_delay: Duration::ZERO,
    };

    /// Whether SNMP device `i` is dead.
    pub fn dead(&self, i: usize) -> bool {
        self.dead_every > 0 && i % self.dead_every == 0
    }

    /// Whether SNMP device `i` is slow.
    pub fn slow(&self, i: usize) -> bool {
        self.slow_every > 0 && i % self.slow_every == self.slow_every / 2
    }
}

/// The simulated devices; dropping it stops them all.
pub struct Site {
    /// One simulator per SNMP device, in device order.
    pub snmp: Vec<SnmpSim>,
    /// One simulator per gateway; gateway `g` serves units `1..=UNITS_PER_GATEWAY`.
    pub gateways: Vec<ModbusSim>,
    /// Modbus devices on the site.
    pub modbus_devices: usize,
}

impl Site {
    /// Starts `devices` simulated healthy devices (4 in 5 SNMP). Must run inside a tokio
    /// runtime.
    pub async fn start(devices: usize) -> Result<Site> {
        let modbus_devices = devices / 5;
        let snmp_devices = devices - modbus_devices;
        let mut snmp = Vec::with_capacity(snmp_devices);
        for i in 0..snmp_devices {
            let sim = SnmpSim::start("public")
                .await
                .context("starting a simulated SNMP device")?;
            for k in 1..=POINTS {
                let tenths = 220 + ((i + k) % 15) as i64;
                sim.set(&format!("{TEMP_OID}.{k}"), SimValue::Integer(tenths))
                    .map_err(|e| anyhow!("{e}"))?;
            }
            snmp.push(sim);
        }
        let mut gateways = Vec::new();
        for g in 0..modbus_devices.div_ceil(UNITS_PER_GATEWAY) {
            let sim = ModbusSim::start()
                .await
                .context("starting a simulated Modbus gateway")?;
            let units = (modbus_devices - g * UNITS_PER_GATEWAY).min(UNITS_PER_GATEWAY);
            for unit in 1..=units {
                let base = 180 + (unit % 10) as u16;
                sim.set_input(unit as u8, 0, &[base, base + 1, base + 100, base + 101]);
            }
            gateways.push(sim);
        }
        Ok(Site {
            snmp,
            gateways,
            modbus_devices,
        })
    }

    /// Makes the SNMP devices `faults` names dead or slow.
    pub fn apply(&self, faults: Faults) {
        for (i, sim) in self.snmp.iter().enumerate() {
            if faults.dead(i) {
                sim.set_silent(true);
            } else if faults.slow(i) {
                sim.set_delay(faults.slow_delay);
            }
        }
    }

    /// The agent's config: every device polled every `interval`, device `timeout`, records
    /// published to the broker on `mqtt_port` as user `agent`, state under `state_dir`.
    pub fn agent_config(
        &self,
        state_dir: &Path,
        mqtt_port: u16,
        interval: Duration,
        timeout: Duration,
    ) -> String {
        let mut text = format!(
            "agent_id = \"{}\"\nsite = \"fleet\"\nstate_dir = \"{}\"\n\
             [mqtt]\nhost = \"127.0.0.1\"\nport = {mqtt_port}\nusername = \"agent\"\n\
             password = \"agent-pass\"\n",
            crate::stack::AGENT_ID,
            state_dir.display()
        );
        let interval = format!("{}ms", interval.as_millis());
        let timeout = format!("{}ms", timeout.as_millis());
        for (i, sim) in self.snmp.iter().enumerate() {
            let _ = write!(
                text,
                "\n[[devices]]\nid = \"snmp-{i}\"\nprotocol = \"snmp\"\naddress = \"{}\"\n\
                 zone = \"Z{}\"\nrow = \"A\"\nrack = \"R{i}\"\ncommunity = \"public\"\n\
                 poll_interval = \"{interval}\"\ntimeout = \"{timeout}\"\n",
                sim.addr(),
                i / 40
            );
            for k in 1..=POINTS {
                let _ = write!(
                    text,
                    "[[devices.points]]\nsensor = \"snmp-{i}-inlet{k}\"\nkind = \"inlet_temp\"\n\
                     oid = \"{TEMP_OID}.{k}\"\nscale = 0.1\n"
                );
            }
        }
        for d in 0..self.modbus_devices {
            let gateway = &self.gateways[d / UNITS_PER_GATEWAY];
            let unit = d % UNITS_PER_GATEWAY + 1;
            let _ = write!(
                text,
                "\n[[devices]]\nid = \"mb-{d}\"\nprotocol = \"modbus\"\naddress = \"{}\"\n\
                 zone = \"C{}\"\nunit_id = {unit}\npoll_interval = \"{interval}\"\n\
                 timeout = \"{timeout}\"\n",
                gateway.addr(),
                d / UNITS_PER_GATEWAY
            );
            for (k, kind) in ["supply_air_temp", "return_air_temp"].iter().enumerate() {
                for (j, end) in ["a", "b"].iter().enumerate() {
                    let _ = write!(
                        text,
                        "[[devices.points]]\nsensor = \"mb-{d}-{kind}-{end}\"\nkind = \"{kind}\"\n\
                         table = \"input\"\nregister = {}\ntype = \"int16\"\nscale = 0.1\n",
                        k * 2 + j
                    );
                }
            }
        }
        text
    }
}
