"""fedhead host-side tools: link, aggregator, monitor, fleet, bench."""
