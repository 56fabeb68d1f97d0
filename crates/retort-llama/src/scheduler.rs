//! The worker's scheduler: one llama.cpp context, many sequences decoded in one batch.
//!
//! Continuous batching: every step gathers one token from each answering sequence and
//! chunks of new prompts up to the batch size, decodes them in one call, then picks each
//! sequence's next token: plain temperature and greedy jobs in Rust, their rows spread over the
//! worker's threads (`crate::sample`), top-p by llama.cpp's sampler chain, grammars by asking
//! the grammar about the picked token before the whole row (`crate::constrained`). A
//! request that arrives while others are half-way takes a free slot and joins the next step.
//!
//! Prefix reuse: a sequence keeps what its KV cache holds when its job ends. A new job takes
//! the free sequence, or copies from any sequence, the longest prefix of its prompt already
//! evaluated, and evaluates only the rest. A job whose prefix another sequence is evaluating
//! right now waits for it: the `n` samples of one prompt evaluate it once.
//!
//! The KV cache is unified: one pool of cells that all sequences share, so a prefix is
//! shared by adding a sequence id to its cells, not by copying KV data. (With a stream per
//! sequence, llama.cpp's default, a copy moves a whole stream and then reserves its compute
//! graph again; measured on the self-consistency workload of `bench/local.sh`, that made the
//! run 1.35× slower than the unified pool.) When the pool runs out of cells, the caches that
//! free sequences keep are evicted and the step is tried again.

use std::collections::{HashMap, VecDeque};
use std::num::NonZeroU32;
use std::sync::mpsc::{Receiver, TryRecvError};

use llama_cpp_2::context::params::{LlamaContextParams, LlamaPoolingType};
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use llama_cpp_2::DecodeError;
use retort_core::TokenLogprob;

use crate::constrained::Constrained;
use crate::protocol::{FailKind, Finish, FromWorker, Generate, Load, ToWorker};
use crate::sample::NativeSampler;

/// The test hook that makes the worker abort (only with `RETORT_LLAMA_TEST_HOOKS=1`).
pub(crate) const ABORT_HOOK: &str = "<<retort-llama:abort>>";
/// The test hook that aborts once: `<<retort-llama:abort-once:PATH>>` aborts unless PATH exists, creating it.
pub(crate) const ABORT_ONCE_HOOK: &str = "<<retort-llama:abort-once:";

/// A waiting job is not placed while a sequence that is still evaluating its prompt will
/// share at least this many more tokens with it than any cache holds now: it waits (a step
/// or a few) and then copies them instead of evaluating them again.
const WAIT_FOR_PREFIX: usize = 16;

/// Compiled grammars kept for reuse (a recipe usually has a handful); the cache is emptied
/// when it would grow past this.
const GRAMMAR_CACHE: usize = 64;

/// A job the scheduler has accepted.
struct Job {
    id: u64,
    tokens: Vec<LlamaToken>,
    n_prompt: usize,
    /// Prompt tokens found in the cache rather than evaluated.
    reused: usize,
    kind: JobKind,
}

enum JobKind {
    Generate(Box<Generating>),
    Score { scored: Vec<TokenLogprob> },
}

struct Generating {
    sampler: Picker,
    /// The token `pick_native` picked for this step (native samplers only).
    picked: Option<LlamaToken>,
    max_tokens: u32,
    stop: Vec<String>,
    /// The longest stop string, in bytes: a new token can complete a stop string only
    /// within this many bytes before the end.
    longest_stop: usize,
    logprobs: Option<u8>,
    bytes: Vec<u8>,
    token_logprobs: Vec<TokenLogprob>,
    /// The model ended its answer (an end-of-generation token).
    ended: bool,
}

/// How a job picks its tokens.
enum Picker {
    /// Plain temperature sampling or greedy choice, computed in Rust (see [`crate::sample`]):
    /// the rows of a step are sampled on several threads.
    Native(NativeSampler),
    /// llama.cpp's sampler chain: top-p, and grammars under `RETORT_GRAMMAR_FIRST=1`; sampled
    /// one row after another.
    Chain(LlamaSampler),
    /// A grammar asked about the freely picked token first (see [`crate::constrained`]).
    Constrained(Box<Constrained>),
}

/// A sequence slot of the context and the job in it.
struct Slot {
    seq_id: i32,
    job: Job,
    /// Tokens already in the KV cache.
    n_past: usize,
    /// Batch rows whose logits this slot reads after the step: (row, position).
    rows: Vec<(i32, usize)>,
    /// Whether the current step holds any of this slot's tokens.
    stepped: bool,
}

/// Where the scheduler sends its answers.
pub(crate) trait Sink {
    fn send(&mut self, frame: &FromWorker);
}

