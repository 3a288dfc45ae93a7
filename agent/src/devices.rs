//! The device tasks of a running agent, one per device, each with its own stop switch so a
//! config reload restarts only the devices whose settings changed.
//!
//! A task is known by its *slot*, a number never reused during the process's life; poll
//! outcomes carry the slot, and the pipeline maps it to the device's index in the config it
//! runs on ([`SlotMap`]). An outcome of a stopped slot (a removed or restarted device, still in
//! flight) maps to nothing and is dropped, so it can never be taken for another device.
//! [`plan_reload`] is the pure diff of two device lists.
//!
//! Memory (issue 18): a device's settings are one `Arc<Device>`, shared by its task, this
//! table and the pipeline ([`crate::pipeline::Pipeline::with_devices`]); nothing here clones a
//! [`Device`].

use crate::poller::{run_device, PollOutcome};
use coldaisle_config::Device;
use std::borrow::Borrow;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// What a reload does to the device tasks, by device id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadPlan {
    /// In the new config only: start.
    pub added: Vec<String>,
    /// In the old config only: stop.
    pub removed: Vec<String>,
    /// In both with different settings (address, points, interval, …): stop, then start.
    pub changed: Vec<String>,
    /// Identical in both: left running (its position in the list may differ).
    pub kept: Vec<String>,
}

impl ReloadPlan {
    /// `devices: 1 added, 0 removed, 1 restarted, 3 kept`.
    pub fn summary(&self) -> String {
        format!(
            "devices: {} added, {} removed, {} restarted, {} kept",
            self.added.len(),
            self.removed.len(),
            self.changed.len(),
            self.kept.len()
        )
    }
}

/// Compares two device lists by id (devices as they are, or shared).
pub fn plan_reload<D: Borrow<Device>>(old: &[D], new: &[D]) -> ReloadPlan {
    let old_by_id: HashMap<&str, &Device> = old
        .iter()
        .map(|d| (d.borrow().id.as_str(), d.borrow()))
        .collect();
    let mut plan = ReloadPlan::default();
    for d in new.iter().map(Borrow::borrow) {
        match old_by_id.get(d.id.as_str()) {
            None => plan.added.push(d.id.clone()),
            Some(o) if *o == d => plan.kept.push(d.id.clone()),
            Some(_) => plan.changed.push(d.id.clone()),
        }
    }
    let new_ids: std::collections::HashSet<&str> =
        new.iter().map(|d| d.borrow().id.as_str()).collect();
    plan.removed = old
        .iter()
        .map(Borrow::borrow)
        .filter(|d| !new_ids.contains(d.id.as_str()))
        .map(|d| d.id.clone())
        .collect();
    plan
}

/// Each device of `new` once, as an `Arc` to share between the pipeline and the device tasks.
/// A device whose settings equal a device of `old` (the devices in force) takes that `Arc`,
/// which its running task holds, so after a reload a kept device is still one copy.
#[must_use]
pub fn share(new: &[Device], old: &[Arc<Device>]) -> Vec<Arc<Device>> {
    let old_by_id: HashMap<&str, &Arc<Device>> = old.iter().map(|d| (d.id.as_str(), d)).collect();
    new.iter()
        .map(|d| match old_by_id.get(d.id.as_str()) {
            Some(&o) if **o == *d => Arc::clone(o),
            _ => Arc::new(d.clone()),
        })
        .collect()
}

/// Slot → index of the device in the pipeline's config.
pub type SlotMap = HashMap<usize, usize>;

struct DeviceTask {
    slot: usize,
    /// Shared with the task itself and the pipeline (one copy of the settings per device).
    device: Arc<Device>,
    stop: watch::Sender<bool>,
    handle: JoinHandle<()>,
}

/// The running device tasks.
pub struct DeviceTasks {
    /// By device id.
    tasks: HashMap<String, DeviceTask>,
    /// Where every task sends its outcomes; dropped by [`DeviceTasks::stop_all`] so the
    /// pipeline sees the end of the stream.
    out: Option<mpsc::Sender<PollOutcome>>,
    next_slot: usize,
    /// Where every task counts its polls (`/metrics`).
    metrics: crate::poll_metrics::PollMetrics,
}

impl std::fmt::Debug for DeviceTasks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceTasks")
            .field("devices", &self.tasks.len())
            .field("next_slot", &self.next_slot)
            .finish()
    }
}

