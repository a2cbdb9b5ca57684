"""GPT-2 Lab's core: a GPT-2 written from scratch in PyTorch, its tokenizer, weights and sampling.

Depends on torch, tiktoken, numpy and safetensors only: `import gpt` loads no hub client, UI
library, database or jobs code. Training is `gpt.train`, the app's services `gpt.lab`, background
jobs `gpt.jobs`; each layer imports only the ones below it.

>>> import gpt
>>> model = gpt.GPT(gpt.PRESETS["tiny"])
>>> model.config.n_layer
2
"""

from gpt.checkpoint import (
    Checkpoint,
    CheckpointError,
    load_checkpoint,
    load_hf_gpt2,
    load_model,
    save_checkpoint,
)
from gpt.classifier import GPTClassifier
from gpt.config import PRESETS, STARTER_MODELS, GPTConfig
from gpt.inside import (
    ablate,
    ablate_heads,
    attribute,
    compare,
    gradient_x_input,
    logit_lens,
    occlusion,
    patch,
    predictions,
    surprisal,
)
from gpt.model import GPT, Explanation, KVCache
from gpt.sampling import (
    Candidate,
    SamplingConfig,
    SamplingError,
    StreamEvent,
    generate,
    generate_ids,
    stream,
)
from gpt.tokenizer import (
    StreamDecoder,
    Tokenizer,
    TokenizerError,
    TokenizerNotFoundError,
    gpt2_tokenizer,
    load_tokenizer,
)
from gpt.walk import (
    Knockout,
    KnockoutComparison,
    Step,
    Trace,
    compare_knockouts,
    knockout,
    knockouts,
    trace,
)

__all__ = [
    "GPT",
    "PRESETS",
    "Candidate",
    "Checkpoint",
    "CheckpointError",
    "Explanation",
    "GPTClassifier",
    "GPTConfig",
    "KVCache",
    "Knockout",
    "KnockoutComparison",
    "STARTER_MODELS",
    "SamplingConfig",
    "SamplingError",
    "StreamDecoder",
    "Step",
    "StreamEvent",
    "Tokenizer",
    "TokenizerError",
    "TokenizerNotFoundError",
    "Trace",
    "ablate",
    "ablate_heads",
    "attribute",
    "compare",
    "compare_knockouts",
    "generate",
    "generate_ids",
    "gpt2_tokenizer",
    "gradient_x_input",
    "knockout",
    "knockouts",
    "load_checkpoint",
    "load_hf_gpt2",
    "load_model",
    "load_tokenizer",
    "logit_lens",
    "occlusion",
    "patch",
    "predictions",
    "save_checkpoint",
    "stream",
    "surprisal",
    "trace",
]
