//! Which IAM permissions a path-style S3 request needs, from its method,
//! path, query and headers. A request the gate cannot name is refused
//! rather than guessed at.

use hyper::{HeaderMap, Method};
use percent_encoding::percent_decode_str;

/// One permission a request needs: an action on a resource, with the
/// request's `s3:prefix` where it has one.
#[derive(Debug, PartialEq)]
pub struct Access {
    pub action: &'static str,
    pub resource: String,
    pub prefix: Option<String>,
}

#[derive(Debug, PartialEq)]
pub enum Operation {
    /// Needs every one of `needs`. `reads_from` is set for object reads
    /// (GetObject, HeadObject): the bucket whose `s3:ListBucket` decides
    /// whether a missing key is 404 or 403.
    Checked { needs: Vec<Access>, reads_from: Option<String> },
    /// DeleteObjects: `s3:DeleteObject` per key in the body.
    DeleteObjects { bucket: String },
}

/// Query parameters that select among an operation's options, not the
/// operation itself. `x-id` is the SDK's operation name, not S3's input.
const OPTIONS: &[&str] = &[
    "x-id",
    "list-type",
    "prefix",
    "delimiter",
    "max-keys",
    "continuation-token",
    "start-after",
    "fetch-owner",
    "encoding-type",
    "marker",
    "key-marker",
    "version-id-marker",
    "upload-id-marker",
    "max-uploads",
    "max-parts",
    "part-number-marker",
    "partNumber",
    "versionId",
    "uploadId",
];

/// The permissions the request needs, or a description of a request the
/// gate does not know.
pub fn classify(
    method: &Method,
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
) -> Result<Operation, String> {
    let params = parse_query(query.unwrap_or_default());
    let get = |name: &str| params.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
    let subresources: Vec<&str> = params
        .iter()
        .map(|(n, _)| n.as_str())
        .filter(|n| !OPTIONS.contains(n) && !n.starts_with("response-"))
        .collect();
    let unknown = || {
        let query = query.map(|q| format!("?{q}")).unwrap_or_default();
        format!("{method} {path}{query}")
    };
    let subresource = match subresources[..] {
        [] => None,
        [one] => Some(one),
        _ => return Err(unknown()),
    };
    let path = path.strip_prefix('/').unwrap_or(path);
    let (bucket, key) = path.split_once('/').unwrap_or((path, ""));
    let (bucket, key) = (decode(bucket), decode(key));
    let access = |action, resource: String| Access { action, resource, prefix: None };
    let checked = |needs| Ok(Operation::Checked { needs, reads_from: None });
    let bucket_arn = format!("arn:aws:s3:::{bucket}");
    let object_arn = format!("arn:aws:s3:::{bucket}/{key}");

    if bucket.is_empty() {
        return match (method, subresource) {
            (&Method::GET, None) => checked(vec![access("s3:ListAllMyBuckets", "*".into())]),
            _ => Err(unknown()),
        };
    }
    if key.is_empty() {
        let listing = |action| Access { action, resource: bucket_arn.clone(), prefix: get("prefix") };
        return match (method, subresource) {
            (&Method::GET, None) => checked(vec![listing("s3:ListBucket")]),
            (&Method::HEAD, None) => checked(vec![access("s3:ListBucket", bucket_arn)]),
            (&Method::GET, Some("location")) => checked(vec![access("s3:GetBucketLocation", bucket_arn)]),
            (&Method::GET, Some("versions")) => checked(vec![listing("s3:ListBucketVersions")]),
            (&Method::GET, Some("uploads")) => {
                checked(vec![access("s3:ListBucketMultipartUploads", bucket_arn)])
            }
            (&Method::PUT, None) => checked(vec![access("s3:CreateBucket", bucket_arn)]),
            (&Method::DELETE, None) => checked(vec![access("s3:DeleteBucket", bucket_arn)]),
            (&Method::POST, Some("delete")) => Ok(Operation::DeleteObjects { bucket }),
            _ => Err(unknown()),
        };
    }
    let upload = get("uploadId").is_some();
    let versioned = get("versionId").is_some();
    match (method, subresource) {
        (&Method::GET, None) if upload => checked(vec![access("s3:ListMultipartUploadParts", object_arn)]),
        (&Method::GET | &Method::HEAD, None) => {
            let action = if versioned { "s3:GetObjectVersion" } else { "s3:GetObject" };
            Ok(Operation::Checked { needs: vec![access(action, object_arn)], reads_from: Some(bucket) })
        }
        // PutObject, CopyObject, UploadPart, UploadPartCopy.
        (&Method::PUT, None) => checked(writes(object_arn, headers)?),
        (&Method::POST, Some("uploads")) => checked(writes(object_arn, headers)?),
        (&Method::POST, None) if upload => checked(vec![access("s3:PutObject", object_arn)]),
        (&Method::DELETE, None) if upload => checked(vec![access("s3:AbortMultipartUpload", object_arn)]),
        (&Method::DELETE, None) if versioned => checked(vec![access("s3:DeleteObjectVersion", object_arn)]),
        (&Method::DELETE, None) => checked(vec![access("s3:DeleteObject", object_arn)]),
        _ => Err(unknown()),
    }
}

