"""DP federated aggregator: rounds over DeviceClients, strategies, privacy, accounting, store."""
