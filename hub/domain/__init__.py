"""Pure domain core: stdlib only, no I/O, no clock, no settings."""
