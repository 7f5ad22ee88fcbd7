//! The shape of the answer asked of the chat model (a JSON Schema usable in
//! strict mode) and of the `/chat/completions` request body in each of the
//! three forms a server may accept. Pure: builds values, sends nothing.
//!
//! Strict structured outputs need every property listed in `required`,
//! `additionalProperties: false`, and absence written as `null` (a type list
//! with `"null"`). The model writes properties in schema order, so `reply`
//! comes first and a streaming reader can speak it before the rest arrives;
//! the properties are a struct, not a map, to keep that order on the wire.

use serde::Serialize;
use serde_json::{json, Value};

use crate::config::ChatFormat;
use crate::domain::Urgency;

/// The `json_schema` name (letters, digits, `_` and `-`, at most 64).
pub const SCHEMA_NAME: &str = "call_details";
/// The one function offered in the tools form.
pub const TOOL_NAME: &str = "record_call_details";

/// The answer's field names, in the order the model writes them.
pub const FIELDS: [&str; 11] = [
    "reply",
    "category",
    "issue",
    "location",
    "requested_time",
    "requested_at",
    "urgency",
    "caller_name",
    "callback_number",
    "confidence",
    "wants_human",
];

/// The JSON Schema of one answer.
#[derive(Debug, Clone, Serialize)]
pub struct AnswerSchema {
    #[serde(rename = "type")]
    kind: &'static str,
    properties: Properties,
    required: [&'static str; 11],
    #[serde(rename = "additionalProperties")]
    additional_properties: bool,
}

/// Field order here is the order on the wire (see the module note).
#[derive(Debug, Clone, Serialize)]
struct Properties {
    reply: Value,
    category: Value,
    issue: Value,
    location: Value,
    requested_time: Value,
    requested_at: Value,
    urgency: Value,
    caller_name: Value,
    callback_number: Value,
    confidence: Value,
    wants_human: Value,
}

fn nullable_text(description: &str) -> Value {
    json!({ "type": ["string", "null"], "description": description })
}

/// A choice from `names`, or `null`.
fn nullable_choice(names: &[&str], description: &str) -> Value {
    let mut choices: Vec<Value> = names.iter().map(|n| json!(n)).collect();
    choices.push(Value::Null);
    json!({ "type": ["string", "null"], "enum": choices, "description": description })
}

impl AnswerSchema {
    /// The schema for a business with these categories.
    pub fn new(categories: &[String]) -> Self {
        let categories: Vec<&str> = categories.iter().map(String::as_str).collect();
        let urgencies: Vec<&str> = Urgency::ALL.iter().map(|u| u.as_str()).collect();
        AnswerSchema {
            kind: "object",
            properties: Properties {
                reply: json!({
                    "type": "string",
                    "description": "What the receptionist says next: short, spoken style, one question at a time",
                }),
                category: nullable_choice(&categories, "The kind of service needed"),
                issue: nullable_text("The problem in one short sentence"),
                location: nullable_text("The service address as the caller gave it"),
                requested_time: nullable_text("When the caller wants the visit, in their words"),
                requested_at: nullable_text(
                    "That time as an ISO 8601 local date and time (YYYY-MM-DDTHH:MM)",
                ),
                urgency: nullable_choice(&urgencies, "How urgent the job is"),
                caller_name: nullable_text("The caller's name"),
                callback_number: nullable_text("A phone number the caller gave to call back on"),
                confidence: json!({
                    "type": "number",
                    "description": "0 to 1: how sure you are of the category and issue",
                }),
                wants_human: json!({
                    "type": "boolean",
                    "description": "True when the caller asks to speak to a person",
                }),
            },
            required: FIELDS,
            additional_properties: false,
        }
    }

    /// The schema as JSON text, for the prompt of the plain-JSON form.
    pub fn to_text(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// One chat message as sent.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Message {
    pub role: &'static str,
    pub content: String,
}

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ResponseFormat<'a> {
    JsonSchema { json_schema: JsonSchemaFormat<'a> },
    JsonObject,
}

#[derive(Debug, Serialize)]
struct JsonSchemaFormat<'a> {
    name: &'static str,
    strict: bool,
    schema: &'a AnswerSchema,
}

#[derive(Debug, Serialize)]
struct Tool<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    function: FunctionDef<'a>,
}

