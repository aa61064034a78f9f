"""The pipe connector: named pipes (FIFOs)."""
