"""The procedural world and every dataset loader (leaves: no model is loaded here)."""
