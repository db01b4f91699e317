//! The operator's apiserver requests, counted in the audit log that `SLUICE_AUDIT=1 hack/testenv
//! up` writes (level Metadata, stages ResponseStarted, ResponseComplete and Panic).
//!
//! A request is counted once: a watch when it starts streaming (ResponseStarted, since it may
//! never complete while the operator runs), any other request when it completes or panics.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde::Deserialize;

/// Which rule made a request the operator's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum OperatorRule {
    /// `sluice/<version>`, what the operator sends once it names itself.
    SluiceAgent,
    /// No User-Agent at all, what the operator sends until then. Every other client of the test
    /// environment (controller-manager, kubectl, the bench itself) sends one.
    EmptyAgent,
}

impl OperatorRule {
    fn of(user_agent: Option<&str>) -> Option<OperatorRule> {
        match user_agent {
            None | Some("") => Some(OperatorRule::EmptyAgent),
            Some(agent) if agent.starts_with("sluice/") => Some(OperatorRule::SluiceAgent),
            Some(_) => None,
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            OperatorRule::SluiceAgent => "User-Agent sluice/<version>",
            OperatorRule::EmptyAgent => "empty User-Agent",
        }
    }
}

/// The operator's requests in a time window, and what other clients sent meanwhile.
#[derive(Debug, Default)]
pub struct Tally {
    /// Requests by (verb, resource[/subresource]).
    pub calls: BTreeMap<(String, String), u64>,
    pub total: u64,
    /// Responses 429 Too Many Requests.
    pub throttled: u64,
    /// Responses 5xx (a panic in the apiserver counts as one).
    pub server_errors: u64,
    /// Requests by the rule that identified them as the operator's.
    pub rules: BTreeMap<OperatorRule, u64>,
    /// Requests of other clients by product (User-Agent up to the first space): shows what was
    /// left out.
    pub others: BTreeMap<String, u64>,
    /// Lines that were not audit events (a line cut by rotation, say).
    pub unreadable: u64,
}

impl Tally {
    /// Calls sorted by count, largest first.
    pub fn calls_by_count(&self) -> Vec<(&str, &str, u64)> {
        let mut calls: Vec<_> = self
            .calls
            .iter()
            .map(|((verb, resource), n)| (verb.as_str(), resource.as_str(), *n))
            .collect();
        calls.sort_by(|a, b| b.2.cmp(&a.2).then(a.cmp(b)));
        calls
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Event {
    stage: String,
    verb: String,
    #[serde(default)]
    user_agent: Option<String>,
    #[serde(rename = "requestURI", default)]
    request_uri: String,
    #[serde(default)]
    object_ref: Option<ObjectRef>,
    #[serde(default)]
    response_status: Option<ResponseStatus>,
    stage_timestamp: Timestamp,
}

#[derive(Deserialize)]
struct ObjectRef {
    #[serde(default)]
    resource: Option<String>,
    #[serde(default)]
    subresource: Option<String>,
}

#[derive(Deserialize)]
struct ResponseStatus {
    #[serde(default)]
    code: Option<u16>,
}

impl Event {
    /// Whether this event is the one that counts its request.
    fn counts_request(&self) -> bool {
        let code = self.response_status.as_ref().and_then(|s| s.code);
        match self.stage.as_str() {
            "ResponseStarted" => self.verb == "watch",
            // A refused watch never starts streaming: its only event is the completion.
            "ResponseComplete" => self.verb != "watch" || code.is_some_and(|c| c != 200),
            "Panic" => true,
            _ => false,
        }
    }

    /// `deployments`, `canaryrollouts/status`, or the path of a non-resource request.
    fn resource(&self) -> String {
        match &self.object_ref {
            Some(ObjectRef {
                resource: Some(resource),
                subresource,
            }) => match subresource {
                Some(sub) => format!("{resource}/{sub}"),
                None => resource.clone(),
            },
            _ => self
                .request_uri
                .split('?')
                .next()
                .unwrap_or_default()
                .to_string(),
        }
    }
}

/// A reader that picks up where it stopped, across the apiserver's rotation of the file.
pub struct AuditLog {
    path: PathBuf,
    inode: u64,
    offset: u64,
}

impl AuditLog {
    /// Starts at the current end of the log: only what is written from now on is read.
    pub fn from_end(path: &Path) -> io::Result<AuditLog> {
        let metadata = fs::metadata(path)?;
        Ok(AuditLog {
            path: path.to_path_buf(),
            inode: metadata.ino(),
            offset: metadata.len(),
        })
    }

    /// Reads what was written since the last call and tallies the requests that ended (or, for
    /// a watch, started) between `from` and `to`.
    pub fn tally(&mut self, from: Timestamp, to: Timestamp) -> io::Result<Tally> {
        let mut tally = Tally::default();
        let current = fs::metadata(&self.path)?;
        if current.ino() != self.inode {
            // Rotated: the rest of the old file is in the backup that kept its inode.
            if let Some(backup) = self.backup_with_inode(self.inode)? {
                read_lines(&backup, self.offset, &mut |line| {
                    add(&mut tally, line, from, to)
                })?;
            }
            self.inode = current.ino();
            self.offset = 0;
        }
        let path = self.path.clone();
        self.offset = read_lines(&path, self.offset, &mut |line| {
            add(&mut tally, line, from, to)
        })?;
        Ok(tally)
    }

    fn backup_with_inode(&self, inode: u64) -> io::Result<Option<PathBuf>> {
        let Some(dir) = self.path.parent() else {
            return Ok(None);
        };
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            if entry.metadata()?.ino() == inode {
                return Ok(Some(entry.path()));
            }
        }
        Ok(None)
    }
}

/// Calls `each` on every complete line from `offset` on; returns the offset after the last one,
/// so a line still being written is read whole next time.
fn read_lines(path: &Path, offset: u64, each: &mut impl FnMut(&str)) -> io::Result<u64> {
    let mut file = File::open(path)?;
    file.seek(SeekFrom::Start(offset))?;
    let mut reader = BufReader::new(file);
    let mut position = offset;
    let mut line = String::new();
    loop {
        line.clear();
        let read = reader.read_line(&mut line)?;
        if read == 0 || !line.ends_with('\n') {
            return Ok(position);
        }
        position += read as u64;
        each(&line);
    }
}

fn add(tally: &mut Tally, line: &str, from: Timestamp, to: Timestamp) {
    let Ok(event) = serde_json::from_str::<Event>(line) else {
        tally.unreadable += 1;
        return;
    };
    if !event.counts_request() || event.stage_timestamp < from || event.stage_timestamp > to {
        return;
    }
    let agent = event.user_agent.as_deref();
    let Some(rule) = OperatorRule::of(agent) else {
        let product = agent.unwrap_or_default().split(' ').next().unwrap_or_default();
        *tally.others.entry(product.to_string()).or_default() += 1;
        return;
    };
    *tally.rules.entry(rule).or_default() += 1;
    tally.total += 1;
    *tally
        .calls
        .entry((event.verb.clone(), event.resource()))
        .or_default() += 1;
    match event.response_status.as_ref().and_then(|s| s.code) {
        Some(429) => tally.throttled += 1,
        Some(code) if code >= 500 => tally.server_errors += 1,
        None if event.stage == "Panic" => tally.server_errors += 1,
        _ => {}
    }
}
