"""`invoke demo`: the whole loop on virtual boards, with the evaluation protocol of DESIGN §5."""
