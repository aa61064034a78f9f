"""wireway: declarative integration patterns with at-least-once delivery."""

from wireway.envelope import Message, Metadata, new_message_id

__all__ = ["Message", "Metadata", "__version__", "new_message_id"]
__version__ = "0.1.0"
