//! Request planning: merges a device's points into as few reads as possible.
//!
//! Pure (no I/O). Rules, per table (coils, discrete inputs, holding, input registers):
//! - points are sorted by address; a point joins the current read when the unused addresses
//!   between the read's end and the point are at most `max_gap`, the read's span stays within
//!   `max_span` and the protocol cap (125 registers, 2000 bits), and no configured hole
//!   overlaps the grown read;
//! - otherwise it starts a new read. A single point is always one read of its own size, even
//!   with a tiny `max_span` (a point is never split).
//!
//! The greedy sweep is optimal in the number of reads for these constraints (each read is
//! extended as far as allowed, and a later start can never cover more).

use coldaisle_config::agent::RegisterTable;
use coldaisle_config::modbus::{Hole, ModbusSettings, MAX_BITS_PER_READ, MAX_REGISTERS_PER_READ};
use std::fmt::Write as _;

/// Where one point's value sits: its table, first address and width (registers, or 1 bit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanPoint {
    /// Table read.
    pub table: RegisterTable,
    /// First address.
    pub address: u16,
    /// Registers (or bits) the value occupies, at least 1.
    pub count: u16,
}

impl PlanPoint {
    /// One past the last address, widened so `65535 + 1` does not overflow.
    fn end(&self) -> u32 {
        u32::from(self.address) + u32::from(self.count.max(1))
    }
}

/// How far reads may be merged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Unused addresses a read may span between two points.
    pub max_gap: u16,
    /// Largest read (registers or bits), before the protocol cap.
    pub max_span: u16,
    /// Ranges never read.
    pub holes: Vec<Hole>,
}

impl Limits {
    /// The limits of a device's Modbus settings.
    #[must_use]
    pub fn from_settings(settings: &ModbusSettings) -> Limits {
        Limits {
            max_gap: settings.max_gap,
            max_span: settings.max_span,
            holes: settings.holes.clone(),
        }
    }

    /// No merging at all: one read per point.
    #[must_use]
    pub fn one_read_per_point() -> Limits {
        Limits {
            max_gap: 0,
            max_span: 1,
            holes: Vec::new(),
        }
    }
}

/// The protocol's largest read for a table: 2000 bits or 125 registers.
#[must_use]
pub fn protocol_cap(table: RegisterTable) -> u16 {
    if table.is_bits() {
        MAX_BITS_PER_READ
    } else {
        MAX_REGISTERS_PER_READ
    }
}

/// One request of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Read {
    /// Table read (gives the function code).
    pub table: RegisterTable,
    /// First address.
    pub start: u16,
    /// Registers (bits) read.
    pub count: u16,
    /// Indices (into the planned points) of the points this read serves, by address.
    pub points: Vec<usize>,
}

impl Read {
    /// The Modbus function code of the read.
    #[must_use]
    pub fn function_code(&self) -> u8 {
        function_code(self.table)
    }
}

/// The Modbus read function code of a table: 1 coils, 2 discrete inputs, 3 holding, 4 input.
#[must_use]
pub fn function_code(table: RegisterTable) -> u8 {
    match table {
        RegisterTable::Coil => 1,
        RegisterTable::Discrete => 2,
        RegisterTable::Holding => 3,
        RegisterTable::Input => 4,
    }
}

fn table_rank(table: RegisterTable) -> u8 {
    function_code(table)
}

/// Plans the reads serving `points`: every point is served by exactly one read.
#[must_use]
pub fn plan(points: &[PlanPoint], limits: &Limits) -> Vec<Read> {
    let mut order: Vec<usize> = (0..points.len()).collect();
    order.sort_by_key(|&i| {
        let p = &points[i];
        (
            table_rank(p.table),
            p.address,
            std::cmp::Reverse(p.count),
            i,
        )
    });
    let mut reads: Vec<Read> = Vec::new();
    // The current read's end, one past its last address (u32: 65536 is a valid end).
    let mut end: u32 = 0;
    for i in order {
        let p = points[i];
        if let Some(read) = reads.last_mut() {
            if read.table == p.table && can_extend(read, end, &p, limits) {
                end = end.max(p.end());
                read.count = (end - u32::from(read.start)) as u16;
                read.points.push(i);
                continue;
            }
        }
        end = p.end();
        reads.push(Read {
            table: p.table,
            start: p.address,
            count: (end - u32::from(p.address)) as u16,
            points: vec![i],
        });
    }
    reads
}

fn can_extend(read: &Read, end: u32, p: &PlanPoint, limits: &Limits) -> bool {
    let gap = u32::from(p.address).saturating_sub(end);
    if gap > u32::from(limits.max_gap) {
        return false;
    }
    let new_end = end.max(p.end());
    let span = new_end - u32::from(read.start);
    let cap = u32::from(limits.max_span.min(protocol_cap(p.table)));
    if span > cap {
        return false;
    }
    // span <= cap <= 2000 fits a u16.
    !limits
        .holes
        .iter()
        .any(|h| h.overlaps(p.table, read.start, span as u16))
}

