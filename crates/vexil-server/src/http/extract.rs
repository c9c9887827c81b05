//! Request extractors and response helpers shared by every resource: the JSON body
//! extractor (path-precise errors, 413, unknown fields rejected), pagination, `If-Match`,
//! request metadata for the audit trail, JSON merge patch and ETags.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use crate::audit::{Actor, RequestMeta};
use crate::manage::By;
pub(crate) use crate::manage::fields::Pagination;

/// A JSON body. Errors name the offending field (`rules[0].serve: unknown field 'x'`).
#[derive(Debug)]
pub(crate) struct Json<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|mime| {
                let mime = mime.trim();
                mime.eq_ignore_ascii_case("application/json") || mime.ends_with("+json")
            });
        if !is_json {
            return Err(ApiError::UnsupportedMediaType);
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else {
                ApiError::invalid(format!("cannot read the request body: {rejection}"))
            }
        })?;
        parse_json(&bytes).map(Json)
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// Parses JSON text into `T` with path-precise, 400-class errors. An object that repeats
/// a key is refused wherever it is (`{"enabled": true, "enabled": false}` is ambiguous,
/// and JSON parsers disagree on which one wins).
pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let text =
        std::str::from_utf8(bytes).map_err(|_| ApiError::invalid("the body is not valid UTF-8"))?;
    if let Some((path, key)) = duplicate_key(text) {
        let field = if path.is_empty() {
            key.clone()
        } else {
            format!("{path}.{key}")
        };
        return Err(ApiError::invalid_field(
            &field,
            format!("duplicate key '{key}'"),
        ));
    }
    vexil_core::from_json_with_path(text).map_err(|e| {
        let mut err = ApiError::from(e);
        if let ApiError::Invalid { message, .. } = &mut err {
            *message = format!("invalid JSON body: {message}");
        }
        err
    })
}

/// The first object key repeated in `text`, as (path of the object, key); `None` for text
/// without one, or that is not JSON (the parse that follows says what is wrong).
fn duplicate_key(text: &str) -> Option<(String, String)> {
    use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
    use std::cell::RefCell;
    use std::collections::HashSet;

    struct Walk<'a> {
        path: String,
        found: &'a RefCell<Option<(String, String)>>,
    }
    impl<'de> DeserializeSeed<'de> for Walk<'_> {
        type Value = ();
        fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(self)
        }
    }
    impl<'de> Visitor<'de> for Walk<'_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("JSON")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            let mut seen = HashSet::new();
            while let Some(key) = map.next_key::<String>()? {
                let path = if self.path.is_empty() {
                    key.clone()
                } else {
                    format!("{}.{key}", self.path)
                };
                if !seen.insert(key.clone()) {
                    *self.found.borrow_mut() = Some((self.path, key));
                    return Err(de::Error::custom("duplicate key"));
                }
                map.next_value_seed(Walk {
                    path,
                    found: self.found,
                })?;
            }
            Ok(())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            let mut i = 0;
            while seq
                .next_element_seed(Walk {
                    path: format!("{}[{i}]", self.path),
                    found: self.found,
                })?
                .is_some()
            {
                i += 1;
            }
            Ok(())
        }
        fn visit_bool<E>(self, _: bool) -> Result<(), E> {
            Ok(())
        }
        fn visit_i64<E>(self, _: i64) -> Result<(), E> {
            Ok(())
        }
        fn visit_u64<E>(self, _: u64) -> Result<(), E> {
            Ok(())
        }
        fn visit_f64<E>(self, _: f64) -> Result<(), E> {
            Ok(())
        }
        fn visit_str<E>(self, _: &str) -> Result<(), E> {
            Ok(())
        }
        fn visit_unit<E>(self) -> Result<(), E> {
            Ok(())
        }
    }
    let found = RefCell::new(None);
    let mut de = serde_json::Deserializer::from_str(text);
    let _ = Walk {
        path: String::new(),
        found: &found,
    }
    .deserialize(&mut de);
    found.into_inner()
}

/// A page of a list: `{"items", "total", "limit", "offset"}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Page<T> {
    pub(crate) items: Vec<T>,
    pub(crate) total: i64,
    pub(crate) limit: i64,
    pub(crate) offset: i64,
}

impl<T> Page<T> {
    pub(crate) fn new(items: Vec<T>, total: i64, p: Pagination) -> Self {
        Page {
            items,
            total,
            limit: p.limit,
            offset: p.offset,
        }
    }
}

/// Query string parser with 400-class errors in the API's error shape.
#[derive(Debug)]
pub(crate) struct Query<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        parse_query(query).map(Query)
    }
}

