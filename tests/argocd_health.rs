//! deploy/argocd/health.lua, the Argo CD health check of a CanaryRollout, run against a status
//! in every phase (serialised from Sluice's own types, so the field names are the real ones).

use mlua::serde::SerializeOptions;
use mlua::{Lua, LuaSerdeExt, Table};
use serde_json::{Value, json};
use sluice::api::CanaryRolloutStatus;
use sluice::api::canary_rollout::Phase;
use sluice::api::conditions::Condition;

const SCRIPT: &str = include_str!("../deploy/argocd/health.lua");

/// What Argo CD should show for each phase; exhaustive, so a new phase must be placed here.
fn expected_health(phase: Phase) -> &'static str {
    match phase {
        Phase::Idle | Phase::Succeeded => "Healthy",
        Phase::Progressing | Phase::Promoting => "Progressing",
        Phase::Paused | Phase::Frozen | Phase::Waiting => "Suspended",
        Phase::RolledBack | Phase::Invalid => "Degraded",
    }
}

/// Every phase the CRD allows in `status.phase`, by name.
fn phases() -> Vec<(Phase, String)> {
    use kube::CustomResourceExt;
    let crd = serde_json::to_value(sluice::api::CanaryRollout::crd()).expect("CRD to JSON");
    let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
    let names = schema["properties"]["status"]["properties"]["phase"]["enum"]
        .as_array()
        .expect("status.phase is an enum in the CRD");
    names
        .iter()
        .map(|name| {
            let phase = serde_json::from_value(name.clone()).expect("a Phase");
            (phase, name.as_str().unwrap_or_default().to_string())
        })
        .collect()
}

/// Runs the script with `obj` set to `object`; returns (status, message).
fn health(object: &Value) -> (String, String) {
    let lua = Lua::new();
    // Argo CD hands the script a table without nulls: absent fields are nil.
    let options = SerializeOptions::new()
        .serialize_none_to_null(false)
        .serialize_unit_to_null(false);
    let obj = lua.to_value_with(object, options).expect("object to Lua");
    lua.globals().set("obj", obj).expect("set obj");
    let result: Table = lua
        .load(SCRIPT)
        .set_name("health.lua")
        .eval()
        .unwrap_or_else(|e| panic!("health.lua failed on {object}: {e}"));
    (
        result.get("status").expect("hs.status"),
        result.get("message").expect("hs.message"),
    )
}

fn rollout(generation: i64, status: Option<&CanaryRolloutStatus>) -> Value {
    let mut object = json!({
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "CanaryRollout",
        "metadata": {"name": "checkout", "namespace": "shop", "generation": generation},
        "spec": {"targetRef": {"name": "checkout"}},
    });
    if let Some(status) = status {
        object["status"] = serde_json::to_value(status).expect("status to JSON");
    }
    object
}

#[test]
fn every_phase_maps_to_its_health_with_the_status_message() {
    let phases = phases();
    assert!(phases.len() >= 8, "{phases:?}");
    for (phase, name) in phases {
        let message = format!("what {name} means for checkout");
        let status = CanaryRolloutStatus {
            observed_generation: Some(3),
            phase: Some(phase),
            message: Some(message.clone()),
            ..Default::default()
        };
        let (health, shown) = health(&rollout(3, Some(&status)));
        assert_eq!(health, expected_health(phase), "phase {name}");
        assert_eq!(shown, format!("{name}: {message}"), "phase {name}");
    }
}

#[test]
fn a_phase_without_message_shows_the_phase() {
    let status = CanaryRolloutStatus {
        observed_generation: Some(1),
        phase: Some(Phase::Succeeded),
        ..Default::default()
    };
    assert_eq!(
        health(&rollout(1, Some(&status))),
        ("Healthy".into(), "Succeeded".into())
    );
}

#[test]
fn no_status_yet_or_an_unobserved_generation_is_progressing() {
    assert_eq!(
        health(&rollout(1, None)),
        (
            "Progressing".into(),
            "Waiting for the Sluice operator to adopt the target".into()
        )
    );
    let status = CanaryRolloutStatus {
        observed_generation: Some(4),
        phase: Some(Phase::Succeeded),
        message: Some("promoted 7f9c6d5a".into()),
        ..Default::default()
    };
    assert_eq!(
        health(&rollout(5, Some(&status))),
        (
            "Progressing".into(),
            "Waiting for the Sluice operator to act on generation 5".into()
        )
    );
}

#[test]
fn an_unknown_phase_falls_back_on_the_kstatus_conditions() {
    let now = jiff::Timestamp::from_second(1_700_000_000).expect("time");
    let cases = [
        (("Stalled", true), "Degraded"),
        (("Ready", true), "Healthy"),
        (("Reconciling", true), "Progressing"),
    ];
    for ((kind, value), expected) in cases {
        let condition = Condition::new(kind, value, "Because", "a sentence", now);
        let mut object = rollout(2, None);
        object["status"] = json!({
            "observedGeneration": 2,
            "phase": "Draining",
            "message": "a phase from a newer Sluice",
            "conditions": [condition],
        });
        assert_eq!(
            health(&object),
            (
                expected.to_string(),
                "Draining: a phase from a newer Sluice".to_string()
            ),
            "{kind}"
        );
    }
}

/// docs/gitops.md shows the script as an argocd-cm value (indented four spaces): it must be the
/// file this test runs.
#[test]
fn the_docs_carry_the_script_unchanged() {
    let docs = include_str!("../docs/gitops.md");
    let embedded: String = SCRIPT
        .lines()
        .map(|line| {
            if line.is_empty() {
                "\n".to_string()
            } else {
                format!("    {line}\n")
            }
        })
        .collect();
    assert!(
        docs.contains(&embedded),
        "docs/gitops.md does not carry deploy/argocd/health.lua as it is"
    );
}

#[test]
fn an_in_flight_rollout_held_by_a_delivery_freeze_is_suspended() {
    let now = jiff::Timestamp::from_second(1_700_000_000).expect("time");
    let message = "stage 1 (5%) held: DeliveryFreeze team/stop (Hold): quarter end";
    let status = CanaryRolloutStatus {
        observed_generation: Some(1),
        phase: Some(Phase::Progressing),
        message: Some(message.into()),
        conditions: vec![Condition::new(
            "Frozen",
            true,
            "DeliveryFreeze",
            "DeliveryFreeze team/stop (Hold): quarter end",
            now,
        )],
        ..Default::default()
    };
    assert_eq!(
        health(&rollout(1, Some(&status))),
        ("Suspended".into(), format!("Progressing: {message}"))
    );
}
