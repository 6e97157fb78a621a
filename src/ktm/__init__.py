"""ktm — K-Token Merging: latent-space prompt compression for causal language models."""

__version__ = "0.1.0"

from .config import KTMConfig  # noqa: E402
from .errors import KTMError  # noqa: E402
from .model import KTMModel  # noqa: E402
from .packing import CompressedBatch  # noqa: E402
from .sampling import SamplingConfig  # noqa: E402

__all__ = ["KTMConfig", "KTMModel", "KTMError", "CompressedBatch", "SamplingConfig", "__version__"]
