//! From promql-parser's AST to a [`Node`] tree: selectors resolved against the recorded
//! series, output label sets computed, and every construct the evaluator does not implement
//! rejected by name.

use promql_parser::label::Matcher;
use promql_parser::parser::token::{
    T_ADD, T_AVG, T_BOTTOMK, T_COUNT, T_DIV, T_EQLC, T_GROUP, T_GTE, T_GTR, T_LAND, T_LOR, T_LSS,
    T_LTE, T_LUNLESS, T_MAX, T_MIN, T_MOD, T_MUL, T_NEQ, T_POW, T_QUANTILE, T_STDDEV, T_STDVAR,
    T_SUB, T_SUM, T_TOPK, TokenId,
};
use promql_parser::parser::{
    self, AggregateExpr, BinaryExpr, Call, Expr, LabelModifier, Offset, VectorMatchCardinality,
    VectorSelector,
};

use super::super::error::RecordingError;
use super::super::recording::{Labels, METRIC_NAME};
use super::labels::{SlotTable, grouping, signature, without_name};
use super::node::{
    Aggregation, ElementFunction, Node, RangeFunction, ScalarNode, Selection, VectorBinary,
    VectorKind, VectorNode, VectorSet,
};
use super::{BinaryOp, Plan, SeriesStore, SetOp};

pub fn compile(query: &str, store: &SeriesStore) -> Result<Plan, RecordingError> {
    let expr = parser::parse(query).map_err(|reason| RecordingError::InvalidQuery {
        query: query.to_string(),
        reason,
    })?;
    let mut compiler = Compiler {
        query,
        store,
        selectors: Vec::new(),
    };
    let root = compiler.node(&expr)?;
    Ok(Plan {
        root,
        selectors: compiler.selectors,
    })
}

struct Compiler<'a> {
    query: &'a str,
    store: &'a SeriesStore,
    selectors: Vec<(String, usize)>,
}

