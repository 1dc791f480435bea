"""Orchestration: the study grid, figure data, the word inspector, fidelity, sweeps, notebooks."""
