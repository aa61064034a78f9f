"""Pattern files: loading, checking and their sections."""

from wireway.config.loader import load_deployment, load_pattern, pattern_files
from wireway.config.model import Interface, Pattern, Settings, Step

__all__ = [
    "Interface",
    "Pattern",
    "Settings",
    "Step",
    "load_deployment",
    "load_pattern",
    "pattern_files",
]