/// Parses a query string into `T` (which should reject unknown fields): values stay text
/// unless `T` asks for a number or boolean, so `resource_id=007` keeps its zeros.
fn parse_query<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    let keys: Vec<&str> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').map_or(p, |(k, _)| k))
        .collect();
    for (i, key) in keys.iter().enumerate() {
        if keys[..i].contains(key) {
            return Err(ApiError::invalid_field(key, "given more than once"));
        }
    }
    serde_urlencoded::from_str(query)
        .map_err(|e| ApiError::invalid(format!("invalid query parameter: {e}")))
}

/// The `If-Match` precondition, if any: a version number, or `*` (any).
#[derive(Debug, Clone, Copy)]
pub(crate) struct IfMatch(pub(crate) Option<i64>);

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let Some(raw) = parts.headers.get(header::IF_MATCH) else {
            return Ok(IfMatch(None));
        };
        let raw = raw
            .to_str()
            .map_err(|_| ApiError::invalid_field("If-Match", "must be an ETag such as \"3\""))?
            .trim();
        if raw == "*" {
            return Ok(IfMatch(None));
        }
        let tag = raw.strip_prefix("W/").unwrap_or(raw).trim_matches('"');
        tag.parse::<i64>()
            .map(|v| IfMatch(Some(v)))
            .map_err(|_| ApiError::invalid_field("If-Match", "must be an ETag such as \"3\""))
    }
}

/// Who makes a change: the authenticated actor and the request's metadata.
impl<S: Send + Sync> FromRequestParts<S> for By {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let actor = Actor::from_request_parts(parts, state).await?;
        let meta = RequestMeta::from_request_parts(parts, state).await?;
        Ok(By { actor, meta })
    }
}

/// The store, as handlers take it.
pub(crate) type Db = axum::extract::State<std::sync::Arc<crate::store::Store>>;
/// The path's one parameter (`{id}`).
pub(crate) type Id = axum::extract::Path<String>;

/// The answer to `GET` of a record people change by id: the record, with its version as
/// the `ETag`.
pub(crate) async fn versioned<T: crate::store::Record>(
    store: &crate::store::Store,
    id: &str,
) -> Result<Response, ApiError> {
    let record: T = crate::manage::get(store, id).await?;
    Ok(with_etag(record.version(), &record))
}

/// A change aimed at what the path names (by default its one `{id}`; `(String, String)`
/// for a flag in an environment): the store, the path's parameters, who asks (and as whom
/// it is recorded), and the version `If-Match` expects.
pub(crate) struct Aimed<P = String> {
    pub(crate) store: std::sync::Arc<crate::store::Store>,
    pub(crate) id: P,
    pub(crate) principal: crate::access::Principal,
    pub(crate) by: By,
    pub(crate) expected: Option<i64>,
}

impl Aimed<(String, String)> {
    /// The flag and environment ids, as operations take them.
    pub(crate) fn pair(&self) -> (&str, &str) {
        (&self.id.0, &self.id.1)
    }
}

impl Aimed {
    /// The id and the expected version, as operations take them.
    pub(crate) fn at(&self) -> crate::manage::At<'_> {
        (&self.id, self.expected)
    }
}

impl<P: DeserializeOwned + Send> FromRequestParts<super::AppState> for Aimed<P> {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &super::AppState,
    ) -> Result<Self, Response> {
        let axum::extract::Path(id) = axum::extract::Path::<P>::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let principal = crate::access::Principal::from_request_parts(parts, state).await;
        let by = By::from_request_parts(parts, state).await;
        let expected = IfMatch::from_request_parts(parts, state).await;
        let fail = IntoResponse::into_response;
        Ok(Aimed {
            store: state.store.clone(),
            id,
            principal: principal.map_err(fail)?,
            by: by.map_err(fail)?,
            expected: expected.map_err(fail)?.0,
        })
    }
}

/// Proxies whose `X-Forwarded-For` is believed (`--trusted-proxies`): addresses or CIDR
/// blocks. Without any, the client is the TCP peer, whatever the headers say.
#[derive(Debug, Clone, Default)]
pub(crate) struct TrustedProxies(pub(crate) std::sync::Arc<Vec<(std::net::IpAddr, u8)>>);

