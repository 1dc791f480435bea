"""Models: profiles, loading (compact mini checkpoints included), the text and image sides, hooks, probes, one adapter per family."""
