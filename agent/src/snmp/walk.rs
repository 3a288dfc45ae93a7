//! Table walks: GETBULK with the device's max-repetitions (v2c, v3), GETNEXT for v1 and for
//! agents that reject GETBULK. A walk stops at the end of the subtree or at endOfMibView, and
//! fails (instead of looping) when an agent answers OIDs out of order.

use super::session::{error_status_name, SnmpClient, SnmpError};
use super::value::{format_oid, VarValue};
use coldaisle_config::snmp::SnmpVersion;
use snmp2::Oid;

/// Rows a walk returns at most (a broken agent cannot make it run forever).
pub const MAX_WALK_ROWS: usize = 100_000;

/// Every varbind under `root`, in order.
pub async fn walk(
    client: &mut SnmpClient,
    root: &[u64],
) -> Result<Vec<(Vec<u64>, VarValue)>, SnmpError> {
    let address = client.target().address.clone();
    let protocol = |detail: String| SnmpError::Protocol {
        address: address.clone(),
        detail,
    };
    let max_repetitions = client.target().settings.max_repetitions;
    let mut use_bulk = client.target().settings.version != SnmpVersion::V1;
    let mut rows: Vec<(Vec<u64>, VarValue)> = Vec::new();
    let mut cursor = root.to_vec();
    loop {
        let oid = Oid::from(&cursor).map_err(|e| {
            protocol(format!(
                "OID {} cannot be encoded: {e:?}",
                format_oid(&cursor)
            ))
        })?;
        let response = if use_bulk {
            let r = client
                .get_bulk(std::slice::from_ref(&oid), max_repetitions)
                .await?;
            if r.error_status != 0 {
                tracing::debug!(address = %address, status = error_status_name(r.error_status), "GETBULK rejected, walking with GETNEXT");
                use_bulk = false;
                continue;
            }
            r
        } else {
            let r = client.get_next(&oid).await?;
            // v1 ends a walk with noSuchName.
            if r.error_status == 2 {
                return Ok(rows);
            }
            if r.error_status != 0 {
                return Err(protocol(format!(
                    "GETNEXT {} answered {}",
                    format_oid(&cursor),
                    error_status_name(r.error_status)
                )));
            }
            r
        };
        if response.varbinds.is_empty() {
            return Ok(rows);
        }
        for (oid, value) in response.varbinds {
            if value == VarValue::EndOfMibView || !oid.starts_with(root) || oid.len() <= root.len()
            {
                return Ok(rows);
            }
            if oid <= cursor {
                return Err(protocol(format!(
                    "agent answered {} after {}: OIDs not increasing",
                    format_oid(&oid),
                    format_oid(&cursor)
                )));
            }
            cursor.clone_from(&oid);
            rows.push((oid, value));
            if rows.len() >= MAX_WALK_ROWS {
                return Err(protocol(format!(
                    "walk of {} exceeds {MAX_WALK_ROWS} rows",
                    format_oid(root)
                )));
            }
        }
    }
}