/// Why a point's value could not be cut out of a read's reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SliceError {
    /// The device answered fewer or more values than were asked for.
    #[error("reply to a read of {asked} at {start} holds {got} values")]
    WrongReplyLength {
        /// First address of the read.
        start: u16,
        /// Values asked for.
        asked: u16,
        /// Values received.
        got: usize,
    },
    /// The point is not inside the read (a planning bug; never panics).
    #[error("address {address} (+{count}) is outside the read of {asked} at {start}")]
    OutsideRead {
        /// First address of the read.
        start: u16,
        /// Values read.
        asked: u16,
        /// The point's address.
        address: u16,
        /// The point's width.
        count: u16,
    },
}

/// The values of `point` in the reply `block` of `read`. Never panics: a reply of the wrong
/// length or a point outside the read is an error.
pub fn slice<'a, T>(read: &Read, block: &'a [T], point: &PlanPoint) -> Result<&'a [T], SliceError> {
    if block.len() != usize::from(read.count) {
        return Err(SliceError::WrongReplyLength {
            start: read.start,
            asked: read.count,
            got: block.len(),
        });
    }
    let outside = SliceError::OutsideRead {
        start: read.start,
        asked: read.count,
        address: point.address,
        count: point.count,
    };
    let from = usize::from(
        point
            .address
            .checked_sub(read.start)
            .ok_or(outside.clone())?,
    );
    block
        .get(from..from + usize::from(point.count))
        .ok_or(outside)
}

