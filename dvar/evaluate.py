"""Decode a data set with a trained run and score it with the task's verifier.

    run = load_run("runs/sudoku-mdm")
    report = evaluate(run, read_examples("test.jsonl", run.task), decoder="topk")

A run directory (SPEC §7) holds `config.yaml` (resolved), `vocab.json`, `model.json` and
`model.safetensors` (a pretrained `model=hf:PATH` run: `config.yaml` and `hf/`, see
`dvar.hf`); `evaluate` returns per-example rows and a `metrics.json` summary.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch

from dvar.config import Config, ConfigError
from dvar.data import Example, write_jsonl
from dvar.decoders import Decoder, decode_steps, decoder_class, get_decoder
from dvar.hf import HFBackbone, HFTokenizer
from dvar.metrics import add_partial_credit, best_of_k, judge_all, summarize, summarize_samples
from dvar.model import Transformer
from dvar.objectives import Objective, objective_from_config
from dvar.rundir import RunDir, load_model, write_json
from dvar.tasks import Task, get_task
from dvar.tokenizer import CharTokenizer, SequenceTooLong


@dataclass
class Run:
    """A trained model with everything needed to use it."""

    config: Config
    task: Task
    tokenizer: CharTokenizer | HFTokenizer
    model: Transformer | HFBackbone
    objective: Objective
    path: Path | None = None

    @property
    def cutoff(self) -> int:
        return self.config.data.cutoff

    @property
    def max_new_tokens(self) -> int:
        return self.config.data.max_new_tokens


def build_objective(cfg: Config, mask_id: int | None = None) -> Objective:
    """The objective of `cfg`; `mask_id`: the tokenizer's MASK (default: dvar's)."""
    return objective_from_config(cfg, mask_id)


def load_run(run_dir: str | Path, device: str | torch.device = "cpu") -> Run:
    """A finished run directory (either backbone, `dvar.rundir.load_model`), in eval mode."""
    run_dir = Path(run_dir)
    cfg = RunDir(run_dir).config()
    if cfg is None:
        raise FileNotFoundError(f"{run_dir} is not a finished run: config.yaml is missing")
    tokenizer, model = load_model(run_dir, cfg, device)
    objective = build_objective(cfg, tokenizer.mask_id)
    return Run(cfg, get_task(cfg.task), tokenizer, model, objective, run_dir)


def fit_losses(run: Run, heldout: Sequence[Example] | None = None, source: str = "",
               count: int = 512, draws: int = 4) -> dict[str, Any]:
    """How well a finished run fits the problems it trained on against problems it never
    saw: its objective's loss on up to `count` of `heldout` (default: the run's validation
    split; a problem that is also a training problem, or longer than the cutoff, is left
    out) and on as many of its training problems (the first of its training split),
    measured alike — eval mode (no dropout, no input corruption), `draws` fixed draws of
    the objective's randomness (an MDM's masks). Their difference is the overfitting
    signal, whatever the training loss did with corruption or dropout. Also counts the
    run's training problems, and how many are distinct (`Task.canonical`). Reads the
    run's data files (config.yaml's)."""
    from dvar.batches import encode, new_problems
    from dvar.data import written_answers
    from dvar.trainer import heldout_loss, resolve

    cfg = run.config
    resolved = resolve(cfg)  # config.yaml is resolved: the same splits and cutoff as in training
    if heldout is None:
        unseen, source = resolved.valid, "the validation split"
    else:
        kept = new_problems(run.task, list(heldout), resolved.train.examples)
        examples = [heldout[i] for i in kept]
        answers = written_answers(run.task, examples, cfg.data.answer_order, cfg.seed, source)
        # A held-out problem longer than the run's cutoff has no loss to measure: left out.
        fits = [i for i, (ex, answer) in enumerate(zip(examples, answers))
                if run.tokenizer.answer_span(ex.input, answer)[1] <= cfg.data.cutoff]
        unseen = encode([examples[i] for i in fits], run.tokenizer, cfg.data.cutoff, source,
                        [answers[i] for i in fits])
    n = min(count, len(unseen), len(resolved.train))
    if not n:
        raise ConfigError(f"{run.path}: no held-out problems to compare with ({source})")
    device = next(run.model.parameters()).device

    def measure(data: Any) -> float:
        return heldout_loss(run.model, run.objective, data, cfg.seed, cfg.decode.batch_size, device,
                            count=n, draws=draws)

    train_loss, heldout_value = measure(resolved.train), measure(unseen)
    distinct = len({run.task.canonical(ex.problem) for ex in resolved.train.examples})
    return {"train_loss": train_loss, "heldout_loss": heldout_value,
            "heldout_minus_train": heldout_value - train_loss, "examples": n, "draws": draws,
            "heldout": str(source), "train_problems": len(resolved.train), "distinct_train_problems": distinct}


@dataclass
class Decoded:
    """What `decode_samples` returns."""

    samples: list[list[str]]  # per input: K answer texts (untrusted; judge them)
    nfe: int  # model calls in all, every draw; a batched call counts once
    # Mean over inputs of the calls of the batches the input was decoded in, summed over
    # its K draws: what one problem costs when decoded batch by batch.
    nfe_per_example: float
    # Mean over inputs of the calls that included the input itself, summed over its draws
    # (differs for adaptive decoders and AR length groups); None if the decoder does not say.
    row_nfe_per_example: float | None
    decoder: str  # the decoder's name
    settings: dict[str, Any]  # the decoder's settings as used


def run_decoder_settings(cfg: Config) -> dict[str, Any]:
    """The run's own decoder settings (`decode.settings`)."""
    return dict(cfg.decode.settings)


