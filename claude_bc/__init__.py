"""claude-bc, installed as one package: claude_bc.hooks, .proxy, .capture, .training and
.export (the repository's top-level folders, mapped by pyproject.toml), and cli.py, the
``bc-train`` group that mounts every stage."""
