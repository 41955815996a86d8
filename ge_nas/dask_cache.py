"""The feature cache of a Dask worker: a worker plugin owns one per worker process.

Imported only by the Dask executor (dask.distributed is an optional extra).
"""

from __future__ import annotations

from distributed import get_worker
from distributed.diagnostics.plugin import WorkerPlugin

from ge_nas.feature_cache import FeatureCache
from ge_nas.worker import EvalTask, Outcome, evaluate

PLUGIN = "ge_nas-feature-cache"


class FeatureCachePlugin(WorkerPlugin):
    """Gives each Dask worker process a FeatureCache of cap_mb."""

    name = PLUGIN

    def __init__(self, cap_mb: int) -> None:
        self.cap_mb = cap_mb
        self.cache: FeatureCache | None = None

    def setup(self, worker: object) -> None:
        """Make this worker's cache."""
        self.cache = FeatureCache(self.cap_mb)


def evaluate_on_worker(task: EvalTask) -> Outcome:
    """Evaluate task with the running Dask worker's cache (none when the plugin is not registered)."""
    plugin = get_worker().plugins.get(PLUGIN)
    return evaluate(task, plugin.cache if isinstance(plugin, FeatureCachePlugin) else None)