/// Runs jobs from `jobs` until the channel closes; returns the profile's report when
/// `RETORT_LLAMA_PROFILE=1` asked for one.
pub(crate) fn run(
    backend: &LlamaBackend,
    model: &LlamaModel,
    adapter: Option<&mut llama_cpp_2::model::LlamaLoraAdapter>,
    load: &Load,
    jobs: Receiver<ToWorker>,
    sink: &mut dyn Sink,
    ready: &dyn Fn(u32) -> FromWorker,
) -> Result<Option<String>, String> {
    let n_seq = load.max_sequences as u32;
    let threads = load.threads.unwrap_or_else(|| std::thread::available_parallelism().map(usize::from).unwrap_or(1));
    let batch_threads = i32::try_from(load.batch_threads.unwrap_or(threads)).unwrap_or(i32::MAX);
    let threads = i32::try_from(threads).unwrap_or(i32::MAX);
    let n_ctx = load.context_size.saturating_mul(n_seq);
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(n_ctx))
        .with_n_batch(load.batch_size)
        .with_n_ubatch(load.batch_size)
        .with_n_seq_max(n_seq)
        // One pool of cells for all sequences (see the module's documentation).
        .with_kv_unified(load.prefix_cache)
        .with_n_threads(threads)
        .with_n_threads_batch(batch_threads);
    let mut ctx = match model.new_context(backend, params) {
        Ok(ctx) => ctx,
        Err(error) => {
            let message = format!("creating a llama.cpp context of {n_ctx} tokens: {error}");
            sink.send(&FromWorker::LoadFailed { message: message.clone() });
            return Err(message);
        }
    };
    if let Some(adapter) = adapter {
        if let Err(error) = ctx.lora_adapter_set(adapter, 1.0) {
            let message = format!("applying the LoRA adapter {}: {error}", load.adapter.as_deref().unwrap_or_default());
            sink.send(&FromWorker::LoadFailed { message: message.clone() });
            return Err(message);
        }
    }
    let per_sequence = (ctx.n_ctx() / n_seq) as usize;
    sink.send(&ready(per_sequence as u32));
    // Crash hooks exist only in builds with the `test-hooks` feature (this crate's own test
    // builds), never in a release `retort`.
    let hooks = cfg!(feature = "test-hooks") && std::env::var(crate::TEST_HOOKS_ENV).is_ok_and(|value| value == "1");

    let mut scheduler = Scheduler {
        backend,
        embed_ctx: None,
        context_size: load.context_size,
        threads: (threads, batch_threads),
        model,
        per_sequence,
        batch_size: load.batch_size as usize,
        free: (0..n_seq as i32).rev().collect(),
        cached: vec![Vec::new(); n_seq as usize],
        released_at: vec![0; n_seq as usize],
        steps: 0,
        grammars: HashMap::new(),
        grammar_first: crate::constrained::grammar_first(),
        scratch: Vec::new(),
        prefix_cache: load.prefix_cache,
        slots: Vec::new(),
        waiting: VecDeque::new(),
        batch: LlamaBatch::new(load.batch_size as usize, n_seq as i32),
        hooks,
    };
    // Jobs end when stdin closes, which happens only when the backend is gone (dropped, or its
    // process killed): nobody is left to read the answers, so the work in hand is abandoned at
    // once rather than decoded for minutes by an orphan.
    let mut profile = Profile::from_env();
    loop {
        // Take new jobs: wait for one when idle, else only those already there.
        if scheduler.slots.is_empty() && scheduler.waiting.is_empty() {
            let idle = profile.start();
            let received = jobs.recv();
            profile.add(Phase::Idle, idle);
            match received {
                Ok(job) => scheduler.accept(job, sink),
                Err(_) => return profile.finish(),
            }
        }
        let accepting = profile.start();
        loop {
            match jobs.try_recv() {
                Ok(job) => scheduler.accept(job, sink),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return profile.finish(),
            }
        }
        scheduler.fill_slots(&mut ctx);
        profile.add(Phase::Accept, accepting);
        if !scheduler.slots.is_empty() {
            scheduler.step(&mut ctx, sink, &mut profile);
        }
    }
}

/// Where the worker's time goes, reported when it ends (`RETORT_LLAMA_PROFILE=1`).
struct Profile {
    enabled: bool,
    started: std::time::Instant,
    /// Seconds by phase.
    seconds: [f64; 4],
    steps: u64,
    /// Steps by the number of tokens they decoded: 1, 2-8, 9-64, more.
    by_size: [u64; 4],
    /// Tokens decoded, and how many of them were answer tokens.
    tokens: u64,
    answer_tokens: u64,
    /// Tokens of constrained jobs, and how many of them the grammar made picked again.
    constrained: (u64, u64),
}

