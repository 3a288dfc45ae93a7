//! The settings of one kind's detector chain, made once and shared (issue 18): every chain
//! built from the same [`ChainSettings`] holds pointers to one allocation per detector's
//! settings instead of a copy in each sensor's slots.

use coldaisle_config::detection::{
    BandSettings, BaselineSettings, ForecastSettings, KindDetection, LimitLevel, RateLimit,
    StepSettings, StuckSettings,
};
use coldaisle_config::Threshold;
use std::sync::Arc;

/// One `Arc` of a kind's optional settings.
fn shared<T: Clone>(x: &Option<T>) -> Option<Arc<T>> {
    x.clone().map(Arc::new)
}

/// A kind's detector settings, each behind an `Arc` that the chains built from it share.
/// Cloning it clones pointers only.
#[derive(Debug, Clone)]
pub struct ChainSettings {
    /// Fixed-limit levels, in the kind's order.
    pub(super) levels: Vec<Arc<LimitLevel>>,
    /// Rate-of-change limits.
    pub(super) rates: Vec<Arc<RateLimit>>,
    /// Stuck detector.
    pub(super) stuck: Option<Arc<StuckSettings>>,
    /// Learned band.
    pub(super) band: Option<Arc<BandSettings>>,
    /// Learned baseline.
    pub(super) baseline: Option<Arc<BaselineSettings>>,
    /// Step change.
    pub(super) step: Option<Arc<StepSettings>>,
    /// Predictive warning.
    pub(super) forecast: Option<Arc<ForecastSettings>>,
    /// Physically possible range.
    pub(super) valid_range: (f64, f64),
    /// Raw vendor sentinels.
    pub(super) sentinels: Arc<[f64]>,
}

impl ChainSettings {
    /// The shared settings of a kind (make it once per kind and build every chain from it).
    #[must_use]
    pub fn new(kind: &KindDetection) -> Self {
        ChainSettings {
            levels: kind.levels.iter().cloned().map(Arc::new).collect(),
            rates: kind.rates.iter().cloned().map(Arc::new).collect(),
            stuck: shared(&kind.stuck),
            band: shared(&kind.band),
            baseline: shared(&kind.baseline),
            step: shared(&kind.step),
            forecast: shared(&kind.forecast),
            valid_range: kind.valid_range,
            sentinels: kind.sentinels.as_slice().into(),
        }
    }

    /// The levels of a sensor whose point has its own threshold `point` (it replaces the upper
    /// limit of the level of its severity, or adds a level): the replaced or added level is the
    /// sensor's own allocation, every other level stays shared.
    pub(super) fn levels_with(&self, point: Option<&Threshold>) -> Vec<Arc<LimitLevel>> {
        let mut levels = self.levels.clone();
        if let Some(p) = point {
            match levels.iter_mut().find(|l| l.severity == p.severity) {
                Some(level) => {
                    let mut own = LimitLevel::clone(level);
                    own.high = Some(p.high);
                    own.hysteresis = p.hysteresis;
                    own.min_duration = p.min_duration;
                    *level = Arc::new(own);
                }
                None => levels.push(Arc::new(p.clone().into())),
            }
        }
        levels
    }
}