def make_decoder(
    run: Run, decoder: str = "", steps: int = 0, decoder_settings: dict[str, Any] | None = None
) -> tuple[str, Decoder]:
    """The decoder `name` (default: the run's decode.decoder with decode.settings, else the
    objective's) with its settings: `steps` (`decode_steps`: the run's decode.steps, else
    diffusion.steps) where it has a steps setting, unless `decoder_settings` sets it;
    unknown settings and a decoder of the other family are errors."""
    if not decoder:  # the run's own decoding
        decoder = run.config.decode.decoder
        decoder_settings = {**run.config.decode.settings, **(decoder_settings or {})}
    name = decoder or run.objective.default_decoder
    cls = decoder_class(name)
    if cls.family != run.objective.family:
        raise ConfigError(f"decoder {name!r} decodes {cls.family} models; this run is {run.objective.family}")
    settings = dict(decoder_settings or {})
    if "steps" in {f.name for f in dataclasses.fields(cls)}:
        if steps and settings.get("steps", steps) != steps:
            raise ConfigError(f"steps given twice: {steps} and decoder setting steps={settings['steps']}")
        settings.setdefault("steps", decode_steps(run.config, steps))
    return name, get_decoder(name, **settings)


def decoding_dtype(precision: str) -> torch.dtype | None:
    """The autocast dtype that decodes a run trained at `precision` (its config.yaml's
    train.precision), None for fp32. `auto` is found only in runs written before the
    trainer recorded its resolved choice; those decoded in fp32, and still do."""
    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)


def answer_lengths(run: Run, inputs: Sequence[str]) -> list[int]:
    """Per input, the length in ids of its answer where the task fixes it (a decoder's
    `known_length` setting): characters of the task's own format, one id each."""
    if not isinstance(run.tokenizer, CharTokenizer):
        raise ConfigError("known_length needs dvar's character tokenizer (one id per answer character)")
    if run.config.data.answer_order != "forward":
        raise ConfigError(f"known_length: the run writes its answers in the order "
                          f"{run.config.data.answer_order!r}; only forward answers have the task's length")
    lengths = []
    for text in inputs:
        length = run.task.answer_length(run.task.parse_input(text))
        if length is None:
            raise ConfigError(f"known_length: task {run.task.name} does not fix the length of its answers")
        lengths.append(length)
    return lengths


