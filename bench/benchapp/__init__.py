"""The benchmark's own models: the recipients messages go to, and a business row."""
