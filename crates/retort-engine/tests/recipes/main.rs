//! The built-in recipes' mechanics tests, one module per recipe, in one test binary (each test
//! binary links every model library, so one binary instead of one per recipe saves gigabytes).

#[path = "../common/mod.rs"]
mod common;

mod agent_flan;
mod agentinstruct;
mod agenttuning;
mod api_bank;
mod auto_evol_instruct;
mod autoif;
mod camel;
mod codeact;
mod constitutional_ai;
mod draft;
mod evol_instruct;
mod gorilla;
mod gpt4tools;
mod gra;
mod i_sheep;
mod lmsi;
mod matrix;
mod meta_rewarding;
mod metasynth;
mod nonsense;
mod pc_agent_e;
mod re_rest;
mod rest_meets_react;
mod self_guide;
mod self_instruct;
mod self_rewarding;
mod self_talk;
mod spa;
mod spag;
mod spin;
mod star;
mod supergen;
mod symbolic_knowledge_distillation;
mod synpo;
mod tag_evol;
mod toolalpaca;
mod toolformer;
mod toolgrad;
mod toolllm;
mod tora;
mod voyager;
mod zerogen;
