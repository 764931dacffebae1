"""The conversation service: starting, stopping and talking to conversations."""