impl Compiler<'_> {
    fn unsupported(&self, construct: impl Into<String>) -> RecordingError {
        RecordingError::Unsupported {
            query: self.query.to_string(),
            construct: construct.into(),
        }
    }

    fn invalid(&self, reason: impl Into<String>) -> RecordingError {
        RecordingError::InvalidQuery {
            query: self.query.to_string(),
            reason: reason.into(),
        }
    }

    fn node(&mut self, expr: &Expr) -> Result<Node, RecordingError> {
        Ok(match expr {
            Expr::NumberLiteral(number) => Node::Scalar(ScalarNode::Literal(number.val)),
            Expr::Paren(paren) => self.node(&paren.expr)?,
            Expr::Unary(unary) => match self.node(&unary.expr)? {
                Node::Scalar(scalar) => Node::Scalar(ScalarNode::Negate(Box::new(scalar))),
                Node::Vector(input) => {
                    Node::Vector(element(ElementFunction::Negate, input, Vec::new()))
                }
                Node::Matrix => return Err(self.invalid("unary minus on a range vector")),
            },
            Expr::VectorSelector(selector) => {
                let selection = self.select(selector)?;
                let slots = selection
                    .series
                    .iter()
                    .map(|&i| self.store.series[i].labels.clone())
                    .collect();
                Node::Vector(VectorNode {
                    kind: VectorKind::Instant(selection),
                    slots,
                })
            }
            Expr::MatrixSelector(matrix) => {
                self.select(&matrix.vs)?;
                Node::Matrix
            }
            Expr::Call(call) => self.call(call)?,
            Expr::Aggregate(aggregate) => Node::Vector(self.aggregate(aggregate)?),
            Expr::Binary(binary) => self.binary(binary)?,
            Expr::Subquery(_) => return Err(self.unsupported("a subquery")),
            Expr::StringLiteral(_) => return Err(self.unsupported("a string literal")),
            Expr::Extension(_) => return Err(self.unsupported("an extension expression")),
        })
    }

    fn scalar(&mut self, expr: &Expr) -> Result<ScalarNode, RecordingError> {
        match self.node(expr)? {
            Node::Scalar(scalar) => Ok(scalar),
            _ => Err(self.invalid(format!("expected a scalar, got {expr}"))),
        }
    }

    fn vector(&mut self, expr: &Expr) -> Result<VectorNode, RecordingError> {
        match self.node(expr)? {
            Node::Vector(vector) => Ok(vector),
            _ => Err(self.invalid(format!("expected an instant vector, got {expr}"))),
        }
    }

    fn select(&mut self, selector: &VectorSelector) -> Result<Selection, RecordingError> {
        if selector.at.is_some() {
            return Err(self.unsupported("the @ modifier"));
        }
        if !selector.matchers.or_matchers.is_empty() {
            return Err(self.unsupported("`or` inside a selector"));
        }
        let offset_ms = match &selector.offset {
            None => 0,
            Some(Offset::Pos(d)) => d.as_millis() as i64,
            Some(Offset::Neg(d)) => -(d.as_millis() as i64),
        };
        let series: Vec<usize> = self
            .store
            .series
            .iter()
            .enumerate()
            .filter(|(_, s)| selects(selector, &s.labels))
            .map(|(i, _)| i)
            .collect();
        let shown = VectorSelector {
            offset: None,
            ..selector.clone()
        };
        self.selectors.push((shown.to_string(), series.len()));
        Ok(Selection { series, offset_ms })
    }

    fn call(&mut self, call: &Call) -> Result<Node, RecordingError> {
        let name = call.func.name;
        let args: Vec<&Expr> = call.args.args.iter().map(|a| a.as_ref()).collect();
        if let Some(function) = range_function(name) {
            let (parameter, matrix) = match (function, args.as_slice()) {
                (RangeFunction::QuantileOverTime, [q, matrix]) => (Some(self.scalar(q)?), *matrix),
                (_, [matrix]) => (None, *matrix),
                _ => return Err(self.invalid(format!("wrong number of arguments to {name}()"))),
            };
            return Ok(Node::Vector(self.over_range(function, parameter, matrix)?));
        }
        let element_function = match name {
            "abs" => Some(ElementFunction::Abs),
            "ceil" => Some(ElementFunction::Ceil),
            "floor" => Some(ElementFunction::Floor),
            "sqrt" => Some(ElementFunction::Sqrt),
            "exp" => Some(ElementFunction::Exp),
            "ln" => Some(ElementFunction::Ln),
            "round" => Some(ElementFunction::Round),
            "clamp" => Some(ElementFunction::Clamp),
            "clamp_min" => Some(ElementFunction::ClampMin),
            "clamp_max" => Some(ElementFunction::ClampMax),
            _ => None,
        };
        if let Some(function) = element_function {
            let Some((first, rest)) = args.split_first() else {
                return Err(self.invalid(format!("{name}() needs an argument")));
            };
            let input = self.vector(first)?;
            let arguments = rest
                .iter()
                .map(|a| self.scalar(a))
                .collect::<Result<_, _>>()?;
            return Ok(Node::Vector(element(function, input, arguments)));
        }
        match (name, args.as_slice()) {
            ("histogram_quantile", [q, input]) => {
                let quantile = self.scalar(q)?;
                let input = self.vector(input)?;
                Ok(Node::Vector(histogram_quantile(quantile, input)))
            }
            ("scalar", [input]) => Ok(Node::Scalar(ScalarNode::OfVector(Box::new(
                self.vector(input)?,
            )))),
            ("vector", [value]) => Ok(Node::Vector(VectorNode {
                kind: VectorKind::FromScalar(self.scalar(value)?),
                slots: vec![Labels::new()],
            })),
            ("time", []) => Ok(Node::Scalar(ScalarNode::Time)),
            _ => Err(self.unsupported(format!("the function {name}()"))),
        }
    }

    fn over_range(
        &mut self,
        function: RangeFunction,
        parameter: Option<ScalarNode>,
        matrix: &Expr,
    ) -> Result<VectorNode, RecordingError> {
        let matrix = unwrap_parens(matrix);
        let Expr::MatrixSelector(matrix) = matrix else {
            return match matrix {
                Expr::Subquery(_) => Err(self.unsupported("a subquery")),
                _ => Err(self.invalid(format!("expected a range vector, got {matrix}"))),
            };
        };
        let selection = self.select(&matrix.vs)?;
        let mut table = SlotTable::default();
        let slot_of = selection
            .series
            .iter()
            .map(|&i| {
                let labels = &self.store.series[i].labels;
                // Prometheus keeps the metric name only for last_over_time.
                if function == RangeFunction::LastOverTime {
                    table.slot(labels.clone())
                } else {
                    table.slot(without_name(labels))
                }
            })
            .collect();
        Ok(VectorNode {
            kind: VectorKind::OverRange {
                function,
                selection,
                range_ms: matrix.range.as_millis() as i64,
                parameter,
                slot_of,
            },
            slots: table.into_labels(),
        })
    }

    fn aggregate(&mut self, aggregate: &AggregateExpr) -> Result<VectorNode, RecordingError> {
        let aggregation = match aggregate.op.id() {
            T_SUM => Aggregation::Sum,
            T_AVG => Aggregation::Avg,
            T_MIN => Aggregation::Min,
            T_MAX => Aggregation::Max,
            T_COUNT => Aggregation::Count,
            T_GROUP => Aggregation::Group,
            T_STDDEV => Aggregation::Stddev,
            T_STDVAR => Aggregation::Stdvar,
            T_QUANTILE => Aggregation::Quantile,
            T_TOPK => Aggregation::Topk,
            T_BOTTOMK => Aggregation::Bottomk,
            _ => return Err(self.unsupported(format!("the aggregation {}", aggregate.op))),
        };
        let parameter = match &aggregate.param {
            Some(param) => Some(self.scalar(param)?),
            None => None,
        };
        let input = self.vector(&aggregate.expr)?;
        let (by, names) = match &aggregate.modifier {
            Some(LabelModifier::Include(labels)) => (true, labels.labels.clone()),
            Some(LabelModifier::Exclude(labels)) => (false, labels.labels.clone()),
            None => (true, Vec::new()),
        };
        let mut table = SlotTable::default();
        let group_of = input
            .slots
            .iter()
            .map(|labels| table.slot(grouping(labels, &names, by)))
            .collect();
        let keeps_series = matches!(aggregation, Aggregation::Topk | Aggregation::Bottomk);
        let group_labels = table.into_labels();
        let groups = group_labels.len();
        let slots = if keeps_series {
            input.slots.clone()
        } else {
            group_labels
        };
        Ok(VectorNode {
            kind: VectorKind::Aggregate {
                aggregation,
                input: Box::new(input),
                parameter,
                group_of,
                groups,
            },
            slots,
        })
    }

    fn binary(&mut self, binary: &BinaryExpr) -> Result<Node, RecordingError> {
        let id = binary.op.id();
        let modifier = binary.modifier.clone().unwrap_or_default();
        if modifier.fill_values.lhs.is_some() || modifier.fill_values.rhs.is_some() {
            return Err(self.unsupported("fill modifiers"));
        }
        let (on, names) = match &modifier.matching {
            Some(LabelModifier::Include(labels)) => (true, labels.labels.clone()),
            Some(LabelModifier::Exclude(labels)) => (false, labels.labels.clone()),
            None => (false, Vec::new()),
        };
        if let Some(op) = set_op(id) {
            let lhs = self.vector(&binary.lhs)?;
            let rhs = self.vector(&binary.rhs)?;
            return Ok(Node::Vector(set(op, lhs, rhs, on, &names)));
        }
        let Some(op) = binary_op(id) else {
            return Err(self.unsupported(format!("the operator {}", binary.op)));
        };
        let return_bool = modifier.return_bool;
        Ok(match (self.node(&binary.lhs)?, self.node(&binary.rhs)?) {
            (Node::Scalar(lhs), Node::Scalar(rhs)) => Node::Scalar(ScalarNode::Binary {
                op,
                lhs: Box::new(lhs),
                rhs: Box::new(rhs),
            }),
            (Node::Vector(input), Node::Scalar(scalar)) => {
                Node::Vector(with_scalar(op, return_bool, false, input, scalar))
            }
            (Node::Scalar(scalar), Node::Vector(input)) => {
                Node::Vector(with_scalar(op, return_bool, true, input, scalar))
            }
            (Node::Vector(lhs), Node::Vector(rhs)) => {
                let (one_to_one, swapped, include) = match modifier.card {
                    VectorMatchCardinality::OneToOne => (true, false, Vec::new()),
                    VectorMatchCardinality::ManyToOne(labels) => (false, false, labels.labels),
                    VectorMatchCardinality::OneToMany(labels) => (false, true, labels.labels),
                    VectorMatchCardinality::ManyToMany => {
                        return Err(self.invalid("many-to-many matching is only for and/or/unless"));
                    }
                };
                let matching = Matching {
                    on,
                    names,
                    one_to_one,
                    include,
                };
                let binary = vector_binary(op, return_bool, swapped, lhs, rhs, &matching);
                Node::Vector(binary)
            }
            _ => return Err(self.invalid("an operand is a range vector")),
        })
    }
}