impl DeviceTasks {
    /// No task yet; outcomes go to `out`, poll figures to `metrics`.
    pub fn new(
        out: mpsc::Sender<PollOutcome>,
        metrics: crate::poll_metrics::PollMetrics,
    ) -> DeviceTasks {
        DeviceTasks {
            tasks: HashMap::new(),
            out: Some(out),
            next_slot: 0,
            metrics,
        }
    }

    /// Starts a task for every device of `devices` and returns the slot map for them.
    pub fn start_all(&mut self, devices: &[Arc<Device>]) -> SlotMap {
        for d in devices {
            self.spawn(Arc::clone(d));
        }
        self.slots(devices)
    }

    /// The slot map for `devices` (each must have a running task).
    pub fn slots(&self, devices: &[Arc<Device>]) -> SlotMap {
        devices
            .iter()
            .enumerate()
            .filter_map(|(index, d)| self.tasks.get(&d.id).map(|t| (t.slot, index)))
            .collect()
    }

    /// Stops the tasks of removed and changed devices and assigns fresh slots to changed and
    /// added ones, without starting them yet: returns their devices, to pass to
    /// [`DeviceTasks::start`] once the pipeline knows the new slots.
    pub fn prepare(&mut self, plan: &ReloadPlan, new: &[Arc<Device>]) -> Vec<(usize, Arc<Device>)> {
        for id in plan.removed.iter().chain(&plan.changed) {
            if let Some(task) = self.tasks.remove(id) {
                let _ = task.stop.send(true);
                tracing::info!(device = %id, "device task stopped");
            }
        }
        let mut pending = Vec::new();
        for d in new {
            if plan.added.contains(&d.id) || plan.changed.contains(&d.id) {
                pending.push((self.take_slot(), Arc::clone(d)));
            }
        }
        pending
    }

    /// The slot map for `new` where `pending` devices have their reserved slots.
    pub fn slots_with(&self, new: &[Arc<Device>], pending: &[(usize, Arc<Device>)]) -> SlotMap {
        let mut map = self.slots(new);
        for (slot, d) in pending {
            if let Some(index) = new.iter().position(|n| n.id == d.id) {
                map.insert(*slot, index);
            }
        }
        map
    }

    /// Starts the prepared tasks.
    pub fn start(&mut self, pending: Vec<(usize, Arc<Device>)>) {
        for (slot, device) in pending {
            self.spawn_in(slot, device);
        }
    }

    /// Devices whose task ended on its own (e.g. a device that cannot be polled).
    pub fn ended(&self) -> Vec<&str> {
        self.tasks
            .values()
            .filter(|t| t.handle.is_finished())
            .map(|t| t.device.id.as_str())
            .collect()
    }

    /// Stops every task and waits for them; the outcome stream then ends.
    pub async fn stop_all(&mut self) {
        for task in self.tasks.values() {
            let _ = task.stop.send(true);
        }
        for (_, task) in self.tasks.drain() {
            if let Err(e) = task.handle.await {
                tracing::error!(device = %task.device.id, error = %e, "device task failed");
            }
        }
        self.out = None;
    }

    fn take_slot(&mut self) -> usize {
        let slot = self.next_slot;
        self.next_slot += 1;
        slot
    }

    fn spawn(&mut self, device: Arc<Device>) {
        let slot = self.take_slot();
        self.spawn_in(slot, device);
    }

