//! The CustomResourceDefinitions a local environment needs: Sluice's own and, when the cluster
//! has none, the minimal HTTPRoute of [`super::HTTPROUTE_CRD`].

use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Client, Error};

/// How long a new CRD may take to be served.
const ESTABLISH_TIMEOUT: Duration = Duration::from_secs(30);

/// Why the CRDs could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum CrdError {
    #[error("applying CRD {name}: {source}")]
    Apply { name: String, source: Error },
    #[error("the HTTPRoute CRD shipped with Sluice does not parse: {0}")]
    BadHttpRoute(String),
    #[error("CRD {name} was not established within {ESTABLISH_TIMEOUT:?}")]
    NotEstablished { name: String },
    #[error("waiting for CRD {name}: {source}")]
    Wait {
        name: String,
        source: kube::runtime::wait::Error,
    },
}

/// Server-side applies Sluice's CRDs (forced: these definitions are Sluice's by design), creates
/// the HTTPRoute CRD unless one exists (a real Gateway API installation is left alone), and
/// waits until all of them are established.
pub async fn install(client: &Client, field_manager: &str) -> Result<(), CrdError> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut names = Vec::new();
    for crd in crate::api::crds() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        let params = PatchParams::apply(field_manager).force();
        retry_conflicts(async || api.patch(&name, &params, &Patch::Apply(&crd)).await)
            .await
            .map_err(|source| CrdError::Apply {
                name: name.clone(),
                source,
            })?;
        names.push(name);
    }

    let httproute: CustomResourceDefinition = serde_saphyr::from_str(super::HTTPROUTE_CRD)
        .map_err(|e| CrdError::BadHttpRoute(e.to_string()))?;
    let name = httproute.metadata.name.clone().unwrap_or_default();
    match api.create(&PostParams::default(), &httproute).await {
        Ok(_) => {}
        Err(Error::Api(status)) if status.is_already_exists() => {}
        Err(source) => return Err(CrdError::Apply { name, source }),
    }
    names.push(name);

    for name in names {
        let established = await_condition(api.clone(), &name, conditions::is_crd_established());
        match tokio::time::timeout(ESTABLISH_TIMEOUT, established).await {
            Ok(Ok(_)) => {}
            Ok(Err(source)) => return Err(CrdError::Wait { name, source }),
            Err(_) => return Err(CrdError::NotEstablished { name }),
        }
    }
    Ok(())
}

/// Several processes (test binaries, a demo) may apply the same CRDs at once.
async fn retry_conflicts<T>(mut write: impl AsyncFnMut() -> Result<T, Error>) -> Result<T, Error> {
    let mut attempt = 0;
    loop {
        match write().await {
            Err(Error::Api(status)) if status.is_conflict() && attempt < 10 => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
            }
            result => return result,
        }
    }
}
