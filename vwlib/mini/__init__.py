"""The mini world's models: vocabulary, architectures, training data, training, compact checkpoints, evaluation."""
