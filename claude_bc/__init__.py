"""claude-bc: what spans every stage (the ``bc-train`` entry point)."""
