//! Comparing the daemon's JSON replies.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// The elements of a JSON array reply; anything else fails the test.
#[track_caller]
pub fn entries_of(v: Value) -> Vec<Value> {
    match v {
        Value::Array(items) => items,
        other => panic!("expected a JSON array, got {other}"),
    }
}

/// A copy of `v` fit for comparing two replies: keys named in `strip` are removed from every
/// object (e.g. `status`, `age_secs`, which legitimately change), objects get their keys in
/// sorted order, and every array is sorted, since the contract promises no order of bridges,
/// ports or entries.
pub fn normalize(v: &Value, strip: &[&str]) -> Value {
    match v {
        Value::Object(map) => {
            let sorted: BTreeMap<&String, Value> = map
                .iter()
                .filter(|(k, _)| !strip.contains(&k.as_str()))
                .map(|(k, v)| (k, normalize(v, strip)))
                .collect();
            let mut out = Map::new();
            for (k, v) in sorted {
                out.insert(k.clone(), v);
            }
            Value::Object(out)
        }
        Value::Array(items) => {
            // Keys are sorted at every level by now, so the JSON text is a canonical sort key.
            let mut items: Vec<Value> = items.iter().map(|i| normalize(i, strip)).collect();
            items.sort_by_cached_key(|i| i.to_string());
            Value::Array(items)
        }
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn normalize_strips_and_sorts() {
        let a =
            json!([{"name": "p2", "status": "up"}, {"name": "p1", "status": "down", "x": [3, 1]}]);
        let b = json!([{"x": [1, 3], "name": "p1"}, {"name": "p2"}]);
        assert_eq!(normalize(&a, &["status"]), normalize(&b, &["status"]));
        assert_ne!(normalize(&a, &[]), normalize(&b, &[]));
    }
}
