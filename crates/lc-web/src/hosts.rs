//! `POST /1.0/ls-troves` (the Upstream Hosts whose ls-interval has passed)
//! and `POST /1.0/force-ls-troves` (all of them): list each host, map its
//! repositories to lorries, sync STATEDB.
//!
//! Hosts are listed concurrently (each through the per-host politeness of
//! `lc_hosts`); each host's result is written in its own transaction, so a
//! slow or failing host delays or spoils no other. No transaction is open
//! while a host is being asked.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use futures_util::future::join_all;
use lc_api::{HostListing, LsTrovesSummary};
use lc_base::redact::redact;
use lc_core::db::{GeneratedLorry, HostToList, ReportedActivity};
use lc_hosts::mapping::{HostRules, map_listing};
use lc_hosts::upstream::grokmirror::{self, ManifestRead, Validators};
use lc_hosts::upstream::{ListError, ListedRepo, Lister, UpstreamHost, activity_granularity};

use crate::AppState;
use crate::api::Reply;
use crate::error::ApiError;
use crate::form::Fields;

/// Per grokmirror host: the host's settings and the manifest's validators
/// of its last read that was applied in full. Kept in memory: after a
/// restart the first read is a full one.
#[derive(Debug, Default)]
pub struct ManifestVersions(Mutex<HashMap<String, (HostToList, Validators)>>);

impl ManifestVersions {
    /// The validators to send for `host`, if its settings are those of the
    /// last read (a changed prefixmap or ignore list needs a full read).
    fn since(&self, host: &HostToList) -> Option<Validators> {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&host.host)
            .filter(|(settings, _)| settings == host)
            .map(|(_, v)| v.clone())
    }

    fn set(&self, host: &HostToList, validators: Option<Validators>) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match validators {
            Some(v) => map.insert(host.host.clone(), (host.clone(), v)),
            None => map.remove(&host.host),
        };
    }
}

/// A listing, or the news that a manifest has not changed.
enum Listed {
    Repos(Vec<ListedRepo>, Option<Validators>),
    Unchanged,
}

async fn list_host(
    state: &AppState,
    lister: &Lister,
    host: &HostToList,
    upstream: &UpstreamHost,
) -> Result<Listed, ListError> {
    if host.host_type != "grokmirror" || state.config.fake_upstream_hosts.contains_key(&host.host) {
        return Ok(Listed::Repos(lister.list(upstream).await?, None));
    }
    let since = state.manifests.since(host);
    Ok(
        match grokmirror::read(lister, upstream, since.as_ref()).await? {
            ManifestRead::Unchanged => Listed::Unchanged,
            ManifestRead::Read { repos, validators } => Listed::Repos(repos, Some(validators)),
        },
    )
}

pub async fn ls_troves(
    State(state): State<AppState>,
    fields: Fields,
) -> Result<Reply<LsTrovesSummary>, ApiError> {
    list_hosts(state, fields, false).await
}

pub async fn force_ls_troves(
    State(state): State<AppState>,
    fields: Fields,
) -> Result<Reply<LsTrovesSummary>, ApiError> {
    list_hosts(state, fields, true).await
}

async fn list_hosts(
    state: AppState,
    fields: Fields,
    force: bool,
) -> Result<Reply<LsTrovesSummary>, ApiError> {
    let redirect = fields.redirect()?;
    let hosts = state.read(move |tx| tx.hosts_to_list(force)).await?;
    let lister = Arc::new(Lister {
        polite: Arc::clone(&state.config.hosts.polite),
        fake: state.config.fake_upstream_hosts.clone(),
        ..Lister::default()
    });
    let listings = hosts.into_iter().map(|host| {
        let state = state.clone();
        let lister = Arc::clone(&lister);
        async move { list_one(&state, &lister, host).await }
    });
    let mut summary = LsTrovesSummary { hosts: Vec::new() };
    for result in join_all(listings).await {
        summary.hosts.push(result?);
    }
    Ok(Reply::new(redirect, summary))
}

