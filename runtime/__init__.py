"""pyrun's runtime: the image store, the OCI bundle and the kernel side of a container."""
