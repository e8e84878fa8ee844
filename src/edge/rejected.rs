//! Requests refused before admission leave a `RequestRejected` event: what was refused, why,
//! and who asked as far as the gateway could tell, without the presented key. The event is
//! handed to the publisher without waiting ([`crate::publish::EventSink::emit_detached`]), so
//! a flood of refusals costs the edge an encoding and a channel send each.

use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, header};
use std::net::SocketAddr;
use std::sync::Arc;
use ulid::Ulid;

use super::error::char_prefix;
use super::surface::SurfaceError;
use super::{ApiError, EdgeState, presented_key};
use crate::events::{Endpoint, Envelope, Event, Principal, RequestRejected};
use crate::governance::rate::RateRefusal;
use crate::governance::{hash_key, split_key};

/// Longest model name, key id or user agent kept in the event.
const MAX_LABEL: usize = 256;

/// What the pipeline learnt about a request before refusing it.
#[derive(Default)]
pub struct Seen {
    pub principal: Option<Arc<Principal>>,
    pub model: Option<String>,
}

/// Why a request was refused before admission: the error it gets, and for a rate limit the
/// refusal its `x-ratelimit-*` headers are written from.
pub struct Refusal {
    pub error: ApiError,
    pub rate: Option<RateRefusal>,
}

impl From<ApiError> for Refusal {
    fn from(error: ApiError) -> Self {
        Self { error, rate: None }
    }
}

impl<S> From<SurfaceError<S>> for Refusal {
    fn from(e: SurfaceError<S>) -> Self {
        e.0.into()
    }
}

/// Publish the `RequestRejected` event of `refusal`.
pub fn record(
    st: &EdgeState,
    request_id: Ulid,
    endpoint: Endpoint,
    refusal: &Refusal,
    seen: Seen,
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
) {
    let e = &refusal.error;
    let code = e.code.clone().unwrap_or_else(|| e.kind.to_owned());
    metrics::counter!("switchyard_requests_rejected_total", "code" => code.clone()).increment(1);
    // A caller we do not know is named by what it presented: the public id of a key in our
    // format, and a fingerprint of the key's hash.
    let presented = seen
        .principal
        .is_none()
        .then(|| presented_key(headers))
        .flatten();
    let key_id = presented
        .and_then(split_key)
        .map(|(id, _)| char_prefix(id, MAX_LABEL).to_owned());
    let key_fingerprint = presented.map(|k| hex::encode(&hash_key(k)[..4]));
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|ua| char_prefix(ua, MAX_LABEL).to_owned());
    let event = RequestRejected {
        endpoint,
        status: e.status.as_u16(),
        code,
        message: e.message.clone(),
        principal: seen.principal.map(|p| (*p).clone()),
        key_id,
        key_fingerprint,
        model: seen.model.map(|m| char_prefix(&m, MAX_LABEL).to_owned()),
        remote_addr: peer.map(|a| a.to_string()),
        user_agent,
    };
    st.sink.emit_detached(
        &Envelope::new(request_id, Event::RequestRejected(event)),
        &st.tasks,
    );
}

/// The client's address, as the listener puts it on every request.
pub type Peer = Option<axum::Extension<ConnectInfo<SocketAddr>>>;

/// The address in `info`.
pub fn peer(info: Peer) -> Option<SocketAddr> {
    info.map(|axum::Extension(ConnectInfo(a))| a)
}