def decode_samples(
    run: Run,
    inputs: Sequence[str],
    names: Sequence[str],
    decoder: str = "",
    steps: int = 0,
    batch_size: int = 64,
    seed: int = 0,
    decoder_settings: dict[str, Any] | None = None,
    samples: int = 1,
) -> Decoded:
    """K = `samples` independent answers per input, drawn in K rounds over all inputs with
    one generator (seeded by `seed`), so the first round is exactly what K = 1 gives.

    The draws differ through the decoder's randomness only (the Gumbel noise or random
    order of MDM decoders, `sample` for AR): a deterministic decoder repeats itself.
    `steps` sets the decoder's `steps` setting where it has one (default: `decode_steps`,
    the run's decode.steps or diffusion.steps), unless `decoder_settings` does; unknown
    settings are errors.
    """
    if samples < 1:
        raise ConfigError(f"samples must be >= 1, got {samples}")
    name, dec = make_decoder(run, decoder, steps, decoder_settings)
    prompts = []
    for text, where in zip(inputs, names):
        ids = run.tokenizer.encode_prompt(text)
        if len(ids) >= run.cutoff:
            raise SequenceTooLong(
                f"{where}: the input needs {len(ids)} tokens with SEP, leaving no room for an "
                f"answer within the run's cutoff of {run.cutoff}"
            )
        prompts.append(ids)
    lengths = answer_lengths(run, inputs) if getattr(dec, "known_length", False) else None
    # Equal prompt lengths next to each other: AR batches them without padding.
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    answers: list[list[str]] = [[] for _ in prompts]
    nfe, batch_nfe_sum, row_nfe_sum = 0, 0, 0
    rows_tracked = True
    generator = torch.Generator(device=run.model.device).manual_seed(seed)
    predict = run.objective.predictor(run.model)
    run.model.eval()
    dtype = decoding_dtype(run.config.train.precision)  # the run's own precision
    for _ in range(samples):
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            with torch.autocast(run.model.device.type, dtype=dtype, enabled=dtype is not None):
                result = dec(
                    predict, [prompts[i] for i in chunk], seq_len=run.cutoff,
                    max_new_tokens=run.max_new_tokens, generator=generator,
                    eos_id=run.tokenizer.eos_id, mask_id=run.tokenizer.mask_id,
                    answer_lengths=None if lengths is None else [lengths[i] for i in chunk],
                )
            nfe += result.nfe
            batch_nfe_sum += result.nfe * len(chunk)
            if result.row_nfe is None:
                rows_tracked = False
            else:
                row_nfe_sum += sum(result.row_nfe)
            for index, ids in zip(chunk, result.answers):
                answers[index].append(run.tokenizer.decode_answer(ids))
    n = max(len(prompts), 1)
    return Decoded(
        samples=answers, nfe=nfe, nfe_per_example=batch_nfe_sum / n,
        row_nfe_per_example=row_nfe_sum / n if rows_tracked else None,
        decoder=name, settings=dataclasses.asdict(dec),
    )


def from_order(task: Task, problem: Any, text: str, order: str) -> str:
    """`text` written in `order` mapped back to the task's own format; an answer that does
    not parse in that order maps to "" (judged wrong, never an exception)."""
    try:
        return task.from_order(problem, text, order)
    except ValueError:
        return ""


@dataclass
class Evaluation:
    rows: list[dict[str, Any]]
    metrics: dict[str, Any] = field(default_factory=dict)


