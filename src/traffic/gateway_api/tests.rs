use serde_json::{Value, json};

use super::*;

fn names() -> ServiceNames {
    ServiceNames::for_service("checkout", 80)
}

/// An HTTPRoute in namespace `shop` with these rules.
fn route(rules: Value) -> Value {
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "checkout", "namespace": "shop", "resourceVersion": "7"},
        "spec": {
            "parentRefs": [{"name": "public"}],
            "hostnames": ["shop.example.com"],
            "rules": rules,
        },
    })
}

fn backend(name: &str, weight: u64) -> Value {
    json!({"name": name, "port": 80, "weight": weight})
}

fn pair(stable: u64, canary: u64) -> [Value; 2] {
    [
        backend("checkout-stable", stable),
        backend("checkout-canary", canary),
    ]
}

fn rule(refs: &[Value]) -> Value {
    json!({"matches": [{"path": {"type": "PathPrefix", "value": "/"}}], "backendRefs": refs})
}

#[test]
fn with_weights_rewrites_only_what_routes_to_the_service() {
    let other = backend("search", 10);
    let [stable, canary] = pair(99, 1);
    let cases: Vec<(&str, Value, u32, Option<Value>)> = vec![
        (
            "user's service becomes the pair at 99/1",
            json!([rule(&[json!({"name": "checkout", "port": 80})])]),
            1,
            Some(json!([rule(&pair(99, 1))])),
        ),
        (
            "converted route gets new weights",
            json!([rule(&pair(99, 1))]),
            5,
            Some(json!([rule(&pair(95, 5))])),
        ),
        (
            "converted route at the same weight is unchanged",
            json!([rule(&pair(99, 1))]),
            1,
            None,
        ),
        (
            "weight 0 sends everything to stable",
            json!([rule(&pair(75, 25))]),
            0,
            Some(json!([rule(&pair(100, 0))])),
        ),
        (
            "weight above 100 is capped",
            json!([rule(&pair(75, 25))]),
            250,
            Some(json!([rule(&pair(0, 100))])),
        ),
        (
            "an unrelated backend in the rule keeps its place and weight",
            json!([rule(&[backend("checkout", 90), other.clone()])]),
            1,
            Some(json!([rule(&[
                stable.clone(),
                canary.clone(),
                other.clone()
            ])])),
        ),
        (
            "only rules routing to our services change",
            json!([rule(&[backend("search", 10)]), rule(&[backend("checkout", 1)]), {"backendRefs": "odd"}]),
            1,
            Some(
                json!([rule(&[backend("search", 10)]), rule(&pair(99, 1)), {"backendRefs": "odd"}]),
            ),
        ),
        (
            "a lone stable ref (a pinned rule) is left alone",
            json!([rule(&[backend("checkout-stable", 7)]), rule(&pair(99, 1))]),
            5,
            Some(json!([
                rule(&[backend("checkout-stable", 7)]),
                rule(&pair(95, 5))
            ])),
        ),
        (
            "explicit kind, group and the route's own namespace still match",
            json!([rule(&[
                json!({"name": "checkout", "port": 80, "kind": "Service", "group": "", "namespace": "shop"})
            ])]),
            1,
            Some(json!([rule(&[
                json!({"name": "checkout-stable", "port": 80, "kind": "Service", "group": "", "namespace": "shop", "weight": 99}),
                json!({"name": "checkout-canary", "port": 80, "kind": "Service", "group": "", "namespace": "shop", "weight": 1}),
            ])])),
        ),
        (
            "filters carry over to both tracks, the port comes from the rollout",
            json!([rule(&[
                json!({"name": "checkout", "port": 8080, "filters": [{"type": "RequestHeaderModifier"}]})
            ])]),
            1,
            Some(json!([rule(&[
                json!({"name": "checkout-stable", "port": 80, "weight": 99, "filters": [{"type": "RequestHeaderModifier"}]}),
                json!({"name": "checkout-canary", "port": 80, "weight": 1, "filters": [{"type": "RequestHeaderModifier"}]}),
            ])])),
        ),
    ];
    for (case, rules, weight, expected) in cases {
        let got =
            with_weights(&route(rules), &names(), weight).unwrap_or_else(|e| panic!("{case}: {e}"));
        assert_eq!(got, expected, "{case}");
    }
}

