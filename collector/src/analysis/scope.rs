//! Which independent part of the analysis (its *scope*) an event or an action belongs to.
//!
//! The analysis is split into scopes that share no state, so a late input re-evaluates only its
//! own scope. Two inputs must share a scope whenever one can influence the other in a full,
//! in-order pass over everything:
//! - events of one fingerprint `(site, zone, category)` (one incident stream);
//! - incidents that count towards one problem (one problem scope: zone, row or site);
//! - fingerprints whose ids could collide after sanitising (`Z 1` and `Z-1` both become
//!   `z-1`): the later one gets a hash suffix, which depends on the other's existence;
//! - an action and the incident or problem it names (routed by the id itself, so an action
//!   whose target does not exist yet lands where that target would appear).
//!
//! With the zone scope of problems (the default) the scope is the sanitised
//! `{site}-{zone}-{category}` of the fingerprint: exactly the part of an id between its prefix
//! and its time, so ids that can collide share it, and an id names its scope. With the row or
//! site scope, problems span zones (and a row's problem id can collide with another zone's), so
//! the scope is the first `-`-separated segment of the sanitised site, which is also the first
//! segment of every id after its prefix: ids that can collide (equal strings) share it.

use super::history::ScopeSelector;
use crate::model::sanitize;
use crate::problems::{ProblemRules, ProblemScope};
use coldaisle_core::{Category, Fingerprint};

/// How inputs are split into scopes; fixed by the problem rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Partition {
    /// One scope per sanitised fingerprint (problems per zone).
    Fingerprint,
    /// One scope per first segment of the sanitised site (problems per row or per site).
    SiteSegment,
    /// One scope for everything: the reference the split is tested against.
    #[cfg(test)]
    Whole,
}

/// Every category's name, to find where an id's fingerprint part ends.
pub(super) const CATEGORIES: [Category; 5] = [
    Category::Thermal,
    Category::Humidity,
    Category::Cooling,
    Category::Power,
    Category::Device,
];

impl Partition {
    /// The partition the problem rules allow.
    pub(super) fn for_rules(rules: &ProblemRules) -> Self {
        match rules.scope {
            ProblemScope::Zone => Partition::Fingerprint,
            ProblemScope::Row | ProblemScope::Site => Partition::SiteSegment,
        }
    }

    /// The scope of events of `fingerprint`.
    pub(super) fn of_fingerprint(self, fingerprint: &Fingerprint) -> String {
        match self {
            Partition::Fingerprint => sanitize(&format!(
                "{}-{}-{}",
                fingerprint.site, fingerprint.zone, fingerprint.category
            )),
            Partition::SiteSegment => first_segment(&sanitize(&fingerprint.site)).to_string(),
            #[cfg(test)]
            Partition::Whole => String::new(),
        }
    }

    /// Which indexed events ([`super::history`]) make up the scope `scope` of this partition.
    pub(super) fn selector(self, scope: &str) -> ScopeSelector {
        match self {
            Partition::Fingerprint => ScopeSelector::Exact(scope.to_string()),
            Partition::SiteSegment => ScopeSelector::Segment(scope.to_string()),
            #[cfg(test)]
            Partition::Whole => ScopeSelector::All,
        }
    }

    /// The scope an incident or problem id (`inc-…`, `prb-…`) lives in. An id no engine could
    /// have made gets a scope no fingerprint has (an action on it matches nothing there).
    pub(super) fn of_id(self, id: &str) -> String {
        let rest = id.strip_prefix("inc-").or_else(|| id.strip_prefix("prb-"));
        let scope = match self {
            Partition::Fingerprint => rest.and_then(fingerprint_part),
            Partition::SiteSegment => rest.map(|r| first_segment(r).to_string()),
            #[cfg(test)]
            Partition::Whole => Some(String::new()),
        };
        scope.unwrap_or_else(|| NOWHERE.to_string())
    }
}

/// The scope of ids no engine makes: `!` is outside the alphabet of sanitised text.
const NOWHERE: &str = "!";

