//! A gate on 127.0.0.1 in front of the shared moto server that makes its S3
//! answer as S3 does under a least-privilege IAM identity policy: a request
//! signed with a key from [`Gate::credentials`] is refused with 403
//! AccessDenied unless its [`Policy`] allows every permission the request
//! needs, and a missing object reads as 403 AccessDenied, not 404
//! NoSuchKey, unless the policy also allows `s3:ListBucket` on the bucket.
//! Requests signed with any other key pass through untouched, so test set-up
//! can use the plain moto endpoint or this one with any key. moto checks no
//! permissions itself, and its auth mode answers 404 for a missing object
//! regardless (see `tests/support/README.md`), hence this gate.

mod operation;
mod policy;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HOST};
use hyper::http::request;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use operation::{Operation, parse_query};
pub use policy::Policy;

/// moto's account for keys it does not know: the gate's keys and the usual
/// test keys alike, so both see the same buckets.
const ACCOUNT: &str = "123456789012";

/// A running gate; [`shared`] is the one of this test process.
pub struct Gate {
    port: u16,
    principals: Arc<Mutex<HashMap<String, Principal>>>,
}

#[derive(Clone)]
struct Principal {
    arn: String,
    policy: Policy,
}

impl Gate {
    /// The endpoint for `AWS_ENDPOINT_URL_S3` (path-style addressing).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A fresh access key id and secret for the IAM user `name`, allowed
    /// exactly what `policy` allows: a [`Policy`], or an array of
    /// `(action, resource)` pairs such as `&[("s3:GetObject", "arn:aws:s3:::bucket/docs/*")]`.
    /// The secret is not checked (see the README's limits).
    pub fn credentials(&self, name: &str, policy: impl Into<Policy>) -> (String, String) {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let key = format!("AKIAGATE{n:012}");
        let principal =
            Principal { arn: format!("arn:aws:iam::{ACCOUNT}:user/{name}"), policy: policy.into() };
        self.principals.lock().expect("principals lock").insert(key.clone(), principal);
        (key, format!("s3-gate-secret-{n}"))
    }
}

/// The gate of this test process, in front of [`crate::moto::shared`],
/// started on first use.
pub fn shared() -> &'static Gate {
    static GATE: OnceLock<Gate> = OnceLock::new();
    GATE.get_or_init(|| {
        let moto = crate::moto::shared().endpoint();
        let upstream = moto.trim_start_matches("http://").parse().expect("moto's endpoint is an address");
        start(upstream)
    })
}

/// Listens before returning, then serves on a thread of its own with its own
/// runtime, so callers inside or outside a runtime can use it.
fn start(upstream: SocketAddr) -> Gate {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .unwrap_or_else(|e| panic!("the S3 gate cannot listen on 127.0.0.1: {e}"));
    let port = listener.local_addr().expect("the gate's address").port();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("the S3 gate cannot start a runtime: {e}"));
    let principals = Arc::default();
    let state = Arc::new(State { upstream, principals: Arc::clone(&principals) });
    std::thread::Builder::new()
        .name("s3-gate".into())
        .spawn(move || runtime.block_on(serve(listener, state)))
        .unwrap_or_else(|e| panic!("the S3 gate cannot start its thread: {e}"));
    Gate { port, principals }
}

struct State {
    upstream: SocketAddr,
    principals: Arc<Mutex<HashMap<String, Principal>>>,
}

async fn serve(listener: std::net::TcpListener, state: Arc<State>) {
    let listener = tokio::net::TcpListener::from_std(listener).expect("a tokio listener");
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                eprintln!("s3 gate: accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let state = Arc::clone(&state);
                async move { Ok::<_, Infallible>(state.handle(request).await.map(Full::new)) }
            });
            // A client hanging up mid-request is its own business.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

