"""Subgoal diagnostics, the paper's central analysis: where in the answer a model errs,
and in which order a diffusion model writes the answer.

    run = load_run("runs/path-mdm")
    analysis = analyze(run, read_examples("test.jsonl", run.task)[:500])
    write_plots(analysis, "analysis/")

Positions are answer positions: 0 is the first character after SEP, and an answer of c
characters has positions 0..c (c is its EOS). Per position, over the examples that have it:
- AR, `teacher_forcing`: loss and accuracy of the next-token prediction from the gold
  prefix (what the AR objective trains);
- MDM, `mask_rates`: at mask rate r every position after SEP is masked with probability r
  (the MDM forward process at r = (t+1)/T) and the unweighted cross-entropy and accuracy
  are read at the masked answer positions;
- MDM, `decode_order`: the step (1 = first model call) at which the decoder revealed each
  position for good (`dvar.decoders.RevealTrace`); where the task lays its answer out as a
  grid (`Task.answer_grid`, Sudoku) also as that grid, and, where it says which cells the
  input gives (`Task.given_cells`), over the other cells only, with the mean step of given
  vs other cells. Grids are read in the task's own answer order only.
Answers made of parts (`Task.part_separator`; path: edges split by `/`, countdown:
equations split by `,`) get the same per part and per breakdown key (path: planning
distance): a part's loss is the mean over its scored characters, it is correct when they
all are, and it is fixed at the step its last character is revealed (parts of the decoded
answer there).

MDM, in the task's own answer order, for tasks with `Task.direction_units` (path):
`decode_order.direction` says per breakdown key whether the model wrote the answer goal
side first (SPEC §9: does diffusion learn to decode from the goal?). The units the input
does not give away (path compact: the interior nodes; edge list: every edge) are split
into a start-side half and a goal-side half (the middle unit of an odd count belongs to
neither); a half is fixed at the step its last unit is, and a problem counts as
`backward` when the goal-side half was fixed strictly first, `forward` when the start-side
half was, `tie` otherwise. It needs two such units (paths of 4+ nodes in the compact
form); problems with fewer are counted in `undefined`.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from dvar.config import ConfigError
from dvar.data import Example, written_answers
from dvar.decoders import RevealTrace
from dvar.evaluate import Run, from_order, make_decoder
from dvar.metrics import group_sort_key
from dvar.objectives import Batch, answer_masks, make_batch
from dvar.objectives.mdm import mask_at_rates
from dvar.tasks.base import unit_spans
from dvar.tokenizer import CharTokenizer

MASK_RATES = (0.25, 0.5, 0.75, 1.0)
NAN = float("nan")


# ---------------------------------------------------------------------- per token
@torch.no_grad()
def teacher_forced(run: Run, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, correct) B x L, float: the prediction of each answer token (output and EOS)
    from the gold prefix before it; NaN at every other position."""
    ids_BxL = batch["input_ids"]
    logits_BxLxV = run.objective.logits(run.model, ids_BxL).float()
    # Token i is predicted at position i-1; position 0 is never an answer position.
    token_loss_BxK = F.cross_entropy(logits_BxLxV[:, :-1].transpose(1, 2), ids_BxL[:, 1:], reduction="none")
    loss_BxL = F.pad(token_loss_BxK, (1, 0), value=NAN)
    correct_BxL = F.pad((logits_BxLxV[:, :-1].argmax(-1) == ids_BxL[:, 1:]).float(), (1, 0), value=NAN)
    scored_BxL = answer_masks(batch)
    return loss_BxL.where(scored_BxL, NAN), correct_BxL.where(scored_BxL, NAN)


