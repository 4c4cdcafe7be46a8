"""A scripted teacher that works like Claude Code, for the imitation benchmark (issue 15).

:mod:`tests.teacher.families` generates small repositories and, for each, the turns a
consistent Claude-like agent takes on one task (six task families); :mod:`tests.teacher.run`
plays those turns through the fake Messages API while the real Claude Code executes every
tool call in the repository and our hooks capture the turn.
"""