async fn list_one(
    state: &AppState,
    lister: &Lister,
    host: HostToList,
) -> Result<HostListing, ApiError> {
    let mut listing = HostListing {
        host: host.host.clone(),
        listed: false,
        repositories: 0,
        ignored: 0,
        unmapped: 0,
        lorries_added: Vec::new(),
        lorries_changed: Vec::new(),
        lorries_removed: Vec::new(),
        lorries_unchanged: 0,
        errors: Vec::new(),
    };
    let upstream = UpstreamHost {
        host: host.host.clone(),
        host_type: host.host_type.clone(),
        protocol: host.protocol.clone(),
        type_params: host.type_params.clone(),
        namespaces: host.prefixmap.keys().cloned().collect(),
    };
    // What the listing says is as of its start: a push after one page
    // was read and before the listing ended is not in it. The time
    // stamped on the host is this, not the end (activity hints and
    // manifest fingerprints compare it with each lorry's last run).
    let started = state.db.now();
    let (repos, validators) = match list_host(state, lister, &host, &upstream).await {
        Ok(Listed::Repos(repos, validators)) => (repos, validators),
        Ok(Listed::Unchanged) => {
            let name = host.host.clone();
            let known = state
                .write(move |tx| tx.record_listing_unchanged(&name, started))
                .await?;
            if known {
                listing.listed = true;
                // Lorries may have been added or rescheduled: waiting give-me-jobs look.
                state.queue.wake();
                tracing::info!(host = %host.host, "manifest unchanged since its last read");
            } else {
                listing
                    .errors
                    .push("the host is no longer configured: nothing was changed".to_owned());
            }
            return Ok(listing);
        }
        Err(err) => {
            let error = redact(&format!("listing failed: {err}")).into_owned();
            tracing::warn!(host = %host.host, %error, "cannot list Upstream Host");
            let name = host.host.clone();
            let stored = error.clone();
            state
                .write(move |tx| tx.record_ls_failure(&name, &stored))
                .await?;
            listing.errors.push(error);
            return Ok(listing);
        }
    };
    listing.repositories = repos.len();
    let mapped = map_listing(
        &HostRules {
            host: &host.host,
            prefixmap: &host.prefixmap,
            ignore: &host.ignore,
            interval: host.lorry_interval,
            lorry_timeout: host.lorry_timeout,
        },
        &repos,
    );
    listing.ignored = mapped.ignored;
    listing.unmapped = mapped.unmapped;
    // The listers read activity only when the host section asks for it.
    let granularity = activity_granularity(&host.host_type);
    let generated: Vec<GeneratedLorry> = mapped
        .lorries
        .into_iter()
        .map(|g| GeneratedLorry {
            lorry: g.lorry,
            head: g.metadata.valid_head().map(str::to_owned),
            description: g.metadata.clean_description(),
            fingerprint: g.fingerprint,
            activity: g
                .activity
                .zip(granularity)
                .map(|(at, granularity)| ReportedActivity { at, granularity }),
        })
        .collect();
    let problems: Vec<String> = mapped
        .problems
        .iter()
        .map(|p| redact(p).into_owned())
        .collect();
    let shrink_limit = state.config.hosts.ls_shrink_limit;
    let name = host.host.clone();
    let stored_problems = problems.clone();
    let outcome = state
        .write(move |tx| {
            let outcome =
                tx.sync_host_lorries(&name, &generated, shrink_limit, &stored_problems)?;
            if outcome.as_ref().is_some_and(|o| o.shrink_refused.is_none()) {
                tx.record_listing_time(&name, started)?;
            }
            Ok(outcome)
        })
        .await?;
    let Some(outcome) = outcome else {
        listing
            .errors
            .push("the host is no longer configured: nothing was changed".to_owned());
        return Ok(listing);
    };
    listing.listed = true;
    // Only a read applied in full may spare the next one: a refused
    // shrink must be looked at again.
    if host.host_type == "grokmirror" {
        let applied = outcome.shrink_refused.is_none();
        state.manifests.set(&host, validators.filter(|_| applied));
    }
    listing.errors.extend(outcome.shrink_refused.clone());
    if !outcome.conflicts.is_empty() {
        listing.errors.push(format!(
            "paths already used by other lorries, not generated: {}",
            outcome.conflicts.join(", ")
        ));
    }
    listing.errors.extend(problems);
    tracing::info!(
        host = %host.host,
        repositories = listing.repositories,
        added = outcome.added.len(),
        changed = outcome.changed.len(),
        removed = outcome.removed.len(),
        errors = listing.errors.len(),
        "listed Upstream Host"
    );
    listing.lorries_added = outcome.added;
    listing.lorries_changed = outcome.changed;
    listing.lorries_removed = outcome.removed;
    listing.lorries_unchanged = outcome.unchanged;
    Ok(listing)
}
