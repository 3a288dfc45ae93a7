//! Where a reader of the store's changes stands, and how a page of changes moves it (pure: no
//! I/O; the queries are in [`crate::changes`]).
//!
//! Every row version of tables `records` and `kv` carries an **ingest id** from one sequence
//! (migration 2). A reader keeps the id up to which it has applied everything (its cursor)
//! and reads the rows with `cursor < id <= settled`, where *settled* is an id below which no
//! row can still appear ([`crate::PgStore::settled_ingest_id`] says why that holds with
//! writers committing out of id order).
//!
//! Invariants:
//! - The cursor only moves to an id at which every row with a lower or equal id was read: the
//!   end of a complete page range ([`page_end`]).
//! - A cursor above the database's settled id means the reader is looking at another database
//!   than the one it read (restored from an older dump, or replaced): that is a **gap**, and
//!   only a full rebuild closes it ([`TailStep::Rebuild`]). So does having no cursor yet.

/// One row version read from the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Its ingest id.
    pub id: u64,
    /// The tree it belongs to ([`crate::RECORDS`] for a records row).
    pub tree: String,
    /// Its key, as [`coldaisle_store::KvStore`] shows it.
    pub key: Vec<u8>,
    /// Its value.
    pub value: Vec<u8>,
}

/// One page of changes and where it ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangesPage {
    /// The changes with `after < id <= end`, in id order.
    pub changes: Vec<Change>,
    /// Every change up to this id is in `changes` (or was before `after`): the next cursor.
    pub end: u64,
}

/// What a reader does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TailStep {
    /// Rebuild from everything stored (no cursor yet, or a gap).
    Rebuild,
    /// Nothing new.
    UpToDate,
    /// Read the changes with `after < id <= upto`.
    Read {
        /// The cursor.
        after: u64,
        /// The settled id.
        upto: u64,
    },
}

/// A reader's position in the store's changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TailCursor {
    /// Every change with an id up to this one is applied; `None` before the first rebuild.
    applied: Option<u64>,
}

impl TailCursor {
    /// A reader that has read nothing yet.
    pub fn new() -> TailCursor {
        TailCursor::default()
    }

    /// The id up to which everything is applied, once rebuilt.
    pub fn applied(&self) -> Option<u64> {
        self.applied
    }

    /// The next step, given the database's settled id now.
    pub fn plan(&self, settled: u64) -> TailStep {
        match self.applied {
            None => TailStep::Rebuild,
            Some(applied) if settled < applied => TailStep::Rebuild,
            Some(applied) if settled == applied => TailStep::UpToDate,
            Some(applied) => TailStep::Read {
                after: applied,
                upto: settled,
            },
        }
    }

    /// A full rebuild was applied that started reading once `settled` was settled: every
    /// change up to it is in the rebuilt view (later ones may be too; readers drop those
    /// they already hold).
    pub fn rebuilt(&mut self, settled: u64) {
        self.applied = Some(settled);
    }

    /// A page was applied.
    pub fn advance(&mut self, page: &ChangesPage) {
        self.applied = Some(self.applied.map_or(page.end, |a| a.max(page.end)));
    }

    /// Forget the position: the next step is a full rebuild.
    pub fn reset(&mut self) {
        self.applied = None;
    }
}

/// Merges the first `limit` changes of each table (each in id order) into the first `limit`
/// changes of both, and says where that page ends: at `upto` when both tables had fewer than
/// `limit` rows left, else at the page's last id (every lower id of either table is in the
/// page, since each table's share holds its lowest ids).
pub fn page_end(mut records: Vec<Change>, kv: Vec<Change>, limit: usize, upto: u64) -> ChangesPage {
    let full = records.len() >= limit || kv.len() >= limit;
    records.extend(kv);
    records.sort_by_key(|c| c.id);
    records.truncate(limit);
    let end = match records.last() {
        Some(last) if full => last.id,
        _ => upto,
    };
    ChangesPage {
        changes: records,
        end,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(id: u64, tree: &str) -> Change {
        Change {
            id,
            tree: tree.into(),
            key: id.to_be_bytes().to_vec(),
            value: Vec::new(),
        }
    }

    #[test]
    fn no_cursor_or_a_cursor_past_the_database_means_a_full_rebuild() {
        let mut cursor = TailCursor::new();
        assert_eq!(cursor.plan(0), TailStep::Rebuild);
        assert_eq!(cursor.plan(50), TailStep::Rebuild);
        cursor.rebuilt(40);
        assert_eq!(cursor.applied(), Some(40));
        assert_eq!(cursor.plan(40), TailStep::UpToDate);
        assert_eq!(
            cursor.plan(55),
            TailStep::Read {
                after: 40,
                upto: 55
            }
        );
        assert_eq!(
            cursor.plan(39),
            TailStep::Rebuild,
            "restored from an older dump"
        );
        cursor.reset();
        assert_eq!(cursor.plan(40), TailStep::Rebuild);
    }

    #[test]
    fn a_short_page_ends_at_the_settled_id_and_a_full_one_at_its_last_row() {
        let short = page_end(
            vec![change(3, "records")],
            vec![change(5, "actions")],
            10,
            9,
        );
        assert_eq!(
            short.end, 9,
            "ids 6..=9 were rolled back or deleted: nothing to wait for"
        );
        assert_eq!(short.changes.len(), 2);

        // Records hold 1, 2, 4, 7 and kv 3, 5, 6 (first 3 of each table): the first 3 of both
        // are 1, 2, 3 and nothing below 3 is missing.
        let records = vec![
            change(1, "records"),
            change(2, "records"),
            change(4, "records"),
        ];
        let kv = vec![
            change(3, "agents"),
            change(5, "agents"),
            change(6, "agents"),
        ];
        let page = page_end(records, kv, 3, 100);
        let ids: Vec<u64> = page.changes.iter().map(|c| c.id).collect();
        assert_eq!(ids, vec![1, 2, 3]);
        assert_eq!(page.end, 3);

        let mut cursor = TailCursor::new();
        cursor.rebuilt(0);
        cursor.advance(&page);
        assert_eq!(
            cursor.plan(100),
            TailStep::Read {
                after: 3,
                upto: 100
            }
        );
    }

    #[test]
    fn a_full_page_of_one_table_stops_before_the_other_tables_later_rows() {
        // kv is full (limit 2) at id 4; records' 9 is beyond what kv's share covers.
        let page = page_end(
            vec![change(9, "records")],
            vec![change(2, "agents"), change(4, "agents")],
            2,
            20,
        );
        let ids: Vec<u64> = page.changes.iter().map(|c| c.id).collect();
        assert_eq!(ids, vec![2, 4]);
        assert_eq!(
            page.end, 4,
            "id 9 comes with the next page, none is skipped"
        );
    }

    #[test]
    fn an_empty_range_ends_at_the_settled_id_and_the_cursor_never_goes_back() {
        let page = page_end(Vec::new(), Vec::new(), 10, 12);
        assert!(page.changes.is_empty());
        assert_eq!(page.end, 12);
        let mut cursor = TailCursor::new();
        cursor.rebuilt(20);
        cursor.advance(&page);
        assert_eq!(cursor.applied(), Some(20));
    }
}
