"""The ``cluster`` section: where the Ray cluster is and how big a worker is."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from streamer.config_base import StrictModel


class ClusterConfig(StrictModel):
    engine: Literal["ray"] = Field("ray", description="the distributed engine: Ray")
    address: str = Field(
        "auto", description="the Ray cluster's head, HOST:PORT as 'ray start --head' printed it; auto: the cluster "
        "this machine belongs to (RAY_ADDRESS, or the one 'ray start' joined)"
    )
    workers: int | None = Field(
        None, ge=1, le=10_000, description="worker actors, each owning a share of the cameras; default: as many as "
        "the cluster's GPUs (gpus_per_worker) or CPU cores (cpus_per_worker) hold, at most one per camera"
    )
    cpus_per_worker: float = Field(2, gt=0, le=1024, description="CPU cores Ray reserves for each worker")
    gpus_per_worker: float = Field(0, ge=0, le=64, description="GPUs Ray reserves for each worker (1: one per GPU)")
    max_restarts: int = Field(-1, ge=-1, le=1_000_000, description="how often Ray restarts a lost worker, on a "
                              "machine still there (-1: always)")
    status_every_s: float = Field(1.0, gt=0, le=60, description="how often the driver asks every worker how its "
                                  "cameras are doing")