#[derive(Clone, Copy)]
enum Phase {
    /// Waiting for a job with nothing to do.
    Idle = 0,
    /// Reading jobs (tokenising, building samplers) and placing them.
    Accept = 1,
    /// llama.cpp's decode.
    Decode = 2,
    /// Sampling and reading the answers.
    Sample = 3,
}

impl Profile {
    fn from_env() -> Self {
        Profile {
            enabled: std::env::var("RETORT_LLAMA_PROFILE").is_ok_and(|value| value == "1"),
            started: std::time::Instant::now(),
            seconds: [0.0; 4],
            steps: 0,
            by_size: [0; 4],
            tokens: 0,
            answer_tokens: 0,
            constrained: (0, 0),
        }
    }

    fn start(&self) -> Option<std::time::Instant> {
        self.enabled.then(std::time::Instant::now)
    }

    fn add(&mut self, phase: Phase, since: Option<std::time::Instant>) {
        if let Some(since) = since {
            self.seconds[phase as usize] += since.elapsed().as_secs_f64();
        }
    }

    fn step(&mut self, tokens: usize, answer_tokens: usize) {
        self.steps += 1;
        self.tokens += tokens as u64;
        self.answer_tokens += answer_tokens as u64;
        self.by_size[match tokens {
            0..=1 => 0,
            2..=8 => 1,
            9..=64 => 2,
            _ => 3,
        }] += 1;
    }

    fn constrained(&mut self, steps: u64, resampled: u64) {
        self.constrained.0 += steps;
        self.constrained.1 += resampled;
    }

    fn finish(&self) -> Result<Option<String>, String> {
        if !self.enabled {
            return Ok(None);
        }
        let [idle, accept, decode, sample] = self.seconds;
        Ok(Some(format!(
            "retort-llama profile: {:.2} s in all; idle {idle:.2} s, accepting {accept:.2} s, decoding {decode:.2} s, \
                 sampling {sample:.2} s; {} steps ({} of 1 token, {} of 2-8, {} of 9-64, {} larger), {} tokens decoded, \
                 {} of them answer tokens; {} constrained tokens, {} of them picked again under the grammar",
            self.started.elapsed().as_secs_f64(),
            self.steps,
            self.by_size[0],
            self.by_size[1],
            self.by_size[2],
            self.by_size[3],
            self.tokens,
            self.answer_tokens,
            self.constrained.0,
            self.constrained.1,
        )))
    }
}

struct Scheduler<'m> {
    backend: &'m LlamaBackend,
    /// A second context for embeddings, made on the first embedding job.
    embed_ctx: Option<LlamaContext<'m>>,
    context_size: u32,
    /// Threads for single-token steps and for batched steps.
    threads: (i32, i32),
    model: &'m LlamaModel,
    per_sequence: usize,
    batch_size: usize,
    /// Sequences without a job.
    free: Vec<i32>,
    /// What the cache of each free sequence holds, by sequence id (a busy sequence holds its
    /// slot's `tokens[..n_past]`, and its entry here is empty).
    cached: Vec<Vec<LlamaToken>>,
    /// The step at which each sequence was last released: the oldest cache is overwritten first.
    released_at: Vec<u64>,
    /// Decode steps so far.
    steps: u64,
    /// Compiled grammar samplers by grammar text, cloned for each job.
    grammars: HashMap<String, LlamaSampler>,
    /// Grammars are applied to the whole row before picking (`RETORT_GRAMMAR_FIRST=1`).
    grammar_first: bool,
    /// Reused by the samplers of constrained jobs.
    scratch: Vec<f32>,
    /// Whether prefixes are kept and reused; without, every prompt is evaluated in full.
    prefix_cache: bool,
    slots: Vec<Slot>,
    waiting: VecDeque<Job>,
    batch: LlamaBatch<'static>,
    hooks: bool,
}

impl<'m> Scheduler<'m> {
    /// Tokenizes a new job and queues it, or answers it at once when it cannot run.
    fn accept(&mut self, frame: ToWorker, sink: &mut dyn Sink) {
        match frame {
            ToWorker::Load(_) => {}
            ToWorker::Generate { id, job } => {
                self.run_hooks(&job.prompt);
                match self.generate_job(id, job) {
                    Ok(job) => self.waiting.push_back(job),
                    Err((kind, message)) => sink.send(&FromWorker::Failed { id, kind, message }),
                }
            }
            ToWorker::Embed { id, texts } => match self.embed(&texts) {
                Ok(vectors) => sink.send(&FromWorker::Embedded { id, vectors }),
                Err((kind, message)) => sink.send(&FromWorker::Failed { id, kind, message }),
            },
            ToWorker::Score { id, prompt, continuation } => {
                self.run_hooks(&prompt);
                let mut tokens = self.tokenize(&prompt, true);
                let n_prompt = tokens.len();
                tokens.extend(self.tokenize(&continuation, false));
                if tokens.len() == n_prompt {
                    sink.send(&FromWorker::Scored { id, tokens: Vec::new() });
                } else if tokens.len() > self.per_sequence {
                    sink.send(&FromWorker::Failed {
                        id,
                        kind: FailKind::ContextLength,
                        message: format!(
                            "the prompt and continuation have {} tokens; the context holds {} per sequence",
                            tokens.len(),
                            self.per_sequence
                        ),
                    });
                } else {
                    self.waiting.push_back(Job { id, tokens, n_prompt, reused: 0, kind: JobKind::Score { scored: Vec::new() } });
                }
            }
        }
    }