/// A readable rendering of a plan for `check-config --verbose`, one line per read, naming the
/// points (`names[i]` is point `i`'s name).
#[must_use]
pub fn describe(reads: &[Read], points: &[PlanPoint], names: &[String]) -> String {
    let mut out = String::new();
    for read in reads {
        let last = u32::from(read.start) + u32::from(read.count) - 1;
        let _ = write!(
            out,
            "read fc{} {:?} {}..={} ({} {}):",
            read.function_code(),
            read.table,
            read.start,
            last,
            read.count,
            if read.table.is_bits() {
                "bits"
            } else {
                "registers"
            }
        );
        for &i in &read.points {
            let name = names.get(i).map_or("?", String::as_str);
            let address = points.get(i).map_or(0, |p| p.address);
            let _ = write!(out, " {name}@{address}");
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use RegisterTable::*;

    fn point(table: RegisterTable, address: u16, count: u16) -> PlanPoint {
        PlanPoint {
            table,
            address,
            count,
        }
    }

    fn limits(max_gap: u16, max_span: u16) -> Limits {
        Limits {
            max_gap,
            max_span,
            holes: Vec::new(),
        }
    }

    #[test]
    fn apc_inrow_three_int32_become_one_read() {
        let points = [
            point(Holding, 96, 2),
            point(Holding, 92, 2),
            point(Holding, 94, 2),
        ];
        let reads = plan(&points, &limits(0, 125));
        assert_eq!(
            reads,
            vec![Read {
                table: Holding,
                start: 92,
                count: 6,
                points: vec![1, 2, 0]
            }]
        );
    }

    #[test]
    fn gap_beyond_max_gap_splits() {
        let points = [point(Holding, 0, 1), point(Holding, 5, 1)];
        assert_eq!(plan(&points, &limits(3, 125)).len(), 2);
        let reads = plan(&points, &limits(4, 125));
        assert_eq!(reads.len(), 1);
        assert_eq!((reads[0].start, reads[0].count), (0, 6));
    }

    #[test]
    fn span_is_capped_by_config_and_protocol() {
        let points: Vec<PlanPoint> = (0..300).map(|a| point(Input, a, 1)).collect();
        let reads = plan(&points, &limits(0, 2000));
        let counts: Vec<u16> = reads.iter().map(|r| r.count).collect();
        assert_eq!(counts, [125, 125, 50]);
        let reads = plan(&points, &limits(0, 100));
        assert_eq!(reads.len(), 3);
        let bits: Vec<PlanPoint> = (0..2001).map(|a| point(Coil, a, 1)).collect();
        let counts: Vec<u16> = plan(&bits, &limits(0, 2000))
            .iter()
            .map(|r| r.count)
            .collect();
        assert_eq!(counts, [2000, 1]);
    }

    #[test]
    fn never_reads_across_a_hole() {
        let points = [point(Holding, 0, 2), point(Holding, 10, 2)];
        let mut l = limits(100, 125);
        assert_eq!(plan(&points, &l).len(), 1);
        l.holes.push(Hole {
            table: Holding,
            start: 5,
            end: 5,
        });
        assert_eq!(plan(&points, &l).len(), 2);
        // A hole in another table does not matter.
        l.holes[0].table = Input;
        assert_eq!(plan(&points, &l).len(), 1);
    }

    #[test]
    fn tables_are_never_mixed_and_come_in_function_code_order() {
        let points = [
            point(Input, 0, 1),
            point(Holding, 1, 1),
            point(Coil, 2, 1),
            point(Discrete, 3, 1),
        ];
        let reads = plan(&points, &limits(100, 125));
        let codes: Vec<u8> = reads.iter().map(Read::function_code).collect();
        assert_eq!(codes, [1, 2, 3, 4]);
    }

    #[test]
    fn one_read_per_point_when_merging_is_off() {
        let points = [point(Holding, 92, 2), point(Holding, 94, 2)];
        assert_eq!(plan(&points, &Limits::one_read_per_point()).len(), 2);
    }

    #[test]
    fn overlapping_points_share_a_read_and_the_top_address_fits() {
        let points = [point(Holding, 65532, 4), point(Holding, 65534, 2)];
        let reads = plan(&points, &limits(0, 125));
        assert_eq!(reads.len(), 1);
        assert_eq!((reads[0].start, reads[0].count), (65532, 4));
    }

    #[test]
    fn slice_cuts_points_and_rejects_odd_replies() {
        let read = Read {
            table: Holding,
            start: 92,
            count: 6,
            points: vec![],
        };
        let block = [0, 720, 0, 750, 0, 680];
        assert_eq!(
            slice(&read, &block, &point(Holding, 94, 2)),
            Ok(&[0, 750][..])
        );
        assert!(matches!(
            slice(&read, &block[..5], &point(Holding, 94, 2)),
            Err(SliceError::WrongReplyLength { got: 5, .. })
        ));
        assert!(matches!(
            slice(&read, &block, &point(Holding, 97, 2)),
            Err(SliceError::OutsideRead { .. })
        ));
        assert!(slice(&read, &block, &point(Holding, 90, 1)).is_err());
    }

    #[test]
    fn describe_names_points() {
        let points = [point(Holding, 92, 2), point(Holding, 94, 2)];
        let names = vec!["supply".to_string(), "return".to_string()];
        let text = describe(&plan(&points, &limits(0, 125)), &points, &names);
        assert_eq!(
            text,
            "read fc3 Holding 92..=95 (4 registers): supply@92 return@94\n"
        );
    }

    fn any_table() -> impl Strategy<Value = RegisterTable> {
        prop::sample::select(vec![Coil, Discrete, Holding, Input])
    }

    fn any_point() -> impl Strategy<Value = PlanPoint> {
        (
            any_table(),
            0u16..400,
            prop::sample::select(vec![1u16, 2, 4]),
        )
            .prop_map(|(table, address, count)| {
                point(table, address, if table.is_bits() { 1 } else { count })
            })
    }

    proptest! {
        /// Every point is served by exactly one read that covers it; reads respect the gap,
        /// span, protocol cap and holes.
        #[test]
        fn plans_are_complete_and_within_limits(
            points in prop::collection::vec(any_point(), 0..60),
            max_gap in 0u16..20,
            max_span in 1u16..300,
            holes in prop::collection::vec((any_table(), 0u16..400, 0u16..5), 0..3),
        ) {
            let holes: Vec<Hole> = holes
                .into_iter()
                .map(|(table, start, len)| Hole { table, start, end: start + len })
                .collect();
            // Points inside a hole are rejected by config validation; keep them out here.
            let points: Vec<PlanPoint> = points
                .into_iter()
                .filter(|p| !holes.iter().any(|h| h.overlaps(p.table, p.address, p.count)))
                .collect();
            let l = Limits { max_gap, max_span, holes };
            let reads = plan(&points, &l);
            let mut served = vec![0; points.len()];
            for read in &reads {
                prop_assert!(!read.points.is_empty());
                let cap = l.max_span.min(protocol_cap(read.table));
                if read.points.len() > 1 {
                    prop_assert!(read.count <= cap);
                    prop_assert!(!l.holes.iter().any(|h| h.overlaps(read.table, read.start, read.count)));
                }
                let mut covered_to = u32::from(read.start);
                for &i in &read.points {
                    served[i] += 1;
                    let p = points[i];
                    prop_assert_eq!(p.table, read.table);
                    let block = vec![0u16; usize::from(read.count)];
                    prop_assert!(slice(read, &block, &p).is_ok());
                    let gap = u32::from(p.address).saturating_sub(covered_to);
                    prop_assert!(gap <= u32::from(l.max_gap));
                    covered_to = covered_to.max(p.end());
                }
                prop_assert_eq!(covered_to, u32::from(read.start) + u32::from(read.count));
            }
            prop_assert!(served.iter().all(|&n| n == 1));
        }

        /// Cutting values out of any reply, of any length, never panics.
        #[test]
        fn slicing_odd_replies_never_panics(
            start in any::<u16>(),
            count in 0u16..130,
            reply in prop::collection::vec(any::<u16>(), 0..130),
            address in any::<u16>(),
            width in 0u16..6,
        ) {
            let read = Read { table: Holding, start, count, points: vec![] };
            let p = point(Holding, address, width);
            if let Ok(values) = slice(&read, &reply, &p) {
                prop_assert_eq!(values.len(), usize::from(width));
                prop_assert_eq!(reply.len(), usize::from(count));
            }
        }
    }
}