fn selects(selector: &VectorSelector, labels: &Labels) -> bool {
    let value = |name: &str| labels.get(name).map_or("", String::as_str);
    selector
        .name
        .as_ref()
        .is_none_or(|name| value(METRIC_NAME) == name)
        && selector
            .matchers
            .matchers
            .iter()
            .all(|m: &Matcher| m.is_match(value(&m.name)))
}

fn unwrap_parens(mut expr: &Expr) -> &Expr {
    while let Expr::Paren(paren) = expr {
        expr = &paren.expr;
    }
    expr
}

fn range_function(name: &str) -> Option<RangeFunction> {
    Some(match name {
        "rate" => RangeFunction::Rate,
        "increase" => RangeFunction::Increase,
        "delta" => RangeFunction::Delta,
        "irate" => RangeFunction::Irate,
        "idelta" => RangeFunction::Idelta,
        "avg_over_time" => RangeFunction::AvgOverTime,
        "sum_over_time" => RangeFunction::SumOverTime,
        "min_over_time" => RangeFunction::MinOverTime,
        "max_over_time" => RangeFunction::MaxOverTime,
        "count_over_time" => RangeFunction::CountOverTime,
        "last_over_time" => RangeFunction::LastOverTime,
        "quantile_over_time" => RangeFunction::QuantileOverTime,
        _ => return None,
    })
}