    /// Embeds texts one by one in the embedding context: mean-pooled, L2-normalised.
    fn embed(&mut self, texts: &[String]) -> Result<Vec<Vec<f32>>, (FailKind, String)> {
        if self.embed_ctx.is_none() {
            let params = LlamaContextParams::default()
                .with_n_ctx(NonZeroU32::new(self.context_size))
                .with_n_batch(self.context_size)
                .with_n_ubatch(self.context_size)
                .with_n_seq_max(1)
                .with_n_threads(self.threads.0)
                .with_n_threads_batch(self.threads.1)
                .with_embeddings(true)
                .with_pooling_type(LlamaPoolingType::Mean);
            let ctx = self
                .model
                .new_context(self.backend, params)
                .map_err(|error| (FailKind::Server, format!("creating the embedding context of {} tokens: {error}", self.context_size)))?;
            self.embed_ctx = Some(ctx);
        }
        let vocab = self.model.vocab();
        let mut vectors = Vec::with_capacity(texts.len());
        for text in texts {
            let tokens = vocab.tokenize(text.as_bytes(), vocab.should_add_bos(), false);
            if tokens.is_empty() {
                return Err((FailKind::BadRequest, "cannot embed an empty text".to_string()));
            }
            if tokens.len() > self.context_size as usize {
                return Err((
                    FailKind::ContextLength,
                    format!("a text to embed has {} tokens; the context holds {}", tokens.len(), self.context_size),
                ));
            }
            let ctx = self.embed_ctx.as_mut().expect("made above");
            let _ = ctx.clear_kv_cache_seq(None, None, None);
            let mut batch = LlamaBatch::new(tokens.len(), 1);
            for (position, token) in tokens.iter().enumerate() {
                batch
                    .add(*token, position as i32, &[0], true)
                    .map_err(|error| (FailKind::Server, format!("filling the embedding batch: {error}")))?;
            }
            ctx.decode(&mut batch).map_err(|error| (FailKind::Server, format!("llama.cpp could not embed a text: {error}")))?;
            let embedding =
                ctx.embeddings_seq_ith(0).map_err(|error| (FailKind::Server, format!("reading the pooled embedding: {error}")))?;
            let norm = embedding.iter().map(|x| x * x).sum::<f32>().sqrt().max(f32::MIN_POSITIVE);
            vectors.push(embedding.iter().map(|x| x / norm).collect());
        }
        Ok(vectors)
    }

    fn run_hooks(&self, prompt: &str) {
        if !self.hooks {
            return;
        }
        if prompt.contains(ABORT_HOOK) {
            std::process::abort();
        }
        if let Some(start) = prompt.find(ABORT_ONCE_HOOK) {
            let rest = &prompt[start + ABORT_ONCE_HOOK.len()..];
            if let Some(end) = rest.find(">>") {
                let path = std::path::Path::new(&rest[..end]);
                if !path.exists() {
                    let _ = std::fs::write(path, b"aborted once");
                    std::process::abort();
                }
            }
        }
    }

    fn tokenize(&self, text: &str, is_prompt: bool) -> Vec<LlamaToken> {
        let vocab = self.model.vocab();
        // The chat template usually writes the BOS token itself; add it only where it did not.
        let add_bos = is_prompt && vocab.should_add_bos() && {
            let bos = vocab.token_to_piece(vocab.bos(), true, None);
            bos.is_empty() || !text.as_bytes().starts_with(&bos)
        };
        let mut tokens = vocab.tokenize(text.as_bytes(), add_bos, true);
        if !is_prompt && tokens.first() == Some(&vocab.bos()) {
            tokens.remove(0);
        }
        tokens
    }

