//! Cursor pages of every listing that can grow: one rule for the page size, one opaque cursor, one
//! way to cut a page and name the next. A cursor holds the key of the page's last item (a page
//! never shifts under rows written meanwhile) and a fingerprint of the listing and filters it
//! pages, so that a cursor sent with other filters is refused rather than misread. Every page
//! that has a next one says where it is in `Link: <…>; rel="next"` (RFC 8288); a listing answered
//! as a bare array says it there only.

use crate::error::ApiError;
use axum::http::{header, HeaderValue, Uri};
use axum::response::{IntoResponse, IntoResponseParts, Response, ResponseParts};
use axum::Json;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::IntoParams;

/// The page sizes of one kind of listing.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    pub default: i64,
    pub max: i64,
}

/// Listings of things (workspaces, members, keys, connections, ad accounts, campaigns, sync
/// runs, audit entries): 1 to 500 items, 100 unless the query says.
pub const LISTS: Bounds = Bounds {
    default: 100,
    max: 500,
};

/// The longest cursor accepted; the server's own are far shorter.
pub const MAX_CURSOR_CHARS: usize = 1024;

/// How many items a page holds (`limit`).
#[derive(Debug, Clone, Copy)]
pub struct PageSize(i64);

impl PageSize {
    /// A listing's page size: [`LISTS`].
    pub fn parse(limit: Option<i64>) -> Result<Self, ApiError> {
        Self::within(limit, LISTS)
    }

