"""`invoke evaluate`: user-level cross-validation of global, personal and local-only heads."""
