//! Webhook delivery state (table `webhooks`): how far each configured hook
//! has delivered the event log, which is their outbox. The HTTP side is
//! lc-web's `webhooks.rs`.

use rusqlite::{OptionalExtension, params};
use serde_json::Value;

use super::{EventFilter, ReadTx, WriteTx};
use crate::error::Result;

/// One hook's delivery state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookRow {
    pub name: String,
    /// The id of the last event delivered (or the newest when it was added).
    pub delivered: i64,
    /// Failed attempts in a row.
    pub failures: i64,
    pub last_error: Option<String>,
    pub last_attempt: Option<i64>,
    pub last_success: Option<i64>,
}

impl ReadTx<'_> {
    /// Every hook's delivery state, by name.
    pub fn webhooks(&self) -> Result<Vec<WebhookRow>> {
        let mut stmt = self.conn().prepare(
            "SELECT name, delivered, failures, last_error, last_attempt, last_success
             FROM webhooks ORDER BY name",
        )?;
        let rows = stmt
            .query_map([], |r| {
                Ok(WebhookRow {
                    name: r.get(0)?,
                    delivered: r.get(1)?,
                    failures: r.get(2)?,
                    last_error: r.get(3)?,
                    last_attempt: r.get(4)?,
                    last_success: r.get(5)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }

    /// How many events `filter` selects (its `limit` and `last` aside).
    pub fn count_events(&self, filter: &EventFilter) -> Result<i64> {
        let types = (!filter.types.is_empty()).then(|| {
            Value::from(filter.types.iter().map(|t| t.name()).collect::<Vec<&str>>()).to_string()
        });
        Ok(self
            .conn()
            .prepare(
                "SELECT COUNT(*) FROM events
             WHERE id > ?1
               AND (?2 IS NULL OR type IN (SELECT value FROM json_each(?2)))
               AND (?3 IS NULL OR substr(COALESCE(path, host, ''), 1, length(?3)) = ?3)",
            )?
            .query_row(params![filter.since, types, filter.prefix], |r| r.get(0))?)
    }
}

impl WriteTx<'_> {
    /// Makes `names` the configured hooks: a new one starts after the
    /// newest event (it is not sent the past), one no longer configured is
    /// forgotten. Answers every hook's state.
    pub fn set_webhooks(&self, names: &[String]) -> Result<Vec<WebhookRow>> {
        let newest = self.last_event_id()?;
        let mut insert = self
            .conn()
            .prepare("INSERT OR IGNORE INTO webhooks (name, delivered) VALUES (?1, ?2)")?;
        for name in names {
            insert.execute(params![name, newest])?;
        }
        self.conn()
            .prepare("DELETE FROM webhooks WHERE name NOT IN (SELECT value FROM json_each(?1))")?
            .execute([Value::from(names.to_vec()).to_string()])?;
        self.webhooks()
    }

    /// Records that hook `name` delivered the event `event_id`.
    pub fn webhook_delivered(&self, name: &str, event_id: i64) -> Result<()> {
        self.conn()
            .prepare(
                "UPDATE webhooks SET delivered = MAX(delivered, ?2), failures = 0,
                 last_error = NULL, last_attempt = ?3, last_success = ?3
                 WHERE name = ?1",
            )?
            .execute(params![name, event_id, self.now])?;
        Ok(())
    }

    /// Records a failed attempt of hook `name` (`error` must hold no
    /// secret); answers its failures in a row.
    pub fn webhook_failed(&self, name: &str, error: &str) -> Result<i64> {
        let failures: Option<i64> = self
            .conn()
            .prepare(
                "UPDATE webhooks SET failures = failures + 1, last_error = ?2, last_attempt = ?3
                 WHERE name = ?1 RETURNING failures",
            )?
            .query_row(params![name, error, self.now], |r| r.get(0))
            .optional()?;
        Ok(failures.unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::fresh;
    use super::*;

    #[test]
    fn hooks_start_at_the_newest_event_and_keep_their_place() {
        let (_dir, db) = fresh();
        db.write(|tx| tx.set_running_queue(false)).expect("stop");
        let names = ["a".to_owned(), "b".to_owned()];
        let rows = db.write(|tx| tx.set_webhooks(&names)).expect("set");
        assert_eq!(rows.len(), 2);
        assert!(rows.iter().all(|r| r.delivered == 1 && r.failures == 0));
        db.write(|tx| tx.set_running_queue(true)).expect("start");
        assert_eq!(
            db.write(|tx| tx.webhook_failed("a", "HTTP 503")).ok(),
            Some(1)
        );
        assert_eq!(
            db.write(|tx| tx.webhook_failed("a", "HTTP 503")).ok(),
            Some(2)
        );
        db.write(|tx| tx.webhook_delivered("b", 2))
            .expect("delivered");
        // Configured again with a new hook and without b: a keeps its
        // place, c starts at the newest, b is forgotten.
        let names = ["a".to_owned(), "c".to_owned()];
        let rows = db.write(|tx| tx.set_webhooks(&names)).expect("set");
        let a = &rows[0];
        assert_eq!(
            (
                a.name.as_str(),
                a.delivered,
                a.failures,
                a.last_error.as_deref()
            ),
            ("a", 1, 2, Some("HTTP 503"))
        );
        assert_eq!((rows[1].name.as_str(), rows[1].delivered), ("c", 2));
        assert_eq!(rows.len(), 2);
        db.write(|tx| tx.webhook_delivered("a", 2))
            .expect("delivered");
        let a = &db.read(|tx| tx.webhooks()).expect("read")[0];
        assert_eq!(
            (a.delivered, a.failures, a.last_error.clone()),
            (2, 0, None)
        );
        // An unknown hook's failure changes nothing.
        assert_eq!(db.write(|tx| tx.webhook_failed("zz", "x")).ok(), Some(0));
        let pending = db
            .read(|tx| {
                tx.count_events(&EventFilter {
                    since: 1,
                    ..EventFilter::default()
                })
            })
            .expect("count");
        assert_eq!(pending, 1);
    }
}