    /// A fresh sampler of a grammar, compiled once per `key` (the schema's or the grammar's
    /// text) and then cloned; `grammar` makes the GBNF text the first time.
    fn grammar_sampler(
        &mut self,
        key: String,
        what: &str,
        grammar: impl FnOnce() -> Result<String, (FailKind, String)>,
    ) -> Result<LlamaSampler, (FailKind, String)> {
        if let Some(sampler) = self.grammars.get(&key) {
            return Ok(sampler.clone());
        }
        let sampler = LlamaSampler::grammar(self.model, &grammar()?, "root").map_err(|error| {
            (
                FailKind::BadRequest,
                format!(
                    "compiling {what}: {error} (llama.cpp rejects a GBNF syntax error, a rule \
                     without a definition, and repetitions nested past its limit, such as \
                     `(x{{1,120}}){{1,30}}`: write the inner one as `x+`)"
                ),
            )
        })?;
        if self.grammars.len() >= GRAMMAR_CACHE {
            self.grammars.clear();
        }
        self.grammars.insert(key, sampler.clone());
        Ok(sampler)
    }

    fn generate_job(&mut self, id: u64, job: Generate) -> Result<Job, (FailKind, String)> {
        let tokens = self.tokenize(&job.prompt, true);
        if tokens.is_empty() {
            return Err((FailKind::BadRequest, "the prompt is empty".to_string()));
        }
        if tokens.len() >= self.per_sequence {
            return Err((
                FailKind::ContextLength,
                format!(
                    "the prompt has {} tokens; the context holds {} per sequence, prompt and answer together",
                    tokens.len(),
                    self.per_sequence
                ),
            ));
        }
        let grammar = match (&job.json_schema, &job.grammar) {
            (Some(schema), _) => Some(self.grammar_sampler(format!("json-schema:{schema}"), "the grammar of the JSON schema", || {
                llama_cpp_2::json_schema_to_grammar(schema)
                    .map_err(|error| (FailKind::BadRequest, format!("turning the JSON schema into a grammar: {error}")))
            })?),
            (None, Some(grammar)) => Some(self.grammar_sampler(grammar.clone(), "the request's grammar", || Ok(grammar.clone()))?),
            (None, None) => None,
        };
        let sampler = match grammar {
            Some(grammar) if !self.grammar_first => {
                Picker::Constrained(Box::new(Constrained::new(grammar, job.temperature, job.top_p, job.seed)))
            }
            // What the chain [greedy] or [temp, dist] would do, without llama.cpp's chain.
            None if job.temperature <= 0.0 || job.top_p >= 1.0 => Picker::Native(NativeSampler::new(job.temperature, job.seed)),
            grammar => {
                let mut chain = Vec::new();
                if let Some(sampler) = grammar {
                    chain.push(sampler);
                }
                if job.temperature <= 0.0 {
                    chain.push(LlamaSampler::greedy());
                } else {
                    if job.top_p < 1.0 {
                        chain.push(LlamaSampler::top_p(job.top_p, 1));
                    }
                    chain.push(LlamaSampler::temp(job.temperature));
                    chain.push(LlamaSampler::dist(job.seed));
                }
                Picker::Chain(LlamaSampler::chain_simple(chain))
            }
        };
        let n_prompt = tokens.len();
        let longest_stop = job.stop.iter().map(String::len).max().unwrap_or(0);
        Ok(Job {
            id,
            tokens,
            n_prompt,
            reused: 0,
            kind: JobKind::Generate(Box::new(Generating {
                sampler,
                picked: None,
                max_tokens: job.max_tokens,
                stop: job.stop,
                longest_stop,
                logprobs: job.logprobs,
                bytes: Vec::new(),
                token_logprobs: Vec::new(),
                ended: false,
            })),
        })
    }

    /// Places waiting jobs on free sequences, each starting from the longest cached prefix.
    fn fill_slots(&mut self, ctx: &mut LlamaContext<'_>) {
        let mut index = 0;
        while index < self.waiting.len() && !self.free.is_empty() {
            let Some(placement) = self.place(&self.waiting[index]) else {
                // Its prefix is being evaluated: leave it for a later step, place the others.
                index += 1;
                continue;
            };
            let mut job = self.waiting.remove(index).expect("the index is in range");
            self.free.retain(|&seq| seq != placement.seq);
            let kept = self.prepare(ctx, &placement);
            job.reused = kept;
            self.slots.push(Slot { seq_id: placement.seq, job, n_past: kept, rows: Vec::new(), stepped: false });
        }
    }

