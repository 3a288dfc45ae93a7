//! Tests of the facility report on constructed roll-ups.

use super::*;
use crate::analysis::StoredEvent;
use crate::report::ashrae::{AshraeClass, Standing};
use crate::report::figures::tests::bucket;
use crate::report::tests::{inlet_event, location, state, T0};
use coldaisle_core::wire::Payload;
use coldaisle_core::{EventState, SensorEvent, Severity};

const MIN: i64 = 60_000;
const FROM: i64 = T0;
const TO: i64 = T0 + 60 * MIN;

/// A minute bucket of `sensor` at minute `m` of the period (negative: the previous period).
fn at(
    sensor: &str,
    kind: SensorKind,
    row: Option<&str>,
    rack: Option<&str>,
    m: i64,
    v: (f64, f64, f64),
) -> Rollup {
    let mut b = bucket(sensor, kind, rack, FROM + m * MIN, 6, v);
    b.location.row = row.map(str::to_string);
    b
}

fn inlet(sensor: &str, row: Option<&str>, rack: &str, m: i64, v: (f64, f64, f64)) -> Rollup {
    at(sensor, SensorKind::InletTemp, row, Some(rack), m, v)
}

fn report_of(
    zones: &[String],
    now: &[Rollup],
    before: &[Rollup],
    incidents: &[Incident],
    problems: &[Problem],
) -> FacilityReport {
    build(&Inputs {
        site: "dc1",
        zones,
        from: Timestamp(FROM),
        to: Timestamp(TO),
        level: Level::Minute,
        buckets: BucketParts::whole(now),
        previous_level: Level::Minute,
        previous: before,
        incidents,
        problems,
        envelope: Envelope::of(AshraeClass::A1),
        stale_after: Duration::from_secs(600),
    })
}

fn z1() -> Vec<String> {
    vec!["Z1".to_string()]
}

