"""The file connector: an input that follows files as they grow (a log, a program's
per-run CSV; positions committed with the messages, so a crash loses no line) or
takes each new file of a folder whole, and an output that appends records in any
format (rotated by size or age) or writes one file per message atomically."""
