"""Task-useful knowledge of a fine-tuned teacher: one linear probe per teacher layer
(embeddings + every hidden layer) trained on the frozen teacher's masked-mean hidden states.

The probes' logits are AdaBERT's KD targets (student cell m learns from the probe at the
proportional teacher layer), and their held-out cross-entropies weight the layers
(softmax(−loss): layers whose knowledge is more useful for the task count more). The teacher
runs once; features, probes and logits are cached on disk, keyed by the teacher's weights,
the token ids, labels and the probe settings.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F

from ...data.collate import Encoded
from ...errors import ConfigError
from ...train.predict import pooled_hidden_states


def train_probes(train_x: torch.Tensor, train_y: torch.Tensor, num_labels: int,
                 epochs: int = 100, lr: float = 1e-2, weight_decay: float = 1e-4,
                 seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Full-batch logistic regression per layer on standardised features: weights [J, H, C]
    and biases [J, C] (the standardisation folded in)."""
    if (train_y < 0).any() or (train_y >= num_labels).any():
        raise ConfigError("probes need class labels in [0, num_labels)")
    g = torch.Generator().manual_seed(seed)
    mu, sd = train_x.mean(0), train_x.std(0).clamp(min=1e-6)  # [J, H]
    z = (train_x - mu) / sd
    J, H = z.shape[1], z.shape[2]
    w = (torch.randn(J, H, num_labels, generator=g) * 0.01).requires_grad_()
    b = torch.zeros(J, num_labels, requires_grad=True)
    opt = torch.optim.Adam([w, b], lr=lr, weight_decay=weight_decay)
    y = train_y.long()
    for _ in range(epochs):
        logits = torch.einsum("njh,jhc->njc", z, w) + b  # [N, J, C]
        loss = F.cross_entropy(logits.reshape(-1, num_labels), y.repeat_interleave(J),
                               reduction="mean") * J
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        w_raw = w / sd[..., None]
        b_raw = b - torch.einsum("jh,jhc->jc", mu, w_raw)
    return w_raw.detach(), b_raw.detach()


def probe_logits(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.einsum("njh,jhc->njc", x, w) + b


def probe_losses(logits: torch.Tensor, y: torch.Tensor) -> tuple[list[float], list[float]]:
    """Per layer: mean cross-entropy and accuracy of the probes on gold labels."""
    J = logits.shape[1]
    ce = F.cross_entropy(logits.permute(0, 2, 1), y[:, None].expand(-1, J).long(),
                         reduction="none").mean(0)
    acc = (logits.argmax(-1) == y[:, None]).float().mean(0)
    return ce.tolist(), acc.tolist()


def layer_weights(losses, layers: list[int]) -> torch.Tensor:
    """softmax(−probe loss) over ``layers``."""
    return (-torch.tensor([losses[j] for j in layers], dtype=torch.float32)).softmax(0)


def build_probes(teacher, fit: Encoded, heldout: Encoded, num_labels: int, cache_dir: Path,
                 epochs: int = 100, lr: float = 1e-2, batch_size: int = 64, seed: int = 0,
                 progress: bool = False) -> dict:
    """Probes trained on ``fit`` (their loss and accuracy measured on ``heldout``); returns
    ``{"fit": [N_fit, J, C], "heldout": [N_held, J, C], "loss": [J], "accuracy": [J],
    "cached": bool}``. A second call with the same teacher, data and settings reads the file."""
    from safetensors.torch import load_file, save_file

    from ...cache import content_key
    from ...teachers import fingerprint_model

    settings = {"epochs": epochs, "lr": lr, "seed": seed, "v": 1}
    key = content_key(fingerprint_model(teacher), [fit, heldout], settings)
    path = Path(cache_dir) / f"probes-{key}.safetensors"
    meta = path.with_suffix(".json")
    if path.exists() and meta.exists():
        t = load_file(str(path))
        return {"fit": t["fit"], "heldout": t["heldout"], **json.loads(meta.read_text()),
                "cached": True}
    for enc, name in ((fit, "training"), (heldout, "held-out")):
        if any(y is None for y in enc.labels):
            raise ConfigError(f"AdaBERT probes need gold labels on every {name} row")
    xf = pooled_hidden_states(teacher, fit, batch_size, progress)
    xh = pooled_hidden_states(teacher, heldout, batch_size, progress)
    yf, yh = torch.tensor(fit.labels), torch.tensor(heldout.labels)
    w, b = train_probes(xf, yf, num_labels, epochs, lr, seed=seed)
    lf, lh = probe_logits(xf, w, b), probe_logits(xh, w, b)
    loss, acc = probe_losses(lh, yh)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    save_file({"fit": lf.contiguous(), "heldout": lh.contiguous()}, str(tmp))
    info = {"loss": loss, "accuracy": acc}
    meta.write_text(json.dumps(info))
    tmp.rename(path)
    return {"fit": lf, "heldout": lh, **info, "cached": False}
