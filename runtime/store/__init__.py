"""The image store: content-addressed blobs, unpacked layers, and image names.

    store = ImageStore(root)
    image = store.lookup("busybox")        # local only; None when missing
    image = store.pull("busybox", quiet=False, platform=None)

Importing this package and calling `lookup` does not import `requests`;
`pull` imports the registry client inside the call.
"""

from runtime.store.images import Image, ImageInUseError, ImageStore

__all__ = ["Image", "ImageInUseError", "ImageStore"]
