"""Where the work comes from: the project config (labs.toml / [tool.labs]), the scenario
registry, the Django settings to measure under, and the environment facts a result records."""