#[derive(Debug, Serialize)]
struct FunctionDef<'a> {
    name: &'static str,
    description: &'static str,
    parameters: &'a AnswerSchema,
}

#[derive(Debug, Serialize)]
struct ToolChoice {
    #[serde(rename = "type")]
    kind: &'static str,
    function: FunctionName,
}

#[derive(Debug, Serialize)]
struct FunctionName {
    name: &'static str,
}

/// The body of `POST /chat/completions`.
#[derive(Debug, Serialize)]
pub struct RequestBody<'a> {
    model: &'a str,
    messages: &'a [Message],
    temperature: f32,
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_format: Option<ResponseFormat<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tools: Option<[Tool<'a>; 1]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<ToolChoice>,
}

impl<'a> RequestBody<'a> {
    /// A streamed, deterministic request for one answer in `form`.
    pub fn new(
        model: &'a str,
        messages: &'a [Message],
        schema: &'a AnswerSchema,
        form: ChatFormat,
    ) -> Self {
        let mut body = RequestBody {
            model,
            messages,
            temperature: 0.0,
            stream: true,
            response_format: None,
            tools: None,
            tool_choice: None,
        };
        match form {
            ChatFormat::JsonSchema => {
                body.response_format = Some(ResponseFormat::JsonSchema {
                    json_schema: JsonSchemaFormat {
                        name: SCHEMA_NAME,
                        strict: true,
                        schema,
                    },
                });
            }
            ChatFormat::Tools => {
                body.tools = Some([Tool {
                    kind: "function",
                    function: FunctionDef {
                        name: TOOL_NAME,
                        description: "Record what the caller needs and what to say to them next",
                        parameters: schema,
                    },
                }]);
                // Naming the function forces the model to call it.
                body.tool_choice = Some(ToolChoice {
                    kind: "function",
                    function: FunctionName { name: TOOL_NAME },
                });
            }
            ChatFormat::Json => body.response_format = Some(ResponseFormat::JsonObject),
        }
        body
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cats() -> Vec<String> {
        vec!["plumbing".into(), "electrical".into()]
    }

    #[test]
    fn schema_is_strict_and_reply_comes_first() {
        let schema = AnswerSchema::new(&cats());
        let text = schema.to_text();
        assert!(
            text.starts_with(r#"{"type":"object","properties":{"reply":"#),
            "{text}"
        );
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["additionalProperties"], false);
        let props = v["properties"].as_object().unwrap();
        let required: Vec<&str> = v["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap())
            .collect();
        assert_eq!(props.len(), required.len());
        assert!(required.iter().all(|r| props.contains_key(*r)));
        assert_eq!(
            v["properties"]["category"]["enum"],
            json!(["plumbing", "electrical", null])
        );
        assert_eq!(
            v["properties"]["urgency"]["enum"],
            json!(["low", "normal", "high", "emergency", null])
        );
    }

    #[test]
    fn each_form_sets_its_own_fields() {
        let schema = AnswerSchema::new(&cats());
        let messages = [Message {
            role: "user",
            content: "hi".into(),
        }];
        let body =
            |form| serde_json::to_value(RequestBody::new("m", &messages, &schema, form)).unwrap();
        let s = body(ChatFormat::JsonSchema);
        assert_eq!(s["stream"], true);
        assert_eq!(s["temperature"], 0.0);
        assert_eq!(s["response_format"]["type"], "json_schema");
        assert_eq!(s["response_format"]["json_schema"]["name"], SCHEMA_NAME);
        assert_eq!(s["response_format"]["json_schema"]["strict"], true);
        assert!(s.get("tools").is_none());
        let t = body(ChatFormat::Tools);
        assert!(t.get("response_format").is_none());
        assert_eq!(t["tools"][0]["type"], "function");
        assert_eq!(t["tools"][0]["function"]["name"], TOOL_NAME);
        assert_eq!(t["tool_choice"]["function"]["name"], TOOL_NAME);
        let j = body(ChatFormat::Json);
        assert_eq!(j["response_format"], json!({"type": "json_object"}));
        assert!(j.get("tool_choice").is_none());
    }
}
