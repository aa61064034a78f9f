"""The udp connector: datagrams in and out, unicast, broadcast and multicast (a group
joined on a named interface, TTL, loopback, a port shared by several listeners); one
datagram is one message in any `format:`. UDP neither orders nor acknowledges: a
datagram the network or a full receive buffer drops is gone."""
