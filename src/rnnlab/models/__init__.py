"""Models: one recurrent encoder for every cell, task heads, and their LightningModules."""
