"""Training: one loop for every task (`loop`), its data, state, optimiser, LoRA, the frozen-trunk
cache, metrics, the optional judge and run-time estimates. Imports only the core (`gpt.*`)."""
