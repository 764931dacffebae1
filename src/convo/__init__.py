"""convo: a self-hostable agent conversation server speaking the OpenHands conversation API."""

__version__ = "0.1.0"
__all__ = ["__version__"]
