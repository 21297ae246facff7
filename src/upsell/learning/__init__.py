"""Learning: models fitted from the workspace's outcomes, handed to the decision step as plain
values (architecture.md, "Layers")."""