impl TrustedProxies {
    /// A comma-separated list such as `10.0.0.0/8, 127.0.0.1, ::1`.
    pub(crate) fn parse(list: &str) -> anyhow::Result<TrustedProxies> {
        let mut out = Vec::new();
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (addr, bits) = match item.split_once('/') {
                Some((a, b)) => (a, Some(b)),
                None => (item, None),
            };
            let addr: std::net::IpAddr = addr.parse().map_err(|_| {
                anyhow::anyhow!("--trusted-proxies: '{item}' is not an address or CIDR block")
            })?;
            let max = if addr.is_ipv4() { 32 } else { 128 };
            let bits = match bits {
                Some(b) => b.parse::<u8>().ok().filter(|b| *b <= max).ok_or_else(|| {
                    anyhow::anyhow!("--trusted-proxies: bad prefix length in '{item}'")
                })?,
                None => max,
            };
            out.push((addr, bits));
        }
        Ok(TrustedProxies(std::sync::Arc::new(out)))
    }

    fn contains(&self, ip: std::net::IpAddr) -> bool {
        use std::net::IpAddr;
        self.0.iter().any(|(net, bits)| match (net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(*bits)).unwrap_or(0);
                u32::from(*n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(*bits)).unwrap_or(0);
                u128::from(*n) & mask == u128::from(a) & mask
            }
            _ => false,
        })
    }

    /// The client's address: the peer, or — when the peer is a trusted proxy — the last
    /// `X-Forwarded-For` address that is not itself a trusted proxy (entries further left
    /// were written by the client and prove nothing).
    pub(crate) fn client(
        &self,
        peer: std::net::IpAddr,
        headers: &axum::http::HeaderMap,
    ) -> std::net::IpAddr {
        if !self.contains(peer) {
            return peer;
        }
        let mut client = peer;
        let hops = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect::<Vec<_>>();
        for hop in hops.iter().rev().take(32) {
            match hop.parse::<std::net::IpAddr>() {
                Ok(ip) => {
                    client = ip;
                    if !self.contains(ip) {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        client
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequestMeta {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let ip = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| {
            let peer = c.0.ip();
            match parts.extensions.get::<TrustedProxies>() {
                Some(trusted) => trusted.client(peer, &parts.headers),
                None => peer,
            }
            .to_string()
        });
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(|s| s.chars().take(512).collect::<String>())
        };
        Ok(RequestMeta {
            ip,
            user_agent: header("user-agent"),
            request_id: parts
                .extensions
                .get::<super::RequestId>()
                .map(|r| r.0.clone()),
            organization_id: parts
                .extensions
                .get::<crate::access::OrgScope>()
                .map(|o| o.0.clone()),
        })
    }
}

/// Adds `ETag: "<version>"` to a JSON response.
pub(crate) fn with_etag<T: Serialize>(version: i64, body: T) -> Response {
    let mut response = axum::Json(body).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("\"{version}\"")) {
        response.headers_mut().insert(header::ETAG, v);
    }
    response
}

/// Whether `If-None-Match` (possibly several headers, lists, weak tags or `*`) matches.
pub(crate) fn if_none_match(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
}

/// The body of actions whose only input is an optional comment.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"comment": "end of the experiment"}))]
pub(crate) struct CommentBody {
    #[schema(max_length = 1000)]
    pub(crate) comment: Option<String>,
}

/// A JSON body that may be left out: a request without a body reads as `T::default()`;
/// one with a body is read like [`Json`] (415, 413 and path-precise 400s alike).
#[derive(Debug)]
pub(crate) struct OptionalJson<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let headers = req.headers();
        let length = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let chunked = headers.contains_key(header::TRANSFER_ENCODING);
        if !chunked && length.unwrap_or(0) == 0 {
            return Ok(OptionalJson(T::default()));
        }
        Json::<T>::from_request(req, state)
            .await
            .map(|Json(t)| OptionalJson(t))
    }
}

#[cfg(test)]
mod proxy_tests {
    use super::TrustedProxies;
    use axum::http::HeaderMap;

    fn xff(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", v.parse().unwrap());
        h
    }

    #[test]
    fn forwarded_addresses_count_only_behind_trusted_proxies() {
        let t = TrustedProxies::parse("10.0.0.0/8, 127.0.0.1, ::1").unwrap();
        let client = |peer: &str, h: &HeaderMap| t.client(peer.parse().unwrap(), h).to_string();
        // An untrusted peer's header is ignored.
        assert_eq!(client("203.0.113.9", &xff("1.2.3.4")), "203.0.113.9");
        // Behind trusted proxies: the rightmost untrusted hop, not what the client wrote.
        assert_eq!(
            client("127.0.0.1", &xff("6.6.6.6, 198.51.100.7, 10.1.2.3")),
            "198.51.100.7"
        );
        assert_eq!(client("127.0.0.1", &HeaderMap::new()), "127.0.0.1");
        assert_eq!(client("127.0.0.1", &xff("garbage")), "127.0.0.1");
        assert!(TrustedProxies::parse("10.0.0.0/33").is_err());
        assert!(TrustedProxies::parse("nonsense").is_err());
        assert!(TrustedProxies::parse("").unwrap().0.is_empty());
    }
}
