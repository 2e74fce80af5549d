//! Trimming that never drops what a consumer group still needs. Redis 7's `XTRIM` knows
//! nothing of groups, so the bound is computed: below the oldest entry any group still has
//! pending, and not past any group's last delivered entry.

use redis::aio::ConnectionManager;
use redis::streams::{StreamInfoGroupsReply, StreamPendingReply};
use std::cmp::Ordering;

/// A stream entry id, `ms-seq`, ordered as Redis orders them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct StreamId {
    pub ms: u64,
    pub seq: u64,
}

impl StreamId {
    pub fn parse(s: &str) -> Option<StreamId> {
        let (ms, seq) = s.split_once('-')?;
        Some(StreamId {
            ms: ms.parse().ok()?,
            seq: seq.parse().ok()?,
        })
    }
}

impl std::fmt::Display for StreamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// Removes every entry that each group on `stream` has acknowledged. Returns the bound used
/// (entries below it were removed), or `None` when nothing may be trimmed, e.g. because no
/// group exists yet.
pub async fn trim_acknowledged(
    conn: &mut ConnectionManager,
    stream: &str,
) -> redis::RedisResult<Option<StreamId>> {
    let groups: StreamInfoGroupsReply = match redis::cmd("XINFO")
        .arg("GROUPS")
        .arg(stream)
        .query_async(conn)
        .await
    {
        Ok(g) => g,
        Err(e) if e.to_string().contains("no such key") => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut bound: Option<StreamId> = None;
    for group in &groups.groups {
        let Some(mut keep_from) = StreamId::parse(&group.last_delivered_id) else {
            return Ok(None);
        };
        if group.pending > 0 {
            let pending: StreamPendingReply = redis::cmd("XPENDING")
                .arg(stream)
                .arg(&group.name)
                .query_async(conn)
                .await?;
            if let StreamPendingReply::Data(data) = pending {
                if let Some(oldest) = StreamId::parse(&data.start_id) {
                    keep_from = keep_from.min(oldest);
                }
            }
        }
        bound = Some(match bound {
            Some(b) if b.cmp(&keep_from) == Ordering::Less => b,
            _ => keep_from,
        });
    }
    let Some(bound) = bound else {
        return Ok(None);
    };
    let _removed: u64 = redis::cmd("XTRIM")
        .arg(stream)
        .arg("MINID")
        .arg("=")
        .arg(bound.to_string())
        .query_async(conn)
        .await?;
    Ok(Some(bound))
}
