"""Files: the .hfc container, inference checkpoints, images, atomic writes."""
