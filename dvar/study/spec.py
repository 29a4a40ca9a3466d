"""A study file (`configs/studies/*.yaml`) read into typed, validated objects.

A study says what to train and compare; `dvar.study.plan` turns it into jobs. Its keys:

    name, title           what the study is (results.md's title)
    description           results.md's first paragraph ({seeds}: the seeds run)
    by_decodings          the decodings shown by breakdown key (default: each model's first)
    seeds: [0, 1, 2]       default seeds; quick_seeds: the seeds of --quick
    roles: [main, ...]     the model roles run by default (others with --roles)
    checkpoints: 4         checkpoints per run (a killed study resumes from the last)
    run: {...}             the run config of every job (the keys of `dvar train`)
    decodings:             name -> {decoder, settings}; decoder "" is the run's own
    models:                name -> {label, objective, order, role, steps_factor, run,
                           decodings, public_decodings, config}
    verdicts: [...]        computed from the numbers (`dvar.study.verdicts`)
    families:              name -> {task, options | paper, description, paper_setting,
                           train_size, test_size, steps, quick_steps, decode_steps,
                           paper_epochs, public, budgets, run, models: {name: {label,
                           steps_factor, run}}}

A family's `budgets` (shares of its step budget, e.g. [0.125, 0.25, 0.5, 1]) give each
model an accuracy-against-compute curve: the whole budget is a warmup-stable-decay run
(the trunk) and every shorter budget a branch off it at its decay start
(`train.branch_from`), the same run as training that budget alone.

Every unknown key, model, decoding, decoder, verdict kind, task or public test set is an
error naming the file and the key (as for run configs).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import yaml

from dvar.config import ConfigError

ROOT = Path(__file__).resolve().parent.parent.parent  # the checkout (configs/, ../shared/)
STUDIES = ROOT / "configs" / "studies"


@dataclasses.dataclass(frozen=True)
class Decoding:
    """One evaluation of a model: a decoder ("" = the run's own) and its settings."""

    name: str
    decoder: str = ""
    settings: tuple[tuple[str, Any], ...] = ()

    @property
    def settings_dict(self) -> dict[str, Any]:
        return dict(self.settings)


@dataclasses.dataclass(frozen=True)
class Model:
    """One model trained per family and seed."""

    name: str
    label: str
    objective: str
    role: str = "main"
    order: str = "forward"
    steps_factor: float = 1.0
    run: dict[str, Any] = dataclasses.field(default_factory=dict)  # run-config overrides
    decodings: tuple[Decoding, ...] = ()
    public_decodings: tuple[Decoding, ...] = ()  # evaluated on the family's public sets
    config: tuple[str, ...] = ()  # recipe files under the checkout ({family} substituted)


@dataclasses.dataclass(frozen=True)
class Family:
    """One task setting: its data, its run config and the models it trains."""

    name: str
    task: str
    options: dict[str, Any]
    paper: str  # a data set of `dvar generate paper` (instead of generator options)
    description: str
    paper_setting: str
    train_size: int
    test_size: int
    steps: int  # 0: each recipe's own (epochs)
    quick_steps: int
    decode_steps: int  # MDM decoding steps; 0: one answer token per step
    paper_epochs: dict[str, int]
    public: tuple[str, ...]
    run: dict[str, Any]
    models: tuple[Model, ...]
    budgets: tuple[float, ...] = (1.0,)  # shares of the step budget, ascending, ending at 1
    # The family whose held-out test problems (same seed) this one is tested on instead of
    # its own: a data-constrained family on its larger sibling's, so every data size meets
    # the same problems (`make_data` checks that none is a training problem here).
    test_of: Family | None = None

    @property
    def curve(self) -> bool:
        """Several budgets: a trunk and its branches per model and seed."""
        return len(self.budgets) > 1

    def model(self, name: str) -> Model | None:
        return next((m for m in self.models if m.name == name), None)

    def budget(self, quick: bool = False, steps: int = 0) -> int:
        """The family's step budget: `steps` if given, else quick_steps under --quick
        (where set), else `steps` of the file (0: each recipe's epochs)."""
        return steps or (self.quick_steps if quick and self.quick_steps else self.steps)


@dataclasses.dataclass(frozen=True)
class Study:
    name: str
    title: str
    description: str  # results.md's first paragraph; {seeds} is replaced by the seeds
    path: Path
    by_decodings: tuple[str, ...]  # decodings in the by-breakdown table and plots (default: each model's first)
    seeds: tuple[int, ...]
    quick_seeds: tuple[int, ...]
    roles: tuple[str, ...]
    checkpoints: int
    run: dict[str, Any]
    families: tuple[Family, ...]
    verdicts: tuple[dict[str, Any], ...]

    def family(self, name: str) -> Family:
        for family in self.families:
            if family.name == name:
                return family
        raise ConfigError(f"{self.path}: no family {name!r}; the study has "
                          f"{', '.join(f.name for f in self.families)}")


_STUDY_KEYS = {"name", "title", "by_decodings", "description", "seeds", "quick_seeds", "roles", "checkpoints", "run",
               "decodings", "models", "verdicts", "families"}
_MODEL_KEYS = {"label", "objective", "order", "role", "steps_factor", "run", "decodings",
               "public_decodings", "config"}
_FAMILY_KEYS = {"task", "options", "paper", "description", "paper_setting", "train_size", "test_size",
                "steps", "quick_steps", "decode_steps", "paper_epochs", "public", "budgets", "run", "models",
                "test_of"}
_FAMILY_MODEL_KEYS = {"label", "steps_factor", "run", "config"}
VERDICT_KINDS = ("compare", "bars", "well_formed", "reach", "gap", "saturation", "data")


def study_path(name: str | Path) -> Path:
    """A study file by path, or by name under configs/studies/ (`miniature`)."""
    path = Path(name)
    if path.is_file():
        return path
    named = STUDIES / f"{name}.yaml"
    if named.is_file():
        return named
    known = ", ".join(sorted(p.stem for p in STUDIES.glob("*.yaml")))
    raise ConfigError(f"{name}: no such study file (shipped studies: {known})")


def load_study(name: str | Path) -> Study:
    """Read and validate a study file (a path, or a name under configs/studies/)."""
    path = study_path(name)
    raw = yaml.safe_load(path.read_text()) or {}
    where = str(path)
    _keys(raw, _STUDY_KEYS, where, "top level")
    decodings = {key: _decoding(key, value, f"{where}: decodings.{key}")
                 for key, value in _mapping(raw.get("decodings", {}), where, "decodings").items()}
    models = {key: _model(key, value, decodings, f"{where}: models.{key}")
              for key, value in _mapping(raw.get("models", {}), where, "models").items()}
    families = tuple(_family(key, value, models, f"{where}: families.{key}")
                     for key, value in _mapping(raw.get("families", {}), where, "families").items())
    if not families:
        raise ConfigError(f"{where}: a study needs at least one family")
    families = _shared_tests(families, raw["families"], where)
    verdicts = tuple(_verdict(v, models, f"{where}: verdicts[{i}]")
                     for i, v in enumerate(raw.get("verdicts") or []))
    names = {f.name for f in families}
    for i, verdict in enumerate(verdicts):
        unknown = [f for f in verdict.get("families") or [] if f not in names]
        if unknown:
            raise ConfigError(f"{where}: verdicts[{i}]: unknown family {unknown[0]!r}; "
                              f"defined: {', '.join(sorted(names))}")
    seeds = tuple(int(s) for s in raw.get("seeds", [0]))
    study = Study(
        name=str(raw.get("name", path.stem)), title=str(raw.get("title", raw.get("name", path.stem))),
        by_decodings=_pick(raw.get("by_decodings"), decodings, where, "by_decodings") and tuple(
            raw["by_decodings"]),
        description=str(raw.get("description", "")).strip(),
        path=path, seeds=seeds, quick_seeds=tuple(int(s) for s in raw.get("quick_seeds", seeds[:1])),
        roles=tuple(raw.get("roles", ["main"])), checkpoints=int(raw.get("checkpoints", 4)),
        run=_mapping(raw.get("run", {}), where, "run"), families=families, verdicts=verdicts,
    )
    _check_run_keys(study)
    return study


def _keys(raw: Any, allowed: set[str], where: str, section: str) -> None:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: {section} must be a mapping")
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} at {section}; valid keys: "
                          f"{', '.join(sorted(allowed))}")


