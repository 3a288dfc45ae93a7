//! Turning parse and validation failures into [`ConfigError`]s that carry file, line and key.

use crate::error::{ConfigError, KeyPath, PathSegment, Problem};
use serde::de::DeserializeOwned;
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// A config file's text with its path, for error placement.
pub(crate) struct SourceFile {
    pub path: PathBuf,
    pub text: String,
}

impl SourceFile {
    /// Reads the file.
    pub fn read(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(SourceFile {
            path: path.to_path_buf(),
            text,
        })
    }

    /// Deserialises the document, mapping parser errors to file:line:column.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, ConfigError> {
        toml::from_str(&self.text).map_err(|e| {
            let (line, column) = e
                .span()
                .map(|s| self.line_column(s.start))
                .unwrap_or((1, 1));
            ConfigError::Syntax {
                path: self.path.clone(),
                line,
                column,
                message: e.message().trim().to_string(),
            }
        })
    }

    /// Places a validation problem at the line of its key (or of the closest enclosing key).
    pub fn invalid(&self, problem: Problem) -> ConfigError {
        let line = self
            .span_of(&problem.path)
            .map(|s| self.line_column(s.start).0)
            .unwrap_or(1);
        ConfigError::Invalid {
            path: self.path.clone(),
            line,
            key: problem.path.to_string(),
            message: problem.message,
        }
    }

    fn line_column(&self, offset: usize) -> (usize, usize) {
        let before = &self.text[..offset.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.len() - before.rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
        (line, column)
    }

    /// The span of the deepest key of `path` that exists in the document.
    fn span_of(&self, path: &KeyPath) -> Option<Range<usize>> {
        let root = DeTable::parse(&self.text).ok()?;
        let mut best: Option<Range<usize>> = None;
        let mut table: Option<&DeTable<'_>> = Some(root.get_ref());
        let mut array: Option<&[Spanned<DeValue<'_>>]> = None;
        for segment in &path.0 {
            let found = match segment {
                PathSegment::Key(k) => table.and_then(|t| {
                    t.iter()
                        .find(|(key, _)| key.get_ref().as_ref() == k)
                        .map(|(key, value)| (key.span(), value))
                }),
                PathSegment::Index(i) => array
                    .and_then(|items| items.get(*i))
                    .map(|item| (item.span(), item)),
            };
            let Some((span, next)) = found else { break };
            best = Some(span);
            table = next.get_ref().as_table();
            array = next.get_ref().as_array().map(|a| &a[..]);
        }
        best
    }
}
