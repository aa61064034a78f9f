"""The tak connector: Cursor-on-Target events to and from TAK (ATAK, WinTAK, iTAK, TAK
Server): a UDP multicast group (or unicast, broadcast), a TCP stream, or TLS with a
client certificate (PEM or PKCS#12); events as XML or TAK protocol version 1."""
