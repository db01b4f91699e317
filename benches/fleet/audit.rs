//! The operator's apiserver requests, counted in the audit log that `SLUICE_AUDIT=1 hack/testenv
//! up` writes (level Metadata, stages ResponseStarted, ResponseComplete and Panic).
//!
//! A request is counted once, at the time the apiserver received it: a watch by its
//! ResponseStarted event, any other request by its completion (or panic). The apiserver writes a
//! watch's events only when the watch ends, so the log is read again after the operator has
//! stopped, and requests are kept (compactly) until then to be sorted into time windows.

use std::collections::{BTreeMap, HashMap};
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
    /// Lines of the whole log that were not audit events (a line cut by rotation, say).
    pub unreadable: u64,
    /// Whether requests were missed (the log was rotated twice between two reads).
    pub lost: bool,
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
    request_received_timestamp: Timestamp,
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

/// One request as kept: the call and the client are indexes into [`AuditLog`]'s name tables.
struct Request {
    received: Timestamp,
    call: usize,
    client: Client,
    code: Option<u16>,
    panicked: bool,
}

#[derive(Clone, Copy)]
enum Client {
    Operator(OperatorRule),
    /// Index of the client's product (its User-Agent up to the first space).
    Other(usize),
}

/// A reader that picks up where it stopped, across the apiserver's rotation of the file.
pub struct AuditLog {
    path: PathBuf,
    inode: u64,
    offset: u64,
    requests: Vec<Request>,
    calls: Names<(String, String)>,
    products: Names<String>,
    unreadable: u64,
    /// Set when the file was rotated more than once between two reads: requests were missed.
    lost: bool,
}

impl AuditLog {
    /// Starts at the current end of the log: only what is written from now on is read.
    pub fn from_end(path: &Path) -> io::Result<AuditLog> {
        let metadata = fs::metadata(path)?;
        Ok(AuditLog {
            path: path.to_path_buf(),
            inode: metadata.ino(),
            offset: metadata.len(),
            requests: Vec::new(),
            calls: Names::default(),
            products: Names::default(),
            unreadable: 0,
            lost: false,
        })
    }

    /// Reads what was written since the last call. Reading now and then (rather than once at
    /// the end) follows the file across a rotation.
    pub fn read_new(&mut self) -> io::Result<()> {
        let current = fs::metadata(&self.path)?;
        if current.ino() != self.inode {
            // Rotated: the rest of the old file is in the backup that kept its inode.
            match self.backup_with_inode(self.inode)? {
                Some(backup) => {
                    read_lines(&backup, self.offset, &mut |line| self.add(line))?;
                }
                None => self.lost = true,
            }
            self.inode = current.ino();
            self.offset = 0;
        }
        let path = self.path.clone();
        self.offset = read_lines(&path, self.offset, &mut |line| self.add(line))?;
        Ok(())
    }

    /// The requests received between `from` and `to`.
    pub fn tally(&self, from: Timestamp, to: Timestamp) -> Tally {
        let mut tally = Tally {
            unreadable: self.unreadable,
            lost: self.lost,
            ..Default::default()
        };
        for request in self
            .requests
            .iter()
            .filter(|r| r.received >= from && r.received <= to)
        {
            let rule = match request.client {
                Client::Operator(rule) => rule,
                Client::Other(product) => {
                    *tally
                        .others
                        .entry(self.products.name(product).clone())
                        .or_default() += 1;
                    continue;
                }
            };
            *tally.rules.entry(rule).or_default() += 1;
            tally.total += 1;
            *tally
                .calls
                .entry(self.calls.name(request.call).clone())
                .or_default() += 1;
            match request.code {
                Some(429) => tally.throttled += 1,
                Some(code) if code >= 500 => tally.server_errors += 1,
                None if request.panicked => tally.server_errors += 1,
                _ => {}
            }
        }
        tally
    }

    fn add(&mut self, line: &str) {
        let Ok(event) = serde_json::from_str::<Event>(line) else {
            self.unreadable += 1;
            return;
        };
        if !event.counts_request() {
            return;
        }
        let agent = event.user_agent.as_deref();
        let client = match OperatorRule::of(agent) {
            Some(rule) => Client::Operator(rule),
            None => {
                let product = agent
                    .unwrap_or_default()
                    .split(' ')
                    .next()
                    .unwrap_or_default();
                Client::Other(self.products.index(product.to_string()))
            }
        };
        self.requests.push(Request {
            received: event.request_received_timestamp,
            call: self.calls.index((event.verb.clone(), event.resource())),
            client,
            code: event.response_status.as_ref().and_then(|s| s.code),
            panicked: event.stage == "Panic",
        });
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

/// Each distinct name once, so a million requests do not hold a million copies of it.
struct Names<T> {
    names: Vec<T>,
    indexes: HashMap<T, usize>,
}

impl<T> Default for Names<T> {
    fn default() -> Self {
        Names {
            names: Vec::new(),
            indexes: HashMap::new(),
        }
    }
}

impl<T: Clone + Eq + std::hash::Hash> Names<T> {
    fn index(&mut self, name: T) -> usize {
        if let Some(&index) = self.indexes.get(&name) {
            return index;
        }
        self.names.push(name.clone());
        self.indexes.insert(name, self.names.len() - 1);
        self.names.len() - 1
    }

    fn name(&self, index: usize) -> &T {
        &self.names[index]
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
