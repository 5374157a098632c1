"""The lowest layer, used by every stage: errors, atomic files, the console, TOML presets, metrics and constants."""