/// Up to the first `-`.
fn first_segment(text: &str) -> &str {
    text.split('-').next().unwrap_or_default()
}

/// `{site}-{zone}-{category}` of `{site}-{zone}-{category}-{millis}[-{hash}]`: the longest
/// prefix, dropping one to three trailing segments (millis, a minus sign's empty segment, the
/// collision hash), that ends with a category name. Category names are not digits nor hex, so
/// the first match from the end is the category.
fn fingerprint_part(rest: &str) -> Option<String> {
    let segments: Vec<&str> = rest.split('-').collect();
    (1..=3)
        .filter(|&drop| drop < segments.len())
        .map(|drop| &segments[..segments.len() - drop])
        .find(|kept| {
            kept.last()
                .is_some_and(|last| CATEGORIES.iter().any(|c| c.as_str() == *last))
        })
        .map(|kept| kept.join("-"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::model::content_id;
    use coldaisle_core::Timestamp;

    fn fp(site: &str, zone: &str, category: Category) -> Fingerprint {
        Fingerprint {
            site: site.into(),
            zone: zone.into(),
            category,
        }
    }

    #[test]
    fn an_id_names_the_scope_of_its_fingerprint() {
        let cases = [
            fp("dc1", "Z1", Category::Thermal),
            fp("DC 1", "Z-thermal-3", Category::Device),
            fp("dc", "1-z1", Category::Humidity),
            fp("ü", "*", Category::Cooling),
        ];
        for partition in [Partition::Fingerprint, Partition::SiteSegment] {
            for f in &cases {
                for at in [0, 1_764_072_000_000, -5] {
                    let id = content_id("inc", f, Timestamp(at));
                    let scope = partition.of_fingerprint(f);
                    assert_eq!(partition.of_id(&id), scope, "{id}");
                    let suffixed = format!("{}-{:08x}", content_id("prb", f, Timestamp(at)), 0xab);
                    assert_eq!(partition.of_id(&suffixed), scope, "{suffixed}");
                }
            }
        }
    }

    #[test]
    fn the_selector_of_a_scope_picks_exactly_its_fingerprints() {
        let cases = [
            fp("dc1", "Z1", Category::Thermal),
            fp("dc1", "Z10", Category::Thermal),
            fp("dc10", "Z1", Category::Thermal),
            fp("DC 1", "Z-thermal-3", Category::Device),
            fp("dc-1", "z1", Category::Humidity),
        ];
        for partition in [Partition::Fingerprint, Partition::SiteSegment] {
            for a in &cases {
                let selector = partition.selector(&partition.of_fingerprint(a));
                for b in &cases {
                    let index = sanitize(&format!("{}-{}-{}", b.site, b.zone, b.category));
                    assert_eq!(
                        selector.matches(&index),
                        partition.of_fingerprint(a) == partition.of_fingerprint(b),
                        "{partition:?} {a:?} {b:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn fingerprints_whose_ids_collide_share_a_scope() {
        let a = fp("dc-1", "z1", Category::Thermal);
        let b = fp("dc", "1-z1", Category::Thermal);
        assert_eq!(
            content_id("inc", &a, Timestamp(7)),
            content_id("inc", &b, Timestamp(7))
        );
        assert_eq!(
            Partition::SiteSegment.of_fingerprint(&a),
            Partition::SiteSegment.of_fingerprint(&b)
        );
        assert_eq!(
            Partition::Fingerprint.of_fingerprint(&a),
            Partition::Fingerprint.of_fingerprint(&b)
        );
    }

    #[test]
    fn an_id_no_engine_makes_has_a_scope_of_its_own() {
        for partition in [Partition::Fingerprint, Partition::SiteSegment] {
            let scope = partition.of_id("nonsense");
            assert_ne!(
                scope,
                partition.of_fingerprint(&fp("", "", Category::Thermal))
            );
            assert_ne!(scope, partition.of_id("inc-dc1-z1-thermal-5"));
        }
    }
}