@torch.no_grad()
def masked_at_rate(
    run: Run, batch: Batch, rate: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, correct) B x L, float, at the answer positions that the MDM forward process
    at mask rate `rate` masked; NaN elsewhere."""
    ids_BxL = batch["input_ids"]
    rate_B = torch.full((ids_BxL.size(0),), rate)
    noisy_BxL, masked_BxL = mask_at_rates(ids_BxL, batch["answer_start"], rate_B, generator,
                                          run.objective.mask_id)
    logits_BxLxV = run.objective.logits(run.model, noisy_BxL).float()
    loss_BxL = F.cross_entropy(logits_BxLxV.transpose(1, 2), ids_BxL, reduction="none")
    correct_BxL = (logits_BxLxV.argmax(-1) == ids_BxL).float()
    scored_BxL = masked_BxL & answer_masks(batch)
    return loss_BxL.where(scored_BxL, NAN), correct_BxL.where(scored_BxL, NAN)


def to_answer(values_BxL: torch.Tensor, start_B: torch.Tensor, width: int) -> torch.Tensor:
    """B x width: values at answer positions start_B .. start_B + width - 1 (NaN past L)."""
    index_BxA = start_B[:, None] + torch.arange(width)[None, :]
    inside_BxA = index_BxA < values_BxL.size(1)
    gathered_BxA = values_BxL.float().gather(1, index_BxA.clamp(max=values_BxL.size(1) - 1))
    return gathered_BxA.where(inside_BxA, NAN)


# ---------------------------------------------------------------------- summaries
def _mean_by_column(values_NxA: torch.Tensor) -> tuple[list[float | None], list[int]]:
    """Column means ignoring NaN (None where a column has no value) and counts."""
    present_NxA = ~values_NxA.isnan()
    count_A = present_NxA.sum(0)
    mean_A = values_NxA.nan_to_num(0.0).sum(0) / count_A.clamp(min=1)
    return [round(float(m), 5) if c else None for m, c in zip(mean_A, count_A)], count_A.tolist()


def summarize_positions(loss_NxA: torch.Tensor, correct_NxA: torch.Tensor) -> dict[str, list]:
    loss, count = _mean_by_column(loss_NxA)
    accuracy, _ = _mean_by_column(correct_NxA)
    return {"loss": loss, "accuracy": accuracy, "count": count}


def _per_part(
    values_NxA: torch.Tensor, spans: Sequence[list[tuple[int, int]]], reduce: str
) -> torch.Tensor:
    """N x P: each part's mean / all(==1) / max over its non-NaN characters (NaN if none)."""
    width = max((len(s) for s in spans), default=0)
    out_NxP = torch.full((len(spans), width), NAN)
    for i, row_spans in enumerate(spans):
        for p, (a, b) in enumerate(row_spans):
            chars = values_NxA[i, a:b]
            chars = chars[~chars.isnan()]
            if chars.numel():
                out_NxP[i, p] = {"mean": chars.mean(), "all": (chars == 1).all().float(),
                                 "max": chars.max()}[reduce]
    return out_NxP


def _split(groups: Sequence[str], **columns_NxP: torch.Tensor) -> dict[str, dict[str, Any]]:
    """Per breakdown key: column means of each N x P tensor (`name` -> mean, plus count)."""
    out: dict[str, dict[str, Any]] = {}
    for key in sorted(set(groups), key=group_sort_key):
        rows = torch.tensor([g == key for g in groups])
        entry: dict[str, Any] = {"n": int(rows.sum())}
        for name, values_NxP in columns_NxP.items():
            entry[name], entry["count"] = _mean_by_column(values_NxP[rows])
        out[key] = entry
    return out


# ---------------------------------------------------------------------- analysis
def analyze(
    run: Run,
    examples: Sequence[Example],
    mask_rates: Sequence[float] = MASK_RATES,
    decoder: str = "",
    steps: int = 0,
    decoder_settings: dict[str, Any] | None = None,
    batch_size: int = 64,
    seed: int = 0,
    source: str = "",
) -> dict[str, Any]:
    """Every number of the diagnostics as one JSON-ready dict (see the module docstring)."""
    if not examples:
        raise ConfigError("no examples to analyze")
    if any(ex.output is None for ex in examples):
        raise ConfigError("analyze needs gold outputs")
    if not isinstance(run.tokenizer, CharTokenizer):
        # Positions, parts and grids are read as characters of the answer text.
        raise ConfigError("analyze needs a run with dvar's character tokenizer (not model=hf:...)")
    run.model.eval()
    device = run.model.device
    tok = run.tokenizer
    order = run.config.data.answer_order
    if order != "forward":  # positions and parts are those of the answer as the model writes it
        examples = [dataclasses.replace(ex, output=text) for ex, text in zip(
            examples, written_answers(run.task, list(examples), order, run.config.seed, source))]
    width = max(len(ex.output) for ex in examples) + 1  # answer positions, EOS included
    groups = [run.task.group(ex.problem) for ex in examples]
    separator = _one(run.task.part_separator(ex.problem) for ex in examples)
    gold_spans = [unit_spans(ex.output, separator) for ex in examples] if separator else []
    result: dict[str, Any] = {
        "run": str(run.path or ""), "data": source, "task": run.task.name,
        "objective": run.config.objective, "answer_order": order, "model": run.config.model,
        "n": len(examples),
        "answer_positions": width,
        "groups": {key: groups.count(key) for key in sorted(set(groups), key=group_sort_key)},
    }
    if separator:
        result["part_separator"] = separator

    batches = []
    for begin in range(0, len(examples), batch_size):
        rows = [tok.encode_example(ex.input, ex.output, run.cutoff, name=f"{source}:{ex.line}")
                for ex in examples[begin : begin + batch_size]]
        batches.append(make_batch(rows, tok, device))

    def scored(measure) -> dict[str, Any]:
        """Per position (and part) summary of `measure(batch) -> (loss, correct) B x L`."""
        loss_rows, correct_rows = [], []
        for batch in batches:
            loss_BxL, correct_BxL = measure(batch)
            start_B = batch["answer_start"].cpu()
            loss_rows.append(to_answer(loss_BxL.cpu(), start_B, width))
            correct_rows.append(to_answer(correct_BxL.cpu(), start_B, width))
        loss_NxA, correct_NxA = torch.cat(loss_rows), torch.cat(correct_rows)
        entry: dict[str, Any] = summarize_positions(loss_NxA, correct_NxA)
        if separator:
            entry["parts"] = _split(groups, loss=_per_part(loss_NxA, gold_spans, "mean"),
                                    accuracy=_per_part(correct_NxA, gold_spans, "all"))
        return entry

    if run.objective.family == "ar":
        result["teacher_forcing"] = scored(lambda batch: teacher_forced(run, batch))
        return result
    generator = torch.Generator(device=device).manual_seed(seed)
    result["mask_rates"] = {
        f"{rate:g}": scored(lambda batch, rate=rate: masked_at_rate(run, batch, rate, generator))
        for rate in mask_rates
    }
    result["decode_order"] = decode_order(run, examples, width, groups, decoder, steps, decoder_settings,
                                          batch_size, seed, separator)
    return result


