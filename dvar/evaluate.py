"""Decode a data set with a trained run and score it with the task's verifier.

    run = load_run("runs/sudoku-mdm")
    report = evaluate(run, read_examples("test.jsonl", run.task), decoder="topk")

A run directory (SPEC §7) holds `config.yaml` (resolved), `vocab.json`, `model.json` and
`model.safetensors`; `evaluate` returns per-example rows and a `metrics.json` summary.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch

from dvar.checkpoint import load_weights
from dvar.config import Config, load_config
from dvar.data import Example
from dvar.decoders import decoder_class, get_decoder
from dvar.metrics import judge_all, summarize
from dvar.model import ModelConfig, Transformer
from dvar.objectives import Objective, get_objective
from dvar.tasks import Task, get_task
from dvar.tokenizer import CharTokenizer, SequenceTooLong


@dataclass
class Run:
    """A trained model with everything needed to use it."""

    config: Config
    task: Task
    tokenizer: CharTokenizer
    model: Transformer
    objective: Objective
    path: Path | None = None

    @property
    def cutoff(self) -> int:
        return self.config.data.cutoff

    @property
    def max_new_tokens(self) -> int:
        return self.config.data.max_new_tokens


def build_objective(cfg: Config) -> Objective:
    if cfg.objective == "mdm":
        d = cfg.diffusion
        return get_objective(
            "mdm", steps=d.steps, alpha=d.alpha, gamma=d.gamma, time_weighting=d.time_weighting,
            token_reweighting=d.token_reweighting, shift=d.shift,
        )
    return get_objective(cfg.objective)


def load_run(run_dir: str | Path, device: str | torch.device = "cpu") -> Run:
    run_dir = Path(run_dir)
    for name in ("config.yaml", "vocab.json", "model.json", "model.safetensors"):
        if not (run_dir / name).is_file():
            raise FileNotFoundError(f"{run_dir} is not a finished run: {name} is missing")
    cfg = load_config(run_dir / "config.yaml")
    tokenizer = CharTokenizer.load(run_dir / "vocab.json")
    model = Transformer(ModelConfig(**json.loads((run_dir / "model.json").read_text())))
    model.to(device)
    load_weights(model, run_dir / "model.safetensors")
    model.eval()
    return Run(cfg, get_task(cfg.task), tokenizer, model, build_objective(cfg), run_dir)


def decode_texts(
    run: Run,
    inputs: Sequence[str],
    names: Sequence[str],
    decoder: str = "",
    steps: int = 0,
    batch_size: int = 64,
    seed: int = 0,
    decoder_settings: dict[str, Any] | None = None,
) -> tuple[list[str], int]:
    """Answer text for every input (untrusted; judge it) and the total model calls."""
    name = decoder or run.objective.default_decoder
    cls = decoder_class(name)
    if cls.family != run.objective.family:
        raise ValueError(f"decoder {name!r} decodes {cls.family} models; this run is {run.objective.family}")
    settings = dict(decoder_settings or {})
    if "steps" in {f.name for f in dataclasses.fields(cls)}:
        settings.setdefault("steps", steps or run.config.diffusion.steps)
    dec = get_decoder(name, **settings)
    prompts = []
    for text, where in zip(inputs, names):
        ids = run.tokenizer.encode_prompt(text)
        if len(ids) >= run.cutoff:
            raise SequenceTooLong(
                f"{where}: the input needs {len(ids)} tokens with SEP, leaving no room for an "
                f"answer within the run's cutoff of {run.cutoff}"
            )
        prompts.append(ids)
    # Equal prompt lengths next to each other: AR batches them without padding.
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    answers: list[str] = [""] * len(prompts)
    nfe = 0
    generator = torch.Generator(device=run.model.device).manual_seed(seed)
    predict = run.objective.predictor(run.model)
    run.model.eval()
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        result = dec(
            predict, [prompts[i] for i in chunk], seq_len=run.cutoff,
            max_new_tokens=run.max_new_tokens, generator=generator,
        )
        nfe += result.nfe
        for index, ids in zip(chunk, result.answers):
            answers[index] = run.tokenizer.decode_answer(ids)
    return answers, nfe


@dataclass
class Evaluation:
    rows: list[dict[str, Any]]
    metrics: dict[str, Any] = field(default_factory=dict)


def evaluate(
    run: Run,
    examples: Sequence[Example],
    decoder: str = "",
    steps: int = 0,
    batch_size: int = 64,
    seed: int = 0,
    source: str = "",
) -> Evaluation:
    """Decode and judge `examples`; rows are predictions.jsonl, metrics metrics.json."""
    start = time.perf_counter()
    names = [f"{source}:{ex.line}" for ex in examples]
    answers, nfe = decode_texts(
        run, [ex.input for ex in examples], names, decoder, steps, batch_size, seed
    )
    seconds = time.perf_counter() - start
    verdicts = judge_all(run.task, [ex.problem for ex in examples], answers)
    groups = [run.task.group(ex.problem) for ex in examples]
    rows = [
        {"input": ex.input, "output": ex.output, "predict": answer, "correct": verdict["correct"],
         "group": group}
        for ex, answer, verdict, group in zip(examples, answers, verdicts, groups)
    ]
    metrics = summarize(groups, verdicts)
    is_mdm = run.objective.family == "mdm"
    metrics.update(
        task=run.task.name,
        data=source,
        objective=run.config.objective,
        model=run.config.model,
        decoder=decoder or run.objective.default_decoder,
        steps=(steps or run.config.diffusion.steps) if is_mdm else None,
        nfe=nfe,  # model calls in all; a batched call counts once
        batch_size=batch_size,
        seconds=round(seconds, 3),
    )
    return Evaluation(rows, metrics)
