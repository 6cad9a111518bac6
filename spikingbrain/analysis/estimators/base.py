"""The estimator contract: constants with sources, results, configs and the registry.

An estimator is a frozen config dataclass (a subclass of :class:`EstimatorConfig` with a
registry ``name``) plus a factory ``factory(config) -> callable(list[LayerWorkload]) ->
EnergyEstimate``. Every number an estimator uses is a :class:`Constant` carrying its unit and
its source, and every :class:`EnergyEstimate` lists them, so each figure can be traced.

>>> from dataclasses import dataclass, field
>>> from spikingbrain.analysis.estimators.workload import LayerWorkload
>>> @dataclass(frozen=True)
... class PerSpikeConfig(EstimatorConfig):
...     name = "doctest_per_spike"
...     e_add: Constant = field(default=Constant("e_add", 0.03, "pJ", "Horowitz ISSCC 2014"))
>>> def per_spike(cfg):
...     def run(workloads):
...         layers = [LayerEstimate(w.name, "spiking", w.synaptic_ops_per_token *
...                   cfg.e_add.value * w.active_fraction, {}, {}) for w in workloads]
...         return EnergyEstimate(cfg.name, layers, cfg.constants(), [])
...     return run
>>> register_estimator(PerSpikeConfig, per_spike)
>>> w = LayerWorkload("fc", 4, 3, None, 0, 1.0, 0.5, source="assumed")
>>> round(estimate([w], "doctest_per_spike").total("spiking"), 6)
0.36
>>> unregister_estimator("doctest_per_spike")
"""

from __future__ import annotations

import dataclasses
import importlib
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

from spikingbrain.analysis.estimators.workload import LayerWorkload

__all__ = [
    "BUILTIN_MODULES",
    "Constant",
    "EnergyEstimate",
    "EstimatorConfig",
    "LayerEstimate",
    "config_for",
    "constant_field",
    "estimate",
    "estimator_names",
    "register_estimator",
    "unregister_estimator",
]


@dataclass(frozen=True)
class Constant:
    """A number an estimator uses, with its unit and its source (a citation or "assumed").

    >>> Constant("int8_add", 0.03, "pJ", "Horowitz, ISSCC 2014, 45 nm").with_value(0.05, "mine")
    Constant(name='int8_add', value=0.05, unit='pJ', source='mine')
    """

    name: str
    value: float
    unit: str
    source: str

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"Constant.name must be a non-empty string, got {self.name!r}")
        v = self.value
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ValueError(f"constant {self.name!r}: value must be a finite number, got {v!r}")
        if not isinstance(self.unit, str):
            raise TypeError(f"constant {self.name!r}: unit must be a string, got {self.unit!r}")
        if not isinstance(self.source, str) or not self.source.strip():
            raise ValueError(f"constant {self.name!r}: every constant needs its source (a "
                             f"citation, a user file, or 'assumed: ...')")

    def with_value(self, value: float, source: str) -> Constant:
        """The same constant with another value and the source of that value."""
        return dataclasses.replace(self, value=value, source=source)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def constant_field(name: str, value: float, unit: str, source: str) -> Any:
    """A config dataclass field whose default is ``Constant(name, value, unit, source)``.

    The one helper every built-in estimator declares its constants with; its arguments come
    in :class:`Constant`'s own order (name, value, unit, source).

    >>> from dataclasses import dataclass, fields
    >>> @dataclass(frozen=True)
    ... class C:
    ...     e_add: Constant = constant_field("e_add", 0.03, "pJ", "Horowitz ISSCC 2014")
    >>> C().e_add
    Constant(name='e_add', value=0.03, unit='pJ', source='Horowitz ISSCC 2014')
    """
    return field(default=Constant(name, value, unit, source))


