//! The checkpoint document ([`Checkpoint`]) in Elasticsearch, written with optimistic
//! concurrency: a save names the version it replaces, so two rollers running at once (no lease,
//! or a lease lost mid-cycle) can never move it backwards; the one that loses learns it.

use elasticsearch::http::Method;
use panopticon_es::{EsClient, EsError};
use serde_json::json;

use crate::planner::Checkpoint;

/// The version a checkpoint was read or written at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version {
    pub seq_no: i64,
    pub primary_term: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    /// Someone else saved since we read: reload.
    #[error("the checkpoint was changed by another roller")]
    Conflict,
    #[error(transparent)]
    Es(#[from] EsError),
}

#[derive(Clone, Debug)]
pub struct CheckpointStore {
    pub es: EsClient,
    pub index: String,
    /// One document per bucket length: `rollup-60s`.
    pub id: String,
}

impl CheckpointStore {
    pub fn new(es: EsClient, index: &str, bucket_seconds: u32) -> Self {
        Self {
            es,
            index: index.to_owned(),
            id: format!("rollup-{bucket_seconds}s"),
        }
    }

    /// Creates the checkpoint index if it is missing (one shard, a replica where the cluster
    /// has a second node, unmapped window counts).
    pub async fn ensure_index(&self) -> Result<(), EsError> {
        let body = json!({
            "settings": {"number_of_shards": 1, "auto_expand_replicas": "0-1"},
            "mappings": {"dynamic": false, "properties": {
                "lastRolledUpAt": {"type": "date"},
                "updatedAt": {"type": "date"},
                "watermark_ms": {"type": "long"},
                "bucket_seconds": {"type": "integer"},
                "holder": {"type": "keyword"}
            }}
        });
        let path = format!("/{}", self.index);
        let (status, answer) = self.es.request(Method::Put, &path, Some(&body)).await?;
        if status.is_success() || answer["error"]["type"] == "resource_already_exists_exception" {
            return Ok(());
        }
        Err(EsError::Status {
            what: format!("PUT {path}"),
            status: status.as_u16(),
            body: panopticon_es::truncate(&answer.to_string(), 2000),
        })
    }

    /// The saved checkpoint, if any (real-time: sees the last save without a refresh).
    pub async fn load(&self) -> Result<Option<(Checkpoint, Version)>, EsError> {
        let path = format!("/{}/_doc/{}", self.index, self.id);
        let (status, answer) = self.es.request(Method::Get, &path, None).await?;
        if status.as_u16() == 404 {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(EsError::Status {
                what: format!("GET {path}"),
                status: status.as_u16(),
                body: panopticon_es::truncate(&answer.to_string(), 2000),
            });
        }
        let checkpoint: Checkpoint =
            serde_json::from_value(answer["_source"].clone()).map_err(|e| EsError::Decode {
                what: format!("GET {path}"),
                detail: format!("checkpoint unreadable: {e}"),
            })?;
        Ok(Some((checkpoint, version(&answer, &path)?)))
    }

    /// Saves `checkpoint` if the stored one is still at `previous` (`None`: if none exists).
    pub async fn save(
        &self,
        checkpoint: &Checkpoint,
        previous: Option<Version>,
    ) -> Result<Version, SaveError> {
        let path = match previous {
            Some(v) => format!(
                "/{}/_doc/{}?if_seq_no={}&if_primary_term={}",
                self.index, self.id, v.seq_no, v.primary_term
            ),
            None => format!("/{}/_create/{}", self.index, self.id),
        };
        let body = serde_json::to_value(checkpoint).map_err(|e| EsError::Decode {
            what: "checkpoint".to_owned(),
            detail: e.to_string(),
        })?;
        let (status, answer) = self.es.request(Method::Put, &path, Some(&body)).await?;
        if status.as_u16() == 409 {
            return Err(SaveError::Conflict);
        }
        if !status.is_success() {
            return Err(SaveError::Es(EsError::Status {
                what: format!("PUT {path}"),
                status: status.as_u16(),
                body: panopticon_es::truncate(&answer.to_string(), 2000),
            }));
        }
        Ok(version(&answer, &path)?)
    }
}

fn version(answer: &serde_json::Value, path: &str) -> Result<Version, EsError> {
    match (answer["_seq_no"].as_i64(), answer["_primary_term"].as_i64()) {
        (Some(seq_no), Some(primary_term)) => Ok(Version {
            seq_no,
            primary_term,
        }),
        _ => Err(EsError::Decode {
            what: path.to_owned(),
            detail: "no _seq_no/_primary_term in the answer".to_owned(),
        }),
    }
}