fn binary_op(id: TokenId) -> Option<BinaryOp> {
    Some(match id {
        T_ADD => BinaryOp::Add,
        T_SUB => BinaryOp::Sub,
        T_MUL => BinaryOp::Mul,
        T_DIV => BinaryOp::Div,
        T_MOD => BinaryOp::Mod,
        T_POW => BinaryOp::Pow,
        T_EQLC => BinaryOp::Eq,
        T_NEQ => BinaryOp::Ne,
        T_GTR => BinaryOp::Gt,
        T_LSS => BinaryOp::Lt,
        T_GTE => BinaryOp::Ge,
        T_LTE => BinaryOp::Le,
        _ => return None,
    })
}

fn set_op(id: TokenId) -> Option<SetOp> {
    Some(match id {
        T_LAND => SetOp::And,
        T_LOR => SetOp::Or,
        T_LUNLESS => SetOp::Unless,
        _ => return None,
    })
}

/// Element-wise functions and unary minus drop the metric name.
fn element(function: ElementFunction, input: VectorNode, arguments: Vec<ScalarNode>) -> VectorNode {
    let mut table = SlotTable::default();
    let slot_of = input
        .slots
        .iter()
        .map(|l| table.slot(without_name(l)))
        .collect();
    VectorNode {
        kind: VectorKind::Element {
            function,
            input: Box::new(input),
            arguments,
            slot_of,
        },
        slots: table.into_labels(),
    }
}

/// Arithmetic and `bool` comparisons drop the metric name; filtering comparisons keep it.
fn with_scalar(
    op: BinaryOp,
    return_bool: bool,
    scalar_left: bool,
    input: VectorNode,
    scalar: ScalarNode,
) -> VectorNode {
    let drop_name = !op.is_comparison() || return_bool;
    let mut table = SlotTable::default();
    let slot_of = input
        .slots
        .iter()
        .map(|l| {
            table.slot(if drop_name {
                without_name(l)
            } else {
                l.clone()
            })
        })
        .collect();
    VectorNode {
        kind: VectorKind::WithScalar {
            op,
            return_bool,
            scalar_left,
            input: Box::new(input),
            scalar,
            slot_of,
        },
        slots: table.into_labels(),
    }
}