/// What writing `object_arn` with these headers needs: `s3:PutObject`, plus
/// reading a copy source, setting an ACL or setting tags.
fn writes(object_arn: String, headers: &HeaderMap) -> Result<Vec<Access>, String> {
    let mut needs = vec![Access { action: "s3:PutObject", resource: object_arn, prefix: None }];
    if let Some(source) = headers.get("x-amz-copy-source") {
        let source = source.to_str().map_err(|_| "a copy source that is not text".to_owned())?;
        let source = source.strip_prefix('/').unwrap_or(source);
        let (source, query) = source.split_once('?').unwrap_or((source, ""));
        let versioned = parse_query(query).iter().any(|(n, _)| n == "versionId");
        let action = if versioned { "s3:GetObjectVersion" } else { "s3:GetObject" };
        needs.push(Access { action, resource: format!("arn:aws:s3:::{}", decode(source)), prefix: None });
    }
    let mut names = headers.keys().map(|h| h.as_str());
    if names.any(|h| h == "x-amz-acl" || h.starts_with("x-amz-grant-")) {
        needs.push(Access { action: "s3:PutObjectAcl", resource: needs[0].resource.clone(), prefix: None });
    }
    if headers.contains_key("x-amz-tagging") {
        needs.push(Access {
            action: "s3:PutObjectTagging",
            resource: needs[0].resource.clone(),
            prefix: None,
        });
    }
    Ok(needs)
}

/// `a=1&b&c=%2F` as decoded pairs (`b` has an empty value). `+` stays a
/// plus: SigV4 clients encode spaces as `%20`.
pub fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (name, value) = p.split_once('=').unwrap_or((p, ""));
            (decode(name), decode(value))
        })
        .collect()
}

fn decode(text: &str) -> String {
    percent_decode_str(text).decode_utf8_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn needs(
        method: Method,
        path: &str,
        query: Option<&str>,
        headers: &[(&'static str, &str)],
    ) -> Vec<String> {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.insert(*name, value.parse().unwrap());
        }
        match classify(&method, path, query, &map).unwrap() {
            Operation::Checked { needs, .. } => needs
                .into_iter()
                .map(|a| {
                    format!(
                        "{} {}{}",
                        a.action,
                        a.resource,
                        a.prefix.map(|p| format!(" ({p})")).unwrap_or_default()
                    )
                })
                .collect(),
            Operation::DeleteObjects { bucket } => vec![format!("DeleteObjects {bucket}")],
        }
    }

    #[test]
    fn requests_map_to_their_actions() {
        let b = "arn:aws:s3:::b";
        assert_eq!(
            needs(Method::GET, "/b/a%20b/c", Some("x-id=GetObject"), &[]),
            [format!("s3:GetObject {b}/a b/c")]
        );
        assert_eq!(
            needs(Method::HEAD, "/b/k", Some("versionId=3"), &[]),
            [format!("s3:GetObjectVersion {b}/k")]
        );
        assert_eq!(
            needs(Method::GET, "/b", Some("list-type=2&prefix=docs%2F"), &[]),
            [format!("s3:ListBucket {b} (docs/)")]
        );
        assert_eq!(needs(Method::GET, "/b/", Some("location"), &[]), [format!("s3:GetBucketLocation {b}")]);
        assert_eq!(needs(Method::HEAD, "/b", None, &[]), [format!("s3:ListBucket {b}")]);
        assert_eq!(needs(Method::POST, "/b", Some("delete"), &[]), ["DeleteObjects b"]);
        assert_eq!(needs(Method::POST, "/b/k", Some("uploads"), &[]), [format!("s3:PutObject {b}/k")]);
        assert_eq!(
            needs(Method::PUT, "/b/k", Some("partNumber=1&uploadId=u"), &[]),
            [format!("s3:PutObject {b}/k")]
        );
        assert_eq!(needs(Method::POST, "/b/k", Some("uploadId=u"), &[]), [format!("s3:PutObject {b}/k")]);
        assert_eq!(
            needs(Method::DELETE, "/b/k", Some("uploadId=u"), &[]),
            [format!("s3:AbortMultipartUpload {b}/k")]
        );
        assert_eq!(needs(Method::GET, "/", None, &[]), ["s3:ListAllMyBuckets *"]);
        assert_eq!(
            needs(
                Method::PUT,
                "/b/k",
                None,
                &[("x-amz-copy-source", "/src/a%2Bb?versionId=2"), ("x-amz-tagging", "t=1")]
            ),
            [
                format!("s3:PutObject {b}/k"),
                "s3:GetObjectVersion arn:aws:s3:::src/a+b".into(),
                format!("s3:PutObjectTagging {b}/k")
            ]
        );
    }

    #[test]
    fn unknown_requests_are_not_guessed() {
        let none = HeaderMap::new();
        assert!(classify(&Method::GET, "/b/k", Some("tagging"), &none).is_err());
        assert!(classify(&Method::PUT, "/b", Some("policy"), &none).is_err());
        assert!(classify(&Method::GET, "/b/k", Some("acl&uploads"), &none).is_err());
    }
}
