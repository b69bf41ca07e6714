"""lmdistill: distill large pretrained language models into small, fast, task-specific ones."""

import logging as _logging

__version__ = "0.1.0"

# accelerate/transformers import torchao (when installed) on first use; torchao then warns
# about optional CUDA kernels and torch about deprecated pytree registrations, on every run.
for _name in ("torchao", "torch.utils._pytree"):
    _logging.getLogger(_name).setLevel(_logging.ERROR)