def save_evaluation(result: Evaluation, out: str | Path) -> Path:
    """An eval directory (SPEC §7): predictions.jsonl, then metrics.json, written last and
    atomically, so its presence marks a finished evaluation (`dvar reproduce` reuses it)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_jsonl(out / "predictions.jsonl", result.rows)
    write_json(out / "metrics.json", result.metrics)
    return out


def evaluate(
    run: Run,
    examples: Sequence[Example],
    decoder: str = "",
    steps: int = 0,
    batch_size: int = 64,
    seed: int = 0,
    source: str = "",
    samples: int = 1,
    decoder_settings: dict[str, Any] | None = None,
) -> Evaluation:
    """Decode and judge `examples`; rows are predictions.jsonl, metrics metrics.json.

    With `samples` = K > 1 each problem is decoded K times (`decode_samples`); a row's
    `predict` is the best-of-K choice (the first sample the verifier accepts, else the
    first sample), mapped back to the task's own format when the run writes its answers
    in another order (`data.answer_order`, SPEC §9; then `raw` is the model's own text and
    an answer that does not parse in that order is "", a wrong answer), so
    `correct`/`accuracy` are best-of-K, and the row lists all K answers (`samples`) and
    their verdicts (`samples_correct`). metrics.json adds, overall and per
    group, `pass_at_1` (mean accuracy of single draws), `pass_at_k` (any of the K
    correct), `best_of_k` and `majority_at_k` (the most frequent answer text judged, ties
    to the earliest drawn); see `dvar.metrics.summarize_samples`.
    """
    start = time.perf_counter()
    names = [f"{source}:{ex.line}" for ex in examples]
    decoded = decode_samples(
        run, [ex.input for ex in examples], names, decoder, steps, batch_size, seed,
        decoder_settings, samples,
    )
    seconds = time.perf_counter() - start
    problems = [ex.problem for ex in examples]
    order = run.config.data.answer_order
    # The model wrote its answers in the run's order; the verifier judges them in the
    # task's own format. `raw` keeps what the model wrote.
    raw_samples = decoded.samples
    mapped_samples = [[from_order(run.task, problem, text, order) for text in texts]
                      for problem, texts in zip(problems, raw_samples)]
    flat = judge_all(
        run.task, [p for p in problems for _ in range(samples)],
        [a for texts in mapped_samples for a in texts],
    )
    sample_verdicts = [flat[i * samples : (i + 1) * samples] for i in range(len(examples))]
    chosen = [best_of_k(verdicts) for verdicts in sample_verdicts]
    answers = [texts[c] for texts, c in zip(mapped_samples, chosen)]
    verdicts = [vs[c] for vs, c in zip(sample_verdicts, chosen)]
    groups = [run.task.group(p) for p in problems]
    rows = []
    for ex, answer, verdict, group, texts, raws, c, vs in zip(
        examples, answers, verdicts, groups, mapped_samples, raw_samples, chosen, sample_verdicts
    ):
        row = {"input": ex.input, "output": ex.output, "predict": answer,
               "correct": verdict["correct"], "group": group}
        if order != "forward":
            row["raw"] = raws[c]
        if samples > 1:
            row.update(samples=texts, samples_correct=[v["correct"] for v in vs])
            if order != "forward":
                row["raw_samples"] = raws
        rows.append(row)
    metrics = summarize(groups, verdicts)
    by_samples = summarize_samples(groups, mapped_samples, sample_verdicts)
    for key, stats in by_samples.pop("by").items():
        metrics["by"][key].update(stats)
    metrics.update(by_samples)
    n = len(examples)
    # Answers in the task's form, right or wrong: has the model learned the format?
    metrics["well_formed"] = sum(run.task.well_formed(p, a) for p, a in zip(problems, answers)) / max(n, 1)
    # How far short of solving the answers are, where the task measures it.
    add_partial_credit(metrics, run.task, problems, answers, groups)
    metrics.update(
        task=run.task.name,
        data=source,
        objective=run.config.objective,
        answer_order=order,
        model=run.config.model,
        decoder=decoded.decoder,
        decoder_settings=decoded.settings,
        steps=decoded.settings.get("steps"),
        nfe=decoded.nfe,  # model calls in all; a batched call counts once
        # Per problem, all K draws: the calls of the batches it was in (each batch's
        # calls count for every one of its rows) / the calls that included it.
        nfe_per_example=round(decoded.nfe_per_example, 3),
        row_nfe_per_example=(
            None if decoded.row_nfe_per_example is None else round(decoded.row_nfe_per_example, 3)
        ),
        batch_size=batch_size,
        seconds=round(seconds, 3),
        examples_per_s=round(n / seconds, 3) if seconds > 0 else None,  # problems (all K draws)
    )
    return Evaluation(rows, metrics)
