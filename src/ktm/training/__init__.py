"""One training engine for every task, on Accelerate."""

from .config import TrainConfig
from .data import Example
from .protocol import TrainableModel
from .trainer import TrainResult, train

__all__ = ["Example", "TrainConfig", "TrainResult", "TrainableModel", "train"]
