//! Label and label-selector conversion with the API server's validation.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use palisade_policy::validation::{check_label_key, check_label_value};
use palisade_policy::{LabelSelector, Labels, Operator, Requirement};

use crate::error::FieldErrors;

/// Validates a label map found at `field`.
pub fn labels(map: Option<&BTreeMap<String, String>>, field: &dyn fmt::Display, errors: &mut FieldErrors) -> Labels {
    map.map(|m| owned_labels(m.clone(), field, errors)).unwrap_or_default()
}

/// [`labels`], taking the map.
pub fn owned_labels(map: BTreeMap<String, String>, field: &dyn fmt::Display, errors: &mut FieldErrors) -> Labels {
    for (k, v) in &map {
        errors.check(|| field.to_string(), check_label_key(k).map_err(|e| format!("key {k:?}: {e}")));
        errors.check(|| format!("{field}[{k}]"), check_label_value(v).map_err(|e| format!("{v:?}: {e}")));
    }
    map
}

/// Converts and validates a label selector found at `field`.
pub fn selector(sel: &meta::LabelSelector, field: &dyn fmt::Display, errors: &mut FieldErrors) -> LabelSelector {
    let match_labels = labels(sel.match_labels.as_ref(), &format_args!("{field}.matchLabels"), errors);
    let mut match_expressions = Vec::new();
    for (i, expr) in sel.match_expressions.iter().flatten().enumerate() {
        let at = format!("{field}.matchExpressions[{i}]");
        errors.check(|| format!("{at}.key"), check_label_key(&expr.key).map_err(|e| format!("{:?}: {e}", expr.key)));
        let values = expr.values.clone().unwrap_or_default();
        let operator = match expr.operator.as_str() {
            "In" => Some(Operator::In),
            "NotIn" => Some(Operator::NotIn),
            "Exists" => Some(Operator::Exists),
            "DoesNotExist" => Some(Operator::DoesNotExist),
            other => {
                errors.push(
                    format!("{at}.operator"),
                    format!("{other:?} is not a valid label selector operator (In, NotIn, Exists, DoesNotExist)"),
                );
                None
            }
        };
        match operator {
            Some(Operator::In | Operator::NotIn) if values.is_empty() => {
                errors.push(format!("{at}.values"), "must be specified when `operator` is 'In' or 'NotIn'");
            }
            Some(Operator::Exists | Operator::DoesNotExist) if !values.is_empty() => {
                errors
                    .push(format!("{at}.values"), "may not be specified when `operator` is 'Exists' or 'DoesNotExist'");
            }
            _ => {}
        }
        for (j, v) in values.iter().enumerate() {
            errors.check(|| format!("{at}.values[{j}]"), check_label_value(v).map_err(|e| format!("{v:?}: {e}")));
        }
        if let Some(operator) = operator {
            match_expressions.push(Requirement { key: expr.key.clone(), operator, values });
        }
    }
    LabelSelector { match_labels, match_expressions }
}
