//! What keeps appended events from the log, for readiness and metrics: how many committed events
//! the sequencer has not given a position yet and how long the next one has waited, and which
//! open transaction holds the settle horizon back (migration 0014 names it). Only reads.

use super::{EventStore, StoreError};
use serde::Serialize;

/// Unsequenced events are counted up to this many; past it the count says "at least".
/// Cheap at any backlog: 10 000 entries of the `(tx_id, id)` index take a few milliseconds.
pub const UNSEQUENCED_COUNT_CAP: i64 = 10_000;

/// Committed events without a log position yet.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Unsequenced {
    /// Counted up to [`UNSEQUENCED_COUNT_CAP`].
    pub count: i64,
    /// The count stopped at the cap: there are at least `count`.
    pub at_least: bool,
    /// Seconds since the next event to sequence was recorded (its transaction's start); `None`
    /// when there is none.
    pub oldest_age_seconds: Option<f64>,
    /// That event waits for a transaction that is still open (begun before it committed): the
    /// settle horizon holds it back, not a missing or failing sequencer.
    pub held_by_horizon: bool,
}

/// What an open transaction, prepared transaction or replication slot is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HolderKind {
    Transaction,
    PreparedTransaction,
    ReplicationSlot,
}

/// One thing in the cluster that holds a transaction id or snapshot open.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct HorizonHolder {
    #[sqlx(try_from = "String")]
    pub kind: HolderKind,
    /// The backend's pid (a slot's: of the process using it, if any).
    pub pid: Option<i32>,
    pub database: Option<String>,
    #[sqlx(rename = "username")]
    pub user: Option<String>,
    pub application_name: Option<String>,
    /// `idle in transaction`, `active`, ...; `None` when Postgres hides it from the owner of
    /// the database (grant it `pg_read_all_stats` to see every session).
    pub state: Option<String>,
    /// Seconds since the transaction began (or was prepared); `None` when hidden, or for a slot.
    pub age_seconds: Option<f64>,
    /// Transactions begun since its transaction id (or snapshot).
    pub xid_age: Option<i32>,
    /// It has a transaction id: events committed after it began wait for it.
    pub holds_xid: bool,
    /// A prepared transaction's gid, or a replication slot's name.
    pub name: Option<String>,
}

impl TryFrom<String> for HolderKind {
    type Error = String;
    fn try_from(kind: String) -> Result<Self, String> {
        match kind.as_str() {
            "transaction" => Ok(HolderKind::Transaction),
            "prepared_transaction" => Ok(HolderKind::PreparedTransaction),
            "replication_slot" => Ok(HolderKind::ReplicationSlot),
            other => Err(format!("unknown horizon holder kind {other:?}")),
        }
    }
}

/// Who holds the settle horizon back, cluster-wide.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SettleHorizon {
    /// The open (or prepared) transaction with the oldest transaction id: no event committed
    /// after it began can be sequenced before it ends.
    pub holder: Option<HorizonHolder>,
    /// The open transaction with the oldest transaction id or snapshot, which also holds vacuum
    /// back; often the holder.
    pub oldest_transaction: Option<HorizonHolder>,
    pub prepared_transactions: Vec<HorizonHolder>,
    /// Replication slots that pin an xmin (they hold vacuum, not the sequencer).
    pub replication_slots: Vec<HorizonHolder>,
}

impl HorizonHolder {
    /// "transaction pid 42 in database \"x\" (user u, application psql, idle in transaction for
    /// 12 s)", for readiness reasons and logs.
    pub fn describe(&self) -> String {
        let what = match (self.kind, &self.name) {
            (HolderKind::Transaction, _) => format!("transaction pid {}", self.pid.unwrap_or(0)),
            (HolderKind::PreparedTransaction, Some(gid)) => {
                format!("prepared transaction {gid:?}")
            }
            (HolderKind::ReplicationSlot, Some(slot)) => format!("replication slot {slot:?}"),
            (kind, None) => format!("{kind:?}"),
        };
        let mut details = Vec::new();
        if let Some(user) = &self.user {
            details.push(format!("user {user}"));
        }
        if let Some(app) = self.application_name.as_ref().filter(|a| !a.is_empty()) {
            details.push(format!("application {app}"));
        }
        match (&self.state, self.age_seconds) {
            (Some(state), Some(age)) => details.push(format!("{state} for {age:.0} s")),
            (Some(state), None) => details.push(state.clone()),
            (None, Some(age)) => details.push(format!("open for {age:.0} s")),
            (None, None) => {}
        }
        let database = self
            .database
            .as_ref()
            .map(|d| format!(" in database {d:?}"))
            .unwrap_or_default();
        if details.is_empty() {
            format!("{what}{database}")
        } else {
            format!("{what}{database} ({})", details.join(", "))
        }
    }
}

