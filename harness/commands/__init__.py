"""The `labs` subcommands, one module per group. Each command parses its flags into plain
options, calls the engine and renders what comes back; errors are raised, never caught here
(`harness.cli.main` turns a LabsError into one clear line and its exit code)."""