#[test]
fn rows_and_racks_in_natural_order_with_their_trend() {
    let now = vec![
        inlet("s10", Some("B"), "R10", 58, (22.0, 23.0, 24.0)),
        inlet("s2", Some("B"), "R2", 58, (28.0, 29.0, 30.0)),
        inlet("s1", Some("A"), "R1", 57, (21.0, 22.0, 23.0)),
        inlet("s1", Some("A"), "R1", 58, (23.0, 24.0, 25.0)),
        at(
            "p1",
            SensorKind::RackPower,
            Some("A"),
            Some("R1"),
            58,
            (3.0, 3.0, 3.0),
        ),
        inlet("loose", None, "R9", 58, (20.0, 20.0, 20.0)),
    ];
    let before = vec![inlet("s1", Some("A"), "R1", -10, (19.0, 20.0, 21.0))];
    let report = report_of(&z1(), &now, &before, &[], &[]);
    assert_eq!(report.schema, SCHEMA);
    assert_eq!(report.period_secs, 3600);
    let zone = &report.zones[0];
    let rows: Vec<(&str, Vec<&str>)> = zone
        .rows
        .iter()
        .map(|r| {
            (
                r.row.as_str(),
                r.racks.iter().map(|k| k.rack.as_str()).collect(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            ("A", vec!["R1"]),
            ("B", vec!["R2", "R10"]),
            (NO_ROW, vec!["R9"])
        ]
    );
    let r1 = &zone.rows[0].racks[0];
    assert_eq!(r1.sensors, 2, "inlet and power sensors");
    assert_eq!(r1.inlet.stats.avg, Some(23.0));
    assert_eq!(r1.inlet.stats.current, Some(24.0));
    assert_eq!(r1.trend.previous_avg, Some(20.0));
    assert_eq!(r1.trend.avg_delta, Some(3.0));
    assert_eq!(r1.trend.max_delta, Some(4.0));
    let r2 = &zone.rows[1].racks[0];
    assert_eq!(r2.inlet.worst, Some(Standing::Allowable));
    assert_eq!(r2.trend.avg_delta, None, "no previous samples");
    // The zone merges every inlet sensor; power stays out.
    assert_eq!(zone.inlet.stats.samples, 5 * 6);
    assert_eq!(zone.inlet.stats.max, Some(30.0));
    assert_eq!(zone.trend.previous_max, Some(21.0));
    assert_eq!(zone.trend.max_delta, Some(9.0));
}

#[test]
fn humidity_dew_point_and_cooling_units() {
    let now = vec![
        at(
            "h1",
            SensorKind::Humidity,
            None,
            None,
            50,
            (40.0, 45.0, 85.0),
        ),
        at(
            "d1",
            SensorKind::DewPoint,
            None,
            None,
            50,
            (9.0, 10.0, 11.0),
        ),
        at(
            "crac-1-supply",
            SensorKind::SupplyAirTemp,
            None,
            None,
            50,
            (17.0, 18.0, 19.0),
        ),
        at(
            "crac-1-return",
            SensorKind::ReturnAirTemp,
            None,
            None,
            50,
            (29.0, 30.0, 31.0),
        ),
        at(
            "crac-1-return",
            SensorKind::ReturnAirTemp,
            None,
            None,
            51,
            (31.0, 32.0, 33.0),
        ),
        at(
            "inrow7_sat",
            SensorKind::SupplyAirTemp,
            None,
            None,
            50,
            (15.0, 16.0, 17.0),
        ),
    ];
    let report = report_of(&z1(), &now, &[], &[], &[]);
    let zone = &report.zones[0];
    let humidity = zone.humidity.as_ref().expect("humidity sensors");
    assert_eq!(humidity.stats.avg, Some(45.0));
    assert_eq!(
        humidity.worst,
        Some(Standing::OutsideAllowable),
        "85 % > 80 %"
    );
    assert_eq!(
        humidity.allowable.above,
        SecsRange {
            at_least: 0,
            at_most: 60
        }
    );
    let dew = zone.dew_point.as_ref().expect("dew point sensors");
    assert_eq!(dew.standing, Some(Standing::Recommended));
    let units: Vec<&str> = zone.cooling_units.iter().map(|u| u.unit.as_str()).collect();
    assert_eq!(units, vec!["crac-1", "inrow7_sat"]);
    let crac = &zone.cooling_units[0];
    assert_eq!(crac.supply.avg, Some(18.0));
    assert_eq!(crac.return_air.avg, Some(31.0));
    assert_eq!(crac.delta_t_avg, Some(13.0));
    assert_eq!(crac.delta_t_current, Some(32.0 - 18.0));
    let unpaired = &zone.cooling_units[1];
    assert_eq!(unpaired.delta_t_avg, None, "no return sensor");
    // Without such sensors the measures are absent, not zero.
    let report = report_of(&z1(), &[], &[], &[], &[]);
    assert_eq!(report.zones[0].humidity, None);
    assert_eq!(report.zones[0].dew_point, None);
}

#[test]
fn cooling_unit_names_strip_the_side() {
    assert_eq!(cooling_unit_name("inrow-z1-supply"), "inrow-z1");
    assert_eq!(cooling_unit_name("CRAC2_Return_Air"), "CRAC2");
    assert_eq!(cooling_unit_name("supply"), "supply");
    assert_eq!(cooling_unit_name("crac-3-sat"), "crac-3-sat");
}

#[test]
fn hot_spots_are_ranked_by_p95_and_capped() {
    let mut now: Vec<Rollup> = (0..12)
        .map(|i| {
            let hi = 28.0 + i as f64;
            inlet(
                &format!("s{i:02}"),
                Some("A"),
                "R1",
                50,
                (hi - 1.0, hi - 0.5, hi),
            )
        })
        .collect();
    now.push(inlet("cool", Some("A"), "R2", 50, (20.0, 21.0, 22.0)));
    let report = report_of(&z1(), &now, &[], &[], &[]);
    let spots = &report.zones[0].hot_spots;
    assert_eq!(spots.len(), HOT_SPOTS);
    assert_eq!(spots[0].sensor, "s11");
    assert_eq!(spots[0].p95, Some(39.0));
    assert_eq!(spots[9].sensor, "s02");
    assert!(spots.iter().all(|s| s.sensor != "cool"));
    assert_eq!(
        spots[0].above_allowable,
        SecsRange {
            at_least: 60,
            at_most: 60
        }
    );
    assert_eq!(spots[0].rack, "R1");
}

fn device_event(seq: u64, sensor: &str, ts: i64) -> StoredEvent {
    StoredEvent {
        agent: "a1".into(),
        seq,
        payload: Payload::SensorEvent(SensorEvent {
            sensor: sensor.into(),
            kind: SensorKind::InletTemp,
            location: location("dc1", "Z1", Some("R1")),
            category: Category::Device,
            detector: "stuck".into(),
            state: EventState::Raised,
            severity: Severity::Warning,
            value: 21.0,
            limit: None,
            first_ts: Timestamp(ts),
            ts: Timestamp(ts),
            expected_crossing: None,
        }),
    }
}

#[test]
fn stale_faulty_sensors_incidents_and_problems() {
    let now = vec![
        inlet("fresh", Some("A"), "R1", 59, (20.0, 21.0, 22.0)),
        inlet("late", Some("A"), "R1", 30, (20.0, 21.0, 22.0)),
    ];
    let before = vec![inlet("gone", Some("A"), "R1", -5, (20.0, 25.0, 22.0))];
    let st = state(
        Vec::new(),
        vec![
            device_event(1, "late", FROM + 30 * MIN),
            inlet_event(
                2,
                location("dc1", "Z1", Some("R1")),
                "fresh",
                EventState::Raised,
                Severity::Critical,
                FROM + 40 * MIN,
            ),
            inlet_event(
                3,
                location("dc1", "Z2", Some("R1")),
                "other",
                EventState::Raised,
                Severity::Critical,
                FROM + 40 * MIN,
            ),
        ],
    );
    let incidents = st.analysis.incidents(Timestamp(TO));
    let problems = st.analysis.problems();
    let report = report_of(&z1(), &now, &before, &incidents, &problems);
    let zone = &report.zones[0];
    let stale: Vec<(&str, f64)> = zone
        .stale_sensors
        .iter()
        .map(|s| (s.sensor.as_str(), s.last))
        .collect();
    assert_eq!(stale, vec![("gone", 25.0), ("late", 21.0)]);
    assert_eq!(zone.faulty_sensors.len(), 1, "{:?}", zone.faulty_sensors);
    assert_eq!(zone.faulty_sensors[0].name, "late");
    assert_eq!(zone.faulty_sensors[0].detector.as_deref(), Some("stuck"));
    // Z1's thermal and device incidents; Z2's stays out.
    assert_eq!(zone.open_incidents.len(), 2);
    assert!(
        zone.open_incidents.iter().all(|i| i.id.contains("z1")),
        "{:?}",
        zone.open_incidents
    );
    assert_eq!(
        zone.open_problems.len(),
        1,
        "the critical thermal incident is SLA-impacting"
    );
    assert_eq!(zone.rows[0].racks[0].open_incidents, 2);
}

#[test]
fn empty_period_gives_a_zone_without_figures() {
    let report = report_of(&z1(), &[], &[], &[], &[]);
    let zone = &report.zones[0];
    assert!(zone.rows.is_empty());
    assert_eq!(zone.inlet.stats.samples, 0);
    assert_eq!(zone.inlet.p95, None);
    assert_eq!(zone.trend, Trend::default());
    assert!(zone.hot_spots.is_empty() && zone.stale_sensors.is_empty());
    // Buckets of another site or zone are ignored.
    let mut elsewhere = inlet("x", None, "R1", 10, (30.0, 30.0, 30.0));
    elsewhere.location.zone = "Z2".into();
    let report = report_of(&z1(), &[elsewhere], &[], &[], &[]);
    assert!(report.zones[0].rows.is_empty());
}

#[test]
fn zones_resolve_or_name_the_known_ones() {
    let known: BTreeSet<String> = ["Z10", "Z2"].into_iter().map(String::from).collect();
    assert_eq!(
        resolve_zones("dc1", Some("Z2"), &known),
        Ok(vec!["Z2".to_string()])
    );
    assert_eq!(
        resolve_zones("dc1", None, &known),
        Ok(vec!["Z2".to_string(), "Z10".to_string()])
    );
    let err = resolve_zones("dc1", Some("Z9"), &known).expect_err("unknown");
    assert_eq!(
        err.to_string(),
        "unknown zone dc1/Z9; known zones: dc1/Z10, dc1/Z2"
    );
    let err = resolve_zones("dc9", None, &BTreeSet::new()).expect_err("no zone");
    assert!(err.to_string().contains("unknown site dc9"), "{err}");
}

#[test]
fn site_resolves_from_the_zone_or_the_only_site() {
    let known: BTreeSet<(String, String)> = [("dc1", "Z1"), ("dc1", "Z2"), ("dc2", "Z1")]
        .into_iter()
        .map(|(s, z)| (s.to_string(), z.to_string()))
        .collect();
    assert_eq!(
        resolve_site(Some("dc9"), None, &known),
        Ok("dc9".to_string())
    );
    assert_eq!(
        resolve_site(None, Some("Z2"), &known),
        Ok("dc1".to_string())
    );
    let err = resolve_site(None, Some("Z1"), &known).expect_err("two sites");
    assert!(err.to_string().contains("dc1, dc2"), "{err}");
    let err = resolve_site(None, Some("Z7"), &known).expect_err("unknown");
    assert!(err.to_string().starts_with("unknown zone Z7;"), "{err}");
    let err = resolve_site(None, None, &known).expect_err("two sites");
    assert!(err.to_string().contains("--site"), "{err}");
    let one: BTreeSet<(String, String)> = [("dc1".to_string(), "Z1".to_string())].into();
    assert_eq!(resolve_site(None, None, &one), Ok("dc1".to_string()));
}