    /// Where a job should start, or `None` when it should wait for a prefix being evaluated.
    fn place(&self, job: &Job) -> Option<Placement> {
        if !self.prefix_cache {
            let seq = *self.free.last().expect("a free sequence");
            return Some(Placement { seq, source: None, keep: 0 });
        }
        // At least the prompt's last token is evaluated: its logits give the first answer token.
        let prompt = &job.tokens[..job.n_prompt.saturating_sub(1)];
        let mut best = (0, None);
        for &seq in &self.free {
            let shared = common_prefix(&self.cached[seq as usize], prompt);
            if shared > best.0 {
                best = (shared, Some(seq));
            }
        }
        let mut coming = 0;
        for slot in &self.slots {
            let shared = common_prefix(&slot.job.tokens[..slot.n_past], prompt);
            if shared > best.0 {
                best = (shared, Some(slot.seq_id));
            }
            if slot.n_past < slot.job.n_prompt {
                coming = coming.max(common_prefix(&slot.job.tokens[..slot.job.n_prompt], prompt));
            }
        }
        if coming >= best.0 + WAIT_FOR_PREFIX {
            return None;
        }
        let (keep, source) = best;
        // The source itself when it is free; else the free sequence whose cache is oldest
        // (an empty one first).
        let seq = match source {
            Some(source) if self.free.contains(&source) => source,
            _ => *self
                .free
                .iter()
                .min_by_key(|&&seq| (!self.cached[seq as usize].is_empty(), self.released_at[seq as usize]))
                .expect("a free sequence"),
        };
        Some(Placement { seq, source, keep })
    }

    /// Makes the sequence's cache hold exactly the placement's prefix; returns its length.
    fn prepare(&mut self, ctx: &mut LlamaContext<'_>, placement: &Placement) -> usize {
        let seq = placement.seq;
        let own = std::mem::take(&mut self.cached[seq as usize]);
        // Keep the sequence's own prefix, dropping what lies past it (nothing, when it holds no more).
        if placement.keep > 0
            && placement.source == Some(seq)
            && (own.len() <= placement.keep || ctx.clear_kv_cache_seq(Some(seq as u32), Some(placement.keep as u32), None).unwrap_or(false))
        {
            return placement.keep;
        }
        let _ = ctx.clear_kv_cache_seq(Some(seq as u32), None, None);
        match placement.source {
            Some(source) if placement.keep > 0 && source != seq => {
                match ctx.copy_kv_cache_seq(source, seq, Some(0), Some(placement.keep as u32)) {
                    Ok(()) => placement.keep,
                    Err(_) => 0,
                }
            }
            _ => 0,
        }
    }

    /// Empties the caches of free sequences, to make room in the pool; true when any held cells.
    fn evict(&mut self, ctx: &mut LlamaContext<'_>) -> bool {
        let mut any = false;
        for &seq in &self.free {
            if !self.cached[seq as usize].is_empty() {
                let _ = ctx.clear_kv_cache_seq(Some(seq as u32), None, None);
                self.cached[seq as usize].clear();
                any = true;
            }
        }
        any
    }

    /// One decode step over all slots.
    fn step(&mut self, ctx: &mut LlamaContext<'_>, sink: &mut dyn Sink, profile: &mut Profile) {
        self.batch.clear();
        let mut budget = self.batch_size;
        // Answering sequences first (one token each), then prompt chunks.
        let mut order: Vec<usize> = (0..self.slots.len()).collect();
        order.sort_by_key(|&index| {
            let slot = &self.slots[index];
            slot.n_past < slot.job.n_prompt
        });
        for index in order {
            let slot = &mut self.slots[index];
            slot.rows.clear();
            slot.stepped = false;
            // A scored sequence never needs its last token evaluated.
            let mut end = match slot.job.kind {
                JobKind::Generate(_) => slot.job.tokens.len(),
                JobKind::Score { .. } => slot.job.tokens.len() - 1,
            };
            // With prefix reuse, the prompt's last token (and a scored continuation) is never
            // evaluated in the step that completes the rest of the prompt: a reused prefix
            // leaves it to a step of its own, and llama.cpp's numerics differ between a row
            // of a long prompt batch and a row of a short step. Evaluating it the same way
            // in both cases makes a sample independent of what the cache held.
            let prefix_end = slot.job.n_prompt - 1;
            if self.prefix_cache && slot.n_past < prefix_end {
                end = end.min(prefix_end);
            }
            while slot.n_past < end && budget > 0 {
                let position = slot.n_past;
                let wants_logits = match slot.job.kind {
                    JobKind::Generate(_) => position + 1 == slot.job.tokens.len(),
                    JobKind::Score { .. } => position + 1 >= slot.job.n_prompt,
                };
                let row = self.batch.n_tokens();
                if self.batch.add(slot.job.tokens[position], position as i32, &[slot.seq_id], wants_logits).is_err() {
                    break;
                }
                if wants_logits {
                    slot.rows.push((row, position));
                }
                slot.n_past += 1;
                slot.stepped = true;
                budget -= 1;
            }
        }
        if self.batch.n_tokens() == 0 {
            return;
        }
        self.steps += 1;
        if profile.enabled {
            let answering = self.slots.iter().filter(|slot| slot.stepped && slot.n_past > slot.job.n_prompt).count();
            profile.step(self.batch.n_tokens() as usize, answering);
        }
        let decoding = profile.start();
        let mut decoded = ctx.decode(&mut self.batch);
        if matches!(decoded, Err(DecodeError::NoKvCacheSlot)) && self.evict(ctx) {
            decoded = ctx.decode(&mut self.batch);
        }
        profile.add(Phase::Decode, decoding);
        if let Err(error) = decoded {
            // Fail the sequences of this step; the others are untouched.
            let message = format!("llama.cpp could not decode a batch of {} tokens: {error}", self.batch.n_tokens());
            let failed: Vec<usize> = (0..self.slots.len()).filter(|&i| self.slots[i].stepped).collect();
            for index in failed.into_iter().rev() {
                let slot = self.slots.swap_remove(index);
                sink.send(&FromWorker::Failed { id: slot.job.id, kind: FailKind::Server, message: message.clone() });
                // What its cache holds after a failed step is not known: empty it.
                let _ = ctx.clear_kv_cache_seq(Some(slot.seq_id as u32), None, None);
                self.release(slot.seq_id, Vec::new());
            }
            return;
        }
        let sampling = profile.start();
        self.pick_native(ctx);
        let mut index = 0;
        while index < self.slots.len() {
            if self.advance(ctx, index) {
                let slot = self.slots.swap_remove(index);
                if let JobKind::Generate(generating) = &slot.job.kind {
                    if let Picker::Constrained(sampler) = &generating.sampler {
                        profile.constrained(sampler.steps, sampler.resampled);
                    }
                }
                // The cache holds the evaluated tokens; the last sampled one is not among them.
                let evaluated = slot.job.tokens[..slot.n_past].to_vec();
                sink.send(&finish(slot.job));
                self.release(slot.seq_id, evaluated);
            } else {
                index += 1;
            }
        }
        profile.add(Phase::Sample, sampling);
    }

