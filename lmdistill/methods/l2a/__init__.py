"""L2A (Feng et al., AAAI 2021): learning to augment for distillation in data-scarce domains.
``generator`` (masked-LM corrupt-and-reconstruct chains from source and target samples) and
``selector`` (a REINFORCE policy that keeps or drops generated samples)."""
