"""The unix connector: unix-domain sockets on this machine, stream (records framed
as on tcp: lines or a 4-byte length, with the same `ok N` acknowledgement) or
datagram (one datagram, one message); the socket file's mode and owner are set
when it is made, and a stale one left by a process that died is replaced."""
