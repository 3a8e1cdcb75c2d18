"""What every experiment shares: its ``Result``, and ``require`` for the heavy modules it needs."""

from __future__ import annotations

import importlib
from typing import Any, Callable

from agentd.errors import MissingDependency
from agentd.recordtype import Factory, Record

GPU_EXTRA = "pip install 'agentd-host[gpu]'"
TORCH_NOTE = (
    "pick the torch build first if the default wheel is wrong for this host: "
    "CUDA wheels from https://download.pytorch.org/whl/cuXXX, "
    "Jetson wheels from NVIDIA's JetPack index, CPU from https://download.pytorch.org/whl/cpu"
)

Progress = Callable[[str], None]


class Result(Record):
    status: str  # "done" | "blocked" | "failed"
    summary: str
    lines: list[str] = Factory(list)
    data: dict[str, Any] = Factory(dict)
    next_step: str | None = None



def require(module: str):
    """Import an optional heavy module or raise MissingDependency naming the fix."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingDependency(module, f"{GPU_EXTRA} ({TORCH_NOTE})") from e
    except OSError as e:  # e.g. a CUDA torch wheel without its driver libraries
        raise MissingDependency(f"{module} (import failed: {e})", f"{GPU_EXTRA} ({TORCH_NOTE})") from e
