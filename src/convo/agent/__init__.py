"""The agent loop: LLM → tool calls → observations, as events."""