    fn spawn_in(&mut self, slot: usize, device: Arc<Device>) {
        let Some(out) = self.out.clone() else {
            return;
        };
        let (stop, stop_rx) = watch::channel(false);
        let handle = tokio::spawn(run_device(
            slot,
            device.clone(),
            out,
            stop_rx,
            self.metrics.clone(),
        ));
        self.tasks.insert(
            device.id.clone(),
            DeviceTask {
                slot,
                device,
                stop,
                handle,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coldaisle_config::AgentConfig;

    fn devices(extra: &str) -> Vec<Device> {
        let text = format!(
            r#"
agent_id = "a1"
site = "s1"
state_dir = "/tmp/x"
[mqtt]
host = "127.0.0.1"
[[devices]]
id = "pdu1"
protocol = "snmp"
address = "127.0.0.1:1161"
zone = "Z1"
profile = "apc-rpdu2"
[[devices.points]]
sensor = "t1"
profile_point = "probe1_temp"
[[devices]]
id = "pdu2"
protocol = "snmp"
address = "127.0.0.1:1162"
zone = "Z1"
profile = "apc-rpdu2"
[[devices.points]]
sensor = "t2"
profile_point = "probe1_temp"
{extra}
"#
        );
        AgentConfig::from_str(&text, std::path::Path::new("agent.toml"))
            .unwrap()
            .devices
    }

    #[test]
    fn reload_plan_restarts_only_what_changed() {
        let old = devices("");
        let mut new = devices(
            r#"
[[devices]]
id = "pdu3"
protocol = "snmp"
address = "127.0.0.1:1163"
zone = "Z2"
profile = "apc-rpdu2"
[[devices.points]]
sensor = "t3"
profile_point = "probe1_temp"
"#,
        );
        new[1].address = "127.0.0.1:2162".into();
        new.remove(0);
        let plan = plan_reload(&old, &new);
        assert_eq!(plan.added, vec!["pdu3"]);
        assert_eq!(plan.removed, vec!["pdu1"]);
        assert_eq!(plan.changed, vec!["pdu2"]);
        assert!(plan.kept.is_empty());
        assert_eq!(
            plan.summary(),
            "devices: 1 added, 1 removed, 1 restarted, 0 kept"
        );
        assert_eq!(plan_reload(&old, &old).kept, vec!["pdu1", "pdu2"]);
    }

    #[tokio::test]
    async fn slots_follow_devices_across_a_reload() {
        let (tx, _rx) = mpsc::channel(16);
        let mut tasks = DeviceTasks::new(tx, Default::default());
        let old: Vec<Arc<Device>> = devices("").into_iter().map(Arc::new).collect();
        let map = tasks.start_all(&old);
        assert_eq!(map, SlotMap::from([(0, 0), (1, 1)]));
        // pdu1 removed, pdu2 kept (now at index 0), pdu2b added.
        let mut added = (*old[1]).clone();
        added.id = "pdu2b".into();
        let new = vec![Arc::clone(&old[1]), Arc::new(added)];
        let plan = plan_reload(&old, &new);
        let pending = tasks.prepare(&plan, &new);
        let map = tasks.slots_with(&new, &pending);
        assert_eq!(
            map,
            SlotMap::from([(1, 0), (2, 1)]),
            "slot 0 is gone for good"
        );
        tasks.start(pending);
        tasks.stop_all().await;
        assert!(tasks.ended().is_empty());
    }

    /// The settings are shared, never copied (issue 18): the table and the task hold the
    /// caller's `Arc`, and a reload hands a changed device's new `Arc` on as it is.
    #[tokio::test]
    async fn device_tasks_share_the_callers_settings() {
        let (tx, _rx) = mpsc::channel(16);
        let mut tasks = DeviceTasks::new(tx, Default::default());
        let old: Vec<Arc<Device>> = devices("").into_iter().map(Arc::new).collect();
        tasks.start_all(&old);
        for d in &old {
            let task = tasks.tasks.get(&d.id).expect("started");
            assert!(Arc::ptr_eq(&task.device, d), "{} copied", d.id);
        }
        let mut reloaded = devices("");
        reloaded[0].address = "127.0.0.1:2161".into();
        let new = share(&reloaded, &old);
        assert!(
            Arc::ptr_eq(&new[1], &old[1]),
            "the kept device keeps its Arc"
        );
        assert!(!Arc::ptr_eq(&new[0], &old[0]));
        assert_eq!(*new[0], reloaded[0]);
        let plan = plan_reload(&old, &new);
        assert_eq!((plan.changed.len(), plan.kept.len()), (1, 1));
        let pending = tasks.prepare(&plan, &new);
        assert!(Arc::ptr_eq(&pending[0].1, &new[0]));
        tasks.start(pending);
        for d in &new {
            assert!(
                Arc::ptr_eq(&tasks.tasks[&d.id].device, d),
                "{} copied",
                d.id
            );
        }
        tasks.stop_all().await;
    }

    /// One such future lives per device for the agent's life (issue 18): the poll in flight
    /// is boxed, so the idle task is its ticker, poller and channels, not a few KB of
    /// protocol state machine. Debug builds lay futures out larger than release ones.
    #[tokio::test]
    async fn an_idle_device_task_is_small() {
        let (tx, _rx) = mpsc::channel(16);
        let (_stop, stop_rx) = watch::channel(false);
        let device = Arc::new(devices("").remove(0));
        let task = run_device(0, device, tx, stop_rx, Default::default());
        let size = std::mem::size_of_val(&task);
        assert!(size <= 1024, "device task future: {size} bytes");
    }
}
