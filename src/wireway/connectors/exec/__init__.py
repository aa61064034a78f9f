"""The exec connector: commands as inputs and outputs."""
