"""``train``: what the CreateSolutionVersion job runs.

filter and weight events -> minimum-data checks -> HPO (when asked) -> metrics by the §5.1
protocol -> the final fit (or, for trainingMode UPDATE, a fold-in into the previous model).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from .. import evaluation
from .base import Algorithm, HyperParameters, Model, TrainingSettings, TrainingData
from .catalogue import Param, Recipe
from .capabilities import USER_HOLDOUT
from .registry import RECIPE_BY_NAME, algorithm_for, capabilities, resolve

HPO_OBJECTIVE = "normalized_discounted_cumulative_gain_at_25"
DEFAULT_HPO_JOBS = 20


@dataclass
class TrainResult:
    model: Model
    tuned_params: dict[str, Any]  # {"algorithmHyperParameters": {...}, "algorithm": {...}, "hpo": [...]}
    metrics: dict[str, float]
    trials: list[dict[str, Any]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)  # where the time went (the job logs it)

    def __iter__(self):  # model, tuned, metrics = train(...)
        return iter((self.model, self.tuned_params, self.metrics))


def train(recipe: str, data: TrainingData, solution_config: Mapping[str, Any] | None = None, *,
          event_type: str | None = None, perform_hpo: bool = False, training_mode: str = "FULL",
          previous: Model | None = None, seed: str | int = 0, settings: TrainingSettings | None = None,
          compute_metrics: bool = True) -> TrainResult:
    """Train ``recipe`` (name or ARN; legacy names train as their successor) on ``data``.

    ``solution_config`` is CreateSolution's ``solutionConfig``; ``event_type`` its top-level
    ``eventType``. ``seed`` is usually the solution version ARN (reproducible splits). Raises
    TooLittleData (user's fault, reason for failureReason) or ValueError for bad parameters.
    """
    config = dict(solution_config or {})
    settings = settings or TrainingSettings(seed=evaluation.seed_from(seed) % (2**31))
    name = resolve(recipe)
    spec = RECIPE_BY_NAME[name]
    algorithm = algorithm_for(name)
    weighted, event_weights = prepare(data, event_type, config)
    can = capabilities(name)
    can.minimum_data(weighted)

    # Legacy recipes keep their own hyperparameter table (aws-hrnn: hidden_dimension 43).
    given = RECIPE_BY_NAME.get(recipe.rsplit("/", 1)[-1], spec)
    params = HyperParameters.parse(given, config.get("algorithmHyperParameters"),
                                   config.get("featureTransformationParameters")).replace(
        _recipe=name, _given=tuple(sorted(config.get("algorithmHyperParameters") or {})),
        _asked=recipe.rsplit("/", 1)[-1])
    trials: list[dict[str, Any]] = []
    if perform_hpo and (any(p.tunable for p in spec.params) or algorithm.internal_search_space(weighted, settings)):
        params, trials = search(algorithm, spec, weighted, params, config.get("hpoConfig") or {}, settings)

    metrics: dict[str, float] = {}
    first: list[Model] = []
    seconds: dict[str, float] = {}
    boost = objective_boost(weighted, config.get("optimizationObjective")) \
        if spec.recipe_type in ("USER_PERSONALIZATION", "PERSONALIZED_RANKING") else None
    if compute_metrics:
        def fit(d: TrainingData) -> Model:
            started = time.perf_counter()
            first.append(with_objective(algorithm.fit(d, params, settings), weighted.item_ids, boost))
            seconds["metrics_fit"] = time.perf_counter() - started
            return first[-1]

        rewards = objective_rewards(weighted, config.get("optimizationObjective"))
        # Scoring many users means many small products and solves; BLAS threads only thrash.
        started = time.perf_counter()
        with threadpool_limits(1, "blas"):
            metrics = evaluation.solution_metrics(can.metric_protocol, fit, weighted, evaluation.seed_from(seed),
                                                  event_weights, rewards)
        seconds["metrics"] = time.perf_counter() - started

    started = time.perf_counter()
    if training_mode == "UPDATE" and previous is not None:
        model = algorithm.update(previous, weighted, params, settings)
    elif first and can.metric_protocol in USER_HOLDOUT and getattr(algorithm, "extends_cheaply", None) \
            and algorithm.extends_cheaply(weighted, settings, params):
        # Big catalogues: the metrics model saw 90 % of the users; fold the held-out 10 % in
        # instead of fitting everything a second time.
        with threadpool_limits(1, "blas"):
            model = algorithm.update(first[0], weighted, params, settings)
    else:
        model = algorithm.fit(weighted, params, settings)
    model = with_objective(model, weighted.item_ids, boost)
    seconds["final"] = time.perf_counter() - started
    model.meta.setdefault("recipe", name)
    tuned = {"algorithmHyperParameters": params.as_strings("algorithm"),
             "algorithm": algorithm.describe(weighted, params, settings)}
    if "l2" in model.meta:  # the value validation chose
        tuned["algorithm"]["ease_l2"] = f"{model.meta['l2']:.4g}"
    for key in ("seq_weight", "seq_decay", "meta_weight"):  # the blend validation chose
        if key in model.meta:
            tuned["algorithm"][key] = f"{model.meta[key]:.2g}"
    return TrainResult(model, tuned, metrics, trials, seconds)


def prepare(data: TrainingData, event_type: str | None, config: Mapping[str, Any]
            ) -> tuple[TrainingData, dict[int, float] | None]:
    """Apply eventType + eventValueThreshold, or eventsConfig (per-type weight and threshold).

    Without either, every interaction counts with weight 1. With eventsConfig, only the listed
    event types train (Proposed), each with its weight; returns the weights by event code for
    the weighted NDCG metric.
    """
    keep = np.ones(data.n_interactions, bool)
    vocab = {str(t): k for k, t in enumerate(data.event_types)}
    threshold = config.get("eventValueThreshold")
    weights = None
    by_code: dict[int, float] | None = None
    if event_type:
        keep &= data.event_type == vocab.get(event_type, -1)
        if threshold is not None:
            keep &= data.event_value >= float(threshold)  # NaN (null) never passes
    events = ((config.get("eventsConfig") or {}).get("eventParametersList")) or []
    if events:
        by_code = {}
        listed = np.zeros(data.n_interactions, bool)
        weights = np.zeros(data.n_interactions, np.float32)
        for e in events:
            code = vocab.get(e.get("eventType", ""), -1)
            sel = data.event_type == code
            if e.get("eventValueThreshold") is not None:
                sel &= data.event_value >= float(e["eventValueThreshold"])
            w = float(e.get("weight", 1.0))
            by_code[code] = w
            listed |= sel
            weights[sel] = w
        keep &= listed & (weights > 0)
    out = data.subset(keep)
    if weights is not None:
        out.weight = weights[keep]
    return out, by_code


def objective_rewards(data: TrainingData, objective: Mapping[str, Any] | None) -> np.ndarray | None:
    """The optimizationObjective's item column as a reward per item (None when not set)."""
    if not objective or data.items is None:
        return None
    column = objective.get("itemAttribute")
    if not column or column not in data.items.column_names:
        return None
    rows = data.item_table_rows()
    values = np.array([np.nan if v is None else float(v) for v in data.items.column(column).to_pylist()])
    rewards = np.zeros(data.n_items)
    rewards[rows >= 0] = np.nan_to_num(values[rows[rows >= 0]])
    return rewards


SENSITIVITY = {"OFF": 0.0, "LOW": 0.5, "MEDIUM": 1.0, "HIGH": 2.0}  # boost of the best item, in score spreads


def objective_boost(data: TrainingData, objective: Mapping[str, Any] | None) -> np.ndarray | None:
    """Per item of ``data``, how far optimizationObjective lifts its score, in units of the
    model's typical score spread: the reward on a log scale (prices are heavy-tailed), 0 for the
    lowest and the sensitivity's weight for the highest. None when off or not set."""
    weight = SENSITIVITY.get(str((objective or {}).get("objectiveSensitivity") or "LOW").upper(), 0.0)
    rewards = objective_rewards(data, objective)
    if rewards is None or weight == 0.0:
        return None
    scaled = np.log1p(np.maximum(rewards, 0.0))
    top = scaled.max()
    return None if top <= 0 else (weight * scaled / top).astype(np.float32)


def with_objective(model: Model, item_ids: np.ndarray, boost: np.ndarray | None) -> Model:
    """Give a collaborative model its objective boost (``objective_boost`` array, added to raw
    scores wherever they are computed), scaled by the model's own score spread."""
    if boost is None or "temperature" not in model.meta or not hasattr(model, "score_block"):
        return model
    aligned = np.zeros(model.n_items, dtype=np.float32)
    index = model.item_index(list(item_ids))
    aligned[index[index >= 0]] = boost[index >= 0]
    model.arrays["objective_boost"] = aligned * np.float32(model.meta["temperature"])
    return model


# -- HPO ------------------------------------------------------------------------------------------


def search_space(spec: Recipe, hpo: Mapping[str, Any]) -> list[tuple[Param, Any]]:
    """(param, range) per tunable hyperparameter: the hpoConfig's ranges, else the catalogue's."""
    given: dict[str, Any] = {}
    ranges = hpo.get("algorithmHyperParameterRanges") or {}
    for key in ("integerHyperParameterRanges", "continuousHyperParameterRanges"):
        for r in ranges.get(key) or []:
            given[r["name"]] = (float(r["minValue"]), float(r["maxValue"]))
    for r in ranges.get("categoricalHyperParameterRanges") or []:
        given[r["name"]] = tuple(r["values"])
    space = []
    for p in spec.params:
        if p.where != "algorithm":
            continue
        if p.name in given:
            space.append((p, given[p.name]))
        elif p.tunable and not given:
            space.append((p, p.values if p.kind == "categorical" else (p.low, p.high)))
    return space


def sample(p: Param, rng_range: Any, rng: np.random.Generator) -> Any:
    if p.kind == "categorical":
        v = rng_range[int(rng.integers(len(rng_range)))]
        return v == "true" if set(p.values) == {"true", "false"} else v
    lo, hi = rng_range
    if p.kind == "int":
        return int(rng.integers(int(lo), int(hi) + 1))
    return float(rng.uniform(lo, hi))


def search(algorithm: Algorithm, spec: Recipe, data: TrainingData, params: HyperParameters,
           hpo: Mapping[str, Any], settings: TrainingSettings) -> tuple[HyperParameters, list[dict[str, Any]]]:
    """Random search (first trial: the given/default values) optimising NDCG@25 on a validation
    split of the training data; at most maxNumberOfTrainingJobs fits."""
    budget = int((hpo.get("hpoResourceConfig") or {}).get("maxNumberOfTrainingJobs", DEFAULT_HPO_JOBS))
    rng = np.random.default_rng(settings.seed + 7)
    space = search_space(spec, hpo)
    internal = algorithm.internal_search_space(data, settings)
    val_seed = settings.seed + 11
    best, best_score, trials = params, -1.0, []
    for t in range(max(budget, 1)):
        if t == 0:
            candidate = params
        else:
            changes = {p.name: sample(p, r, rng) for p, r in space}
            for knob, (lo, hi) in internal.items():
                changes[knob] = float(math.exp(rng.uniform(math.log(lo), math.log(hi))))
            candidate = params.replace(**changes)

        def fit(d: TrainingData, c: HyperParameters = candidate) -> Model:
            return algorithm.fit(d, c, settings)

        m = evaluation.solution_metrics(capabilities(spec.name).metric_protocol, fit, data, val_seed)
        score = m.get(HPO_OBJECTIVE, m.get("hits_at_1_percent", 0.0))
        trials.append({"params": {k: v for k, v in candidate.items() if not k.startswith("_")}, "score": score})
        if score > best_score:
            best, best_score = candidate, score
    return best, trials
