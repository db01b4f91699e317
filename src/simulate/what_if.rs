//! "What if": the same replay over a grid of settings, to tune a policy against history.
//!
//! `--set PATH=v1,v2,...` (repeatable) names a field of a spec and the values to try; every
//! combination of values (the cartesian product) is one variant. PATH is a field of the
//! CanaryRollout's spec (`analysis.checks[0].max`, `stages[1].pause`), or of the ParityPolicy's
//! or SLOBudget's spec after `parity.` or `slo.` (`parity.thresholds.criticalBps`). A value is
//! read as JSON when it is JSON (`0.02`, `true`), else as a string (`5m`).

use serde_json::Value;

use super::error::SimulateError;
use super::inputs::{Documents, RawDocuments};

/// Which document a path points into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Rollout,
    Parity,
    Slo,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Segment {
    Field(String),
    Index(usize),
}

/// One `--set`: a path and the values to try.
#[derive(Clone, Debug, PartialEq)]
pub struct Setting {
    /// The path as written.
    pub path: String,
    pub target: Target,
    pub segments: Vec<Segment>,
    pub values: Vec<Value>,
}

/// One variant: a value for each setting, in the order of the settings.
pub type Variant<'a> = Vec<(&'a Setting, &'a Value)>;

impl std::str::FromStr for Setting {
    type Err = SimulateError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = |reason: &str| SimulateError::Setting {
            setting: text.to_string(),
            reason: reason.to_string(),
        };
        let (path, values) = text
            .split_once('=')
            .ok_or_else(|| error("expected PATH=VALUE[,VALUE...]"))?;
        let (target, rest) = match path.split_once('.') {
            Some(("parity", rest)) => (Target::Parity, rest),
            Some(("slo", rest)) => (Target::Slo, rest),
            _ => (Target::Rollout, path),
        };
        let segments = parse_path(rest).map_err(|reason| error(&reason))?;
        if values.trim().is_empty() {
            return Err(error("no value to try"));
        }
        let values = values.split(',').map(|v| parse_value(v.trim())).collect();
        Ok(Setting {
            path: path.to_string(),
            target,
            segments,
            values,
        })
    }
}

fn parse_path(path: &str) -> Result<Vec<Segment>, String> {
    let mut segments = Vec::new();
    for part in path.split('.') {
        let (name, mut indexes) = part.split_at(part.find('[').unwrap_or(part.len()));
        let valid = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
        if name.is_empty() || !name.chars().all(valid) {
            return Err(format!(
                "{path:?} is not a path like analysis.checks[0].max (bad part {part:?})"
            ));
        }
        segments.push(Segment::Field(name.to_string()));
        while let Some(inner) = indexes.strip_prefix('[') {
            let (index, rest) = inner
                .split_once(']')
                .ok_or_else(|| format!("unclosed [ in {part:?}"))?;
            let index = index
                .parse()
                .map_err(|_| format!("[{index}] in {part:?} is not an index"))?;
            segments.push(Segment::Index(index));
            indexes = rest;
        }
        if !indexes.is_empty() {
            return Err(format!("unexpected {indexes:?} in {part:?}"));
        }
    }
    Ok(segments)
}

fn parse_value(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
}

impl Setting {
    fn error(&self, reason: impl Into<String>) -> SimulateError {
        SimulateError::Setting {
            setting: self.path.clone(),
            reason: reason.into(),
        }
    }

    /// Writes `value` at the path into the spec of its document.
    fn apply(&self, raw: &mut RawDocuments, value: &Value) -> Result<(), SimulateError> {
        let (document, kind) = match self.target {
            Target::Rollout => (Some(&mut raw.rollout), "CanaryRollout"),
            Target::Parity => (raw.parity.as_mut(), "ParityPolicy"),
            Target::Slo => (raw.slo.as_mut(), "SLOBudget"),
        };
        let document = document.ok_or_else(|| self.error(format!("no {kind} is simulated")))?;
        let mut here = document
            .get_mut("spec")
            .ok_or_else(|| self.error(format!("the {kind} has no spec")))?;
        let mut walked = "spec".to_string();
        let Some((last, parents)) = self.segments.split_last() else {
            return Err(self.error("empty path"));
        };
        for segment in parents {
            here = step_into(here, segment)
                .ok_or_else(|| self.error(format!("{walked} has no {}", describe(segment))))?;
            walked.push_str(&suffix(segment));
        }
        match (last, here) {
            (Segment::Field(name), Value::Object(map)) => {
                map.insert(name.clone(), value.clone());
            }
            (Segment::Index(i), Value::Array(items)) if *i < items.len() => {
                items[*i] = value.clone();
            }
            (segment, _) => {
                return Err(self.error(format!("{walked} has no {}", describe(segment))));
            }
        }
        Ok(())
    }

    /// The value at the path in the typed spec, to tell a known field from an unknown one
    /// (which deserialization would silently drop).
    fn lookup(&self, documents: &Documents) -> Option<Value> {
        let spec = match self.target {
            Target::Rollout => serde_json::to_value(&documents.rollout.spec),
            Target::Parity => serde_json::to_value(&documents.parity.as_ref()?.spec),
            Target::Slo => serde_json::to_value(&documents.slo.as_ref()?.spec),
        };
        let mut here = &spec.ok()?;
        for segment in &self.segments {
            here = match segment {
                Segment::Field(name) => here.get(name)?,
                Segment::Index(i) => here.get(i)?,
            };
        }
        Some(here.clone())
    }
}

fn step_into<'v>(value: &'v mut Value, segment: &Segment) -> Option<&'v mut Value> {
    match segment {
        Segment::Field(name) => value.get_mut(name),
        Segment::Index(i) => value.get_mut(i),
    }
}

fn describe(segment: &Segment) -> String {
    match segment {
        Segment::Field(name) => format!("field {name:?}"),
        Segment::Index(i) => format!("item [{i}]"),
    }
}

fn suffix(segment: &Segment) -> String {
    match segment {
        Segment::Field(name) => format!(".{name}"),
        Segment::Index(i) => format!("[{i}]"),
    }
}

/// Every combination of the settings' values, the first setting varying slowest.
pub fn variants(settings: &[Setting]) -> Vec<Variant<'_>> {
    settings.iter().fold(vec![Vec::new()], |partial, setting| {
        partial
            .iter()
            .flat_map(|prefix| {
                setting.values.iter().map(move |value| {
                    let mut variant = prefix.clone();
                    variant.push((setting, value));
                    variant
                })
            })
            .collect()
    })
}

/// The documents of one variant, typed and validated; an unknown field or a value the spec
/// refuses is an error naming the setting.
pub fn documents_for(raw: &RawDocuments, variant: &Variant) -> Result<Documents, SimulateError> {
    let mut changed = raw.clone();
    for (setting, value) in variant {
        setting.apply(&mut changed, value)?;
    }
    let label = label(variant);
    let documents = changed.typed().map_err(|e| SimulateError::Setting {
        setting: label.clone(),
        reason: e.to_string(),
    })?;
    for (setting, _) in variant {
        if setting.lookup(&documents).is_none() {
            return Err(setting.error("no such field in the spec"));
        }
    }
    Ok(documents)
}

