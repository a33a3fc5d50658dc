//! The merged OpenAPI document as served at `/openapi.json`.

/// The document as JSON, with utoipa 5's link objects repaired: it writes their fields in snake
/// case (`operation_id`), which no OpenAPI tool reads, so every link would be dropped.
pub(crate) fn to_json(doc: &utoipa::openapi::OpenApi) -> serde_json::Value {
    let mut json = serde_json::to_value(doc).unwrap_or_default();
    let operations = json.get_mut("paths").and_then(|p| p.as_object_mut()).into_iter().flat_map(|paths| {
        paths.values_mut().filter_map(|p| p.as_object_mut()).flat_map(|ops| ops.values_mut())
    });
    for op in operations {
        let Some(responses) = op.get_mut("responses").and_then(|r| r.as_object_mut()) else { continue };
        for response in responses.values_mut() {
            let Some(links) = response.get_mut("links").and_then(|l| l.as_object_mut()) else { continue };
            for link in links.values_mut().filter_map(|l| l.as_object_mut()) {
                for (snake, camel) in [
                    ("operation_id", "operationId"),
                    ("operation_ref", "operationRef"),
                    ("request_body", "requestBody"),
                ] {
                    if let Some(v) = link.remove(snake) {
                        link.insert(camel.to_owned(), v);
                    }
                }
            }
        }
    }
    json
}
