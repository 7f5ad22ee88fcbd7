//! The request rules the fake chat server enforces (see `fake_chat.rs`):
//! what OpenAI documents for `/chat/completions` with structured output,
//! plus what we promise (the system prompt names the business and its
//! categories). Each broken rule comes back as a sentence.

use serde_json::{json, Value};

use super::Form;

/// What the request must carry.
pub struct Expect<'a> {
    pub model: &'a str,
    pub business: &'a str,
    pub categories: &'a [String],
}

/// The form a body asks for, if exactly one is recognisable.
pub fn form_of(body: &Value) -> Option<Form> {
    let rf = body["response_format"]["type"].as_str();
    let tools = body.get("tools").is_some();
    match (rf, tools) {
        (Some("json_schema"), false) => Some(Form::JsonSchema),
        (Some("json_object"), false) => Some(Form::JsonObject),
        (None, true) => Some(Form::Tools),
        _ => None,
    }
}

/// The documented rules for a request body; each broken one is described.
pub fn check_body(
    i: &Expect<'_>,
    content_type: Option<&str>,
    raw: &str,
    body: &Value,
    form: Option<Form>,
) -> Vec<String> {
    let mut bad = Vec::new();
    if !content_type.is_some_and(|t| t.starts_with("application/json")) {
        bad.push(format!(
            "content type is {content_type:?}, not application/json"
        ));
    }
    if !body.is_object() {
        bad.push("the body is not a JSON object".into());
        return bad;
    }
    if body["model"] != json!(i.model) {
        bad.push(format!("model is {}, expected {}", body["model"], i.model));
    }
    if body["stream"] != json!(true) {
        bad.push("stream is not true".into());
    }
    if body["temperature"].as_f64() != Some(0.0) {
        bad.push(format!(
            "temperature is {}, expected 0",
            body["temperature"]
        ));
    }
    bad.extend(check_messages(i, body));
    let name_ok = |n: &Value| {
        n.as_str().is_some_and(|n| {
            (1..=64).contains(&n.len())
                && n.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        })
    };
    match form {
        None => bad.push("no single structured-output form (response_format or tools)".into()),
        Some(Form::JsonSchema) => {
            let js = &body["response_format"]["json_schema"];
            if !name_ok(&js["name"]) {
                bad.push(format!(
                    "json_schema.name {} is not a valid name",
                    js["name"]
                ));
            }
            if js["strict"] != json!(true) {
                bad.push("json_schema.strict is not true".into());
            }
            bad.extend(check_schema(&js["schema"], "json_schema.schema"));
            if !raw.contains(r#""properties":{"reply""#) {
                bad.push("reply is not the first property".into());
            }
        }
        Some(Form::Tools) => {
            let tools = body["tools"].as_array().cloned().unwrap_or_default();
            if tools.len() != 1 || tools[0]["type"] != "function" {
                bad.push("tools is not exactly one function".into());
            }
            let f = &body["tools"][0]["function"];
            if !name_ok(&f["name"]) {
                bad.push(format!("function name {} is not valid", f["name"]));
            }
            bad.extend(check_schema(&f["parameters"], "function.parameters"));
            let forced = json!({"type": "function", "function": {"name": f["name"]}});
            if body["tool_choice"] != forced {
                bad.push(format!(
                    "tool_choice {} does not force the function",
                    body["tool_choice"]
                ));
            }
        }
        Some(Form::JsonObject) => {
            // OpenAI refuses JSON mode unless a message mentions JSON.
            let mentions = body["messages"].as_array().into_iter().flatten().any(|m| {
                m["content"]
                    .as_str()
                    .is_some_and(|c| c.to_lowercase().contains("json"))
            });
            if !mentions {
                bad.push("json_object without the word JSON in the messages".into());
            }
        }
    }
    bad
}

fn check_messages(i: &Expect<'_>, body: &Value) -> Vec<String> {
    let mut bad = Vec::new();
    let Some(messages) = body["messages"].as_array().filter(|m| !m.is_empty()) else {
        return vec!["messages is missing or empty".into()];
    };
    if messages[0]["role"] != "system" {
        bad.push("the first message is not the system prompt".into());
    }
    let system = messages[0]["content"].as_str().unwrap_or_default();
    if !system.contains(i.business) {
        bad.push("the system prompt does not name the business".into());
    }
    for c in i.categories {
        if !system.contains(c.as_str()) {
            bad.push(format!("the system prompt does not list category {c}"));
        }
    }
    let mut previous = messages[0]["role"].as_str().unwrap_or("");
    for (n, m) in messages.iter().enumerate().skip(1) {
        let role = m["role"].as_str().unwrap_or("");
        if !matches!(role, "user" | "assistant") {
            bad.push(format!("message {n} has role {role:?}"));
        }
        if role == previous {
            bad.push(format!("message {n} repeats role {role}"));
        }
        previous = role;
        if m["content"].as_str().is_none_or(str::is_empty) {
            bad.push(format!("message {n} has no text content"));
        }
        if m.get("name").is_some() {
            bad.push(format!(
                "message {n} has a name (Groq refuses messages[].name)"
            ));
        }
    }
    bad
}

/// A strict-mode schema: an object, no extra properties, every property required.
fn check_schema(schema: &Value, at: &str) -> Vec<String> {
    let mut bad = Vec::new();
    if schema["type"] != "object" {
        bad.push(format!("{at}.type is not object"));
    }
    if schema["additionalProperties"] != json!(false) {
        bad.push(format!("{at}.additionalProperties is not false"));
    }
    let props: Vec<&String> = schema["properties"]
        .as_object()
        .map(|p| p.keys().collect())
        .unwrap_or_default();
    let mut required: Vec<&str> = schema["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut names: Vec<&str> = props.iter().map(|s| s.as_str()).collect();
    names.sort_unstable();
    required.sort_unstable();
    if names.is_empty() || names != required {
        bad.push(format!(
            "{at}: required {required:?} is not every property {names:?}"
        ));
    }
    for field in ["reply", "category", "urgency", "confidence", "wants_human"] {
        if !names.contains(&field) {
            bad.push(format!("{at} has no {field} property"));
        }
    }
    bad
}
