"""Stage 1 of the data flow: reading the exports' files."""
