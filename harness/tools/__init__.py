"""The engines of commands that are not a measured run: doctor (is this machine ready),
explain/profile (see why), serve (click through the lab app), scaffolding (labs new). Each
returns data; the CLI renders it."""
