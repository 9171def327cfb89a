"""What a run produced, and what it means over time: the result model, the versioned store,
comparisons between runs, and history across commits."""
