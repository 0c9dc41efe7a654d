"""Running several bridge processes behind one address: the try-out and its services."""
