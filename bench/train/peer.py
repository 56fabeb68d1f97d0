"""The PyTorch + PEFT peer of retort's built-in trainer: the same GGUF model (read by
transformers), the same rows, LoRA rank, alpha, targets, batch size, steps, learning rate and
threads; loss on the answer tokens only (the prompt rendered with the model's chat template).
Prints one JSON line: steps, tokens, seconds in training steps, tokens/s, first and last loss.

Usage: peer.py GGUF DATA.jsonl STEPS BATCH RANK ALPHA LR THREADS
"""
import json
import sys
import time

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer


def main():
    gguf, data, steps, batch, rank, alpha, lr, threads = sys.argv[1:9]
    steps, batch, rank, threads = int(steps), int(batch), int(rank), int(threads)
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    folder, name = gguf.rsplit("/", 1)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, torch_dtype=torch.float32)
    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    model = get_peft_model(model, LoraConfig(r=rank, lora_alpha=float(alpha), target_modules=targets, lora_dropout=0.0))
    rows = [json.loads(line) for line in open(data) if line.strip()]
    examples = []
    for row in rows:
        messages = row["messages"]
        prompt = tokenizer.apply_chat_template(messages[:-1], add_generation_prompt=True, tokenize=False)
        full = tokenizer.apply_chat_template(messages, tokenize=False)
        p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        a = tokenizer(full[len(prompt):], add_special_tokens=False)["input_ids"]
        examples.append((p + a, [-100] * len(p) + a))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=float(lr), weight_decay=0.0)
    model.train()
    tokens, seconds, losses, cursor = 0, 0.0, [], 0
    for _ in range(steps):
        chosen = [examples[(cursor + i) % len(examples)] for i in range(batch)]
        cursor += batch
        width = max(len(ids) for ids, _ in chosen)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        ids = torch.tensor([x + [pad] * (width - len(x)) for x, _ in chosen])
        labels = torch.tensor([y + [-100] * (width - len(y)) for _, y in chosen])
        mask = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x, _ in chosen])
        started = time.perf_counter()
        out = model(input_ids=ids, attention_mask=mask, labels=labels)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()
        seconds += time.perf_counter() - started
        tokens += sum(len(x) for x, _ in chosen)
        losses.append(out.loss.item())
    print(json.dumps({"steps": steps, "tokens": tokens, "train_seconds": seconds, "tokens_per_second": tokens / seconds, "first_loss": losses[0], "last_loss": losses[-1], "torch": torch.__version__}))


if __name__ == "__main__":
    main()