#[test]
fn with_weights_leaves_the_rest_of_the_route_alone() {
    let original = route(json!([rule(&[backend("checkout", 1)])]));
    let rules = with_weights(&original, &names(), 1).unwrap().unwrap();
    let mut expected = original.clone();
    expected["spec"]["rules"] = json!([rule(&pair(99, 1))]);
    let mut patched = original;
    patched["spec"]["rules"] = rules;
    assert_eq!(patched, expected);
}

#[test]
fn with_weights_rejects_routes_that_never_reach_the_service() {
    let cases: Vec<(&str, Value)> = vec![
        (
            "another service only",
            route(json!([rule(&[backend("search", 1)])])),
        ),
        (
            "same name, other namespace",
            route(json!([rule(&[
                json!({"name": "checkout", "namespace": "other"})
            ])])),
        ),
        (
            "same name, other kind",
            route(json!([rule(&[
                json!({"name": "checkout", "kind": "Backend", "group": "x.io"})
            ])])),
        ),
        (
            "only a lone canary ref",
            route(json!([rule(&[backend("checkout-canary", 1)])])),
        ),
        ("no rules", route(json!([]))),
        ("rules not an array", route(json!({"backendRefs": []}))),
        (
            "backendRefs not an array",
            route(json!([{"backendRefs": {"name": "checkout"}}])),
        ),
        (
            "backendRefs of odd items",
            route(json!([{"backendRefs": [null, 3, "checkout"]}, "rule"])),
        ),
        (
            "no spec.rules",
            json!({"metadata": {"name": "checkout"}, "spec": {}}),
        ),
        ("not an object", json!("checkout")),
    ];
    for (case, route) in cases {
        match with_weights(&route, &names(), 1) {
            Err(error @ TrafficError::NoMatchingBackend { .. }) => {
                assert_eq!(error.category(), "no_matching_backend", "{case}");
                assert!(error.is_permanent(), "{case}");
            }
            other => panic!("{case}: expected NoMatchingBackend, got {other:?}"),
        }
    }
}

#[test]
fn no_matching_backend_names_the_route_and_the_service() {
    let error = with_weights(&route(json!([])), &names(), 1).unwrap_err();
    assert_eq!(
        error.to_string(),
        "HTTPRoute checkout has no rule whose backendRefs point at Service checkout \
         or at both checkout-stable and checkout-canary"
    );
}

#[test]
fn handed_back_restores_the_users_service() {
    let other = backend("search", 10);
    let cases: Vec<(&str, Value, Option<Value>)> = vec![
        (
            "pair becomes the user's service",
            json!([rule(&pair(99, 1))]),
            Some(json!([rule(&[backend("checkout", 100)])])),
        ),
        (
            "pair at 0/0 gets weight 100",
            json!([rule(&pair(0, 0))]),
            Some(json!([rule(&[backend("checkout", 100)])])),
        ),
        (
            "the pair's sum keeps the proportion to other backends",
            json!([rule(&[
                other.clone(),
                pair(45, 5)[0].clone(),
                pair(45, 5)[1].clone()
            ])]),
            Some(json!([rule(&[other.clone(), backend("checkout", 50)])])),
        ),
        (
            "a lone ref is handed back too",
            json!([
                rule(&[backend("checkout-canary", 0)]),
                rule(&[backend("checkout-stable", 3)])
            ]),
            Some(json!([
                rule(&[backend("checkout", 100)]),
                rule(&[backend("checkout", 3)])
            ])),
        ),
        (
            "non-adjacent refs are handed back one by one",
            json!([rule(&[
                backend("checkout-stable", 90),
                other.clone(),
                backend("checkout-canary", 10)
            ])]),
            Some(json!([rule(&[
                backend("checkout", 90),
                other.clone(),
                backend("checkout", 10)
            ])])),
        ),
        (
            "absent weights count as 1",
            json!([rule(&[
                json!({"name": "checkout-stable", "port": 80}),
                json!({"name": "checkout-canary", "port": 80})
            ])]),
            Some(json!([rule(&[backend("checkout", 2)])])),
        ),
        (
            "a route on the user's service is unchanged",
            json!([rule(&[backend("checkout", 1)])]),
            None,
        ),
        (
            "odd shapes are unchanged",
            json!([{"backendRefs": "x"}, 3, {"backendRefs": [null]}]),
            None,
        ),
        ("rules not an array", json!("x"), None),
    ];
    for (case, rules, expected) in cases {
        assert_eq!(handed_back(&route(rules), &names()), expected, "{case}");
    }
    assert_eq!(
        handed_back(&json!({"spec": {}}), &names()),
        None,
        "no spec.rules"
    );
}