    /// Frees a sequence whose cache holds `evaluated`, kept for a later prompt that starts alike.
    fn release(&mut self, seq_id: i32, evaluated: Vec<LlamaToken>) {
        self.cached[seq_id as usize] = evaluated;
        self.released_at[seq_id as usize] = self.steps;
        self.free.push(seq_id);
    }

    /// Picks the next token of every slot with a native sampler, the rows spread over the
    /// worker's threads (llama.cpp's threads are idle between decode steps).
    fn pick_native(&mut self, ctx: &LlamaContext<'_>) {
        let mut work: Vec<(&mut NativeSampler, &[f32], &mut Option<LlamaToken>)> = Vec::new();
        for slot in &mut self.slots {
            let Some(&(row, _)) = slot.rows.last() else { continue };
            if let JobKind::Generate(generating) = &mut slot.job.kind {
                if let Picker::Native(sampler) = &mut generating.sampler {
                    work.push((sampler, ctx.get_logits_ith(row), &mut generating.picked));
                }
            }
        }
        let pick = |work: &mut [(&mut NativeSampler, &[f32], &mut Option<LlamaToken>)]| {
            let mut scratch = Vec::new();
            for (sampler, logits, picked) in work {
                **picked = Some(LlamaToken(sampler.sample(logits, &mut scratch) as i32));
            }
        };
        let threads = (self.threads.0.max(1) as usize).min(work.len());
        if threads <= 1 {
            pick(&mut work);
            return;
        }
        let chunk = work.len().div_ceil(threads);
        std::thread::scope(|scope| {
            let mut chunks = work.chunks_mut(chunk);
            let own = chunks.next().expect("at least one chunk");
            for rest in chunks {
                scope.spawn(move || pick(rest));
            }
            pick(own);
        });
    }

