//! Who may use the HTTP API: bearer tokens with scopes, checked by one middleware in front of
//! every route but `/healthz`.
//!
//! The tokens file (`http.tokens_file`) holds one token per line, stored hashed:
//!
//! ```text
//! # name   scopes          sha256 of the token (hex)
//! ann      read,operate    4f1c…
//! grafana  read            9b2e…
//! ```
//!
//! `coldaisle-collector token new NAME --scopes read,operate` makes a random token and prints
//! the line. Invariants:
//! - the collector never holds a token in clear: it hashes what a client presents (SHA-256)
//!   and compares it with every stored hash in constant time, with no early exit, so neither
//!   the match nor its position shows in the answer time;
//! - a `GET`/`HEAD` needs the `read` scope, every other method `operate` (which includes
//!   `read`);
//! - the caller's name ([`Caller`]) is the token's name: operator actions record it as their
//!   actor, never a name from the request body;
//! - without a tokens file ([`Access::Open`]) the API is open; the config then allows only a
//!   loopback listen address (`coldaisle_config::collector`), and the daemon warns at start.
//!
//! Errors are JSON `{"error"}`: `401` (with `WWW-Authenticate: Bearer`) for a missing or unknown
//! token, `403` for a token without the scope the method needs.

use crate::http::ApiError;
use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

/// What a token allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scopes {
    /// `GET`/`HEAD` routes.
    pub read: bool,
    /// Operator actions and silences (every other method); implies `read`.
    pub operate: bool,
}

impl Scopes {
    /// Whether these scopes allow `method`.
    pub fn allow(self, method: &Method) -> bool {
        if method == Method::GET || method == Method::HEAD {
            self.read || self.operate
        } else {
            self.operate
        }
    }
}

/// The scope `method` needs, for error messages.
fn needed(method: &Method) -> &'static str {
    if method == Method::GET || method == Method::HEAD {
        "read"
    } else {
        "operate"
    }
}

/// One token of the file: its name, scopes and the SHA-256 of the token.
#[derive(Clone)]
pub struct TokenEntry {
    /// The caller's name (the actor of its actions).
    pub name: String,
    /// What it may do.
    pub scopes: Scopes,
    /// SHA-256 of the token.
    hash: [u8; 32],
}

impl std::fmt::Debug for TokenEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The hash is not the token, but a log has no use for it either.
        f.debug_struct("TokenEntry")
            .field("name", &self.name)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

/// Why a tokens file was refused.
#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    /// The file could not be read.
    #[error("{path}: cannot read the tokens file: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A line does not parse.
    #[error("{path}:{line}: {message}")]
    Line {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong and what to write instead.
        message: String,
    },
    /// The file holds no token: every request would be refused.
    #[error("{path}: holds no token; add a line `name scopes sha256` (coldaisle-collector token new prints one)")]
    Empty {
        /// The file.
        path: PathBuf,
    },
}

/// The tokens of one file.
#[derive(Debug, Clone, Default)]
pub struct TokenBook {
    entries: Vec<TokenEntry>,
}

