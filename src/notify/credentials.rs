//! Credentials of sinks, read from Secrets in the Notification's namespace when a message is
//! sent, and kept a minute: a rotated Secret takes effect within a minute, and a busy sink costs
//! one GET per Secret per minute, not one per message.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};

use crate::api::notification::SecretKeyRef;

const KEEP_FOUND: Duration = Duration::from_secs(60);
const KEEP_MISSING: Duration = Duration::from_secs(10);

type Key = (String, String, String);
/// A value read (or why none was), and when.
type Read = (Result<String, String>, Instant);

pub struct Credentials {
    client: Client,
    read: Mutex<HashMap<Key, Read>>,
}

impl Credentials {
    pub fn new(client: Client) -> Self {
        Self {
            client,
            read: Mutex::default(),
        }
    }

    /// The value of `reference` in `namespace`, trimmed; or why there is none, naming the Secret
    /// and key (never the value).
    pub async fn get(&self, namespace: &str, reference: &SecretKeyRef) -> Result<String, String> {
        let key = (
            namespace.to_string(),
            reference.name.clone(),
            reference.key.clone(),
        );
        if let Some((value, at)) = self.lock().get(&key).cloned() {
            let keep = if value.is_ok() {
                KEEP_FOUND
            } else {
                KEEP_MISSING
            };
            if at.elapsed() < keep {
                return value;
            }
        }
        let value = self.read(namespace, reference).await;
        self.lock().insert(key, (value.clone(), Instant::now()));
        value
    }

    async fn read(&self, namespace: &str, reference: &SecretKeyRef) -> Result<String, String> {
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        let name = &reference.name;
        let secret = secrets
            .get_opt(name)
            .await
            .map_err(|e| format!("reading Secret {namespace}/{name}: {e}"))?
            .ok_or_else(|| format!("Secret {namespace}/{name} not found"))?;
        let bytes = secret
            .data
            .as_ref()
            .and_then(|data| data.get(&reference.key))
            .map(|b| b.0.clone())
            .or_else(|| {
                secret
                    .string_data
                    .as_ref()
                    .and_then(|data| data.get(&reference.key))
                    .map(|s| s.clone().into_bytes())
            })
            .ok_or_else(|| format!("Secret {namespace}/{name} has no key {:?}", reference.key))?;
        String::from_utf8(bytes)
            .map(|s| s.trim().to_string())
            .map_err(|_| {
                format!(
                    "Secret {namespace}/{name} key {:?} is not UTF-8",
                    reference.key
                )
            })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Read>> {
        self.read.lock().unwrap_or_else(|e| e.into_inner())
    }
}