/// "analysis.failureLimit=1 stages[1].pause=5m"
pub fn label(variant: &Variant) -> String {
    let parts: Vec<String> = variant
        .iter()
        .map(|(setting, value)| match value {
            Value::String(text) => format!("{}={text}", setting.path),
            other => format!("{}={other}", setting.path),
        })
        .collect();
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setting(text: &str) -> Setting {
        text.parse().unwrap()
    }

    fn raw() -> RawDocuments {
        let rollout = serde_json::json!({
            "kind": "CanaryRollout",
            "metadata": {"name": "checkout"},
            "spec": {
                "targetRef": {"kind": "Deployment", "name": "checkout"},
                "service": {"name": "checkout", "port": 80},
                "trafficRouting": {"replicas": {}},
                "stages": [{"weight": 10, "pause": "1m"}, {"weight": 100}],
                "analysis": {"checks": [{"name": "errors", "query": "sum(errors)", "max": 0.01}]}
            }
        });
        RawDocuments::from_documents(vec![("CanaryRollout".into(), rollout)]).unwrap()
    }

    #[test]
    fn paths_name_fields_and_indexes_of_one_document() {
        let parsed = setting("analysis.checks[0].max=0.02,0.05");
        assert_eq!(parsed.target, Target::Rollout);
        assert_eq!(
            parsed.segments,
            [
                Segment::Field("analysis".into()),
                Segment::Field("checks".into()),
                Segment::Index(0),
                Segment::Field("max".into())
            ]
        );
        assert_eq!(
            parsed.values,
            [serde_json::json!(0.02), serde_json::json!(0.05)]
        );
        let parity = setting("parity.thresholds.criticalBps=40");
        assert_eq!(parity.target, Target::Parity);
        assert_eq!(parity.segments[0], Segment::Field("thresholds".into()));
        assert_eq!(setting("stages[1].pause=5m").values, [Value::from("5m")]);
    }

    #[test]
    fn malformed_settings_are_refused_with_the_reason() {
        for (text, reason) in [
            ("analysis.failureLimit", "expected PATH=VALUE"),
            ("analysis.failureLimit=", "no value to try"),
            ("stages[x].pause=1m", "[x] in \"stages[x]\" is not an index"),
            ("stages[1.pause=1m", "unclosed ["),
            ("analysis..max=1", "is not a path"),
        ] {
            let error = text.parse::<Setting>().unwrap_err().to_string();
            assert!(error.contains(reason), "{text}: {error}");
        }
    }

    #[test]
    fn the_grid_is_the_cartesian_product_first_setting_slowest() {
        let settings = [
            setting("analysis.failureLimit=1,2"),
            setting("stages[0].pause=1m,2m,3m"),
        ];
        let labels: Vec<String> = variants(&settings).iter().map(label).collect();
        assert_eq!(labels.len(), 6);
        assert_eq!(labels[0], "analysis.failureLimit=1 stages[0].pause=1m");
        assert_eq!(labels[5], "analysis.failureLimit=2 stages[0].pause=3m");
    }

    #[test]
    fn a_variant_changes_the_typed_spec() {
        let settings = [
            setting("analysis.checks[0].max=0.05"),
            setting("stages[1].pause=5m"),
        ];
        let variant = &variants(&settings)[0];
        let documents = documents_for(&raw(), variant).unwrap();
        assert_eq!(documents.rollout.spec.analysis.checks[0].max, Some(0.05));
        assert_eq!(
            documents.rollout.spec.stages[1]
                .pause
                .map(|p| p.to_string()),
            Some("5m".to_string())
        );
    }

    #[test]
    fn unknown_paths_and_refused_values_name_the_setting() {
        let cases = [
            (
                "analysis.chekcs[0].max=1",
                "spec.analysis has no field \"chekcs\"",
            ),
            (
                "analysis.checks[3].max=1",
                "spec.analysis.checks has no item [3]",
            ),
            ("analysis.maxx=1", "no such field in the spec"),
            ("parity.window=5m", "no ParityPolicy is simulated"),
            ("stages[0].pause=soon", "invalid duration \"soon\""),
        ];
        for (text, reason) in cases {
            let settings = [setting(text)];
            let error = documents_for(&raw(), &variants(&settings)[0])
                .unwrap_err()
                .to_string();
            assert!(error.contains(reason), "{text}: {error}");
        }
    }
}
