"""`invoke bench`: measured figures for backbone, head, firmware, link, aggregator and demo."""
