//! Listing a Trove: Gitano's `ls`, over ssh or through `gitano-command.cgi`.

use reqwest::{Method, Url};

use super::{ListError, ListedRepo, Lister, UpstreamHost};
use crate::api::{ApiError, error_message, http_client};
use crate::downstream::RepoMetadata;
use crate::ssh::SshTarget;

pub(super) async fn list(
    lister: &Lister,
    host: &UpstreamHost,
) -> Result<Vec<ListedRepo>, ListError> {
    let output = if host.protocol == "ssh" {
        let target =
            SshTarget::new(Some("git"), &host.host, None).map_err(|problem| ListError::Host {
                host: host.host.clone(),
                problem,
            })?;
        lister.ssh.run(&target, &["ls"]).await?
    } else {
        ls_over_http(lister, host).await?
    };
    Ok(parse_ls(&output)
        .into_iter()
        .map(|path| ListedRepo {
            clone_url: clone_url(host, &path),
            path,
            metadata: RepoMetadata::default(),
            fingerprint: None,
            activity: None,
        })
        .collect())
}

/// `GET <protocol>://<host>/gitano-command.cgi?cmd=ls`, the answer's body
/// being what `ls` prints.
async fn ls_over_http(lister: &Lister, host: &UpstreamHost) -> Result<String, ApiError> {
    let endpoint = "/gitano-command.cgi?cmd=ls".to_owned();
    let fail = |problem: String| ApiError::Transport {
        host: host.host.clone(),
        method: Method::GET,
        endpoint: endpoint.clone(),
        problem,
    };
    let mut url = Url::parse(&format!(
        "{}://{}/gitano-command.cgi",
        host.protocol, host.host
    ))
    .map_err(|e| fail(format!("not a URL: {e}")))?;
    url.query_pairs_mut().append_pair("cmd", "ls");
    let client = http_client();
    let auth = host.basic_auth();
    let build = || {
        let request = client.get(url.clone());
        match &auth {
            Some((user, password)) => request.basic_auth(user, Some(password.expose())),
            None => request,
        }
    };
    let response = lister.polite.send(&host.host, build).await.map_err(|e| {
        fail(if e.is_timeout() {
            "timed out".into()
        } else if e.is_connect() {
            "cannot connect".into()
        } else {
            "request failed".into()
        })
    })?;
    let status = response.status().as_u16();
    let text = response
        .text()
        .await
        .map_err(|_| fail("cannot read the answer".into()))?;
    if status != 200 {
        return Err(ApiError::Status {
            host: host.host.clone(),
            method: Method::GET,
            endpoint,
            status,
            message: error_message(&serde_json::Value::String(text)),
        });
    }
    Ok(text)
}

/// Repository paths in Gitano `ls` output: lines of two words whose first
/// (the access, e.g. `R` or `RW`) starts with `R`.
pub fn parse_ls(output: &str) -> Vec<String> {
    output
        .lines()
        .filter_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                [access, path] if access.starts_with('R') => Some((*path).to_owned()),
                _ => None,
            }
        })
        .collect()
}

/// How lorry clones `path` from a Trove, in the host's protocol.
pub(super) fn clone_url(host: &UpstreamHost, path: &str) -> String {
    match host.protocol.as_str() {
        "ssh" => format!("ssh://git@{}/{path}", host.host),
        scheme => {
            let plain = format!("{scheme}://{}/git/{path}", host.host);
            let Some((user, password)) = host.basic_auth().filter(|_| scheme == "https") else {
                return plain;
            };
            match Url::parse(&plain) {
                Ok(mut url) => {
                    let _ = url.set_username(&user);
                    let _ = url.set_password(Some(password.expose()));
                    url.to_string()
                }
                Err(_) => plain,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ls_output_keeps_readable_repositories() {
        let out =
            "R   baserock/definitions\nRW  delta/linux\n    \n--  hidden/repo\nR a b c\nnonsense\n";
        assert_eq!(parse_ls(out), ["baserock/definitions", "delta/linux"]);
    }

    #[test]
    fn clone_urls_follow_the_protocol() {
        let mut host = UpstreamHost {
            host: "trove.example.com".into(),
            host_type: "trove".into(),
            protocol: "ssh".into(),
            type_params: serde_json::json!({"auth": {"username": "u", "password": "p@ss"}}),
            namespaces: Vec::new(),
        };
        assert_eq!(clone_url(&host, "a/b"), "ssh://git@trove.example.com/a/b");
        host.protocol = "http".into();
        assert_eq!(clone_url(&host, "a/b"), "http://trove.example.com/git/a/b");
        host.protocol = "https".into();
        assert_eq!(
            clone_url(&host, "a/b"),
            "https://u:p%40ss@trove.example.com/git/a/b"
        );
    }
}
