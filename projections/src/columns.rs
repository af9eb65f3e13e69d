//! Column types that read-model rows decode through on their way into the domain's id newtypes.
//! The domain knows nothing of sqlx, so a view field names one of these in
//! `#[sqlx(try_from = "...")]` wherever a plain `Uuid` (which every id converts from) will not do.
//! Nothing here is ever written to a table.

use adledger_domain::{AdAccountId, CampaignId, ConnectionId, StreamId, SyncId};
use uuid::Uuid;

/// A nullable `uuid` column.
#[derive(sqlx::Type)]
#[sqlx(transparent, no_pg_array)]
pub struct NullableUuid(Option<Uuid>);

/// A `uuid[]` column.
#[derive(sqlx::Type)]
#[sqlx(transparent, no_pg_array)]
pub struct UuidArray(Vec<Uuid>);

/// A `text` column holding a platform's own id or a stream name.
#[derive(sqlx::Type)]
#[sqlx(transparent, no_pg_array)]
pub struct Text(String);

/// A nullable `text` column.
#[derive(sqlx::Type)]
#[sqlx(transparent, no_pg_array)]
pub struct NullableText(Option<String>);

macro_rules! optional_ids {
    ($($id:ty),*) => {$(
        impl From<NullableUuid> for Option<$id> {
            fn from(column: NullableUuid) -> Self {
                column.0.map(<$id>::from)
            }
        }

        impl From<UuidArray> for Vec<$id> {
            fn from(column: UuidArray) -> Self {
                column.0.into_iter().map(<$id>::from).collect()
            }
        }
    )*};
}

optional_ids!(CampaignId, ConnectionId, SyncId);

impl From<Text> for AdAccountId {
    fn from(column: Text) -> Self {
        AdAccountId(column.0)
    }
}

impl From<NullableText> for Option<AdAccountId> {
    fn from(column: NullableText) -> Self {
        column.0.map(AdAccountId)
    }
}

/// A stream name the store would not have accepted.
#[derive(Debug, thiserror::Error)]
#[error("not a stream id: {0:?}")]
pub struct BadStreamId(String);

impl TryFrom<Text> for StreamId {
    type Error = BadStreamId;

    fn try_from(column: Text) -> Result<Self, Self::Error> {
        StreamId::parse(&column.0).ok_or(BadStreamId(column.0))
    }
}
