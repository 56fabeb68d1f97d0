"""retort's TRL trainer (`--set vars.trainer=trl`): one round's rows trained with TRL's SFT or
DPO trainer and a PEFT LoRA adapter, for machines with a GPU.

retort writes this file into the run directory and runs it as the round's trainer command:
    python3 train_trl.py --data ROWS --out FOLDER --model MODEL --round N
ROWS are the round's rows as retort writes them (`messages` for SFT; `prompt`, `chosen`,
`rejected` and an optional soft `label` for DPO), which TRL reads as they are.

The model to train: $RETORT_TRL_MODEL (a Hugging Face model folder or name) or, for the local
backend, the GGUF file retort runs (`--gguf`; transformers reads it). It trains from that
model each round (the `train` step's `from: current` is the built-in trainer's). The last line printed names the
next model:
- local backend: `GGUF+lora:FOLDER/adapter.gguf`, the adapter written in llama.cpp's LoRA
  format (this script writes it; q and k rows permuted as llama.cpp's converter does for llama);
- a server (RETORT_TRL_SERVE set to a command template, e.g. vLLM's dynamic LoRA loading:
  `curl -s -X POST $URL/v1/load_lora_adapter -H 'Content-Type: application/json'
  -d '{"lora_name": "{name}", "lora_path": "{path}"}'`): the command is run and `{name}` is
  printed, the name under which the server serves the adapter.
Python: $RETORT_PYTHON, else python3, with torch, transformers, peft, trl and gguf installed.
"""
import argparse
import json
import os
import subprocess
import sys


def rows(path):
    return [json.loads(line) for line in open(path) if line.strip()]


def write_gguf_adapter(peft_dir, out_path, config, alpha, arch):
    import gguf
    import numpy as np
    from safetensors.numpy import load_file

    tensors = load_file(os.path.join(peft_dir, "adapter_model.safetensors"))
    names = {"q_proj": "attn_q", "k_proj": "attn_k", "v_proj": "attn_v", "o_proj": "attn_output",
             "gate_proj": "ffn_gate", "up_proj": "ffn_up", "down_proj": "ffn_down"}
    writer = gguf.GGUFWriter(out_path, arch)
    writer.add_string("general.type", "adapter")
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", float(alpha))
    heads, kv_heads = config.num_attention_heads, getattr(config, "num_key_value_heads", config.num_attention_heads)

    def permute(w, n_head):  # llama.cpp's converter permutes llama's q and k rows for its rope
        return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)

    for key, value in sorted(tensors.items()):
        parts = key.split(".")
        if "layers" not in parts or ("lora_A" not in parts and "lora_B" not in parts):
            continue
        layer = parts[parts.index("layers") + 1]
        module = next((m for m in names if m in parts), None)
        if module is None:
            continue
        side = "lora_a" if "lora_A" in parts else "lora_b"
        value = value.astype(np.float32)
        if arch == "llama" and side == "lora_b" and module in ("q_proj", "k_proj"):
            value = permute(value, heads if module == "q_proj" else kv_heads)
        writer.add_tensor(f"blk.{layer}.{names[module]}.weight.{side}", value)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--round", default="1")
    parser.add_argument("--gguf", default=None, help="the local model's GGUF file, when --model is an alias")
    parser.add_argument("--max-steps", type=int, default=int(os.environ.get("RETORT_TRL_MAX_STEPS", "-1")))
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--alpha", type=float, default=16.0)
    args = parser.parse_args()

    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer, SFTConfig, SFTTrainer

    model_spec = args.model.split("+lora:")[0]
    source = os.environ.get("RETORT_TRL_MODEL") or args.gguf or model_spec
    kwargs = {}
    if source.endswith(".gguf"):
        folder, name = os.path.split(os.path.abspath(source))
        source, kwargs = folder, {"gguf_file": name}
    tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
    model = AutoModelForCausalLM.from_pretrained(source, torch_dtype=torch.float32, **kwargs)
    if kwargs:
        # transformers dequantizes a GGUF file to float32 on loading but still marks the model
        # as quantized, and its Trainer refuses to train a GGUF-quantized model: unmark it.
        model.hf_quantizer = None
        model.is_quantized = False
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
    data = rows(args.data)
    lora = LoraConfig(r=args.rank, lora_alpha=args.alpha, lora_dropout=0.0,
                      target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    common = dict(output_dir=os.path.join(args.out, "trl"), max_steps=args.max_steps, per_device_train_batch_size=2,
                  logging_steps=1, report_to=[], save_strategy="no", use_cpu=not torch.cuda.is_available())
    if data and "chosen" in data[0]:
        dataset = Dataset.from_list([{k: r[k] for k in ("prompt", "chosen", "rejected")} for r in data])
        trainer = DPOTrainer(model=model, args=DPOConfig(**common), train_dataset=dataset, processing_class=tokenizer, peft_config=lora)
    else:
        # TRL's conversational prompt-completion form: the loss is on the last (assistant)
        # message only, as the built-in trainer's (`completion_only_loss`).
        dataset = Dataset.from_list([{"prompt": r["messages"][:-1], "completion": r["messages"][-1:]} for r in data])
        trainer = SFTTrainer(model=model, args=SFTConfig(**common, completion_only_loss=True, gradient_checkpointing=False),
                             train_dataset=dataset, processing_class=tokenizer, peft_config=lora)
    trainer.train()
    peft_dir = os.path.join(args.out, "peft")
    trainer.model.save_pretrained(peft_dir)
    serve = os.environ.get("RETORT_TRL_SERVE")
    if serve:
        name = f"retort-round-{args.round}"
        subprocess.run(serve.replace("{name}", name).replace("{path}", peft_dir), shell=True, check=True)
        print(name)
        return
    adapter = os.path.join(args.out, "adapter.gguf")
    write_gguf_adapter(peft_dir, adapter, model.config, args.alpha, model.config.model_type)
    print(f"{model_spec}+lora:{adapter}")


if __name__ == "__main__":
    sys.exit(main())
