"""Energy estimators behind one interface (issue 11).

- :mod:`~spikingbrain.analysis.estimators.workload`: :class:`LayerWorkload`, what every
  estimator consumes (shape and per-token spike activity of a spiking linear layer), from a
  measured run or from a model's shapes with an assumed activity.
- :mod:`~spikingbrain.analysis.estimators.base`: :class:`Constant` (a number with its source),
  :class:`LayerEstimate` / :class:`EnergyEstimate` (results), :class:`EstimatorConfig` and the
  registry (:func:`register_estimator`, :func:`estimate`, :func:`estimator_names`,
  :func:`config_for`).

>>> w = LayerWorkload("fc", 8, 4, None, 0, 1.0, 0.5, source="assumed")
>>> w.synaptic_ops_per_token
32.0
"""

from spikingbrain.analysis.estimators.base import (
    Constant,
    EnergyEstimate,
    EstimatorConfig,
    LayerEstimate,
    config_for,
    estimate,
    estimator_names,
    register_estimator,
    unregister_estimator,
)
from spikingbrain.analysis.estimators.workload import (
    LayerWorkload,
    workloads_from_model_stats,
    workloads_from_shapes,
)

__all__ = [
    "Constant",
    "EnergyEstimate",
    "EstimatorConfig",
    "LayerEstimate",
    "LayerWorkload",
    "config_for",
    "estimate",
    "estimator_names",
    "register_estimator",
    "unregister_estimator",
    "workloads_from_model_stats",
    "workloads_from_shapes",
]
