//! Manifest errors that point at the file, line and column.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// A problem in a manifest, shown as `file:line:column: message` with the
/// offending line underneath.
#[derive(Debug, thiserror::Error)]
pub struct ManifestError {
    file: PathBuf,
    line: usize,
    column: usize,
    message: String,
    snippet: Option<(String, usize)>,
}

impl ManifestError {
    /// An error at `span` (byte offsets into `text`).
    pub fn at(file: &Path, text: &str, span: Option<Range<usize>>, message: impl Into<String>) -> Self {
        let Some(span) = span else {
            return ManifestError {
                file: file.into(),
                line: 0,
                column: 0,
                message: message.into(),
                snippet: None,
            };
        };
        let start = span.start.min(text.len());
        let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
        let line = text[..start].matches('\n').count() + 1;
        let column = text[line_start..start].chars().count() + 1;
        let width = text[start..span.end.clamp(start, line_end)].chars().count().max(1);
        ManifestError {
            file: file.into(),
            line,
            column,
            message: message.into(),
            snippet: Some((text[line_start..line_end].to_owned(), width)),
        }
    }

    /// Wraps a TOML or serde error, which carries its own span.
    pub fn from_toml(file: &Path, text: &str, e: &toml::de::Error) -> Self {
        Self::at(file, text, e.span(), e.message().trim_end())
    }

    /// An error about the file as a whole.
    pub fn whole(file: &Path, message: impl Into<String>) -> Self {
        Self::at(file, "", None, message)
    }

    pub fn line(&self) -> usize {
        self.line
    }
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            return write!(f, "{}: {}", self.file.display(), self.message);
        }
        write!(f, "{}:{}:{}: {}", self.file.display(), self.line, self.column, self.message)?;
        if let Some((text, width)) = &self.snippet {
            let gutter = " ".repeat(self.line.to_string().len());
            let pad = " ".repeat(self.column - 1);
            write!(f, "\n{gutter} |\n{} | {text}\n{gutter} | {pad}{}", self.line, "^".repeat(*width))?;
        }
        Ok(())
    }
}
