"""Secure aggregation (Bonawitz et al. 2017): the server side and the Python twin of
fedcore/secagg.c's arithmetic (PROTOCOL.md §7, PRIVACY.md threat model)."""
