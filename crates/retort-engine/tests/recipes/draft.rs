//! DRAFT's mechanics on the scripted backend: explore, execute (simulated), analyse, rewrite;
//! a query too similar to an explored one asked for again; the tool stops once two successive
//! descriptions converge (BLEU and MiniLM cosine), with the revised document as output.

use crate::common;

const RULES: &str = r#"
- when: 'was too similar to the ones explored'
  reply: '{"User Query": "List every customs agency with its phone number.", "Parameters": {"id": "ALL"}}'
- when: 'You explore a tool'
  reply: '{"User Query": "Get the contact details of the Gondrand customs agency.", "Parameters": {"id": "DOUANE_AGENCE_GONDRAND"}}'
- when: 'You are simulating the API `transitaire_for_transitaires`'
  reply: '{"id": "DOUANE_AGENCE_GONDRAND", "codePostal": "98800", "email": "contact@gondrand.nc", "name": "Gondrand", "phone": "+687 28 00 00"}'
- when: 'You check a tool.s documentation'
  reply: '{"Suggestions for tool description": "Say that it returns the agency id, postal code, email, name and phone, in English."}'
- when: '(?s)You rewrite a tool.s description.*Earlier versions'
  reply: '{"Rewritten description": "Returns one customs agency (transitaire) of New Caledonia by its id: its id, postal code, email, name and phone number.", "Suggestions for exploring": "none"}'
- when: 'You rewrite a tool.s description'
  reply: '{"Rewritten description": "Returns one customs agency (transitaire) of New Caledonia by its id: its id, postal code, email, name and phone number.", "Suggestions for exploring": "Try an id that does not exist."}'
"#;

#[test]
fn a_tool_is_explored_until_its_description_converges() {
    let ran = common::run_recipe("draft", RULES, &["simulator"], &[], Some(1));
    let data = ran.data();
    assert_eq!(data.len(), 1, "{:?} {:?}", ran.dropped(), ran.failed());
    let doc = &data[0];
    assert_eq!(doc["original_description"], "Récupère un transitaire donnée");
    assert!(doc["description"].as_str().unwrap().starts_with("Returns one customs agency"));
    // Round 1 changes the description; round 2 rewrites the same: converged after 2 episodes.
    assert_eq!(doc["episodes"], 2, "{doc:?}");
    assert_eq!(doc["converged"], true);
    assert_eq!(common::rows_by_datasets(&ran.out().join("data.jsonl")), 1);
    assert!(doc["similarity"].as_f64().unwrap() > 0.99, "{doc:?}");
    let records = ran.rows("records");
    let explorations = records[0]["explorations"].as_array().unwrap();
    assert_eq!(explorations.len(), 2);
    // The second query repeated the first, so it was asked for again.
    assert_eq!(explorations[1]["query"], "List every customs agency with its phone number.");
    assert_eq!(explorations[0]["status"], "ok");
    assert!(explorations[0]["response"].as_str().unwrap().contains("98800"));
}