#[test]
fn hand_back_undoes_with_weights() {
    let original = route(json!([
        rule(&[
            json!({"name": "checkout", "port": 80, "weight": 100, "filters": [{"type": "URLRewrite"}]})
        ]),
        rule(&[backend("search", 1)]),
    ]));
    for weight in [0, 1, 25, 100] {
        let mut converted = original.clone();
        converted["spec"]["rules"] = with_weights(&original, &names(), weight).unwrap().unwrap();
        let mut restored = converted.clone();
        restored["spec"]["rules"] = handed_back(&converted, &names()).unwrap();
        assert_eq!(restored, original, "weight {weight}");
    }
}

#[test]
fn canary_weight_reads_the_first_pair() {
    let cases: Vec<(&str, Value, Option<u32>)> = vec![
        ("no pair", json!([rule(&[backend("checkout", 1)])]), None),
        (
            "lone canary is no pair",
            json!([rule(&[backend("checkout-canary", 5)])]),
            None,
        ),
        (
            "pair",
            json!([
                rule(&[backend("search", 3)]),
                rule(&pair(95, 5)),
                rule(&pair(50, 50))
            ]),
            Some(5),
        ),
        ("pair at 0/0", json!([rule(&pair(0, 0))]), Some(0)),
        (
            "hand-edited pair is read as a share",
            json!([rule(&pair(990, 10))]),
            Some(1),
        ),
        (
            "absent weights are 1 each",
            json!([rule(&[
                json!({"name": "checkout-stable"}),
                json!({"name": "checkout-canary"})
            ])]),
            Some(50),
        ),
        ("odd shapes", json!([null, {"backendRefs": 1}]), None),
    ];
    for (case, rules, expected) in cases {
        assert_eq!(canary_weight(&route(rules), &names()), expected, "{case}");
    }
    for weight in 0..=100 {
        let original = route(json!([rule(&[backend("checkout", 1)])]));
        let mut converted = original.clone();
        converted["spec"]["rules"] = with_weights(&original, &names(), weight).unwrap().unwrap();
        assert_eq!(canary_weight(&converted, &names()), Some(weight));
    }
}

#[test]
fn error_categories() {
    let not_found = TrafficError::RouteNotFound {
        route: "checkout".into(),
    };
    assert_eq!(not_found.category(), "route_not_found");
    assert!(not_found.is_permanent());
    let kube = TrafficError::from(kube::Error::LinesCodecMaxLineLengthExceeded);
    assert_eq!(kube.category(), "kube");
    assert!(!kube.is_permanent());
}

#[test]
fn service_names() {
    let names = names();
    assert_eq!(
        (
            names.user.as_str(),
            names.stable.as_str(),
            names.canary.as_str()
        ),
        ("checkout", "checkout-stable", "checkout-canary")
    );
    assert_eq!(names.port, 80);
}

fn mirrored(traffic: RouteTraffic, rules: Value) -> Value {
    let mut converted = route(rules);
    if let Some(rules) = with_traffic(&converted, &names(), traffic).unwrap() {
        converted["spec"]["rules"] = rules;
    }
    converted
}

fn shadow(mirror: u32) -> RouteTraffic {
    RouteTraffic { weight: 0, mirror }
}