/// SHA-256 of a token, as the tokens file stores it.
pub fn hash_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Lower-case hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn from_hex32(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Equality of two hashes in time independent of where they differ.
fn same_hash(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn parse_scopes(text: &str) -> Result<Scopes, String> {
    let mut scopes = Scopes {
        read: false,
        operate: false,
    };
    for scope in text.split(',') {
        match scope {
            "read" => scopes.read = true,
            "operate" => scopes.operate = true,
            other => {
                return Err(format!(
                    "unknown scope {other:?}: expected read, operate or read,operate"
                ))
            }
        }
    }
    Ok(scopes)
}

impl TokenBook {
    /// Parses a tokens file's text; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<TokenBook, TokenFileError> {
        let mut entries: Vec<TokenEntry> = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |message: String| TokenFileError::Line {
                path: path.to_path_buf(),
                line: index + 1,
                message,
            };
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [name, scopes, hash] = fields[..] else {
                return Err(bad(format!(
                    "expected 3 fields `name scopes sha256-hex`, found {}",
                    fields.len()
                )));
            };
            if entries.iter().any(|e| e.name == name) {
                return Err(bad(format!("token name {name:?} appears twice")));
            }
            let scopes = parse_scopes(scopes).map_err(bad)?;
            let hash = from_hex32(hash).ok_or_else(|| {
                bad("the third field must be 64 hex digits: the SHA-256 of the token, not the token".into())
            })?;
            entries.push(TokenEntry {
                name: name.to_string(),
                scopes,
                hash,
            });
        }
        if entries.is_empty() {
            return Err(TokenFileError::Empty {
                path: path.to_path_buf(),
            });
        }
        Ok(TokenBook { entries })
    }

    /// Reads and parses a tokens file.
    pub fn load(path: &Path) -> Result<TokenBook, TokenFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| TokenFileError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// The entry whose hash matches `token`. Every entry is compared, whatever matched.
    pub fn find(&self, token: &str) -> Option<&TokenEntry> {
        let presented = hash_token(token);
        let mut found = None;
        for entry in &self.entries {
            if same_hash(&entry.hash, &presented) {
                found = Some(entry);
            }
        }
        found
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the book holds no token (never true for a loaded file).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The access rule of a running API.
#[derive(Debug, Clone)]
pub enum Access {
    /// No tokens: every request is served (loopback only, see the module doc).
    Open,
    /// Bearer tokens from a file, replaced as a whole on reload.
    Tokens {
        /// The file (re-read by [`Access::reload`]).
        path: PathBuf,
        /// The tokens in force.
        book: Arc<RwLock<TokenBook>>,
    },
}

impl Access {
    /// The access of `tokens_file`: [`Access::Open`] without one.
    pub fn load(tokens_file: Option<&Path>) -> Result<Access, TokenFileError> {
        Ok(match tokens_file {
            None => Access::Open,
            Some(path) => Access::Tokens {
                path: path.to_path_buf(),
                book: Arc::new(RwLock::new(TokenBook::load(path)?)),
            },
        })
    }

    /// Re-reads the tokens file; on an error the tokens in force stay. Returns the token count
    /// (0 for [`Access::Open`]).
    pub fn reload(&self) -> Result<usize, TokenFileError> {
        match self {
            Access::Open => Ok(0),
            Access::Tokens { path, book } => {
                let new = TokenBook::load(path)?;
                let count = new.len();
                match book.write() {
                    Ok(mut guard) => *guard = new,
                    Err(poisoned) => *poisoned.into_inner() = new,
                }
                Ok(count)
            }
        }
    }

    /// Decides on a request: the caller, or the error to answer.
    pub fn check(&self, method: &Method, authorization: Option<&str>) -> Result<Caller, ApiError> {
        let Access::Tokens { book, .. } = self else {
            return Ok(Caller { name: None });
        };
        let token = authorization
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ApiError {
                status: StatusCode::UNAUTHORIZED,
                message: "missing bearer token: send the header `Authorization: Bearer <token>` \
                          (the CLI reads it from --token-file or $COLDAISLE_API_TOKEN)"
                    .into(),
            })?;
        let book = match book.read() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let entry = book.find(token).ok_or_else(|| ApiError {
            status: StatusCode::UNAUTHORIZED,
            message: "unknown token: it matches no line of the collector's tokens file".into(),
        })?;
        if !entry.scopes.allow(method) {
            return Err(ApiError {
                status: StatusCode::FORBIDDEN,
                message: format!(
                    "token {:?} lacks the {} scope that {method} needs",
                    entry.name,
                    needed(method)
                ),
            });
        }
        Ok(Caller {
            name: Some(entry.name.clone()),
        })
    }
}

/// Who sent a request, as the middleware established it (a request extension).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's name; `None` on an open (tokenless, loopback) API.
    pub name: Option<String>,
}

impl Caller {
    /// The actor of an action: the token's name. A name in the request body must be absent or
    /// the same; without tokens the body's name is used and required.
    pub fn actor(&self, field: &str, in_body: Option<&str>) -> Result<String, ApiError> {
        let in_body = in_body.map(str::trim).filter(|a| !a.is_empty());
        match (&self.name, in_body) {
            (Some(name), None) => Ok(name.clone()),
            (Some(name), Some(given)) if given == name => Ok(name.clone()),
            (Some(name), Some(given)) => Err(ApiError {
                status: StatusCode::FORBIDDEN,
                message: format!(
                    "field {field:?} says {given:?} but the token is {name:?}: the actor of an \
                     action is the token's name; leave {field:?} out"
                ),
            }),
            (None, Some(given)) => Ok(given.to_string()),
            (None, None) => Err(ApiError::bad_request(format!(
                "field {field:?} is required (this API has no tokens, so the body names the actor)"
            ))),
        }
    }
}

