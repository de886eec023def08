//! Upstream Hosts and CONFGIT problems, as read back for status.

use lc_api::{ConfigProblem, HostInfo};

use super::ReadTx;
use crate::error::{Error, Result};
use lc_base::timefmt;

impl ReadTx<'_> {
    /// Every Upstream Host, by name, with its listing schedule.
    pub fn hosts(&self) -> Result<Vec<HostInfo>> {
        let mut stmt = self.conn().prepare(
            "SELECT host, type, protocol, lorry_interval, lorry_timeout, ls_interval,
                    ls_last_run, ls_last_error, prefixmap, ignore
             FROM hosts ORDER BY host",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                (
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ),
                (
                    r.get::<_, i64>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, i64>(5)?,
                ),
                (r.get::<_, i64>(6)?, r.get::<_, Option<String>>(7)?),
                (r.get::<_, String>(8)?, r.get::<_, String>(9)?),
            ))
        })?;
        let mut hosts = Vec::new();
        for row in rows {
            let (
                (host, host_type, protocol),
                (lorry_interval, lorry_timeout, ls_interval),
                ls,
                json,
            ) = row?;
            let (ls_last_run, ls_last_error) = ls;
            let prefixmap = serde_json::from_str(&json.0)
                .map_err(|e| Error::Corrupt(format!("prefixmap of host {host}: {e}")))?;
            let ignore = serde_json::from_str(&json.1)
                .map_err(|e| Error::Corrupt(format!("ignore of host {host}: {e}")))?;
            hosts.push(HostInfo {
                last_run_nice: timefmt::utc(ls_last_run),
                ls_interval_nice: timefmt::span(ls_interval),
                due_nice: timefmt::due(ls_last_run + ls_interval, self.now),
                host,
                host_type,
                protocol,
                lorry_interval,
                lorry_timeout,
                ls_interval,
                ls_last_run,
                ls_last_error,
                prefixmap,
                ignore,
            });
        }
        Ok(hosts)
    }

    /// Problems the last read of CONFGIT found, in the order found.
    pub fn config_problems(&self) -> Result<Vec<ConfigProblem>> {
        let mut stmt = self
            .conn()
            .prepare("SELECT file, item, problem FROM config_problems ORDER BY seq")?;
        let problems = stmt
            .query_map([], |r| {
                Ok(ConfigProblem {
                    file: r.get(0)?,
                    item: r.get(1)?,
                    problem: r.get(2)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok(problems)
    }
}