#[test]
fn a_shadow_stage_mirrors_to_the_canary_and_the_next_stage_removes_it() {
    let header = json!({"type": "RequestHeaderModifier", "requestHeaderModifier": {"add": [{"name": "x-team", "value": "shop"}]}});
    let other_mirror = json!({"type": "RequestMirror", "requestMirror": {"backendRef": {"name": "audit-log", "port": 80}}});
    let mut user_rule = rule(&[json!({"name": "checkout", "port": 80})]);
    user_rule["filters"] = json!([header, other_mirror]);

    let at_100 = mirrored(shadow(100), json!([user_rule.clone()]));
    let rule_100 = &at_100["spec"]["rules"][0];
    assert_eq!(rule_100["backendRefs"], json!(pair(100, 0)));
    assert_eq!(
        rule_100["filters"],
        json!([header, other_mirror, {"type": "RequestMirror", "requestMirror": {"backendRef": {"name": "checkout-canary", "port": 80}}}]),
        "100 % sets no percent; the user's filters stay first"
    );
    assert_eq!(canary_mirror(&at_100, &names()), Some(100));

    let at_10 = mirrored(shadow(10), at_100["spec"]["rules"].clone());
    assert_eq!(
        at_10["spec"]["rules"][0]["filters"][2]["requestMirror"],
        json!({"backendRef": {"name": "checkout-canary", "port": 80}, "percent": 10})
    );
    assert_eq!(
        at_10["spec"]["rules"][0]["filters"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert_eq!(canary_mirror(&at_10, &names()), Some(10));
    assert_eq!(
        with_traffic(&at_10, &names(), shadow(10)).unwrap(),
        None,
        "unchanged"
    );

    let weighted = mirrored(
        RouteTraffic {
            weight: 1,
            mirror: 0,
        },
        at_10["spec"]["rules"].clone(),
    );
    assert_eq!(
        weighted["spec"]["rules"][0]["filters"],
        json!([header, other_mirror])
    );
    assert_eq!(
        weighted["spec"]["rules"][0]["backendRefs"],
        json!(pair(99, 1))
    );
    assert_eq!(canary_mirror(&weighted, &names()), None);
}

#[test]
fn a_rule_without_filters_gets_none_back() {
    let at_100 = mirrored(shadow(100), json!([rule(&pair(100, 0))]));
    let back = mirrored(RouteTraffic::default(), at_100["spec"]["rules"].clone());
    assert_eq!(back["spec"]["rules"], json!([rule(&pair(100, 0))]));
}

#[test]
fn hand_back_removes_the_mirror() {
    let original = route(json!([rule(&[json!({"name": "checkout", "port": 80})])]));
    let at_50 = mirrored(shadow(50), original["spec"]["rules"].clone());
    let mut back = at_50.clone();
    back["spec"]["rules"] = handed_back(&at_50, &names()).unwrap();
    assert_eq!(
        back["spec"]["rules"],
        json!([rule(&[
            json!({"name": "checkout", "port": 80, "weight": 100})
        ])])
    );
}

#[test]
fn canary_mirror_reads_a_fraction() {
    let mut at_100 = mirrored(shadow(100), json!([rule(&pair(100, 0))]));
    at_100["spec"]["rules"][0]["filters"][0]["requestMirror"]["fraction"] =
        json!({"numerator": 1, "denominator": 8});
    assert_eq!(canary_mirror(&at_100, &names()), Some(13));
}

#[test]
fn a_stored_mirror_with_defaults_filled_in_is_left_alone() {
    let mut stored = mirrored(shadow(50), json!([rule(&pair(100, 0))]));
    stored["spec"]["rules"][0]["filters"][0]["requestMirror"]["backendRef"]["kind"] =
        "Service".into();
    stored["spec"]["rules"][0]["filters"][0]["requestMirror"]["backendRef"]["group"] = "".into();
    assert_eq!(with_traffic(&stored, &names(), shadow(50)).unwrap(), None);
    let changed = with_traffic(&stored, &names(), shadow(10))
        .unwrap()
        .unwrap();
    assert_eq!(
        changed[0]["filters"],
        json!([{"type": "RequestMirror", "requestMirror": {"backendRef": {"name": "checkout-canary", "port": 80}, "percent": 10}}])
    );
}
