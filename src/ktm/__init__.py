"""ktm — K-Token Merging: latent-space prompt compression for causal language models."""

__version__ = "0.1.0"

import warnings  # noqa: E402

# peft asks transformers a deprecated question on every adapter build; not the user's concern.
warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated")

from .config import KTMConfig  # noqa: E402
from .errors import KTMError  # noqa: E402
from .model import KTMModel  # noqa: E402
from .packing import CompressedBatch  # noqa: E402
from .sampling import SamplingConfig  # noqa: E402

__all__ = ["KTMConfig", "KTMModel", "KTMError", "CompressedBatch", "SamplingConfig", "__version__"]