def decode_order(
    run: Run, examples: Sequence[Example], width: int, groups: Sequence[str], decoder: str, steps: int,
    decoder_settings: dict[str, Any] | None, batch_size: int, seed: int, separator: str | None,
) -> dict[str, Any]:
    """When the decoder revealed each answer position (mean step, per position, per part)."""
    name, dec = make_decoder(run, decoder, steps, decoder_settings)
    generator = torch.Generator(device=run.model.device).manual_seed(seed)
    predict = run.objective.predictor(run.model)

    def decode(chunk: Sequence[Example]) -> tuple[torch.Tensor, list[str], int]:
        trace = RevealTrace(predict, run.tokenizer.mask_id)
        prompts = [run.tokenizer.encode_prompt(ex.input) for ex in chunk]
        result = dec(trace, prompts, seq_len=run.cutoff, generator=generator, eos_id=run.tokenizer.eos_id,
                     mask_id=run.tokenizer.mask_id)
        start_B = torch.tensor([len(p) for p in prompts])
        return (to_answer(trace.reveal_steps(), start_B, width),
                [run.tokenizer.decode_answer(ids) for ids in result.answers], result.nfe)

    reveal_rows, texts, calls = [], [], 0
    for begin in range(0, len(examples), batch_size):
        chunk = examples[begin : begin + batch_size]
        try:
            pieces = [decode(chunk)]
        except ValueError:  # a decoder that drops finished rows: one prompt at a time
            pieces = [decode([ex]) for ex in chunk]
        for reveal_BxA, answers, nfe in pieces:
            reveal_rows.append(reveal_BxA)
            texts += answers
            calls += nfe
    decoded_NxA = torch.cat(reveal_rows)
    # Per position: each example's own answer positions (its gold output and EOS).
    lengths_N = torch.tensor([len(ex.output) + 1 for ex in examples])
    reveal_NxA = decoded_NxA.where(torch.arange(width)[None, :] < lengths_N[:, None], NAN)
    order = run.config.data.answer_order
    verdicts = [run.task.judge(ex.problem, from_order(run.task, ex.problem, text, order))["correct"]
                for ex, text in zip(examples, texts)]
    mean_step, count = _mean_by_column(reveal_NxA)
    out: dict[str, Any] = {
        "decoder": name, "settings": dataclasses.asdict(dec), "nfe": calls,
        "accuracy": sum(verdicts) / len(verdicts), "mean_reveal_step": mean_step, "count": count,
    }
    grid = _one(run.task.answer_grid(ex.problem) for ex in examples) if order == "forward" else None
    if grid and all(len(ex.output) == grid[0] * grid[1] for ex in examples):
        rows, columns = grid
        out["grid"] = [mean_step[r * columns : (r + 1) * columns] for r in range(rows)]
        given = [run.task.given_cells(ex.problem) for ex in examples]
        if all(g is not None and len(g) == len(ex.output) for g, ex in zip(given, examples)):
            # Given cells are copies of the input; the blanks are the problem. A cell's mean
            # over all puzzles mixes the two, so the blanks get their own grid and means.
            pad = [False] * (width - rows * columns)  # EOS
            given_NxA = torch.tensor([g + pad for g in given])
            blank_NxA = torch.tensor([[not c for c in g] + pad for g in given])
            blank_step, _ = _mean_by_column(reveal_NxA.where(blank_NxA, NAN))
            out["grid_blank_cells"] = [blank_step[r * columns : (r + 1) * columns] for r in range(rows)]
            out["given_mean_reveal_step"] = round(float(reveal_NxA[given_NxA].mean()), 5)
            out["blank_mean_reveal_step"] = round(float(reveal_NxA[blank_NxA].mean()), 5)
    if separator:
        spans = [unit_spans(text, separator) for text in texts]
        out["parts"] = _split(groups, fixed_step=_per_part(decoded_NxA, spans, "max"))
    if order == "forward":
        units = [run.task.direction_units(ex.problem, text) for ex, text in zip(examples, texts)]
        if any(u is not None for u in units):
            out["direction"] = decode_direction(units, decoded_NxA, groups)
    return out


