//! Cursor pages of the listings that page (campaigns, audit entries): one rule for the page size
//! and one way to cut a page and name the next one's cursor. Cursors are the last item's key, so
//! a page never shifts under rows written meanwhile.

use crate::error::ApiError;

/// How many items a page holds: 1 to 500, 100 unless the query says (`limit`).
#[derive(Debug, Clone, Copy)]
pub struct PageSize(i64);

impl PageSize {
    pub fn parse(limit: Option<i64>) -> Result<Self, ApiError> {
        match limit.unwrap_or(100) {
            size @ 1..=500 => Ok(Self(size)),
            _ => Err(ApiError::invalid("limit", "must be between 1 and 500")),
        }
    }

    /// How many rows to ask the query for: one more than a page, to learn whether another follows.
    pub fn fetch(self) -> i64 {
        self.0 + 1
    }

    /// The page out of what `fetch` asked for, and the cursor of the next page (absent on the
    /// last one): `cursor` of the page's last item.
    pub fn cut<R, T: From<R>, C>(
        self,
        rows: Vec<R>,
        cursor: impl Fn(&T) -> C,
    ) -> (Vec<T>, Option<C>) {
        let more = rows.len() as i64 > self.0;
        let items: Vec<T> = rows
            .into_iter()
            .take(self.0 as usize)
            .map(T::from)
            .collect();
        let next = if more { items.last().map(cursor) } else { None };
        (items, next)
    }
}
