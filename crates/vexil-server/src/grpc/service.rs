//! The generated `Service` traits of `flagd.evaluation.v1` and `flagd.evaluation.v2`,
//! implemented once by a macro: the versions differ only in v2's optional response
//! `value` and `variant` (the value always set here, as every served flag has one; the
//! variant unset in v2 and empty in v1 when a result has none).

use std::pin::Pin;

use futures_util::{Stream, StreamExt};
use tonic::{Request, Response, Status};

use super::resolve::{self, AnyValue};
use super::{Grpc, v1, v2};

/// The stream type of `EventStream`.
type Events<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// The whole service of version `$v`; `$wrap` makes a response's `value` (plain in v1,
/// optional in v2) and `$variant` its `variant` from an `Option<String>`. Each typed
/// resolve authenticates, evaluates, answers.
macro_rules! flagd_service {
    ($v:ident, $wrap:path, $variant:path) => {
        flagd_service!(@impl $v, $variant,
            resolve_boolean ResolveBooleanRequest ResolveBooleanResponse boolean $wrap,
            resolve_string ResolveStringRequest ResolveStringResponse string $wrap,
            resolve_float ResolveFloatRequest ResolveFloatResponse float $wrap,
            resolve_int ResolveIntRequest ResolveIntResponse int $wrap,
            // A message field is optional in both versions.
            resolve_object ResolveObjectRequest ResolveObjectResponse object Some);
    };
    (@impl $v:ident, $variant:path, $($method:ident $request:ident $response:ident $typed:ident $value:path),*) => {
        #[tonic::async_trait]
        impl $v::service_server::Service for Grpc {
            async fn resolve_all(
                &self,
                request: Request<$v::ResolveAllRequest>,
            ) -> Result<Response<$v::ResolveAllResponse>, Status> {
                use $v::any_flag::Value;
                let key = self.authenticate(request.metadata())?;
                let (flags, metadata) = self.resolve_all(&key, request.into_inner().context)?;
                let flags = flags
                    .into_iter()
                    .map(|(flag_key, resolved)| {
                        let value = match resolved.value {
                            AnyValue::Bool(b) => Value::BoolValue(b),
                            AnyValue::String(s) => Value::StringValue(s),
                            AnyValue::Double(n) => Value::DoubleValue(n),
                            AnyValue::Object(o) => Value::ObjectValue(o),
                        };
                        let flag = $v::AnyFlag {
                            reason: resolved.reason.to_owned(),
                            // `AnyFlag.variant` is plain in both versions.
                            variant: resolved.variant.unwrap_or_default(),
                            value: Some(value),
                            metadata: Some(resolved.metadata),
                        };
                        (flag_key, flag)
                    })
                    .collect();
                Ok(Response::new($v::ResolveAllResponse {
                    flags,
                    metadata: Some(metadata),
                }))
            }

            $(
                async fn $method(
                    &self,
                    request: Request<$v::$request>,
                ) -> Result<Response<$v::$response>, Status> {
                    let key = self.authenticate(request.metadata())?;
                    let request = request.into_inner();
                    let resolved =
                        self.resolve(&key, &request.flag_key, request.context, resolve::$typed)?;
                    Ok(Response::new($v::$response {
                        value: $value(resolved.value),
                        reason: resolved.reason.to_owned(),
                        variant: $variant(resolved.variant),
                        metadata: Some(resolved.metadata),
                    }))
                }
            )*

            type EventStreamStream = Events<$v::EventStreamResponse>;

            async fn event_stream(
                &self,
                request: Request<$v::EventStreamRequest>,
            ) -> Result<Response<Self::EventStreamStream>, Status> {
                let key = self.authenticate(request.metadata())?;
                let events = self.events(key)?.map(|event| {
                    Ok($v::EventStreamResponse {
                        r#type: event.kind.to_owned(),
                        data: event.data,
                    })
                });
                Ok(Response::new(Box::pin(events)))
            }
        }
    };
}

flagd_service!(v1, std::convert::identity, Option::unwrap_or_default);
flagd_service!(v2, Some, std::convert::identity);