@dataclass(frozen=True)
class LayerEstimate:
    """Energy per model token of one layer under one regime.

    Attributes:
        name: the layer's name.
        regime: ``"fp16"``, ``"int8"``, ``"spiking"``, ``"spiking_graded"``, ... .
        energy_pj_per_token: total energy (pJ) per token of the model (routed experts already
            weighted by their active fraction); equals the sum of ``breakdown``.
        breakdown: parts of the energy in pJ per token (e.g. ``synaptic``, ``weight_reads``).
        extra: estimator-specific figures (operation counts, cores, events, time_s, ...).
    """

    name: str
    regime: str
    energy_pj_per_token: float
    breakdown: dict[str, float] = field(default_factory=dict)
    extra: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.regime, str) or not self.regime:
            raise ValueError(f"layer {self.name!r}: regime must be a non-empty string")
        e = self.energy_pj_per_token
        if isinstance(e, bool) or not isinstance(e, (int, float)) or not math.isfinite(e) \
                or e < 0:
            raise ValueError(f"layer {self.name!r} ({self.regime}): energy_pj_per_token must be "
                             f"a finite number >= 0, got {e!r}")
        if self.breakdown and not math.isclose(sum(self.breakdown.values()), e, rel_tol=1e-9,
                                               abs_tol=1e-12):
            raise ValueError(f"layer {self.name!r} ({self.regime}): breakdown sums to "
                             f"{sum(self.breakdown.values())!r}, not the energy {e!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class EnergyEstimate:
    """An estimator's result: per-layer estimates of every regime, constants, notes."""

    estimator: str
    layers: list[LayerEstimate]
    constants: list[Constant]
    notes: list[str] = field(default_factory=list)

    @property
    def regimes(self) -> list[str]:
        """The regimes estimated, in first-seen order."""
        return list(dict.fromkeys(x.regime for x in self.layers))

    def total(self, regime: str) -> float:
        """Energy per model token (pJ) of all layers under ``regime``."""
        if regime not in self.regimes:
            raise ValueError(f"estimator {self.estimator!r} has no regime {regime!r}; "
                             f"regimes: {self.regimes}")
        return math.fsum(x.energy_pj_per_token for x in self.layers if x.regime == regime)

    def layer(self, name: str, regime: str) -> LayerEstimate:
        """The estimate of layer ``name`` under ``regime``."""
        for x in self.layers:
            if x.name == name and x.regime == regime:
                return x
        raise KeyError(f"no estimate for layer {name!r} under regime {regime!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: estimator, totals per regime (pJ per token), layers, constants, notes."""
        return {
            "estimator": self.estimator,
            "totals_pj_per_token": {r: self.total(r) for r in self.regimes},
            "layers": [x.to_dict() for x in self.layers],
            "constants": [c.to_dict() for c in self.constants],
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class EstimatorConfig:
    """Base of the estimators' frozen config dataclasses; ``name`` is the registry key.

    Subclasses validate their fields in ``__post_init__``; fields typed :class:`Constant` are
    the estimator's constants (:meth:`constants`).
    """

    name: ClassVar[str] = ""

    def constants(self) -> list[Constant]:
        """Every :class:`Constant` field of the config, in field order."""
        out = []
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, Constant):
                out.append(v)
        return out


Factory = Callable[[Any], Callable[[list[LayerWorkload]], EnergyEstimate]]
_REGISTRY: dict[str, tuple[type[EstimatorConfig], Factory]] = {}

#: Modules that register the built-in estimators when first needed (one may be absent from a
#: checkout that does not ship it: it is then simply not listed).
BUILTIN_MODULES = (
    "spikingbrain.analysis.estimators.horowitz",
    "spikingbrain.analysis.estimators.lemaire",
    "spikingbrain.analysis.estimators.loihi2",
)
_loaded = False


def _load_builtins() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for mod in BUILTIN_MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as err:
            if err.name != mod:  # a real missing dependency inside the module
                raise


def register_estimator(config_cls: type[EstimatorConfig], factory: Factory, *,
                       replace: bool = False) -> None:
    """Register ``factory`` under ``config_cls.name``.

    ``config_cls`` must be a dataclass subclass of :class:`EstimatorConfig` with a non-empty
    ``name``; a name already taken raises unless ``replace``.
    """
    if not (isinstance(config_cls, type) and issubclass(config_cls, EstimatorConfig)
            and dataclasses.is_dataclass(config_cls)):
        raise TypeError(f"config_cls must be a dataclass subclass of EstimatorConfig, got "
                        f"{config_cls!r}")
    name = config_cls.name
    if not isinstance(name, str) or not name:
        raise ValueError(f"{config_cls.__name__}.name must be a non-empty string")
    if not callable(factory):
        raise TypeError(f"factory of estimator {name!r} must be callable")
    if name in _REGISTRY and not replace and _REGISTRY[name][0] is not config_cls:
        raise ValueError(f"estimator name {name!r} is taken by "
                         f"{_REGISTRY[name][0].__name__}; pass replace=True to override")
    _REGISTRY[name] = (config_cls, factory)


def unregister_estimator(name: str) -> None:
    """Remove estimator ``name`` from the registry (KeyError if absent)."""
    _load_builtins()
    del _REGISTRY[name]


def estimator_names() -> list[str]:
    """Registered estimator names, sorted."""
    _load_builtins()
    return sorted(_REGISTRY)


def _unknown(name: Any) -> ValueError:
    return ValueError(f"unknown energy estimator {name!r}; choose one of: "
                      f"{', '.join(estimator_names())}")


def config_for(name: str, **overrides: Any) -> EstimatorConfig:
    """The config of estimator ``name`` with its defaults, fields overridden by ``overrides``.

    >>> try:
    ...     config_for("nonsense")
    ... except ValueError as err:
    ...     print(str(err).split(";")[0])
    unknown energy estimator 'nonsense'
    """
    _load_builtins()
    if name not in _REGISTRY:
        raise _unknown(name)
    cls = _REGISTRY[name][0]
    fields = {f.name for f in dataclasses.fields(cls)}
    bad = sorted(set(overrides) - fields)
    if bad:
        raise ValueError(f"estimator {name!r} has no field(s) {bad}; fields: {sorted(fields)}")
    return cls(**overrides)


def estimate(workloads: Sequence[LayerWorkload], config: EstimatorConfig | str
             ) -> EnergyEstimate:
    """Run the estimator of ``config`` (or of the registry name ``config``) on ``workloads``."""
    if isinstance(config, str):
        config = config_for(config)
    if not isinstance(config, EstimatorConfig):
        raise TypeError(f"config must be an EstimatorConfig or an estimator name, got "
                        f"{type(config).__name__}")
    _load_builtins()
    entry = _REGISTRY.get(config.name)
    if entry is None:
        raise _unknown(config.name)
    workloads = list(workloads)
    if not workloads:
        raise ValueError("no layer workloads to estimate (the model has no spiking linear "
                         "layer with a fan-out and tokens)")
    bad = [type(w).__name__ for w in workloads if not isinstance(w, LayerWorkload)]
    if bad:
        raise TypeError(f"workloads must be LayerWorkload records, got {bad[:3]}")
    result = entry[1](config)(workloads)
    if not isinstance(result, EnergyEstimate) or result.estimator != config.name:
        raise TypeError(f"estimator {config.name!r} returned {type(result).__name__} "
                        f"(expected an EnergyEstimate named {config.name!r})")
    return result