def _one(values: Any) -> Any:
    """The value all of `values` share, else None (examples laid out differently)."""
    distinct = set(values)
    return distinct.pop() if len(distinct) == 1 else None


def decode_direction(
    units: Sequence[Sequence[tuple[int, int]] | None], reveal_NxA: torch.Tensor, groups: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """Per breakdown key (and `all`): shares of problems whose decoded answer was fixed goal
    side first (`backward`), start side first (`forward`) or at once (`tie`); see the module
    docstring. `units[i]`: the spans of answer i's units, start side first
    (`Task.direction_units`; None: undefined). Shares are over the problems where the
    direction is defined."""
    labels: list[str | None] = []
    for i, spans in enumerate(units):
        if spans is None:
            labels.append(None)
            continue
        fixed = [float(reveal_NxA[i, a:b].max()) if reveal_NxA[i, a:b].numel() else NAN for a, b in spans]
        half = len(fixed) // 2
        if half == 0 or any(math.isnan(step) for step in fixed):
            labels.append(None)
            continue
        start_side, goal_side = max(fixed[:half]), max(fixed[len(fixed) - half :])
        labels.append("backward" if goal_side < start_side else "forward" if start_side < goal_side else "tie")
    out: dict[str, dict[str, Any]] = {}
    for key in [*sorted(set(groups), key=group_sort_key), "all"]:
        chosen = [label for label, group in zip(labels, groups) if key in ("all", group)]
        defined = [label for label in chosen if label is not None]
        entry: dict[str, Any] = {"n": len(chosen), "undefined": len(chosen) - len(defined)}
        for name in ("backward", "forward", "tie"):
            entry[name] = round(defined.count(name) / len(defined), 5) if defined else None
        out[key] = entry
    return out


# ---------------------------------------------------------------------- plots
def write_plots(analysis: dict[str, Any], out: str | Path) -> list[Path]:
    """PNG plots of an `analyze` result; returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    title = f"{analysis['task']} {analysis['objective']} {analysis['model']}"
    settings = ({"teacher forcing": analysis["teacher_forcing"]} if "teacher_forcing" in analysis
                else {f"mask rate {r}": v for r, v in analysis["mask_rates"].items()})
    written = []

    def save(fig, name: str) -> None:
        if not fig.get_layout_engine():  # a colorbar over several panels brings its own
            fig.tight_layout()
        fig.savefig(out / name, dpi=90)
        plt.close(fig)
        written.append(out / name)

    fig, (loss_ax, acc_ax) = plt.subplots(2, 1, figsize=(7.0, 5.6), sharex=True)
    for label, entry in settings.items():
        xs = [i for i, v in enumerate(entry["loss"]) if v is not None]
        loss_ax.plot(xs, [entry["loss"][i] for i in xs], ".-", label=label)
        acc_ax.plot(xs, [100 * entry["accuracy"][i] for i in xs], ".-", label=label)
    loss_ax.set_ylabel("loss (cross-entropy)")
    loss_ax.set_title(f"{title}: per answer position")
    loss_ax.legend(fontsize=8)
    acc_ax.set_ylabel("token accuracy (%)")
    acc_ax.set_xlabel("answer position (0 = first after SEP; last = EOS)")
    save(fig, "per_position.png")

    if "part_separator" in analysis:
        fig, axes = plt.subplots(1, len(settings), figsize=(4.2 * len(settings), 3.6), squeeze=False,
                                 sharey=True)
        for ax, (label, entry) in zip(axes[0], settings.items()):
            for key, part in entry["parts"].items():
                xs = [i for i, v in enumerate(part["loss"]) if v is not None]
                ax.plot([x + 1 for x in xs], [part["loss"][i] for i in xs], "o-", label=key)
            ax.set_title(label, fontsize=9)
            ax.set_xlabel("part of the answer (1 = first)")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes[0][0].set_ylabel("mean loss per character")
        axes[0][-1].legend(fontsize=7)
        fig.suptitle(f"{title}: loss per part, by breakdown key", fontsize=10)
        save(fig, "per_part_loss.png")

    order = analysis.get("decode_order")
    if order:
        from dvar.report import decoder_label

        t_label = f" T={order['settings']['steps']}" if "steps" in order["settings"] else ""
        label = (f"{decoder_label(order['decoder'], order['settings'])}{t_label} "
                 f"({order['nfe']} calls in all, accuracy {100 * order['accuracy']:.1f}%)")
        if "grid" in order:
            panels = [("all cells", order["grid"])]
            if "grid_blank_cells" in order:
                panels.append(("blank cells only", order["grid_blank_cells"]))
            fig, axes = plt.subplots(1, len(panels), figsize=(4.8 * len(panels), 4.4), squeeze=False,
                                     layout="constrained")
            axes = list(axes[0])
            values = [v for _, grid in panels for row in grid for v in row if v is not None]
            for ax, (name, grid) in zip(axes, panels):
                grid = [[NAN if v is None else v for v in row] for row in grid]
                image = ax.imshow(grid, cmap="viridis", vmin=min(values), vmax=max(values))
                for r, row in enumerate(grid):
                    for c, value in enumerate(row):
                        ax.text(c, r, f"{value:.1f}", ha="center", va="center", color="white",
                                fontsize=7 if len(grid) > 4 else 10)
                ax.set_xticks([])
                ax.set_yticks([])
                ax.set_title(name, fontsize=9)
            fig.colorbar(image, ax=axes, label="mean reveal step")
            means = (f"\nmean reveal step: given cells {order['given_mean_reveal_step']:.1f}, "
                     f"blank cells {order['blank_mean_reveal_step']:.1f}" if "grid_blank_cells" in order else "")
            fig.suptitle(f"{title}: decoding order, {label}{means}", fontsize=9)
        else:
            fig, ax = plt.subplots(figsize=(7.0, 3.6))
            steps = order["mean_reveal_step"]
            xs = [i for i, v in enumerate(steps) if v is not None]
            ax.plot(xs, [steps[i] for i in xs], ".-")
            ax.set_xlabel("answer position")
            ax.set_ylabel("mean reveal step")
            ax.set_title(f"{title}: decoding order, {label}", fontsize=9)
        save(fig, "decode_order.png")
        if "parts" in order:
            fig, ax = plt.subplots(figsize=(6.4, 4.0))
            for key, part in order["parts"].items():
                xs = [i for i, v in enumerate(part["fixed_step"]) if v is not None]
                ax.plot([x + 1 for x in xs], [part["fixed_step"][i] for i in xs], "o-", label=key)
            ax.set_xlabel("part of the decoded answer (1 = first)")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_ylabel("mean step at which it was fixed")
            ax.set_title(f"{title}: when each part was fixed, {order['decoder']}", fontsize=9)
            ax.legend(fontsize=8)
            save(fig, "decode_order_parts.png")
        direction = {key: entry for key, entry in order.get("direction", {}).items()
                     if entry["backward"] is not None}
        if direction:
            fig, ax = plt.subplots(figsize=(6.4, 3.8))
            keys = list(direction)
            bottom = [0.0] * len(keys)
            for name, color in (("backward", "tab:green"), ("tie", "tab:grey"), ("forward", "tab:red")):
                share = [100 * direction[k][name] for k in keys]
                ax.bar(keys, share, bottom=bottom, color=color, label=f"{name} (goal side fixed "
                       f"{ {'backward': 'first', 'tie': 'together', 'forward': 'last'}[name] })")
                bottom = [b + v for b, v in zip(bottom, share)]
            ax.set_ylabel("problems (%)")
            ax.set_ylim(0, 100)
            ax.set_title(f"{title}: does it decode the path from the goal? ({order['decoder']})", fontsize=9)
            ax.legend(fontsize=7, loc="lower right")
            save(fig, "decode_direction.png")
    return written