    pub fn within(limit: Option<i64>, bounds: Bounds) -> Result<Self, ApiError> {
        match limit.unwrap_or(bounds.default) {
            size if (1..=bounds.max).contains(&size) => Ok(Self(size)),
            _ => Err(ApiError::invalid(
                "limit",
                format!("must be between 1 and {}", bounds.max),
            )),
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

/// The query of a listing that takes nothing but its page.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Paging {
    /// Where the page starts: the `cursor` in the previous page's `Link: <…>; rel="next"`.
    /// Absent: the first page.
    #[param(max_length = 1024)]
    pub cursor: Option<String>,
    /// Page size, 1 to 500 (default 100).
    #[param(schema_with = crate::schemas::page_size)]
    pub limit: Option<i64>,
}

/// What a cursor pages: one listing with the filters that shape it.
pub struct Scope(String);

/// A cursor before encoding: the fingerprint of its scope and the key to start after.
#[derive(Serialize, Deserialize)]
struct Sealed<S, K> {
    s: S,
    k: K,
}

impl Scope {
    pub fn new(listing: &str, filters: &impl Serialize) -> Self {
        let mut hash = Sha256::new();
        hash.update(listing.as_bytes());
        hash.update([0]);
        // Plain data (ids, dates, names): encoding it cannot fail.
        hash.update(serde_json::to_vec(filters).unwrap_or_default());
        Self(URL_SAFE_NO_PAD.encode(&hash.finalize()[..9]))
    }

    /// The key `raw` (a `cursor` parameter) starts after; `None` for the first page. 422 naming
    /// `cursor` for anything this scope did not make.
    pub fn decode<K: DeserializeOwned>(&self, raw: Option<&str>) -> Result<Option<K>, ApiError> {
        let Some(raw) = raw else { return Ok(None) };
        let invalid = || {
            ApiError::invalid(
                "cursor",
                "is not a cursor of this listing with these filters; start again without one",
            )
        };
        if raw.len() > MAX_CURSOR_CHARS {
            return Err(invalid());
        }
        let bytes = URL_SAFE_NO_PAD.decode(raw).map_err(|_| invalid())?;
        let sealed: Sealed<String, K> = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
        if sealed.s != self.0 {
            return Err(invalid());
        }
        Ok(Some(sealed.k))
    }

    /// The cursor of the page that starts after `key`.
    pub fn encode<K: Serialize>(&self, key: &K) -> Result<String, ApiError> {
        let sealed = Sealed {
            s: self.0.as_str(),
            k: key,
        };
        let json = serde_json::to_vec(&sealed).map_err(|e| ApiError::Internal(e.to_string()))?;
        Ok(URL_SAFE_NO_PAD.encode(json))
    }
}

/// `Link: <this request with cursor=next>; rel="next"`, when a next page exists.
pub struct NextLink(Option<HeaderValue>);

impl NextLink {
    /// The address of the next page: the request's own, with its `param` (`cursor`, or the
    /// typed cursor of the older listings) set to `next`.
    pub fn new(uri: &Uri, param: &str, next: Option<&str>) -> Self {
        let Some(next) = next else { return Self(None) };
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        let kept = url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
            .filter(|(name, _)| name != param);
        query.extend_pairs(kept);
        query.append_pair(param, next);
        let link = format!("<{}?{}>; rel=\"next\"", uri.path(), query.finish());
        Self(HeaderValue::from_str(&link).ok())
    }
}

impl IntoResponseParts for NextLink {
    type Error = std::convert::Infallible;
    fn into_response_parts(self, mut res: ResponseParts) -> Result<ResponseParts, Self::Error> {
        if let Some(link) = self.0 {
            res.headers_mut().insert(header::LINK, link);
        }
        Ok(res)
    }
}

/// One page of a listing answered as a bare JSON array (as it was before it paged), the next
/// page's address in `Link`.
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: NextLink,
}

impl<T: Serialize> IntoResponse for Page<T> {
    fn into_response(self) -> Response {
        (self.next, Json(self.items)).into_response()
    }
}

/// One page of a listing answered as an array: `rows` cut to `size`, the next page's cursor
/// made of the last item by `key`, in `scope`.
pub fn page<R, T: From<R>, K: Serialize>(
    uri: &Uri,
    scope: &Scope,
    size: PageSize,
    rows: Vec<R>,
    key: impl Fn(&T) -> K,
) -> Result<Page<T>, ApiError> {
    let (items, next) = size.cut(rows, key);
    let next = next.map(|k| scope.encode(&k)).transpose()?;
    Ok(Page {
        items,
        next: NextLink::new(uri, "cursor", next.as_deref()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_opens_in_its_own_scope_only() {
        let scope = Scope::new("connections", &("ws-1",));
        let cursor = scope.encode(&(7, "b")).unwrap();
        assert_eq!(
            scope.decode::<(i32, String)>(Some(&cursor)).unwrap(),
            Some((7, "b".to_owned()))
        );
        assert_eq!(scope.decode::<(i32, String)>(None).unwrap(), None);
        let other = Scope::new("connections", &("ws-2",));
        for raw in [cursor.as_str(), "", "!!", "bm90IGpzb24", &"a".repeat(2_000)] {
            assert!(other.decode::<(i32, String)>(Some(raw)).is_err(), "{raw}");
        }
        // The right scope, the wrong shape of key.
        assert!(scope.decode::<uuid::Uuid>(Some(&cursor)).is_err());
    }

    #[test]
    fn the_next_link_keeps_the_query_and_replaces_the_cursor() {
        let uri: Uri = "/v1/x?limit=2&cursor=old&connection_id=a%20b"
            .parse()
            .unwrap();
        let NextLink(Some(link)) = NextLink::new(&uri, "cursor", Some("n3xt")) else {
            panic!("a next page")
        };
        assert_eq!(
            link,
            "</v1/x?limit=2&connection_id=a+b&cursor=n3xt>; rel=\"next\""
        );
        assert!(NextLink::new(&uri, "cursor", None).0.is_none());
    }

    #[test]
    fn page_sizes_stay_within_their_bounds() {
        assert_eq!(PageSize::parse(None).unwrap().fetch(), 101);
        assert!(PageSize::parse(Some(0)).is_err());
        assert!(PageSize::parse(Some(501)).is_err());
        assert!(PageSize::within(
            Some(501),
            Bounds {
                default: 1,
                max: 1_000
            }
        )
        .is_ok());
    }
}