def _mapping(value: Any, where: str, key: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: {key} must be a mapping")
    return value


def _decoding(name: str, raw: Any, where: str) -> Decoding:
    from dvar.config import check_decoder_settings
    from dvar.decoders import decoder_names

    _keys(raw, {"decoder", "settings"}, where, "this decoding")
    decoder = str(raw.get("decoder", "") or "")
    settings = _mapping(raw.get("settings", {}), where, "settings")
    if decoder:
        if decoder not in decoder_names():
            raise ConfigError(f"{where}: unknown decoder {decoder!r}; known: {', '.join(decoder_names())}")
        settings = check_decoder_settings(decoder, settings, where)
    elif settings:
        raise ConfigError(f"{where}: settings need a decoder")
    return Decoding(name, decoder, tuple(sorted(settings.items())))


def _pick(names: Any, known: dict[str, Any], where: str, key: str) -> tuple:
    if names is None:
        return ()
    if not isinstance(names, list):
        raise ConfigError(f"{where}: {key} must be a list of names")
    missing = [n for n in names if n not in known]
    if missing:
        raise ConfigError(f"{where}: unknown {key.rstrip('s').replace('public_', '')} {missing[0]!r} in "
                          f"{key}; defined: {', '.join(known) or 'none'}")
    return tuple(known[n] for n in names)


def _model(name: str, raw: Any, decodings: dict[str, Decoding], where: str) -> Model:
    from dvar.objectives import objective_names

    _keys(raw, _MODEL_KEYS, where, "this model")
    objective = str(raw.get("objective", ""))
    if objective not in objective_names():
        raise ConfigError(f"{where}: objective {objective!r} is not one of {', '.join(objective_names())}")
    return Model(
        name=name, label=str(raw.get("label", name)), objective=objective,
        role=str(raw.get("role", "main")), order=str(raw.get("order", "forward")),
        steps_factor=float(raw.get("steps_factor", 1.0)), run=_mapping(raw.get("run"), where, "run"),
        decodings=_pick(raw.get("decodings", []), decodings, where, "decodings"),
        public_decodings=_pick(raw.get("public_decodings", []), decodings, where, "public_decodings"),
        config=tuple(_strings(raw.get("config", []))),
    )


def _strings(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else [str(v) for v in value or []]


def _family(name: str, raw: Any, models: dict[str, Model], where: str) -> Family:
    from dvar.tasks import get_task, task_names

    _keys(raw, _FAMILY_KEYS, where, "this family")
    task_name = str(raw.get("task", ""))
    if task_name not in task_names():
        raise ConfigError(f"{where}: task {task_name!r} is not one of {', '.join(task_names())}")
    task = get_task(task_name)
    options = _mapping(raw.get("options", {}), where, "options")
    try:
        task.make_options(**options)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{where}: options: {err}") from None
    chosen = []
    for key, extra in _mapping(raw.get("models"), where, "models").items():
        if key not in models:
            raise ConfigError(f"{where}: unknown model {key!r} in models; the study defines "
                              f"{', '.join(models) or 'none'}")
        extra = extra or {}
        _keys(extra, _FAMILY_MODEL_KEYS, f"{where}: models.{key}", "this model")
        model = models[key]
        if model.order != "forward" and model.order not in task.answer_orders:
            raise ConfigError(f"{where}: model {key}: task {task_name} has no answer order "
                              f"{model.order!r} (it has {', '.join(task.answer_orders)})")
        chosen.append(dataclasses.replace(
            model, label=str(extra.get("label", model.label)),
            steps_factor=float(extra.get("steps_factor", model.steps_factor)),
            run={**model.run, **_mapping(extra.get("run"), where, "run")},
            config=tuple(_strings(extra["config"])) if "config" in extra else model.config,
        ))
    if not chosen:
        raise ConfigError(f"{where}: models: the family trains no model")
    public = tuple(_strings(raw.get("public", [])))
    _check_public(public, where)
    budgets = _budgets(raw.get("budgets", [1.0]), where)
    if len(budgets) > 1 and not int(raw.get("steps", 0)):
        raise ConfigError(f"{where}: budgets need a step budget (steps), not each recipe's epochs")
    return Family(
        name=name, task=task_name, options=options, paper=str(raw.get("paper", "")),
        description=str(raw.get("description", name)), paper_setting=str(raw.get("paper_setting", "")),
        train_size=int(raw.get("train_size", 20000)), test_size=int(raw.get("test_size", 500)),
        steps=int(raw.get("steps", 0)), quick_steps=int(raw.get("quick_steps", 0)),
        decode_steps=int(raw.get("decode_steps", 0)),
        paper_epochs={str(k): int(v) for k, v in _mapping(raw.get("paper_epochs"), where, "paper_epochs").items()},
        public=public, run=_mapping(raw.get("run"), where, "run"), models=tuple(chosen), budgets=budgets,
    )


def _shared_tests(families: tuple[Family, ...], raw: dict[str, Any], where: str) -> tuple[Family, ...]:
    """Resolve each family's `test_of` (a family of the same generated task and options,
    with at least as many training problems, that itself has its own test problems)."""
    by_name = {f.name: f for f in families}
    resolved = []
    for family in families:
        name = raw[family.name].get("test_of")
        if name is None:
            resolved.append(family)
            continue
        here = f"{where}: families.{family.name}: test_of"
        other = by_name.get(str(name))
        if other is None or other is family:
            raise ConfigError(f"{here}: {name!r} is not another family of the study "
                              f"(families: {', '.join(by_name)})")
        if other.paper or family.paper or raw[other.name].get("test_of") is not None:
            raise ConfigError(f"{here}: both families must generate their data, and {other.name} must have "
                              f"its own test problems")
        if (other.task, other.options) != (family.task, family.options):
            raise ConfigError(f"{here}: {other.name} generates other problems ({other.task} {other.options}, "
                              f"not {family.task} {family.options})")
        if other.train_size < family.train_size:
            raise ConfigError(f"{here}: {other.name} trains on fewer problems ({other.train_size:,}) than "
                              f"{family.name} ({family.train_size:,}); its test problems are held out "
                              f"from its own training problems, so the larger family must lend them")
        resolved.append(dataclasses.replace(family, test_of=other))
    return tuple(resolved)


def _budgets(raw: Any, where: str) -> tuple[float, ...]:
    """Shares of the step budget: distinct, in (0, 1], ascending, the last 1."""
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{where}: budgets must be a list of shares of the step budget, e.g. [0.25, 0.5, 1]")
    try:
        budgets = tuple(float(b) for b in raw)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: budgets must be numbers, got {raw}") from None
    if list(budgets) != sorted(set(budgets)) or budgets[0] <= 0 or budgets[-1] != 1.0:
        raise ConfigError(f"{where}: budgets must ascend without repeats, above 0, and end at 1 "
                          f"(the whole budget), got {list(raw)}")
    return budgets


def public_dir() -> Path | None:
    """../shared/testsets beside the checkout (or $DVAR_TESTSETS), if present."""
    import os

    env = os.environ.get("DVAR_TESTSETS")
    candidates = [Path(env)] if env else []
    candidates += [ROOT.parent / "shared" / "testsets", Path.cwd().parent / "shared" / "testsets"]
    return next((path for path in candidates if path.is_dir()), None)


def _check_public(names: tuple[str, ...], where: str) -> None:
    """A public test set must be one of the checkout's ../shared/testsets (when that
    folder is here; $DVAR_TESTSETS may point elsewhere, at a subset, e.g. in tests)."""
    folder = ROOT.parent / "shared" / "testsets"
    if not folder.is_dir():
        return
    for name in names:
        if not (folder / name).is_file():
            known = ", ".join(sorted(p.name for p in folder.iterdir() if p.is_file()))
            raise ConfigError(f"{where}: unknown public test set {name!r}; {folder} has {known}")


def _verdict(raw: Any, models: dict[str, Model], where: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: a verdict must be a mapping")
    kind = raw.get("kind")
    if kind not in VERDICT_KINDS:
        raise ConfigError(f"{where}: kind {kind!r} is not one of {', '.join(VERDICT_KINDS)}")
    allowed = {"compare": {"name", "kind", "label", "a", "b", "b_role", "a_label", "b_label", "always",
                           "families"},
               "bars": {"name", "kind", "label", "group", "bars", "says", "families"},
               "well_formed": {"name", "kind", "label", "models", "bar", "families"},
               "reach": {"name", "kind", "label", "a", "b", "a_label", "b_label", "thresholds",
                         "families"},
               "gap": {"name", "kind", "label", "a", "b", "others", "families"},
               "saturation": {"name", "kind", "label", "models", "families"},
               "data": {"name", "kind", "label", "models", "families"}}[kind]
    _keys(raw, allowed, where, "this verdict")
    refs = [raw.get("a"), raw.get("b")] + [bar.get("model") for bar in raw.get("bars", [])]
    listed = raw.get("models") or {}
    refs += [f"{m}/{d}" for m, d in listed.items()] if isinstance(listed, dict) else list(listed)
    refs += list(raw.get("others") or [])
    for key in {"gap": ("a", "b", "others"), "saturation": ("models",), "data": ("models", "families")}.get(kind, ()):
        if not raw.get(key):
            raise ConfigError(f"{where}: a {kind} verdict needs {key!r}")
    for ref in filter(None, refs):
        model = str(ref).split("/")[0]
        if model not in models:
            raise ConfigError(f"{where}: unknown model {model!r} in {ref!r}; defined: {', '.join(models)}")
    return dict(raw)


def _check_run_keys(study: Study) -> None:
    """Every run-config override must be a key of `dvar train` (checked on a Config)."""
    from dvar.config import Config, _set

    sources = [(f"{study.path}: run", study.run)]
    for family in study.families:
        sources.append((f"{study.path}: families.{family.name}.run", family.run))
        sources += [(f"{study.path}: models.{m.name}.run", m.run) for m in family.models]
    for source, values in sources:
        cfg = Config()
        for key, value in flatten(values).items():
            _set(cfg, key, value, source)


def flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"train": {"lr": 1}} and {"train.lr": 1} alike -> {"train.lr": 1}; decode.settings
    (a mapping value) stays whole."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and not name.endswith("settings"):
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat
