"""Built-in scenarios: one module each, exposing a `SCENARIO` declaration; lessons beside them."""
