"""Python twins of fedcore's C algorithms (firmware/lib/fedcore): same random stream, same
operation order, same rounding decisions. Used by tests (C vs Python) and the simulator."""