/// The middleware: answers `401`/`403` itself, or passes the request on with its [`Caller`].
pub async fn require(State(access): State<Access>, mut request: Request, next: Next) -> Response {
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match access.check(request.method(), authorization) {
        Ok(caller) => {
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(error) => {
            tracing::info!(method = %request.method(), path = %request.uri().path(),
                status = error.status.as_u16(), reason = %error.message, "API request refused");
            let unauthorized = error.status == StatusCode::UNAUTHORIZED;
            let mut response = error.into_response();
            if unauthorized {
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    header::HeaderValue::from_static("Bearer realm=\"coldaisle\""),
                );
            }
            response
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn book() -> Access {
        let text = format!(
            "# comment\n\nann read,operate {}\ngraf  read  {}\n",
            to_hex(&hash_token("ann-secret")),
            to_hex(&hash_token("graf-secret"))
        );
        Access::Tokens {
            path: PathBuf::from("tokens"),
            book: Arc::new(RwLock::new(
                TokenBook::parse(&text, Path::new("tokens")).unwrap(),
            )),
        }
    }

    #[test]
    fn tokens_resolve_to_their_name_and_scopes() {
        let access = book();
        let ann = access
            .check(&Method::POST, Some("Bearer ann-secret"))
            .unwrap();
        assert_eq!(ann.name.as_deref(), Some("ann"));
        let graf = access.check(&Method::GET, Some("Bearer graf-secret"));
        assert_eq!(graf.unwrap().name.as_deref(), Some("graf"));
        let denied = access
            .check(&Method::POST, Some("Bearer graf-secret"))
            .unwrap_err();
        assert_eq!(denied.status, StatusCode::FORBIDDEN);
        assert!(
            denied.message.contains("lacks the operate scope"),
            "{}",
            denied.message
        );
    }

    #[test]
    fn missing_malformed_or_unknown_tokens_are_401() {
        let access = book();
        for header in [
            None,
            Some("Basic abc"),
            Some("Bearer "),
            Some("Bearer nope"),
        ] {
            let e = access.check(&Method::GET, header).unwrap_err();
            assert_eq!(e.status, StatusCode::UNAUTHORIZED, "{header:?}");
        }
        // The hash itself is not a token.
        let hash = to_hex(&hash_token("ann-secret"));
        let e = access
            .check(&Method::GET, Some(&format!("Bearer {hash}")))
            .unwrap_err();
        assert_eq!(e.status, StatusCode::UNAUTHORIZED);
    }

    #[test]
    fn open_access_serves_everyone_without_a_name() {
        let caller = Access::Open.check(&Method::POST, None).unwrap();
        assert_eq!(caller.name, None);
    }

    #[test]
    fn the_actor_is_the_tokens_name() {
        let ann = Caller {
            name: Some("ann".into()),
        };
        assert_eq!(ann.actor("actor", None).unwrap(), "ann");
        assert_eq!(ann.actor("actor", Some("ann")).unwrap(), "ann");
        let e = ann.actor("actor", Some("root")).unwrap_err();
        assert_eq!(e.status, StatusCode::FORBIDDEN);
        let open = Caller { name: None };
        assert_eq!(open.actor("actor", Some("bob")).unwrap(), "bob");
        assert_eq!(
            open.actor("created_by", Some(" ")).unwrap_err().status,
            StatusCode::BAD_REQUEST
        );
    }

    #[test]
    fn bad_files_name_the_line() {
        let p = Path::new("t");
        let cases = [
            ("ann read", "t:1: expected 3 fields"),
            ("ann write 00", "unknown scope \"write\""),
            ("ann read cafe", "64 hex digits"),
            ("# only a comment\n", "holds no token"),
        ];
        for (text, needle) in cases {
            let e = TokenBook::parse(text, p).unwrap_err().to_string();
            assert!(e.contains(needle), "{text:?}: {e}");
        }
        let h = to_hex(&hash_token("x"));
        let e = TokenBook::parse(&format!("a read {h}\na read {h}\n"), p)
            .unwrap_err()
            .to_string();
        assert!(e.contains("t:2: token name \"a\" appears twice"), "{e}");
    }

    #[test]
    fn reload_replaces_the_tokens_and_keeps_them_on_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens");
        std::fs::write(&path, format!("a read {}\n", to_hex(&hash_token("one")))).unwrap();
        let access = Access::load(Some(&path)).unwrap();
        assert!(access.check(&Method::GET, Some("Bearer one")).is_ok());
        std::fs::write(&path, format!("b read {}\n", to_hex(&hash_token("two")))).unwrap();
        assert_eq!(access.reload().unwrap(), 1);
        assert!(access.check(&Method::GET, Some("Bearer one")).is_err());
        assert!(access.check(&Method::GET, Some("Bearer two")).is_ok());
        std::fs::write(&path, "garbage\n").unwrap();
        assert!(access.reload().is_err());
        assert!(access.check(&Method::GET, Some("Bearer two")).is_ok());
    }
}
