"""Frame-aware serial monitor: decoded frames as readable lines, other bytes passed through."""
