"""The fine-tuning code: data, tokenization, the per-worker training loop and the Tune trainable."""