    /// Reads the slot's logits after a step; true when its job is done.
    fn advance(&mut self, ctx: &LlamaContext<'_>, index: usize) -> bool {
        let model = self.model;
        let per_sequence = self.per_sequence;
        let slot = &mut self.slots[index];
        let rows = std::mem::take(&mut slot.rows);
        match &mut slot.job.kind {
            JobKind::Score { scored } => {
                for (row, position) in rows {
                    let target = slot.job.tokens[position + 1];
                    let logits = ctx.get_logits_ith(row);
                    let (logprob, _) = log_softmax_at(logits, target, 0);
                    scored.push(TokenLogprob { token: piece(model, target), logprob, top: Vec::new() });
                }
                slot.n_past + 1 >= slot.job.tokens.len()
            }
            JobKind::Generate(generating) => {
                let Some(&(row, _)) = rows.last() else {
                    return false;
                };
                let token = match &mut generating.sampler {
                    Picker::Chain(sampler) => sampler.sample(ctx, row),
                    Picker::Constrained(sampler) => sampler.sample(ctx.get_logits_ith(row), &mut self.scratch),
                    // `pick_native` ran over every slot with a logits row before this.
                    Picker::Native(_) => generating.picked.take().expect("pick_native picked this row"),
                };
                let vocab = model.vocab();
                if vocab.is_eog(token) {
                    generating.ended = true;
                    return true;
                }
                if let Some(k) = generating.logprobs {
                    let logits = ctx.get_logits_ith(row);
                    let (logprob, top) = log_softmax_at(logits, token, k as usize);
                    generating.token_logprobs.push(TokenLogprob {
                        token: piece(model, token),
                        logprob,
                        top: top.into_iter().map(|(alt, lp)| (piece(model, alt), lp)).collect(),
                    });
                }
                let piece = vocab.token_to_piece(token, false, None);
                generating.bytes.extend_from_slice(&piece);
                slot.job.tokens.push(token);
                let generated = slot.job.tokens.len() - slot.job.n_prompt;
                if generating.longest_stop > 0 {
                    // Only the new piece can complete a stop string: search the tail it ends.
                    let tail_start = generating.bytes.len().saturating_sub(piece.len() + generating.longest_stop - 1);
                    let tail = &generating.bytes[tail_start..];
                    if generating
                        .stop
                        .iter()
                        .any(|stop| !stop.is_empty() && tail.windows(stop.len()).any(|window| window == stop.as_bytes()))
                    {
                        return true;
                    }
                }
                generated >= generating.max_tokens as usize || slot.job.tokens.len() >= per_sequence
            }
        }
    }
}

/// Where a job starts: its sequence, and the prefix it takes from a source sequence's cache.
struct Placement {
    seq: i32,
    source: Option<i32>,
    keep: usize,
}

/// The length of the common prefix of two token lists.
fn common_prefix(a: &[LlamaToken], b: &[LlamaToken]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// The answer frame for a finished job.
fn finish(job: Job) -> FromWorker {
    match job.kind {
        JobKind::Score { scored } => FromWorker::Scored { id: job.id, tokens: scored },
        JobKind::Generate(generating) => {
            let completion_tokens = (job.tokens.len() - job.n_prompt) as u64;
            let mut text = String::from_utf8_lossy(&generating.bytes).into_owned();
            let mut finish = Finish::Length;
            let stop_at = generating.stop.iter().filter(|stop| !stop.is_empty()).filter_map(|stop| text.find(stop.as_str())).min();
            if let Some(at) = stop_at {
                text.truncate(at);
                finish = Finish::Stop;
            } else if generating.ended {
                finish = Finish::Stop;
            }
            FromWorker::Generated {
                id: job.id,
                text,
                finish,
                logprobs: generating.logprobs.map(|_| generating.token_logprobs),
                prompt_tokens: job.n_prompt as u64,
                cached_tokens: job.reused as u64,
                completion_tokens,
            }
        }
    }
}

fn piece(model: &LlamaModel, token: LlamaToken) -> String {
    String::from_utf8_lossy(&model.vocab().token_to_piece(token, true, None)).into_owned()
}

/// The log-probability of `token` under `logits`, and the `k` most likely tokens with theirs.
pub(crate) fn log_softmax_at(logits: &[f32], token: LlamaToken, k: usize) -> (f64, Vec<(LlamaToken, f64)>) {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum: f64 = logits.iter().map(|&logit| (logit as f64 - max).exp()).sum();
    let log_norm = max + sum.ln();
    let logprob = logits.get(token.0 as usize).map_or(f64::NEG_INFINITY, |&logit| logit as f64 - log_norm);
    let mut top = Vec::new();
    if k > 0 {
        let mut indices: Vec<usize> = (0..logits.len()).collect();
        let k = k.min(indices.len());
        indices.select_nth_unstable_by(k - 1, |&a, &b| logits[b].total_cmp(&logits[a]));
        indices.truncate(k);
        indices.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
        top = indices.into_iter().map(|index| (LlamaToken(index as i32), logits[index] as f64 - log_norm)).collect();
    }
    (logprob, top)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_softmax_normalises_and_ranks() {
        let logits = [0.0f32, (2.0f32).ln(), (5.0f32).ln(), (2.0f32).ln()];
        let (logprob, top) = log_softmax_at(&logits, LlamaToken(2), 2);
        assert!((logprob - 0.5f64.ln()).abs() < 1e-6, "{logprob}");
        assert_eq!(top.len(), 2);
        assert_eq!(top[0].0, LlamaToken(2));
        assert!((top[1].1 - 0.2f64.ln()).abs() < 1e-6, "{top:?}");
        let total: f64 = (0..4).map(|i| log_softmax_at(&logits, LlamaToken(i), 0).0.exp()).sum();
        assert!((total - 1.0).abs() < 1e-6);
    }
}
