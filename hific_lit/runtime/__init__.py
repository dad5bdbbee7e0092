"""Where and how models run: the device resolver, the float precision of the transforms, the allocator."""
