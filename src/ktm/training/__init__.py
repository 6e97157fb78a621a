"""One training engine for every task, on Accelerate."""

from .config import TrainConfig
from .data import Example
from .trainer import TrainResult, train

__all__ = ["Example", "TrainConfig", "TrainResult", "train"]
