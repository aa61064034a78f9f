"""The tcp connector: a TCP server (input) and client (output) carrying records
framed by newlines or by a 4-byte big-endian length, in any `format:`, with TLS
and mutual TLS, and an optional `ok N` acknowledgement between two wireways."""