impl State {
    async fn handle(&self, request: Request<Incoming>) -> Response<Bytes> {
        let (parts, body) = request.into_parts();
        let body = match body.collect().await {
            Ok(body) => body.to_bytes(),
            Err(e) => return plain(StatusCode::BAD_REQUEST, format!("s3 gate: reading the request: {e}")),
        };
        let principal = access_key(&parts)
            .and_then(|k| self.principals.lock().expect("principals lock").get(&k).cloned());
        let Some(principal) = principal else { return self.forward(parts, body).await };
        let head = parts.method == Method::HEAD;
        match operation::classify(&parts.method, parts.uri.path(), parts.uri.query(), &parts.headers) {
            Err(request) => denied(
                head,
                &format!(
                    "Access Denied: the S3 gate does not know which permissions {request} needs, so it refuses it"
                ),
            ),
            Ok(Operation::DeleteObjects { bucket }) => {
                self.delete_objects(&principal, parts, body, &bucket).await
            }
            Ok(Operation::Checked { needs, reads_from }) => {
                if let Some(refused) = needs
                    .iter()
                    .find(|a| !principal.policy.allows(a.action, &a.resource, a.prefix.as_deref()))
                {
                    return denied(head, &principal.refusal(refused.action, &refused.resource));
                }
                let response = self.forward(parts, body).await;
                // HEAD carries no error code: a 404 there is taken as a missing key.
                let missing = response.status() == StatusCode::NOT_FOUND
                    && (head || error_code(response.body()).as_deref() == Some("NoSuchKey"));
                let may_list = |bucket: &String| {
                    principal.policy.allows("s3:ListBucket", &format!("arn:aws:s3:::{bucket}"), None)
                };
                if missing && reads_from.as_ref().is_some_and(|bucket| !may_list(bucket)) {
                    return denied(head, "Access Denied");
                }
                response
            }
        }
    }

    /// Deletes the keys the principal may delete, one by one, and reports
    /// AccessDenied for the others in a 200, as S3 does per key.
    async fn delete_objects(
        &self,
        principal: &Principal,
        parts: request::Parts,
        body: Bytes,
        bucket: &str,
    ) -> Response<Bytes> {
        let text = String::from_utf8_lossy(&body).into_owned();
        let objects = delete_list(&text);
        let refused = |(key, version): &(String, Option<String>)| {
            let action = if version.is_some() { "s3:DeleteObjectVersion" } else { "s3:DeleteObject" };
            let resource = format!("arn:aws:s3:::{bucket}/{key}");
            (!principal.policy.allows(action, &resource, None)).then(|| principal.refusal(action, &resource))
        };
        if objects.iter().all(|o| refused(o).is_none()) {
            return self.forward(parts, body).await;
        }
        let quiet = text.contains("<Quiet>true</Quiet>");
        let mut result = String::from(
            r#"<?xml version="1.0" encoding="UTF-8"?><DeleteResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">"#,
        );
        for object in &objects {
            let (key, version) = object;
            let tags = format!(
                "<Key>{}</Key>{}",
                escape(key),
                version.as_ref().map(|v| format!("<VersionId>{}</VersionId>", escape(v))).unwrap_or_default()
            );
            if let Some(message) = refused(object) {
                let message = escape(&message);
                result.push_str(&format!(
                    "<Error>{tags}<Code>AccessDenied</Code><Message>{message}</Message></Error>"
                ));
                continue;
            }
            let reply = self.forward(delete_one(&parts, bucket, key, version.as_deref()), Bytes::new()).await;
            if reply.status().is_success() {
                if !quiet {
                    result.push_str(&format!("<Deleted>{tags}</Deleted>"));
                }
            } else {
                let code = error_code(reply.body()).unwrap_or_else(|| reply.status().to_string());
                result.push_str(&format!(
                    "<Error>{tags}<Code>{}</Code><Message>moto refused it</Message></Error>",
                    escape(&code)
                ));
            }
        }
        result.push_str("</DeleteResult>");
        let mut response = Response::new(Bytes::from(result));
        response.headers_mut().insert(CONTENT_TYPE, "application/xml".parse().expect("a header value"));
        response
    }

    async fn forward(&self, parts: request::Parts, body: Bytes) -> Response<Bytes> {
        let head = parts.method == Method::HEAD;
        match self.send(parts, body).await {
            Ok((mut parts, body)) => {
                // hyper sets the length from the collected body; a HEAD's is the object's.
                parts.headers.remove("transfer-encoding");
                if !head {
                    parts.headers.remove(CONTENT_LENGTH);
                }
                Response::from_parts(parts, body)
            }
            Err(e) => {
                plain(StatusCode::BAD_GATEWAY, format!("s3 gate: moto at {} failed: {e}", self.upstream))
            }
        }
    }

    async fn send(
        &self,
        mut parts: request::Parts,
        body: Bytes,
    ) -> Result<(hyper::http::response::Parts, Bytes), Box<dyn std::error::Error + Send + Sync>> {
        // The body is whole now: no chunking, no 100-continue.
        for name in ["transfer-encoding", "expect", "connection"] {
            parts.headers.remove(name);
        }
        let stream = tokio::net::TcpStream::connect(self.upstream).await?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        let response = sender.send_request(Request::from_parts(parts, Full::new(body))).await?;
        let (parts, body) = response.into_parts();
        Ok((parts, body.collect().await?.to_bytes()))
    }
}

