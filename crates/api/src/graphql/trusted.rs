//! Trusted documents (`NOTEGRAPH_TRUSTED_DOCUMENTS`): an allow-list of the
//! operations a deployment's own clients send, built from their code at
//! build time. With it, only listed documents execute, on every transport
//! (HTTP, SSE, WebSocket); a client may send the document, or only its
//! SHA-256 (`extensions.persistedQuery.sha256Hash`, Apollo's format), which
//! also keeps request bodies small. Anything else is refused FORBIDDEN
//! before it is parsed.
//!
//! The file is JSON in either of the formats client toolchains write:
//! - a map of hash to document (GraphQL Codegen's `persisted-documents.json`);
//! - Apollo's persisted query manifest
//!   (`{"format": "apollo-persisted-query-manifest", "operations": [{"id", "body"}]}`).
//!
//! Every hash is checked against its document when the file is read: the
//! server refuses to start on a file that lies.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;

/// The listed documents by the lower-case hex SHA-256 of their text.
#[derive(Debug)]
pub struct TrustedDocuments {
    by_hash: HashMap<String, Arc<str>>,
}

/// The two file formats (see the module docs).
#[derive(Deserialize)]
#[serde(untagged)]
enum File {
    Manifest { format: String, operations: Vec<ManifestOperation> },
    Map(HashMap<String, String>),
}

#[derive(Deserialize)]
struct ManifestOperation {
    id: String,
    body: String,
}

impl TrustedDocuments {
    /// Reads and checks the list at `path`.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)?;
        Self::parse(&text)
    }

    /// Parses and checks a list in either format.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let entries = match serde_json::from_str::<File>(text)? {
            File::Manifest { format, operations } => {
                anyhow::ensure!(
                    format == "apollo-persisted-query-manifest",
                    "unknown manifest format {format:?}, expected \"apollo-persisted-query-manifest\""
                );
                operations.into_iter().map(|op| (op.id, op.body)).collect()
            }
            File::Map(map) => map.into_iter().collect::<Vec<_>>(),
        };
        let mut by_hash = HashMap::with_capacity(entries.len());
        for (hash, document) in entries {
            let hash = hash.to_ascii_lowercase();
            anyhow::ensure!(
                sha256_hex(&document) == hash,
                "the document listed under {hash} has another SHA-256 ({})",
                sha256_hex(&document)
            );
            by_hash.insert(hash, Arc::from(document));
        }
        anyhow::ensure!(!by_hash.is_empty(), "the list holds no documents, so nothing could run");
        Ok(TrustedDocuments { by_hash })
    }

    /// The listed document with this hash.
    pub fn get(&self, hash: &str) -> Option<Arc<str>> {
        self.by_hash.get(&hash.to_ascii_lowercase()).cloned()
    }

    /// True when `document` is listed, byte for byte.
    pub fn admits(&self, document: &str) -> bool {
        self.by_hash.contains_key(&sha256_hex(document))
    }

    /// How many documents are listed.
    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    /// True when nothing is listed (never, once loaded).
    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }
}

/// The lower-case hex SHA-256 of `text`.
pub(crate) fn sha256_hex(text: &str) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(text.as_bytes());
    digest.iter().fold(String::with_capacity(64), |mut hex, byte| {
        use std::fmt::Write as _;
        let _ = write!(hex, "{byte:02x}");
        hex
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "{ users { id } }";

    #[test]
    fn both_formats_load_and_admit_exactly_their_documents() {
        let hash = sha256_hex(DOC);
        let map = TrustedDocuments::parse(&serde_json::json!({ hash.clone(): DOC }).to_string()).unwrap();
        let manifest = serde_json::json!({
            "format": "apollo-persisted-query-manifest",
            "version": 1,
            "operations": [{ "id": hash.to_uppercase(), "name": "Users", "type": "query", "body": DOC }],
        });
        let manifest = TrustedDocuments::parse(&manifest.to_string()).unwrap();
        for list in [map, manifest] {
            assert!(list.admits(DOC));
            assert!(!list.admits("{ users { id name } }"));
            assert!(!list.admits("{users{id}}"), "byte for byte, not up to formatting");
            assert_eq!(list.get(&hash).as_deref(), Some(DOC));
            assert_eq!(list.len(), 1);
        }
    }

    #[test]
    fn a_list_that_lies_or_is_empty_is_refused() {
        let lie = serde_json::json!({ sha256_hex("{ me { id } }"): DOC }).to_string();
        assert!(TrustedDocuments::parse(&lie).unwrap_err().to_string().contains("another SHA-256"));
        assert!(TrustedDocuments::parse("{}").is_err());
        assert!(TrustedDocuments::parse(r#"{"format": "other", "operations": []}"#).is_err());
        assert!(TrustedDocuments::parse("[1, 2]").is_err());
    }
}
