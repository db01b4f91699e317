//! `kubectl sluice freeze` and `thaw`: a DeliveryFreeze in force from now until thawed, over
//! one namespace or (`--all`) every namespace the operator watches. The manifest is built here
//! (pure); `commands` applies or deletes it.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::cli::FreezeArgs;
use crate::api::delivery_freeze::FreezeAction;

/// The name of the DeliveryFreeze `freeze` creates and `thaw` deletes, unless `--name` says.
pub const DEFAULT_NAME: &str = "sluice-freeze";

/// Where the freeze goes and what it is.
#[derive(Clone, Debug, PartialEq)]
pub struct PlannedFreeze {
    pub namespace: String,
    pub name: String,
    pub manifest: Value,
}

/// The DeliveryFreeze for `args`, in `namespace` (the freeze namespace with `--all`).
pub fn planned(args: &FreezeArgs, session_namespace: &str) -> Result<PlannedFreeze, String> {
    let namespace = match args.all {
        true => args.freeze_namespace.clone(),
        false => session_namespace.to_string(),
    };
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| DEFAULT_NAME.to_string());
    let action = match args.rollback {
        true => FreezeAction::Rollback,
        false => FreezeAction::Hold,
    };
    let mut spec = json!({
        "action": action.as_str(),
        "reason": args.reason,
        "allNamespaces": args.all,
    });
    if let Some(selector) = &args.selector {
        spec["selector"] = json!({"matchLabels": match_labels(selector)?});
    }
    let manifest = json!({
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "DeliveryFreeze",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    });
    Ok(PlannedFreeze {
        namespace,
        name,
        manifest,
    })
}

/// `key=value,key=value` as matchLabels.
fn match_labels(selector: &str) -> Result<BTreeMap<String, String>, String> {
    selector
        .split(',')
        .map(|pair| {
            let (key, value) = pair.split_once('=').ok_or_else(|| {
                format!("--selector {selector:?}: expected key=value[,key=value]")
            })?;
            Ok((key.trim().to_string(), value.trim().to_string()))
        })
        .collect()
}

/// The line `freeze` prints.
pub fn summary(planned: &PlannedFreeze, args: &FreezeArgs) -> String {
    let scope = match args.all {
        true => "every namespace".to_string(),
        false => format!("namespace {}", planned.namespace),
    };
    let what = match args.rollback {
        true => "in-flight canaries roll back and no rollout starts",
        false => "in-flight rollouts hold and no rollout starts",
    };
    let selected = args
        .selector
        .as_deref()
        .map(|s| format!(" labelled {s}"))
        .unwrap_or_default();
    format!(
        "DeliveryFreeze {}/{} in force over {scope}{selected}: {what} until `kubectl sluice thaw{}`",
        planned.namespace,
        planned.name,
        if args.all { " --all" } else { "" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::cli::{Cli, Command};
    use clap::Parser;

    fn args(line: &[&str]) -> FreezeArgs {
        let mut all = vec!["kubectl-sluice"];
        all.extend(line);
        match Cli::try_parse_from(all).unwrap().command {
            Command::Freeze(args) => args,
            other => panic!("freeze expected, got {other:?}"),
        }
    }

    #[test]
    fn a_namespace_freeze_holds_by_default() {
        let args = args(&["freeze", "--reason", "quarter end"]);
        let planned = planned(&args, "shop").unwrap();
        assert_eq!(planned.namespace, "shop");
        assert_eq!(planned.name, DEFAULT_NAME);
        assert_eq!(planned.manifest["spec"]["action"], "Hold");
        assert_eq!(planned.manifest["spec"]["allNamespaces"], false);
        assert_eq!(
            summary(&planned, &args),
            "DeliveryFreeze shop/sluice-freeze in force over namespace shop: in-flight rollouts hold and no rollout starts until `kubectl sluice thaw`"
        );
    }

    #[test]
    fn the_fleet_kill_switch_goes_to_the_freeze_namespace() {
        let args = args(&[
            "freeze",
            "--all",
            "--rollback",
            "--reason",
            "incident 4711",
            "--selector",
            "tier=critical",
        ]);
        let planned = planned(&args, "shop").unwrap();
        assert_eq!(planned.namespace, "sluice-system");
        assert_eq!(planned.manifest["spec"]["action"], "Rollback");
        assert_eq!(planned.manifest["spec"]["allNamespaces"], true);
        assert_eq!(
            planned.manifest["spec"]["selector"]["matchLabels"]["tier"],
            "critical"
        );
    }

    #[test]
    fn a_reason_is_required_and_a_bad_selector_is_refused() {
        let mut all = vec!["kubectl-sluice", "freeze"];
        assert_eq!(Cli::try_parse_from(&all).unwrap_err().exit_code(), 2);
        all.extend(["--reason", "x", "--selector", "tier"]);
        let args = match Cli::try_parse_from(all).unwrap().command {
            Command::Freeze(args) => args,
            _ => unreachable!(),
        };
        assert!(planned(&args, "shop").unwrap_err().contains("key=value"));
    }
}
