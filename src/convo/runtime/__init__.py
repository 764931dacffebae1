"""Workspaces and the shells that run the agent's commands."""