impl EventStore {
    /// Committed events the sequencer has not reached, counted along the `(tx_id, id)` index
    /// from the last sequenced event and stopped at [`UNSEQUENCED_COUNT_CAP`].
    pub async fn unsequenced(&self) -> Result<Unsequenced, StoreError> {
        let last: Option<(String, i64)> = sqlx::query_as(
            "SELECT e.tx_id::text, e.id FROM event_log l JOIN events e ON e.id = l.event_row_id
             ORDER BY l.position DESC LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await?;
        let (cursor_tx, cursor_id) = last.unwrap_or_else(|| ("0".to_owned(), 0));
        let (count, oldest_age_seconds, held): (i64, Option<f64>, Option<bool>) = sqlx::query_as(
            "SELECT
                 (SELECT count(*) FROM (
                      SELECT 1 FROM events e WHERE (e.tx_id, e.id) > ($1::text::xid8, $2) LIMIT $3
                  ) waiting),
                 next.age, next.held
             FROM (SELECT 1) one LEFT JOIN LATERAL (
                 SELECT extract(epoch FROM clock_timestamp() - e.recorded_at)::float8 AS age,
                        e.tx_id >= pg_snapshot_xmin(pg_current_snapshot()) AS held
                 FROM events e WHERE (e.tx_id, e.id) > ($1::text::xid8, $2)
                 ORDER BY e.tx_id, e.id LIMIT 1
             ) next ON true",
        )
        .bind(&cursor_tx)
        .bind(cursor_id)
        .bind(UNSEQUENCED_COUNT_CAP)
        .fetch_one(&self.pool)
        .await?;
        Ok(Unsequenced {
            count,
            at_least: count >= UNSEQUENCED_COUNT_CAP,
            oldest_age_seconds: oldest_age_seconds.map(|age| age.max(0.0)),
            held_by_horizon: held.unwrap_or(false),
        })
    }

    /// Who holds the settle horizon back, from every open transaction, prepared transaction and
    /// replication slot of the cluster (this session left out).
    pub async fn settle_horizon(&self) -> Result<SettleHorizon, StoreError> {
        let rows: Vec<HorizonHolder> = sqlx::query_as(
            "SELECT kind, pid, database, username, application_name, state, age_seconds, xid_age,
                    holds_xid, name
             FROM adledger_horizon_holders() ORDER BY xid_age DESC NULLS LAST",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(horizon_of(rows))
    }
}

/// Picks the holder and the oldest transaction out of rows ordered oldest first.
fn horizon_of(rows: Vec<HorizonHolder>) -> SettleHorizon {
    let holder = rows.iter().find(|r| r.holds_xid).cloned();
    let oldest_transaction = rows
        .iter()
        .find(|r| r.kind == HolderKind::Transaction)
        .cloned();
    let of_kind = |kind| rows.iter().filter(|r| r.kind == kind).cloned().collect();
    SettleHorizon {
        holder,
        oldest_transaction,
        prepared_transactions: of_kind(HolderKind::PreparedTransaction),
        replication_slots: of_kind(HolderKind::ReplicationSlot),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(kind: HolderKind, pid: i32, xid_age: i32, holds_xid: bool) -> HorizonHolder {
        HorizonHolder {
            kind,
            pid: Some(pid),
            database: Some("adledger".into()),
            user: Some("ops".into()),
            application_name: Some("psql".into()),
            state: Some("idle in transaction".into()),
            age_seconds: Some(312.4),
            xid_age: Some(xid_age),
            holds_xid,
            name: (kind != HolderKind::Transaction).then(|| "x".into()),
        }
    }

    #[test]
    fn the_holder_is_the_oldest_with_a_transaction_id_and_a_snapshot_alone_is_only_the_oldest() {
        let horizon = horizon_of(vec![
            row(HolderKind::ReplicationSlot, 1, 90, false),
            row(HolderKind::Transaction, 2, 50, false),
            row(HolderKind::PreparedTransaction, 3, 40, true),
            row(HolderKind::Transaction, 4, 30, true),
        ]);
        assert_eq!(horizon.holder.unwrap().pid, Some(3));
        assert_eq!(horizon.oldest_transaction.unwrap().pid, Some(2));
        assert_eq!(horizon.prepared_transactions.len(), 1);
        assert_eq!(horizon.replication_slots.len(), 1);
        assert_eq!(horizon_of(Vec::new()), SettleHorizon::default());
    }

    #[test]
    fn a_holder_is_described_with_what_an_operator_needs_to_end_it() {
        assert_eq!(
            row(HolderKind::Transaction, 42, 1, true).describe(),
            "transaction pid 42 in database \"adledger\" \
             (user ops, application psql, idle in transaction for 312 s)"
        );
        let hidden = HorizonHolder {
            state: None,
            age_seconds: None,
            application_name: None,
            ..row(HolderKind::Transaction, 7, 1, true)
        };
        assert_eq!(
            hidden.describe(),
            "transaction pid 7 in database \"adledger\" (user ops)"
        );
    }
}
