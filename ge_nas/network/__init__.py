"""ArchSpec -> torch.nn.Module: the layer builders, and parameters and FLOPs counted before training."""

from ge_nas.network.build import Size, build_model, count_params, measure

__all__ = ["Size", "build_model", "count_params", "measure"]