impl Principal {
    /// S3's wording for an implicit deny within one account.
    fn refusal(&self, action: &str, resource: &str) -> String {
        format!(
            "User: {} is not authorized to perform: {action} on resource: \"{resource}\" \
             because no identity-based policy allows the {action} action",
            self.arn
        )
    }
}

/// The access key id a request is signed with: SigV4's `Authorization`
/// header, or a presigned URL's `X-Amz-Credential`.
fn access_key(parts: &request::Parts) -> Option<String> {
    let credential = match parts.headers.get(AUTHORIZATION) {
        Some(auth) => auth.to_str().ok()?.split("Credential=").nth(1)?.to_owned(),
        None => parse_query(parts.uri.query()?).into_iter().find(|(n, _)| n == "X-Amz-Credential")?.1,
    };
    credential.split('/').next().map(str::to_owned)
}

/// One DeleteObject for moto, signed as the DeleteObjects was (moto reads
/// the account from the signature and checks nothing else).
fn delete_one(original: &request::Parts, bucket: &str, key: &str, version: Option<&str>) -> request::Parts {
    use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
    const PATH: &AsciiSet =
        &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~').remove(b'/');
    let mut uri = format!("/{bucket}/{}", utf8_percent_encode(key, PATH));
    if let Some(version) = version {
        uri.push_str(&format!("?versionId={}", utf8_percent_encode(version, NON_ALPHANUMERIC)));
    }
    let mut request = Request::builder().method(Method::DELETE).uri(uri);
    for name in [HOST, AUTHORIZATION] {
        if let Some(value) = original.headers.get(&name) {
            request = request.header(name, value);
        }
    }
    request.body(()).expect("a valid request").into_parts().0
}

/// The `(key, version id)` of each `<Object>` of a DeleteObjects body.
fn delete_list(xml: &str) -> Vec<(String, Option<String>)> {
    let element = |text: &str, name: &str| {
        let start = text.find(&format!("<{name}>"))? + name.len() + 2;
        let end = start + text[start..].find(&format!("</{name}>"))?;
        Some(unescape(&text[start..end]))
    };
    xml.split("<Object>")
        .skip(1)
        .filter_map(|object| {
            let object = &object[..object.find("</Object>").unwrap_or(object.len())];
            Some((element(object, "Key")?, element(object, "VersionId")))
        })
        .collect()
}

/// The `<Code>` of an S3 XML error body.
fn error_code(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let start = text.find("<Code>")? + "<Code>".len();
    Some(text[start..start + text[start..].find("</Code>")?].to_owned())
}

/// 403 AccessDenied as S3 words it: an XML error body, none for HEAD.
fn denied(head: bool, message: &str) -> Response<Bytes> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let id = format!("GATE{:012X}", NEXT.fetch_add(1, Ordering::Relaxed));
    let body = if head {
        Bytes::new()
    } else {
        Bytes::from(format!(
            r#"<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>{}</Message><RequestId>{id}</RequestId><HostId>s3-gate</HostId></Error>"#,
            escape(message)
        ))
    };
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::FORBIDDEN;
    response.headers_mut().insert(CONTENT_TYPE, "application/xml".parse().expect("a header value"));
    response.headers_mut().insert("x-amz-request-id", id.parse().expect("a header value"));
    response
}

fn plain(status: StatusCode, text: String) -> Response<Bytes> {
    let mut response = Response::new(Bytes::from(text));
    *response.status_mut() = status;
    response
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// XML's five entities and character references.
fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let Some(end) = rest.find(';') else { break };
        let entity = &rest[1..end];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .map(|hex| u32::from_str_radix(hex, 16))
                .or_else(|| entity.strip_prefix('#').map(str::parse))
                .and_then(Result::ok)
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delete_lists_are_read_with_their_escapes() {
        let xml = "<Delete><Object><Key>a&amp;b&#x41;&#66;&lt;</Key></Object>\
                   <Object><Key>v</Key><VersionId>3</VersionId></Object><Quiet>true</Quiet></Delete>";
        assert_eq!(delete_list(xml), [("a&bAB<".into(), None), ("v".into(), Some("3".into()))]);
        assert_eq!(unescape("x &bogus; &amp"), "x &bogus; &amp");
        assert_eq!(escape("<a'&\">"), "&lt;a&apos;&amp;&quot;&gt;");
    }
}