fn histogram_quantile(quantile: ScalarNode, input: VectorNode) -> VectorNode {
    let mut histograms = SlotTable::default();
    let mut outputs = SlotTable::default();
    let mut slot_of_histogram = Vec::new();
    let bucket_of = input
        .slots
        .iter()
        .map(|labels| {
            let bound: f64 = labels.get("le")?.parse().ok()?;
            let mut key = labels.clone();
            key.remove("le");
            let histogram = histograms.slot(key.clone());
            if histogram == slot_of_histogram.len() {
                slot_of_histogram.push(outputs.slot(without_name(&key)));
            }
            Some((histogram, bound))
        })
        .collect();
    VectorNode {
        kind: VectorKind::HistogramQuantile {
            quantile,
            input: Box::new(input),
            bucket_of,
            slot_of_histogram,
        },
        slots: outputs.into_labels(),
    }
}

struct Matching {
    on: bool,
    names: Vec<String>,
    one_to_one: bool,
    /// The `group_left`/`group_right` labels copied from the "one" side.
    include: Vec<String>,
}

/// The labels of a result, as Prometheus' `resultMetric` makes them from the "many" side.
fn result_labels(
    many: &Labels,
    one: &Labels,
    op: BinaryOp,
    return_bool: bool,
    matching: &Matching,
) -> Labels {
    let mut labels = many.clone();
    if !op.is_comparison() || return_bool {
        labels.remove(METRIC_NAME);
    }
    if matching.one_to_one {
        if matching.on {
            labels.retain(|name, _| matching.names.contains(name));
        } else {
            labels.retain(|name, _| !matching.names.contains(name));
        }
    }
    for name in &matching.include {
        match one.get(name) {
            Some(value) => labels.insert(name.clone(), value.clone()),
            None => labels.remove(name),
        };
    }
    labels
}

fn vector_binary(
    op: BinaryOp,
    return_bool: bool,
    swapped: bool,
    lhs: VectorNode,
    rhs: VectorNode,
    matching: &Matching,
) -> VectorNode {
    let (many, one) = if swapped { (rhs, lhs) } else { (lhs, rhs) };
    let mut signatures = SlotTable::default();
    let sign = |labels: &Labels| signature(labels, matching.on, &matching.names);
    let many_signature: Vec<usize> = many
        .slots
        .iter()
        .map(|l| signatures.slot(sign(l)))
        .collect();
    let one_signature: Vec<usize> = one.slots.iter().map(|l| signatures.slot(sign(l))).collect();
    let mut outputs = SlotTable::default();
    let output = many
        .slots
        .iter()
        .enumerate()
        .map(|(m, many_labels)| {
            one_signature
                .iter()
                .enumerate()
                .filter(|(_, sig)| **sig == many_signature[m])
                .map(|(o, _)| {
                    let labels =
                        result_labels(many_labels, &one.slots[o], op, return_bool, matching);
                    (o, outputs.slot(labels))
                })
                .collect()
        })
        .collect();
    let signature_count = signatures.into_labels().len();
    VectorNode {
        kind: VectorKind::Binary(Box::new(VectorBinary {
            op,
            return_bool,
            one_to_one: matching.one_to_one,
            swapped,
            many,
            one,
            many_signature,
            one_signature,
            signatures: signature_count,
            output,
        })),
        slots: outputs.into_labels(),
    }
}

fn set(op: SetOp, lhs: VectorNode, rhs: VectorNode, on: bool, names: &[String]) -> VectorNode {
    let mut signatures = SlotTable::default();
    let lhs_signature: Vec<usize> = lhs
        .slots
        .iter()
        .map(|l| signatures.slot(signature(l, on, names)))
        .collect();
    let rhs_signature: Vec<usize> = rhs
        .slots
        .iter()
        .map(|l| signatures.slot(signature(l, on, names)))
        .collect();
    let mut outputs = SlotTable::default();
    let lhs_slot: Vec<usize> = lhs.slots.iter().map(|l| outputs.slot(l.clone())).collect();
    let rhs_slot: Vec<usize> = match op {
        SetOp::Or => rhs.slots.iter().map(|l| outputs.slot(l.clone())).collect(),
        SetOp::And | SetOp::Unless => Vec::new(),
    };
    let signature_count = signatures.into_labels().len();
    VectorNode {
        kind: VectorKind::Set(Box::new(VectorSet {
            op,
            lhs,
            rhs,
            lhs_signature,
            rhs_signature,
            signatures: signature_count,
            lhs_slot,
            rhs_slot,
        })),
        slots: outputs.into_labels(),
    }
}
