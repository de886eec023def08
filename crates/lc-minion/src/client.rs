//! The two webapp calls a minion makes: `give-me-job` and `job-update`.

use std::time::Duration;

use lc_api::{ErrorBody, GiveMeJob, JobInfo};
use serde::de::DeserializeOwned;
use tracing::Instrument;

use crate::Error;

/// Why a call to the webapp failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("webapp unreachable at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("webapp failed {url} with status {status}: {message}")]
    Server {
        url: String,
        status: u16,
        message: String,
    },
    #[error("webapp refused {url} with status {status}: {message}")]
    Refused {
        url: String,
        status: u16,
        message: String,
    },
    #[error("webapp's answer to {url} is not what was expected: {reason}")]
    BadAnswer { url: String, reason: String },
}

impl ClientError {
    /// Whether trying again later may succeed: the webapp was away, broken
    /// for a moment, or answered garbage. A 4xx refusal is final.
    pub fn is_transient(&self) -> bool {
        !matches!(self, ClientError::Refused { .. })
    }

    /// Whether the webapp (or a proxy in front of it) found the request
    /// body too large (413).
    pub fn is_too_large(&self) -> bool {
        matches!(self, ClientError::Refused { status: 413, .. })
    }

    /// Whether the webapp no longer has the job as running: it ended it
    /// (409, for instance as a ghost) or forgot it (404).
    pub fn job_is_gone(&self) -> bool {
        matches!(
            self,
            ClientError::Refused {
                status: 404 | 409,
                ..
            }
        )
    }
}

/// A job handed out by `give-me-job`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub job_id: i64,
    pub path: String,
    /// The `.lorry` spec to mirror.
    pub text: String,
    pub lorry_timeout: i64,
    /// The `traceparent` of the give-me-job request that brought the job
    /// (traces on only): the job's span is its child, so the job's
    /// requests join the give-me-job's trace.
    pub traceparent: Option<String>,
    /// A batch check rather than a lorry's job: `text` is then the
    /// [`lc_api::BatchSpec`] for `lorry --check-refs`, `path` says how
    /// many lorries it holds, and `job_id` is the batch's.
    pub batch: bool,
}

/// How a minion asks for batch checks (see [`WebappClient::give_me_job`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchAsk {
    pub max: usize,
    pub parallel: usize,
    pub ls_remote_timeout: Duration,
}

/// What a `job-update` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Running,
    Exited(i32),
}

/// A client of one webapp.
#[derive(Debug, Clone)]
pub struct WebappClient {
    http: reqwest::Client,
    base: String,
    /// How the minion isolates jobs, sent with every job-update (an
    /// optional field older webapps ignore).
    isolation: Option<String>,
}

impl WebappClient {
    /// `base` is `http://host:port`; every request times out after `timeout`.
    /// Proxy variables of the minion's own environment are not used: they
    /// are meant for lorry's traffic to upstreams, not for the webapp.
    /// `token`, when given, goes with every request as
    /// `Authorization: Bearer`.
    pub fn new(base: &str, timeout: Duration, token: Option<&str>) -> Result<Self, Error> {
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(token) = token {
            let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|_| {
                    Error::HttpClient("the webapp token is not a valid header value".into())
                })?;
            value.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(timeout)
            .no_proxy()
            .build()
            .map_err(|e| Error::HttpClient(e.to_string()))?;
        Ok(WebappClient {
            http,
            base: base.trim_end_matches('/').to_owned(),
            isolation: None,
        })
    }

    /// Sends `isolation` (see [`crate::MinionConfig::isolation`]) with
    /// every job-update from now on.
    pub fn set_isolation(&mut self, isolation: &str) {
        self.isolation = Some(isolation.to_owned());
    }

