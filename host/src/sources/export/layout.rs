//! An export folder's two manifests: `manifest-summary.json` (what was
//! exported, when, in which format) and `manifest-files.json` (one JSON line
//! per data file: its key, item count and md5).

use std::time::SystemTime;

use anyhow::{Context, Result, anyhow, bail};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawSummary {
    export_arn: Option<String>,
    table_arn: Option<String>,
    export_time: Option<String>,
    /// Incremental exports: the end of the exported window.
    export_to_time: Option<String>,
    manifest_files_s3_key: Option<String>,
    item_count: Option<u64>,
    output_format: Option<String>,
    export_type: Option<String>,
}

/// What `manifest-summary.json` says, checked.
#[derive(Debug, Clone)]
pub struct Summary {
    pub export_arn: String,
    /// The table named by `tableArn`.
    pub table: Option<String>,
    /// `exportTime` (full) or `exportToTime` (incremental), in microseconds:
    /// the moment the export shows the table at.
    pub as_of_micros: u64,
    pub as_of: SystemTime,
    /// `manifest-files.json`, relative to the export's folder.
    pub files_key: String,
    pub item_count: Option<u64>,
    pub incremental: bool,
}

/// One line of `manifest-files.json`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DataFile {
    pub data_file_s3_key: String,
    pub item_count: Option<u64>,
    /// Base64 MD5 of the stored (compressed) object.
    pub md5_checksum: Option<String>,
    pub etag: Option<String>,
}

pub fn summary(text: &[u8], export_id: &str) -> Result<Summary> {
    let raw: RawSummary =
        serde_json::from_slice(text).context("manifest-summary.json is not the JSON expected")?;
    match raw.output_format.as_deref() {
        None | Some("DYNAMODB_JSON") => {}
        Some("ION") => bail!(
            "the export is in ION format, which sluice does not read: export the table again with \
             --export-format DYNAMODB_JSON"
        ),
        Some(other) => bail!("the export's outputFormat is {other:?}; sluice reads DYNAMODB_JSON exports"),
    }
    let incremental = match raw.export_type.as_deref() {
        None | Some("FULL_EXPORT") => false,
        Some("INCREMENTAL_EXPORT") => true,
        Some(other) => bail!("unknown exportType {other:?} (expected FULL_EXPORT or INCREMENTAL_EXPORT)"),
    };
    let time = if incremental { raw.export_to_time.or(raw.export_time) } else { raw.export_time };
    let time = time.ok_or_else(|| anyhow!("manifest-summary.json has no exportTime"))?;
    let as_of = humantime::parse_rfc3339_weak(&time).with_context(|| format!("exportTime {time:?}"))?;
    let as_of_micros = as_of
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_err(|_| anyhow!("exportTime {time:?} is before 1970"))?
        .as_micros() as u64;
    let table = raw.table_arn.as_deref().and_then(|arn| arn.split_once(":table/")).map(|(_, t)| t.to_owned());
    let files_key =
        relative(raw.manifest_files_s3_key.as_deref().unwrap_or("manifest-files.json"), export_id)?;
    Ok(Summary {
        export_arn: raw.export_arn.unwrap_or_else(|| export_id.to_owned()),
        table,
        as_of_micros,
        as_of,
        files_key,
        item_count: raw.item_count,
        incremental,
    })
}

pub fn data_files(text: &[u8], export_id: &str) -> Result<Vec<DataFile>> {
    let text = std::str::from_utf8(text).context("manifest-files.json is not UTF-8")?;
    let mut files = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let mut file: DataFile =
            serde_json::from_str(line).with_context(|| format!("manifest-files.json line {}", i + 1))?;
        file.data_file_s3_key = relative(&file.data_file_s3_key, export_id)
            .with_context(|| format!("manifest-files.json line {}", i + 1))?;
        files.push(file);
    }
    Ok(files)
}

/// A key from the manifests, relative to the export's folder. Published
/// examples disagree on whether keys include the bucket prefix and the
/// `AWSDynamoDB/<ExportId>/` part, so whatever precedes the folder is cut.
pub fn relative(key: &str, export_id: &str) -> Result<String> {
    let folder = format!("AWSDynamoDB/{export_id}/");
    let rel = match key.find(&folder) {
        Some(at) => &key[at + folder.len()..],
        None if key.starts_with("data/") || !key.contains('/') => key,
        None => match key.rfind("/data/") {
            Some(at) => &key[at + 1..],
            None => bail!("{key:?} is not inside the export's folder ({folder})"),
        },
    };
    if rel.is_empty() || rel.split('/').any(|part| part.is_empty() || part == "..") {
        bail!("{key:?} is not a file inside the export's folder");
    }
    Ok(rel.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_resolve_relative_to_the_export_folder() {
        let id = "01700000000000-abcdef12";
        for key in [
            "backups/AWSDynamoDB/01700000000000-abcdef12/data/x.json.gz",
            "AWSDynamoDB/01700000000000-abcdef12/data/x.json.gz",
            "data/x.json.gz",
            "other/prefix/data/x.json.gz",
        ] {
            assert_eq!(relative(key, id).unwrap(), "data/x.json.gz", "{key}");
        }
        assert!(relative("data/../../etc/passwd", id).is_err());
        assert!(relative("somewhere/else.json.gz", id).is_err());
    }

    #[test]
    fn summaries_are_checked() {
        let full = br#"{"exportArn":"arn:aws:dynamodb:us-east-1:1:table/orders/export/e","tableArn":"arn:aws:dynamodb:us-east-1:1:table/orders",
            "exportTime":"2026-01-02T03:04:05.678Z","manifestFilesS3Key":"p/AWSDynamoDB/e/manifest-files.json","itemCount":3,
            "outputFormat":"DYNAMODB_JSON","exportType":"FULL_EXPORT"}"#;
        let s = summary(full, "e").unwrap();
        assert_eq!(s.table.as_deref(), Some("orders"));
        assert_eq!(s.files_key, "manifest-files.json");
        assert_eq!(s.as_of_micros, 1_767_323_045_678_000);
        assert!(!s.incremental);
        let ion = br#"{"exportTime":"2026-01-02T03:04:05Z","outputFormat":"ION"}"#;
        assert!(summary(ion, "e").unwrap_err().to_string().contains("ION format"));
        let incremental = br#"{"exportFromTime":"2026-01-01T00:00:00Z","exportToTime":"2026-01-02T00:00:00Z","exportType":"INCREMENTAL_EXPORT"}"#;
        let s = summary(incremental, "e").unwrap();
        assert!(s.incremental);
        assert_eq!(s.as_of_micros, 1_767_312_000_000_000);
    }
}
