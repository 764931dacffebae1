"""Durable state: conversations, events, settings and secrets."""
