//! `vsctl metrics`: the Prometheus text that `vswitchd --metrics-listen`
//! serves, through the control socket (no HTTP listener needed).

use std::path::Path;

use anyhow::bail;
use serde_json::Value;
use vswitch::control::protocol::Request;

use crate::client::call;

/// The text as the daemon encoded it; with `--json`, as one JSON string.
pub fn show(socket: &Path, json: bool) -> anyhow::Result<String> {
    render(call(socket, &Request::Metrics)?, json)
}

fn render(data: Value, json: bool) -> anyhow::Result<String> {
    let Value::String(text) = data else {
        bail!("unexpected metrics reply from vswitchd: {data}");
    };
    if json {
        return Ok(Value::String(text).to_string());
    }
    // main prints a newline after the output; the text ends with one.
    Ok(text.trim_end_matches('\n').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_as_is_or_as_a_json_string() {
        let text = "# HELP a A.\n# TYPE a gauge\na 1\n";
        assert_eq!(
            render(Value::String(text.into()), false).unwrap(),
            "# HELP a A.\n# TYPE a gauge\na 1"
        );
        let json = render(Value::String(text.into()), true).unwrap();
        assert_eq!(serde_json::from_str::<Value>(&json).unwrap(), text);
        assert!(render(serde_json::json!({"x": 1}), false).is_err());
    }
}