    /// Asks for a job; when none may start, the webapp may hold the request
    /// up to `wait` until one may (a webapp that does not know `wait`
    /// answers at once).
    /// `batch`: with `Some`, up to `max` lorries may come as one batch
    /// check, listed `parallel` at a time with each `ls-remote` killed
    /// after `ls_remote_timeout`.
    pub async fn give_me_job(
        &self,
        host: &str,
        pid: u32,
        wait: Duration,
        batch: Option<BatchAsk>,
    ) -> Result<Option<Job>, ClientError> {
        let pid = pid.to_string();
        let wait = format!("{:.3}", wait.as_secs_f64());
        let max = batch.map(|b| b.max.to_string());
        // idle=yes: this minion runs no job, so the webapp ends any it
        // recorded as ours (its answer was lost).
        let mut form = vec![
            ("host", host),
            ("pid", pid.as_str()),
            ("idle", "yes"),
            ("wait", wait.as_str()),
        ];
        if let Some(max) = &max {
            form.push(("batch", max.as_str()));
        }
        let (answer, traceparent): (GiveMeJob, _) =
            self.post_traced("/1.0/give-me-job", &form).await?;
        match (answer.job_id, answer.lorry) {
            (None, _) => match (answer.batch, batch) {
                (Some(given), Some(ask)) if !given.lorries.is_empty() => {
                    let spec = lc_api::BatchSpec {
                        parallel: ask.parallel,
                        ls_remote_timeout: ask.ls_remote_timeout.as_secs().max(1),
                        deadline: u64::try_from(given.timeout).unwrap_or(0),
                        lorries: given.lorries,
                    };
                    let text =
                        serde_json::to_string(&spec).map_err(|e| ClientError::BadAnswer {
                            url: self.url("/1.0/give-me-job"),
                            reason: format!("batch {}: {e}", given.job_id),
                        })?;
                    Ok(Some(Job {
                        job_id: given.job_id,
                        path: format!("batch of {}", spec.lorries.len()),
                        text,
                        lorry_timeout: given.timeout,
                        traceparent,
                        batch: true,
                    }))
                }
                _ => Ok(None),
            },
            (Some(job_id), Some(lorry)) => Ok(Some(Job {
                job_id,
                path: lorry.path,
                text: lorry.text,
                lorry_timeout: lorry.lorry_timeout,
                traceparent,
                batch: false,
            })),
            (Some(job_id), None) => Err(ClientError::BadAnswer {
                url: self.url("/1.0/give-me-job"),
                reason: format!("job {job_id} without its lorry"),
            }),
        }
    }

    pub async fn job_update(
        &self,
        job_id: i64,
        exit: Exit,
        stdout: &str,
        stderr: &str,
        disk_usage: Option<u64>,
        result: Option<&str>,
    ) -> Result<JobInfo, ClientError> {
        let job_id = job_id.to_string();
        let exit = match exit {
            Exit::Running => lc_api::EXIT_RUNNING.to_owned(),
            Exit::Exited(code) => code.to_string(),
        };
        let disk_usage = disk_usage.map(|n| n.to_string());
        let mut form = vec![
            ("job_id", job_id.as_str()),
            ("exit", exit.as_str()),
            ("stdout", stdout),
            ("stderr", stderr),
        ];
        if let Some(bytes) = &disk_usage {
            form.push(("disk_usage", bytes.as_str()));
        }
        if let Some(result) = result {
            form.push(("result", result));
        }
        if let Some(isolation) = &self.isolation {
            form.push(("isolation", isolation.as_str()));
        }
        self.post("/1.0/job-update", &form).await
    }

    fn url(&self, endpoint: &str) -> String {
        format!("{}{endpoint}", self.base)
    }

    async fn post<T: DeserializeOwned>(
        &self,
        endpoint: &str,
        form: &[(&str, &str)],
    ) -> Result<T, ClientError> {
        Ok(self.post_traced(endpoint, form).await?.0)
    }

    /// POSTs `form` to `endpoint` in a client span of its own (a child of
    /// the current span: the job's, for job-updates) whose `traceparent`
    /// goes with the request and is returned with the answer. Traces off:
    /// no header, `None`.
    async fn post_traced<T: DeserializeOwned>(
        &self,
        endpoint: &str,
        form: &[(&str, &str)],
    ) -> Result<(T, Option<String>), ClientError> {
        let span = tracing::debug_span!(
            "webapp request",
            otel.name = %format_args!("POST {endpoint}"),
            otel.kind = "client",
            http.request.method = "POST",
            url.path = endpoint,
            http.response.status_code = tracing::field::Empty,
        );
        let traceparent = lc_startup::traces::traceparent(&span);
        let answer = self
            .send(endpoint, form, traceparent.as_deref())
            .instrument(span.clone())
            .await;
        if let Err(ClientError::Server { status, .. } | ClientError::Refused { status, .. }) =
            &answer
        {
            span.record("http.response.status_code", status);
        }
        Ok((answer?, traceparent))
    }

    async fn send<T: DeserializeOwned>(
        &self,
        endpoint: &str,
        form: &[(&str, &str)],
        traceparent: Option<&str>,
    ) -> Result<T, ClientError> {
        let url = self.url(endpoint);
        let unreachable = |e: reqwest::Error| ClientError::Unreachable {
            url: url.clone(),
            reason: lc_base::errors::chain(&e),
        };
        let mut request = self.http.post(&url).form(form);
        if let Some(traceparent) = traceparent {
            request = request.header(lc_startup::traces::TRACEPARENT, traceparent);
        }
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(unreachable)?;
        if (200..300).contains(&status) {
            return serde_json::from_slice(&body).map_err(|e| ClientError::BadAnswer {
                url: url.clone(),
                reason: e.to_string(),
            });
        }
        let message = serde_json::from_slice::<ErrorBody>(&body)
            .map(|b| b.error)
            .unwrap_or_else(|_| String::from_utf8_lossy(&body).chars().take(200).collect());
        if (400..500).contains(&status) {
            Err(ClientError::Refused {
                url,
                status,
                message,
            })
        } else {
            Err(ClientError::Server {
                url,
                status,
                message,
            })
        }
    }
}
