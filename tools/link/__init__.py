"""Python twin of the fedhead link protocol (docs/PROTOCOL.md): framing, messages, transports."""
