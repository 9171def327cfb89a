"""Workshop mode: exercises participants fix, checked for real by `labs check N`."""
